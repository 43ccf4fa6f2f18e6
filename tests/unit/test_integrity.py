"""Every integrity problem is found, named by file, and reported all at once; clean demo data passes."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support import command
from support.paper_numbers import SPECS

from dsd_components.data import build_datalist
from dsd_components.integrity import (DatasetIntegrityError, IntegrityReport, check_datalist, parse_patch_size,
                                      scan_datalist, verify_dataset)

from dsd_tools.demo_data import make_demo_data
TINY = {"mmwhs": (12, 12, 8), "brats": 12, "hippocampus": (10, 12, 10)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_int")
    return {d: Path(make_demo_data(d, str(root / d), num_cases=5, size=TINY[d])) for d in TINY}


def _save(arr, path, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), str(path))
    return str(path)


def _case(tmp_path, name="c", shape=(10, 10, 10), img=None, lab=None, affine=None, lab_affine=None):
    """One {"image", "label"} pair written to tmp_path (defaults: clean hippocampus-like case)."""
    if img is None:
        img = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)
    if lab is None:
        lab = np.zeros(shape[:3], np.uint8)
        lab[3:6, 3:6, 3:6] = 1
        lab[6:8, 6:8, 6:8] = 2
    a = np.eye(4) if affine is None else affine
    return {"image": _save(img, tmp_path / f"{name}_img.nii.gz", a),
            "label": _save(lab, tmp_path / f"{name}_lab.nii.gz", a if lab_affine is None else lab_affine)}


def _dl(*entries):
    """Datalist with the problem case in training and a clean case in validation."""
    return {"training": list(entries[:-1]) or list(entries), "validation": [entries[-1]]}


def _errors_for(tmp_path, bad, dataset="hippocampus", **kw):
    good = _case(tmp_path, "good")
    return scan_datalist({"training": [bad], "validation": [good]}, SPECS[dataset], **kw)


# ------------------------------------------------------------------------------------------- clean
@pytest.mark.parametrize("dataset", ["mmwhs", "brats", "hippocampus"])
def test_clean_demo_passes(demo, dataset):
    report = verify_dataset(SPECS[dataset], str(demo[dataset]), patch_size=(4, 4, 4))
    assert isinstance(report, IntegrityReport) and report.ok and report.errors == [] and report.warnings == []
    assert report.checked == 5  # MMWHS testing == validation is checked once
    assert check_datalist(build_datalist(SPECS[dataset], str(demo[dataset])), SPECS[dataset]) == []


def test_mmwhs_raw_and_mapped_labels_ok(tmp_path):
    raw = np.zeros((10, 10, 10), np.int16)
    raw[2:4, 2:4, 2:4], raw[5:7, 5:7, 5:7] = 205, 850
    mapped = np.where(raw == 205, 1, np.where(raw == 850, 7, 0)).astype(np.uint8)
    dl = _dl(_case(tmp_path, "raw", lab=raw), _case(tmp_path, "mapped", lab=mapped))
    assert scan_datalist(dl, SPECS["mmwhs"]).ok


# ------------------------------------------------------------------------------------- unreadable
def test_truncated_gzip(tmp_path, demo):
    src = demo["hippocampus"] / "imagesTr" / "hippocampus_001.nii.gz"
    bad = tmp_path / "trunc.nii.gz"
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    entry = {"image": str(bad), "label": str(demo["hippocampus"] / "labelsTr" / "hippocampus_001.nii.gz")}
    report = _errors_for(tmp_path, entry)
    assert len(report.errors) == 1 and str(bad) in report.errors[0] and "corrupt or truncated" in report.errors[0]


def test_garbage_file(tmp_path):
    bad = tmp_path / "junk.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a nifti file" * 10))
    entry = _case(tmp_path, "x")
    entry["label"] = str(bad)
    report = _errors_for(tmp_path, entry)
    assert any(str(bad) in e and "cannot read label" in e for e in report.errors)


def test_missing_label(tmp_path):
    entry = _case(tmp_path, "x")
    Path(entry["label"]).unlink()
    report = _errors_for(tmp_path, entry)
    assert report.errors == [f"{entry['label']}: label file is missing: restore it or fix the datalist entry"]
    report = _errors_for(tmp_path, {"image": entry["image"]})
    assert any("no 'label'" in e and entry["image"] in e for e in report.errors)


# ------------------------------------------------------------------------------------------ channels
def test_wrong_channel_count(tmp_path):
    three_d = _case(tmp_path, "t1only")
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:5, 2:5, 2:5] = 3
    three_d["label"] = _save(lab, tmp_path / "brats_lab.nii.gz")
    report = _errors_for(tmp_path, three_d, dataset="brats")
    assert any(three_d["image"] in e and "1 channel(s), brats needs 4" in e for e in report.errors)
    first = _case(tmp_path, "chfirst", img=np.zeros((4, 10, 10, 10), np.float32))
    report = _errors_for(tmp_path, first, dataset="brats")
    assert any(first["image"] in e and "channels first" in e for e in report.errors)
    four = _case(tmp_path, "four", img=np.zeros((10, 10, 10, 4), np.float32))
    report = _errors_for(tmp_path, four, dataset="hippocampus")
    assert any(four["image"] in e and "4 channel(s), hippocampus needs 1" in e for e in report.errors)
    ok = _case(tmp_path, "ok4", img=np.ones((10, 10, 10, 4), np.float32), lab=lab)
    errors = _errors_for(tmp_path, ok, dataset="brats").errors
    assert errors and not [e for e in errors if ok["image"] in e]  # only the 1-channel 'good' case is wrong


# ------------------------------------------------------------------------------------------ labels
def test_label_values_out_of_range(tmp_path):
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[1:3, 1:3, 1:3], lab[5:7, 5:7, 5:7] = 1, 5
    entry = _case(tmp_path, "x", lab=lab)
    report = _errors_for(tmp_path, entry)
    assert any(entry["label"] in e and "[5]" in e for e in report.errors)
    mm = np.zeros((10, 10, 10), np.int16)
    mm[1:3, 1:3, 1:3], mm[5:7, 5:7, 5:7] = 205, 422  # an unknown raw value: rejected
    entry = _case(tmp_path, "mm", lab=mm)
    errors = _errors_for(tmp_path, entry, dataset="mmwhs").errors
    assert any(entry["label"] in e and "[422]" in e and "205" in e for e in errors)
    # 421, the one stray voxel of the real MMWHS data: mapped to background with a warning naming file and count
    mm[5:7, 5:7, 5:7] = 0
    mm[5, 5, 5] = 421
    entry = _case(tmp_path, "stray", lab=mm)
    report = _errors_for(tmp_path, entry, dataset="mmwhs")
    assert report.ok
    assert [w for w in report.warnings if entry["label"] in w] == [
        f"{entry['label']}: 1 voxel(s) with the stray value 421 are mapped to background, as the reference code does"]
    mm[5:7, 5:7, 5:7] = 3
    entry = _case(tmp_path, "mix", lab=mm)
    assert any("mixes" in e for e in _errors_for(tmp_path, entry, dataset="mmwhs").errors)
    fl = np.zeros((10, 10, 10), np.float32)
    fl[2, 2, 2] = 0.5
    entry = _case(tmp_path, "fl", lab=fl)
    assert any(entry["label"] in e and "non-integer" in e for e in _errors_for(tmp_path, entry).errors)


def test_empty_label_is_warning(tmp_path):
    entry = _case(tmp_path, "x", lab=np.zeros((10, 10, 10), np.uint8))
    report = _errors_for(tmp_path, entry)
    assert report.ok and any(entry["label"] in w and "no foreground" in w for w in report.warnings)


# ---------------------------------------------------------------------------------------- geometry
def test_geometry_mismatch(tmp_path):
    lab = np.zeros((10, 10, 9), np.uint8)
    entry = _case(tmp_path, "shape", lab=lab)
    assert any(entry["label"] in e and "!= image shape" in e for e in _errors_for(tmp_path, entry).errors)
    entry = _case(tmp_path, "spacing", lab_affine=np.diag([1.0, 1.0, 2.0, 1.0]))
    assert any(entry["label"] in e and "spacing" in e for e in _errors_for(tmp_path, entry).errors)
    shifted = np.eye(4)
    shifted[:3, 3] = [0, 0, 5]
    entry = _case(tmp_path, "origin", lab_affine=shifted)
    assert any(entry["label"] in e and "affine" in e for e in _errors_for(tmp_path, entry).errors)
    tiny = np.eye(4)
    tiny[0, 3] = 1e-5  # within tolerance
    entry = _case(tmp_path, "tol", lab_affine=tiny)
    assert _errors_for(tmp_path, entry).ok


def test_nan_voxels(tmp_path):
    img = np.ones((10, 10, 10), np.float32)
    img[0, 0, :3] = np.nan
    img[1, 1, 1] = np.inf
    entry = _case(tmp_path, "nan", img=img)
    errors = _errors_for(tmp_path, entry).errors
    assert any(entry["image"] in e and "4 NaN/Inf" in e for e in errors)


def test_tiny_image_is_warning(tmp_path):
    entry = _case(tmp_path, "small", shape=(10, 10, 10))
    report = _errors_for(tmp_path, entry, patch_size="32,32,32")
    assert report.ok and any(entry["image"] in w and "smaller than patch_size" in w for w in report.warnings)
    assert not _errors_for(tmp_path, entry, patch_size=8).warnings
    assert parse_patch_size("96,96,96") == parse_patch_size(96) == parse_patch_size([96, 96, 96]) == (96, 96, 96)


def test_patch_warning_uses_bundle_spacing(tmp_path):
    """MMWHS is resampled to 1.5x1.5x2 mm: 10 voxels at 0.5 mm become 3-4, smaller than a patch of 8."""
    lab = np.zeros((10, 10, 10), np.int16)
    lab[2:5, 2:5, 2:5] = 205
    entry = _case(tmp_path, "mm", lab=lab, affine=np.diag([0.5, 0.5, 0.5, 1.0]))
    report = _errors_for(tmp_path, entry, dataset="mmwhs", patch_size=8)
    assert any(entry["image"] in w and "bundle's spacing" in w for w in report.warnings)


# ---------------------------------------------------------------------------------- whole datalist
def test_all_problems_reported_at_once(tmp_path):
    missing = _case(tmp_path, "missing")
    Path(missing["image"]).unlink()
    nan = np.ones((10, 10, 10), np.float32)
    nan[0, 0, 0] = np.nan
    bad_lab = np.full((10, 10, 10), 9, np.uint8)
    dl = {"training": [missing, _case(tmp_path, "nan", img=nan), _case(tmp_path, "lab", lab=bad_lab)],
          "validation": [_case(tmp_path, "good")]}
    with pytest.raises(DatasetIntegrityError) as info:
        verify_dataset(SPECS["hippocampus"], datalist=dl)
    msg = str(info.value)
    assert "3 problem(s) found before running" in msg and msg.count("\n") == 3
    for name in ("missing_img", "nan_img", "lab_lab"):
        assert name in msg
    assert len(info.value.report.errors) == 3


def test_split_leak_and_empty_splits(tmp_path):
    c = _case(tmp_path, "c")
    report = scan_datalist({"training": [c], "validation": [c]}, SPECS["hippocampus"])
    assert any(c["image"] in e and "leaks" in e for e in report.errors)
    report = scan_datalist({"training": [c], "validation": []}, SPECS["hippocampus"])
    assert any("no 'validation' cases" in e for e in report.errors)
    report = scan_datalist({"training": [{"label": "x"}], "validation": [c]}, SPECS["hippocampus"])
    assert any("training[0]" in e and "no 'image'" in e for e in report.errors)


def test_max_cases(demo):
    report = verify_dataset(SPECS["brats"], str(demo["brats"]), max_cases=2)
    assert report.checked == 2 and any("checked only 2 of 5" in w for w in report.warnings)


def test_malformed_dataset_json_and_unknown_layout(tmp_path, demo):
    task = tmp_path / "task"
    shutil.copytree(demo["hippocampus"], task)
    (task / "dataset.json").write_text('{"training": [{"image": "./imagesTr/x.nii.gz"}]}')
    with pytest.raises(DatasetIntegrityError, match=r"dataset\.json: training\[0\]"):
        verify_dataset(SPECS["hippocampus"], str(task))
    (task / "dataset.json").write_text("{")
    with pytest.raises(DatasetIntegrityError, match=str(task / "dataset.json") + " is not valid JSON"):
        verify_dataset(SPECS["hippocampus"], str(task))
    with pytest.raises(ValueError, match="layout 'liver' is unknown"):
        scan_datalist({"training": [], "validation": []}, {**SPECS["hippocampus"], "layout": "liver"})


def test_msd_missing_file_listed_in_dataset_json(tmp_path, demo):
    task = tmp_path / "task"
    shutil.copytree(demo["brats"], task)
    gone = task / "labelsTr" / "BRATS_002.nii.gz"
    gone.unlink()
    meta = json.loads((task / "dataset.json").read_text())
    with pytest.raises(DatasetIntegrityError) as info:
        verify_dataset(SPECS["brats"], str(task))
    assert str(gone.resolve()) in str(info.value) and "missing" in str(info.value)
    assert meta["numTraining"] == 5


def test_check_data_cli(tmp_path, demo):
    ok = subprocess.run([command("dsd-check-data"), str(demo["hippocampus"]), "--dataset", "hippocampus",
                         "--patch_size", "64,64,64"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "smaller than patch_size" in ok.stdout
    bad = subprocess.run([command("dsd-check-data"), str(demo["hippocampus"]), "--bundle", "mmwhs_nnunet_dsd"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "ct_train_*_image.nii.gz" in bad.stderr and "Traceback" not in bad.stderr
