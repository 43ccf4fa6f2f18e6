"""Bad inputs fail fast with one clear message through the real bundle command; awkward-but-valid data trains.

Every error case runs `monai.bundle.run(train.json | evaluate.json)` on a tiny MSD-format data set with one thing
broken and expects a `DSDUserError` (found behind MONAI's config-evaluation wrappers) whose message names the
offending file (or option) and the fix. Subprocess cases run `python -m monai.bundle run` to check what a user
actually sees: exit code 2 and that one message, no traceback.
Images smaller than the patch and labels without foreground are not errors: the bundle pads / samples background
(checked through training, evaluation, and each data set's training transforms).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from support.bundles import ROOT, copy_bundle, parse, tiny_overrides
from monai.bundle import run

from dsd_components.entry import user_error_in
from dsd_components.errors import CheckpointError, DatasetIntegrityError, DSDUserError
from dsd_tools.demo_data import make_demo_data
from dsd_tools.paths import config_files

NAME = "hippocampus_nnunet_dsd"
# 5 cases -> hippocampus_001..003 train, 004 validation, 005 test (the paper's split scaled down)
TRAIN = {**tiny_overrides(NAME), "num_workers": 0, "num_epochs": 1, "val_interval": 1, "num_samples": 1}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return Path(make_demo_data("hippocampus", str(tmp_path_factory.mktemp("clean") / "task"), num_cases=5,
                               size=(20, 20, 20), seed=0))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return copy_bundle(NAME, tmp_path_factory.mktemp("bundle"))



@pytest.fixture()
def task(clean, tmp_path) -> Path:
    """A private copy of the clean data set to break."""
    return Path(shutil.copytree(clean, tmp_path / "task"))


def _img(task: Path, i: int) -> Path:
    return task / "imagesTr" / f"hippocampus_{i:03d}.nii.gz"


def _lab(task: Path, i: int) -> Path:
    return task / "labelsTr" / f"hippocampus_{i:03d}.nii.gz"


def _save(arr, path: Path, affine=None) -> None:
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), str(path))


def _run(bundle: Path, dataset_dir, config: str = "train.json", **kw) -> None:
    shutil.rmtree(bundle / "models", ignore_errors=True)
    run(config_file=config_files(bundle, config), meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False, bundle_root=str(bundle), dataset_dir=str(dataset_dir), **{**TRAIN, **kw})


def _user_error(call, kind: type[DSDUserError] = DSDUserError) -> str:
    """Run ``call``; it must fail with a user error of ``kind``; return that error's message."""
    with pytest.raises(Exception) as info:
        call()
    err = user_error_in(info.value)
    assert isinstance(err, kind), f"not a {kind.__name__}: {info.value!r}"
    return str(err)


def _expect_error(bundle: Path, dataset_dir, needles, config: str = "train.json", **kw) -> str:
    msg = _user_error(lambda: _run(bundle, dataset_dir, config, **kw))
    for needle in needles:
        assert str(needle) in msg, f"{needle!r} not in:\n{msg}"
    return msg


