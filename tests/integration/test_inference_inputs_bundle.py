"""A bundle's inference.json through the real command on what users have: one file, a folder with bad cases among
good ones, nnU-Net channel files, a DICOM series, an empty folder. Outputs keep the input's geometry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage
from support.bundles import copy_bundle, tiny_overrides

from dsd_tools.dicom import write_dicom_series
from dsd_tools.overrides import bundle_overrides
from dsd_tools.zoo.verify import make_fresh_weights


def _affine(spacing=(0.9, 1.1, 1.6), origin=(10.0, -20.0, 5.0), angle=0.25) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    a = np.eye(4)
    a[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def _nii(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.float32), _affine() if affine is None else affine), str(path))
    return path


def _vol(shape=(20, 22, 18), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(200, 30, shape).astype(np.float32)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Hippocampus (1 channel) and BraTS (4 channels) nnU-Net bundles with tiny fresh weights."""
    root = tmp_path_factory.mktemp("infer_bundles")
    out = {}
    for name in ("hippocampus_nnunet_dsd", "brats_nnunet_dsd"):
        b = copy_bundle(name, root)
        make_fresh_weights(b, bundle_overrides(tiny_overrides(name)))
        out[name] = b
    return out


def _infer(bundle: Path, dataset_dir: Path | str, out: Path, **extra) -> subprocess.CompletedProcess:
    name = bundle.name
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
           "--dataset_dir", str(dataset_dir), "--output_dir", str(out), "--dataloader#num_workers", "0"]
    for k, v in {**tiny_overrides(name), **extra}.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=bundle.parent,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _same_geometry(seg: Path, ref_shape, ref_affine) -> None:
    img = nib.load(str(seg))
    assert img.shape[:3] == tuple(ref_shape)
    np.testing.assert_allclose(img.affine, ref_affine, atol=1e-3)


def test_single_file(bundles, tmp_path):
    f = _nii(tmp_path / "ct_001.nii.gz", _vol())
    p = _infer(bundles["hippocampus_nnunet_dsd"], f, tmp_path / "out")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["ct_001_seg.nii.gz"]
    _same_geometry(tmp_path / "out" / "ct_001_seg.nii.gz", (20, 22, 18), _affine())
    assert f"wrote 1 prediction(s) to {tmp_path / 'out'}" in p.stdout


def test_bad_cases_are_skipped_named_and_fail_the_run(bundles, tmp_path):
    d = tmp_path / "cases"
    _nii(d / "good_a.nii.gz", _vol())
    _nii(d / "good_b.nii", _vol((18, 20, 16), seed=1), _affine(angle=-0.3))
    big = _nii(d / "corrupt.nii.gz", _vol((40, 40, 30)))
    big.write_bytes(big.read_bytes()[:-2000])
    _nii(d / "two.nii.gz", np.stack([_vol(), _vol()], -1))
    nan = _vol()
    nan[2, 2, 2] = np.nan
    _nii(d / "nan.nii.gz", nan)
    p = _infer(bundles["hippocampus_nnunet_dsd"], d, tmp_path / "out")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out[-4000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["good_a_seg.nii.gz", "good_b_seg.nii.gz"]
    _same_geometry(tmp_path / "out" / "good_b_seg.nii.gz", (18, 20, 16), _affine(angle=-0.3))
    assert f"skipping [corrupt] {d / 'corrupt.nii.gz'}: cannot be read" in out
    assert f"skipping [two] {d / 'two.nii.gz'}: has 2 channel(s), the model expects 1" in out
    assert f"skipping [nan] {d / 'nan.nii.gz'}: has 1 non-finite voxel(s)" in out
    assert p.stderr.strip().splitlines()[-1] == (
        f"ERROR: wrote 2 prediction(s) to {tmp_path / 'out'}; 3 case(s) failed: corrupt, nan, two")
    assert "Traceback" not in out


def test_nnunet_channel_files_are_one_case_named_like_nnunet(bundles, tmp_path):
    d = tmp_path / "imagesTs"
    for case in ("BRATS_001", "BRATS_002"):
        for c in range(4):
            _nii(d / f"{case}_{c:04d}.nii.gz", _vol(seed=c))
    p = _infer(bundles["brats_nnunet_dsd"], d, tmp_path / "out")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["BRATS_001.nii.gz", "BRATS_002.nii.gz"]
    _same_geometry(tmp_path / "out" / "BRATS_001.nii.gz", (20, 22, 18), _affine())
    # a case missing a channel file: named with the file, nothing run
    (d / "BRATS_002_0003.nii.gz").unlink()
    p = _infer(bundles["brats_nnunet_dsd"], d, tmp_path / "out2")
    assert p.returncode == 2 and "case BRATS_002: channel 3 file" in p.stderr and "Traceback" not in p.stderr


def test_dicom_series_keeps_the_series_geometry(bundles, tmp_path):
    data = np.round(_vol((24, 20, 12), seed=3))
    affine = _affine(spacing=(0.8, 0.8, 2.5), angle=0.3)
    write_dicom_series(data, affine, tmp_path / "study" / "series1")
    p = _infer(bundles["hippocampus_nnunet_dsd"], tmp_path / "study", tmp_path / "out")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["series1_seg.nii.gz"]
    series = LoadImage(image_only=True)(str(tmp_path / "study" / "series1"))  # MONAI's own reading of the series
    _same_geometry(tmp_path / "out" / "series1_seg.nii.gz", series.shape[-3:], series.affine.numpy())


def test_empty_selection_is_an_error_naming_the_path(bundles, tmp_path):
    (tmp_path / "empty").mkdir()
    p = _infer(bundles["hippocampus_nnunet_dsd"], tmp_path / "empty", tmp_path / "out")
    assert p.returncode == 2
    assert p.stderr.count("ERROR: ") == 1 and f"{tmp_path / 'empty'}: no input images found" in p.stderr
    assert "Traceback" not in p.stderr
