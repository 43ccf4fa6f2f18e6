"""Every bundle trains, evaluates and infers end to end on demo data in the real on-disk formats."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from support.bundles import BUNDLES, ROOT, bundle_dataset, copy_bundle, parse, tiny_overrides
from monai.bundle import run

from dsd_tools.bundlegen import paper_bundle_specs, stale_files
from dsd_tools.bundlegen.reproducing import reproducing_md
from dsd_tools.paper import PAIRINGS
from dsd_tools.demo_data import make_demo_data
from dsd_tools.paths import config_files

REQUIRED = ["configs/train.json", "configs/evaluate.json", "configs/inference.json", "configs/multi_gpu_train.json",
            "configs/metadata.json", "configs/logging.conf", "docs/README.md", "LICENSE", "large_files.yml"]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    for ds in ("mmwhs", "brats", "hippocampus"):
        make_demo_data(ds, str(root / ds), num_cases=6 if ds != "mmwhs" else 5, seed=0)
    return root


def test_nine_bundles_generated_and_up_to_date():
    assert sorted(PAIRINGS) == BUNDLES and len(BUNDLES) == 9
    assert stale_files(paper_bundle_specs(), ROOT / "bundles") == [], "run: dsd-generate"
    assert (ROOT / "docs" / "REPRODUCING.md").read_text() == reproducing_md(), "run: dsd-generate"
    for name in BUNDLES:
        for rel in REQUIRED:
            assert (ROOT / "bundles" / name / rel).is_file(), f"{name}/{rel}"


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("config", ["train.json", "evaluate.json", "inference.json"])
def test_configs_parse_and_instantiate_network(name, config):
    parser = parse(ROOT / "bundles" / name, config)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, torch.nn.Module)
    assert "dsd_components" not in json.dumps(parser.get("network_def"))  # the shipped network is stock MONAI
    if config == "inference.json":  # MONAI Label parses it: no project import line
        assert not any("dsd_components" in i for i in parser.get("imports"))


@pytest.mark.parametrize("name", BUNDLES)
def test_train_evaluate_infer(name, demo_root, tmp_path):
    bundle = copy_bundle(name, tmp_path)
    ds = bundle_dataset(name)
    data_dir = str(demo_root / ds)
    over = tiny_overrides(name)
    common = {"bundle_root": str(bundle), "dataset_dir": data_dir, "num_workers": 0, **over}
    cfg = lambda c: str(bundle / "configs" / c)  # noqa: E731
    meta = str(bundle / "configs" / "metadata.json")
    log = str(bundle / "configs" / "logging.conf")

    run(config_file=cfg("train.json"), meta_file=meta, logging_file=log, num_epochs=1, val_interval=1, num_samples=1,
        **common)
    model_pt = bundle / "models" / "model.pt"
    (run_dir,) = (bundle / "models" / "runs").iterdir()  # the run's own folder
    assert model_pt.is_file() and (run_dir / "latest.pt").is_file() and (run_dir / "model.pt").is_file()
    state = torch.load(model_pt, weights_only=True)
    infer_net = parse(bundle, "inference.json", **over).get_parsed_content("network_def")
    infer_net.load_state_dict(state, strict=True)  # backbone-only, key for key

    out_eval = tmp_path / "eval"
    run(config_file=config_files(bundle, "evaluate.json"), meta_file=meta, logging_file=log, output_dir=str(out_eval),
        eval_split="validation", **common)
    with open(out_eval / "per_case_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no evaluated case"
    classes = json.loads(Path(meta).read_text())["network_data_format"]["outputs"]["pred"]["channel_def"]
    dice_cols = [c for c in rows[0] if c.startswith("mean_dice_") and c != "mean_dice_mean"]
    assert len(dice_cols) == len(classes) - 1
    for r in rows:
        for c in dice_cols:
            v = float(r[c])
            assert math.isnan(v) or 0.0 <= v <= 1.0
    assert (out_eval / "summary.csv").is_file()
    if ds == "brats":  # the standard regions next to the reference code's per-label scores
        with open(out_eval / "regions_summary.csv") as f:
            assert {r["class"] for r in csv.DictReader(f)} == {"WT", "TC", "ET", "mean"}

    # inference on the raw images of the validation split: same shape and affine, labels within channel_def
    images = sorted({str(p) for p in Path(data_dir).rglob("*.nii.gz") if "label" not in p.name and "labelsTr" not in str(p)})[:2]
    in_dir = tmp_path / "infer_in"
    in_dir.mkdir()
    for p in images:
        os.symlink(p, in_dir / Path(p).name)
    out_inf = tmp_path / "infer_out"
    run(config_file=cfg("inference.json"), meta_file=meta, logging_file=log,
        **{**common, "dataset_dir": str(in_dir), "output_dir": str(out_inf)})
    for p in images:
        seg = out_inf / Path(p).name.replace(".nii.gz", "_seg.nii.gz")
        assert seg.is_file(), seg
        src, pred = nib.load(p), nib.load(seg)
        assert pred.shape[:3] == src.shape[:3]
        assert np.allclose(pred.affine, src.affine, atol=1e-4)
        assert set(np.unique(np.asarray(pred.dataobj)).astype(int)) <= {int(k) for k in classes}


@pytest.mark.parametrize("cwd_kind", ["repo_root", "bundle_dir", "copied"])
def test_cli_bundle_root_from_any_folder(cwd_kind, demo_root, tmp_path):
    """`python -m monai.bundle run --config_file .../train.json` finds its bundle root wherever it is run."""
    name = "hippocampus_nnunet_dsd"
    if cwd_kind == "copied":
        bundle = copy_bundle(name, tmp_path)
        cwd, config = tmp_path, f"{name}/configs/train.json"
    elif cwd_kind == "bundle_dir":
        bundle = copy_bundle(name, tmp_path)
        cwd, config = bundle, "configs/train.json"
    else:
        bundle, cwd, config = ROOT / "bundles" / name, ROOT, f"bundles/{name}/configs/train.json"
    code = (
        "import sys; from monai.bundle import ConfigParser; p = ConfigParser(); p.read_config(sys.argv[2]); "
        "print('ROOT=' + p.get_parsed_content('bundle_root'))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, "--config_file", config], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert f"ROOT={bundle.resolve()}" in out