# --------------------------------------------------------------------------------------- broken inputs
def _truncated_image(task):
    data = _img(task, 1).read_bytes()
    _img(task, 1).write_bytes(data[: len(data) // 2])
    return {}, [_img(task, 1), "corrupt or truncated", "re-download or re-export"]


def _label_not_nifti(task):
    _lab(task, 2).write_bytes(gzip.compress(b"not a nifti file " * 40))
    return {}, [_lab(task, 2), "cannot read label", "corrupt or truncated"]


def _missing_label(task):
    _lab(task, 3).unlink()
    return {}, [_lab(task, 3), "label file is missing", "restore it or fix the datalist"]


def _wrong_channels(task):
    _save(np.ones((20, 20, 20, 2), np.float32), _img(task, 1))
    return {}, [_img(task, 1), "2 channel(s), hippocampus needs 1"]


def _label_out_of_range(task):
    lab = np.asarray(nib.load(str(_lab(task, 2))).dataobj).copy()
    lab[0, 0, 0] = 5
    _save(lab, _lab(task, 2))
    return {}, [_lab(task, 2), "label values [5]", "expected 0..2"]


def _label_shape_mismatch(task):
    _save(np.zeros((20, 20, 19), np.uint8), _lab(task, 1))
    return {}, [_lab(task, 1), "label shape (20, 20, 19) != image shape (20, 20, 20)", "resample the label"]


def _label_affine_mismatch(task):
    shifted = np.eye(4)
    shifted[:3, 3] = [0, 0, 5]
    _save(np.asarray(nib.load(str(_lab(task, 1))).dataobj), _lab(task, 1), shifted)
    return {}, [_lab(task, 1), "affine", "copy the image header onto the label"]


def _label_spacing_mismatch(task):
    _save(np.asarray(nib.load(str(_lab(task, 1))).dataobj), _lab(task, 1), np.diag([1.0, 1.0, 2.0, 1.0]))
    return {}, [_lab(task, 1), "spacing (1.0, 1.0, 2.0) != image spacing (1.0, 1.0, 1.0)"]


def _nan_voxels(task):
    img = np.asarray(nib.load(str(_img(task, 2))).dataobj).astype(np.float32)
    img[1, 2, 3], img[4, 5, 6] = np.nan, np.inf
    _save(img, _img(task, 2))
    return {}, [_img(task, 2), "2 NaN/Inf voxel(s)", "np.nan_to_num"]


def _blank_image_empty_label(task):
    # the one empty-label case the crop cannot handle: no foreground and no voxel above the image threshold
    _save(np.zeros((20, 20, 20), np.float32), _img(task, 3))
    _save(np.zeros((20, 20, 20), np.uint8), _lab(task, 3))
    return {}, [_lab(task, 3), "is blank", "No sampling location available", "remove the case"]


def _malformed_dataset_json(task):
    (task / "dataset.json").write_text('{"training": [')
    return {}, [task / "dataset.json", "is not valid JSON", "fix the file"]


def _dataset_json_without_labels(task):
    (task / "dataset.json").write_text(json.dumps({"training": [{"image": "./imagesTr/hippocampus_001.nii.gz"}]}))
    return {}, [task / "dataset.json", "training[0]", "is not an {'image', 'label'} pair"]


def _malformed_datalist(task):
    (task / "my_datalist.json").write_text('{"training": [{"image": "a.nii.gz",}]}')
    return {"datalist": str(task / "my_datalist.json")}, [task / "my_datalist.json", "is not valid JSON"]


def _datalist_with_missing_files(task):
    dl = {"training": [{"image": "imagesTr/hippocampus_001.nii.gz", "label": "labelsTr/nope.nii.gz"}],
          "validation": [{"image": "imagesTr/gone.nii.gz", "label": "labelsTr/hippocampus_004.nii.gz"}]}
    (task / "dl.json").write_text(json.dumps(dl))
    return {"datalist": str(task / "dl.json")}, ["2 problem(s)", task / "labelsTr" / "nope.nii.gz",
                                                 task / "imagesTr" / "gone.nii.gz", "missing"]


def _wrong_fold(task):
    return {"fold": 1}, ["fold 1 is out of range for hippocampus", "use --fold 0"]


def _fold_not_a_number(task):
    return {"fold": "one"}, ["--fold 'one' is not an integer"]


def _unknown_dsd_mode(task):
    return {"dsd_mode": "dsdd"}, ["unknown --dsd_mode 'dsdd'", "basic, ds, sdd, sde, dsd"]


def _patch_too_small(task):
    return {"patch_size": [16, 16, 16]}, ["--patch_size [16, 16, 16]", "DynUNet cannot train on it"]


def _too_small_to_reflect_pad(task):
    _save(np.ones((8, 20, 20), np.float32), _img(task, 2))
    _save(np.zeros((8, 20, 20), np.uint8), _lab(task, 2))
    return {"pad_mode": "reflect"}, [_img(task, 2), "too small to reflect-pad", "--pad_mode constant"]


def _dataset_dir_missing(task):
    return {"dataset_dir": str(task / "nowhere")}, [task / "nowhere", "is not a folder", "--dataset_dir"]


def _everything_at_once(task):
    _truncated_image(task)
    _missing_label(task)
    _label_out_of_range(task)
    return {"dsd_mode": "nope"}, ["4 problem(s)", _img(task, 1), _lab(task, 2), _lab(task, 3), "'nope'"]


BROKEN = [_truncated_image, _label_not_nifti, _missing_label, _wrong_channels, _label_out_of_range,
          _label_shape_mismatch, _label_affine_mismatch, _label_spacing_mismatch, _nan_voxels,
          _blank_image_empty_label, _malformed_dataset_json, _dataset_json_without_labels, _malformed_datalist,
          _datalist_with_missing_files, _wrong_fold, _fold_not_a_number, _unknown_dsd_mode, _patch_too_small,
          _too_small_to_reflect_pad, _dataset_dir_missing,
          _everything_at_once]


@pytest.mark.parametrize("breaker", BROKEN, ids=[f.__name__.strip("_") for f in BROKEN])
def test_train_stops_with_clear_message(breaker, task, bundle):
    kw, needles = breaker(task)
    kw.setdefault("dataset_dir", str(task))
    _expect_error(bundle, needles=needles, **kw)
    assert not list((bundle / "models").rglob("latest.pt"))  # stopped before any training


def test_evaluate_checks_the_test_split(task, bundle):
    """evaluate.json runs the same preflight on its split (no model needed to get the message)."""
    _lab(task, 5).write_bytes(b"")
    _expect_error(bundle, task, [_lab(task, 5), "cannot read label"], config="evaluate.json",
                  output_dir=str(task / "eval"))


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_evaluate_without_usable_model(model, task, bundle):
    """evaluate.json names models/model.pt and the fix instead of MONAI's CheckpointLoader traceback."""
    path = bundle / "models" / "model.pt"
    shutil.rmtree(bundle / "models", ignore_errors=True)
    if model == "corrupt":
        path.parent.mkdir()
        path.write_bytes(b"PK\x03\x04 truncated")
    needle = "no trained model" if model == "missing" else "cannot be loaded with torch.load(weights_only=True)"
    err = _user_error(lambda: run(  # not _expect_error: it clears models/ first
        config_file=config_files(bundle, "evaluate.json"), logging_file=False, bundle_root=str(bundle),
        dataset_dir=str(task), output_dir=str(task / "eval"), **TRAIN), DatasetIntegrityError)
    assert str(path) in err and needle in err, err


@pytest.mark.parametrize("content", ["garbage", "other_network"])
def test_unusable_latest_checkpoint(content, task, bundle):
    """A latest.pt that cannot be resumed stops the run with its path and the fix, before training."""
    shutil.rmtree(bundle / "models", ignore_errors=True)
    latest = bundle / "models" / "runs" / "20260101-000000" / "latest.pt"  # the newest (only) run's checkpoint
    latest.parent.mkdir(parents=True)
    if content == "garbage":
        latest.write_bytes(b"\x00" * 100)
        needles = [latest, "not a readable DSD checkpoint"]
    else:
        torch.save({"network": {"conv.weight": torch.zeros(3)}, "epoch": 0, "iteration": 0}, latest)  # unfinished
        needles = [latest, "do not fit this network", "--resume false"]
    err = _user_error(lambda: run(config_file=str(bundle / "configs" / "train.json"), logging_file=False,
                                  bundle_root=str(bundle), dataset_dir=str(task), **TRAIN), CheckpointError)
    assert all(str(n) in err for n in needles), err


# ------------------------------------------------------------------------------------- what users see
@pytest.mark.parametrize("case", ["missing_label", "bad_latest"])
def test_cli_output_is_one_clear_message(case, task, tmp_path):
    """`python -m monai.bundle run ...` exits 2 with the file and the fix, and prints no traceback."""
    bundle = copy_bundle(NAME, tmp_path / "cli")
    if case == "missing_label":
        _lab(task, 2).unlink()
        needles = [_lab(task, 2), "label file is missing"]
    else:
        latest = bundle / "models" / "runs" / "20260101-000000" / "latest.pt"
        latest.parent.mkdir(parents=True)
        latest.write_text("not a checkpoint")
        needles = [latest, "cannot resume"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "train.json"),
           "--dataset_dir", str(task), "--num_workers", "0"]
    for k, v in tiny_overrides(NAME).items():
        cmd += [f"--{k}", json.dumps(v).replace(" ", "")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    for needle in needles:
        assert str(needle) in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stderr.count("ERROR: ") == 1  # printed once
    assert (bundle / "models" / "runs").is_dir() and not (bundle / "models" / "train.lock").exists()  # released


# --------------------------------------------------------------------------- awkward but valid: trains
# MONAI's crop says so when a case has no foreground to centre on: the expected case here (our check warned first)
@pytest.mark.filterwarnings("ignore:Num foregrounds 0:UserWarning")
def test_tiny_images_and_empty_labels_train_and_evaluate(task, bundle, tmp_path, caplog, one_thread):
    """Images smaller than the patch are padded; cases without foreground are sampled from background."""
    rng = np.random.default_rng(0)
    shape = (10, 12, 9)  # patch is 32^3
    for i in range(1, 6):
        lab = np.zeros(shape, np.uint8)
        if i in (3, 4, 5):  # 1, 2: empty labels (training); 3: tiny with foreground; 4, 5: validation / test
            lab[2:5, 3:6, 2:5], lab[6:9, 7:10, 5:8] = 1, 2
        _save(rng.normal(100, 10, shape).astype(np.float32), _img(task, i))
        _save(lab, _lab(task, i))
    caplog.set_level(logging.INFO, logger="dsd_components.integrity")
    _run(bundle, task)
    notes = caplog.text
    assert "smaller than patch_size" in notes and "no foreground" in notes and "0 error(s)" in notes
    ckpt = torch.load(next((bundle / "models" / "runs").glob("*/latest.pt")), weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["network"].values())
    out = tmp_path / "eval"
    run(config_file=config_files(bundle, "evaluate.json"), logging_file=False, bundle_root=str(bundle),
        dataset_dir=str(task), output_dir=str(out), eval_split="validation", num_workers=0, **tiny_overrides(NAME))
    assert (out / "per_case_metrics.csv").read_text().count("hippocampus_004") == 1


@pytest.mark.filterwarnings("ignore:Num foregrounds 0:UserWarning")
@pytest.mark.parametrize("name", ["mmwhs_nnunet_dsd", "brats_nnunet_dsd", "hippocampus_nnunet_dsd"])
def test_training_transforms_pad_tiny_and_sample_empty(name, tmp_path):
    """Each data set's real training pipeline (MMWHS: raw labels, resampling, neg=0) on a tiny, empty case."""
    ds = json.loads((ROOT / "bundles" / name / "configs" / "train.json").read_text())["dataset"]["name"]
    channels = {"brats": 4}.get(ds, 1)
    shape = (12, 10, 8)
    rng = np.random.default_rng(1)
    img = rng.uniform(-100, 200, shape + ((channels,) if channels > 1 else ())).astype(np.float32)
    affine = np.diag([-0.8, -0.8, 1.6, 1.0]) if ds == "mmwhs" else np.eye(4)
    _save(img, tmp_path / "img.nii.gz", affine)
    _save(np.zeros(shape, np.int16 if ds == "mmwhs" else np.uint8), tmp_path / "lab.nii.gz", affine)
    # the tiny case cannot be reflect-padded (MMWHS's paper padding): the constant pad is what this case needs
    parser = parse(ROOT / "bundles" / name, "train.json", patch_size=[32] * 3, num_samples=2, pad_mode="constant")
    out = parser.get_parsed_content("train#preprocessing")(
        {"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")})
    assert len(out) == 2
    for sample in out:
        assert tuple(sample["image"].shape) == (channels, 32, 32, 32)
        assert tuple(sample["label"].shape) == (1, 32, 32, 32) and int(sample["label"].max()) == 0
