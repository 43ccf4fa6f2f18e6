"""Your own data: an nnU-Net v2 raw dataset (two channels, anisotropic spacing, three labels) becomes a planned DSD
bundle with one command, which trains, evaluates and infers through ``python -m monai.bundle run``; bad datasets
fail before anything is written."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support import command

from dsd_components.entry import user_error_in
from dsd_components.errors import DatasetIntegrityError
from dsd_tools.demo_data import make_demo_data
from dsd_tools.plan.bundle import new_bundle
from dsd_tools.paths import config_file_arg, config_files

NAME = "prostate_dynunet_dsd"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nnunet_raw") / "Dataset901_DemoProstate"
    make_demo_data("nnunet", str(root), num_cases=10, seed=0)
    return root


@pytest.fixture(scope="module")
def planned(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planned")
    res = subprocess.run([command("dsd-new-bundle"), str(dataset), "--name", NAME, "--output_dir", str(out),
                          "--gpu_memory_gb", "8"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"wrote {out / NAME}" in res.stdout
    return out / NAME


def test_plan_follows_nnunets_rules_and_the_dataset(planned, dataset):
    plan = json.loads((planned / "plan.json").read_text())
    train = json.loads((planned / "configs" / "train.json").read_text())
    # dataset.json: channels and classes; the folder: the nnU-Net layout and its 5-fold split
    assert train["dataset"]["channel_names"] == ["T2", "ADC"]
    assert train["dataset"]["class_names"] == ["background", "peripheral_zone", "transition_zone"]
    assert train["dataset"]["layout"] == "nnunetv2" and train["dataset"]["split"]["kind"] == "kfold"
    assert train["dataset_dir"] == str(dataset.resolve())
    net = train["network_def"]
    assert net["_target_"] == "monai.networks.nets.DynUNet" and net["in_channels"] == 2 and net["out_channels"] == 3
    # 0.6 x 0.6 x 3.0 mm: the median spacing is the target (5x anisotropic, but 16 slices * 3 > 40: no 10th
    # percentile rule), the coarse z axis is not pooled until in-plane catches up, and its kernels are 1 there
    assert np.allclose(train["dataset"]["target_spacing"], [0.6, 0.6, 3.0], atol=0.02)
    assert net["strides"][1][2] == 1 and net["kernel_size"][0][2] == 1 and net["kernel_size"][0][:2] == [3, 3]
    # MR channels: per-image z-score; the patch covers the whole (small) median image
    assert {"_target_": "NormalizeIntensityd", "keys": "image", "channel_wise": True, "nonzero": False} in \
        train["train"]["deterministic_transforms"]
    assert train["patch_size"] == [40, 40, 16] and plan["patch_size_used"] == [40, 40, 16]
    assert train["num_samples"] == plan["plan"]["batch_size"] >= 2
    for key in ("target_spacing", "patch_size", "strides", "normalization", "folds", "num_samples"):
        assert plan["why"][key], key
    readme = (planned / "docs" / "README.md").read_text()
    assert "## **Plan**" in readme and "[40, 40, 16]" in readme
    for f in ("configs/evaluate.json", "configs/inference.json", "configs/multi_gpu_train.json",
              "configs/multi_gpu_evaluate.json", "configs/metadata.json", "LICENSE", "large_files.yml"):
        assert (planned / f).is_file(), f
    meta = json.loads((planned / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {
        "0": "background", "1": "peripheral_zone", "2": "transition_zone"}


def _run(bundle: Path, config: str, **over) -> subprocess.CompletedProcess:
    # evaluate.json is read on top of train.json (the model zoo's layering)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file_arg(config_files(bundle, config))]
    for k, v in over.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=bundle.parent,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})


def test_trains_evaluates_and_infers_through_monai_bundle_run(planned, dataset, tmp_path):
    small = {"network_def#filters": [8, 8, 16, 16], "num_workers": 0}
    train = _run(planned, "train.json", num_epochs=4, val_interval=2, **small)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert (planned / "models" / "model.pt").is_file()
    ev = _run(planned, "evaluate.json", output_dir=str(tmp_path / "eval"), **small)
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    with open(tmp_path / "eval" / "summary.csv") as f:
        rows = {(r["metric"], r["class"]): r for r in csv.DictReader(f)}
    assert int(rows[("mean_dice", "mean")]["n"]) == 2  # fold 0 of nnU-Net's split of 10 cases validates 2
    held_out = float(rows[("mean_dice", "mean")]["mean"])
    assert 0.0 < held_out <= 1.0
    # inference on the dataset's own unlabelled cases: nnU-Net channel files -> CASE.nii.gz on the input's grid
    inf = _run(planned, "inference.json", dataset_dir=str(dataset / "imagesTs"), output_dir=str(tmp_path / "pred"),
               **{"network_def#filters": [8, 8, 16, 16], "dataloader#num_workers": 0})
    assert inf.returncode == 0, inf.stdout[-3000:] + inf.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "pred")) == ["prostate_011.nii.gz", "prostate_012.nii.gz"]
    src = nib.load(str(dataset / "imagesTs" / "prostate_011_0000.nii.gz"))
    out = nib.load(str(tmp_path / "pred" / "prostate_011.nii.gz"))
    assert out.shape == src.shape and np.allclose(out.affine, src.affine, atol=1e-3)
    assert set(np.unique(np.asarray(out.dataobj)).astype(int)) <= {0, 1, 2}


@pytest.mark.parametrize("breaker, needles", [
    ("missing_channel", ["prostate_002_0001.nii.gz", "missing"]),
    ("unknown_label", ["prostate_003.nii.gz", "label values [7]"]),
    ("geometry", ["prostate_004.nii.gz", "label shape"]),
    ("mixed_channels", ["prostate_005_0001.nii.gz", "2 channel(s)"]),
])
def test_bad_datasets_fail_before_anything_is_written(breaker, needles, dataset, tmp_path):
    bad = Path(shutil.copytree(dataset, tmp_path / dataset.name))
    if breaker == "missing_channel":
        (bad / "imagesTr" / "prostate_002_0001.nii.gz").unlink()
    elif breaker == "unknown_label":
        p = bad / "labelsTr" / "prostate_003.nii.gz"
        img = nib.load(str(p))
        lab = np.asarray(img.dataobj).copy()
        lab[0, 0, 0] = 7
        nib.save(nib.Nifti1Image(lab, img.affine), str(p))
    elif breaker == "geometry":
        p = bad / "labelsTr" / "prostate_004.nii.gz"
        img = nib.load(str(p))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-2], img.affine), str(p))
    else:  # one channel file holds two channels: a case with 3 channels instead of 2
        p = bad / "imagesTr" / "prostate_005_0001.nii.gz"
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
        nib.save(nib.Nifti1Image(np.stack([data, data], -1), img.affine), str(p))
    with pytest.raises(DatasetIntegrityError) as info:
        new_bundle(str(bad), "x_dsd", output_dir=str(tmp_path / "out"))
    msg = str(user_error_in(info.value))
    assert all(n in msg for n in needles), msg
    assert not (tmp_path / "out").exists()
