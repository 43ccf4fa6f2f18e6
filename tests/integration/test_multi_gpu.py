"""torchrun DDP on CPU (gloo): 2 processes train one short epoch and evaluate, as on a multi-GPU node."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.bundles import copy_bundle, parse, tiny_overrides

from dsd_tools.demo_data import make_demo_data


def _torchrun(bundle: Path, configs: list[str], cwd: Path, **overrides) -> subprocess.CompletedProcess:
    files = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "monai.bundle", "run", "--config_file", files]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hippo_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    return Path(make_demo_data("hippocampus", str(root / "hippocampus"), num_cases=8, seed=0))


@pytest.mark.parametrize("name,mode", [("hippocampus_nnunet_dsd", "dsd"), ("hippocampus_nnunet_dsd", "ds"),
                                       ("hippocampus_unetr_dsd", "dsd")])
def test_ddp_train_two_processes(name, mode, hippo_data, tmp_path):
    bundle = copy_bundle(name, tmp_path)
    over = {**tiny_overrides(name), "dataset_dir": str(hippo_data), "num_epochs": 2, "val_interval": 1,
            "num_workers": 0, "num_samples": 2, "dsd_mode": mode}
    res = _torchrun(bundle, ["train.json", "multi_gpu_train.json"], tmp_path, **over)
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

    if mode == "dsd" and name == "hippocampus_nnunet_dsd":
        out = tmp_path / "eval"
        res = _torchrun(bundle, ["train.json", "evaluate.json", "multi_gpu_evaluate.json"], tmp_path, output_dir=str(out),
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
