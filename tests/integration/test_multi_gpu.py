"""torchrun DDP on CPU (gloo): 2 processes train one short epoch and evaluate, as on a multi-GPU node."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.bundles import copy_bundle, parse, tiny_overrides

from dsd_tools.demo_data import make_demo_data


SPY = Path(__file__).parents[1] / "support" / "ddp_spy.py"


def _torchrun(bundle: Path, configs: list[str], cwd: Path, spy: Path, **overrides) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m monai.bundle run ...`` through tests/support/ddp_spy.py, which records in
    ``spy`` which files each rank wrote and which training patches it drew."""
    files = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SPY), "run", "--config_file", files]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    spy.mkdir(parents=True, exist_ok=True)
    # PYTHONSAFEPATH: the spy script's folder (tests/support) is not put on the ranks' import path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DSD_SPY_DIR": str(spy), "PYTHONSAFEPATH": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _spied(spy: Path, rank: int, kind: str) -> list[list[str]]:
    path = spy / f"rank{rank}.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split("\t")[1:] for line in lines if line.split("\t")[0] == kind]


@pytest.fixture(scope="module")
def hippo_data(tmp_path_factory) -> Path:
    """8 demo cases with identical voxels (each its own file name): the ranks' partitions hold the same data, so
    their patches differ only where their random streams do."""
    root = tmp_path_factory.mktemp("ddp_data")
    data = Path(make_demo_data("hippocampus", str(root / "hippocampus"), num_cases=8, seed=0))
    for folder in ("imagesTr", "labelsTr"):
        first, *others = sorted((data / folder).glob("*.nii.gz"))
        for other in others:
            shutil.copyfile(first, other)
    return data


@pytest.mark.parametrize("name,mode", [("hippocampus_nnunet_dsd", "dsd"), ("hippocampus_nnunet_dsd", "ds"),
                                       ("hippocampus_unetr_dsd", "dsd")])
def test_ddp_train_two_processes(name, mode, hippo_data, tmp_path):
    bundle = copy_bundle(name, tmp_path)
    over = {**tiny_overrides(name), "dataset_dir": str(hippo_data), "num_epochs": 2, "val_interval": 1,
            "num_workers": 0, "num_samples": 2, "dsd_mode": mode}
    spy = tmp_path / "spy"
    res = _torchrun(bundle, ["train.json", "multi_gpu_train.json"], tmp_path, spy, **over)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    log = res.stdout + res.stderr
    assert "unused parameters" not in log.lower()
    # rank 0 alone logs, writes TensorBoard and checkpoints
    assert log.count("Epoch: 2/2, Iter: 1/") == 1
    # each rank trains on its own half of the training cases (partition_dataset, even_divisible)
    n_train = len(parse(bundle, "train.json", dataset_dir=str(hippo_data)).get_parsed_content("datalists")["training"])
    assert f"Epoch: 2/2, Iter: 1/{-(-n_train // 2)} " in log
    (run_dir,) = (bundle / "models" / "runs").iterdir()  # one run folder, chosen by rank 0 for every rank
    pids = {p.name.split(".")[-2] for p in (run_dir / "logs").glob("events.out.tfevents.*")}
    assert len(pids) == 1, pids
    assert not (bundle / "models" / "train.lock").exists()  # rank 0 released the bundle's lock
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith(("module.", "backbone.", "heads.")) for k in state)
    net = parse(bundle, "inference.json", **tiny_overrides(name)).get_parsed_content("network_def")
    net.load_state_dict(state, strict=True)
    latest = torch.load(run_dir / "latest.pt", weights_only=True)
    assert latest["epoch"] == 2 and 0.0 <= latest["best_metric"] <= 1.0

    # which rank wrote which file: rank 0 every file of the bundle, rank 1 none (MULTI_GPU.md)
    written = [{Path(p) for (p,) in _spied(spy, r, "file") if bundle in Path(p).parents} for r in (0, 1)]
    models = bundle / "models"
    assert {models / "train.lock", run_dir / "latest.pt", run_dir / "model.pt", run_dir / "run.json",
            models / "model.pt"} <= written[0], sorted(written[0])
    assert written[1] == set(), sorted(written[1])
    # the ranks drew different patches from the same data, every iteration (each rank its own random stream)
    patches = [{(e, i): h for e, i, h in _spied(spy, r, "patch")} for r in (0, 1)]
    assert patches[0].keys() == patches[1].keys() and len(patches[0]) == 2 * -(-n_train // 2)
    assert all(patches[0][k] != patches[1][k] for k in patches[0]), patches
    assert len(set(patches[0].values()) | set(patches[1].values())) == 2 * len(patches[0])

    if mode == "dsd" and name == "hippocampus_nnunet_dsd":
        out = tmp_path / "eval"
        res = _torchrun(bundle, ["train.json", "evaluate.json", "multi_gpu_evaluate.json"], tmp_path,
                        tmp_path / "spy_eval", output_dir=str(out),
                        eval_split="testing", **{k: v for k, v in over.items() if k not in
                                                 ("num_epochs", "val_interval", "num_samples", "dsd_mode")})
        assert res.returncode == 0, res.stderr[-6000:]
        with open(out / "per_case_metrics.csv") as f:
            rows = list(csv.DictReader(f))
        test_cases = parse(bundle, "evaluate.json", dataset_dir=str(hippo_data)).get_parsed_content("datalists")["testing"]
        assert sorted(r["case"] for r in rows) == sorted(Path(c["image"]).name for c in test_cases)
        # evaluate.json's finalize survives the DDP override: rank 0 plots the training curves from logs/
        assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
        assert json.loads((out / "evaluation.json").read_text())["num_cases"] == len(test_cases)
