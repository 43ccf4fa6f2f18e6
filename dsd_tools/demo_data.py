"""Make small synthetic data sets in exactly the real on-disk formats, so every bundle runs end to end
(datalist, integrity check, training, evaluation, inference) without downloading anything.

    dsd-make-demo-data {mmwhs,brats,hippocampus,nnunet} OUT_DIR [--num_cases N] [--size S] [--seed 0]

MMWHS: ct_train_1001_image.nii.gz / ct_train_1001_label.nii.gz ... with raw label values 205..850,
HU intensities, anisotropic spacing and an LPS-like affine. BraTS / Hippocampus: MSD task layout
(imagesTr, labelsTr, imagesTs, dataset.json); BraTS images are 4D with the 4 channels last. nnunet: an nnU-Net v2
raw dataset (imagesTr/CASE_0000.nii.gz one file per channel, T2 and ADC, 0.6 x 0.6 x 3.0 mm, three labels).
Each class is an ellipsoid whose position and size jitter per case, with its own intensity plus noise,
so a small network learns it in a few epochs. Output is deterministic for a given seed.
`--size` is an int (cube) or "X,Y,Z".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from .cli import run_cli
from .paper import DATASETS

RAW_MMWHS = DATASETS["mmwhs"].raw_label_values
DEFAULTS = {"mmwhs": (10, (48, 48, 32)), "brats": (12, (40, 40, 40)), "hippocampus": (12, (32, 40, 32)),
            "nnunet": (10, (40, 40, 16))}
_SEED_TAG = {"mmwhs": 1, "brats": 2, "hippocampus": 3, "nnunet": 4}


def _shape(size: int | str | Sequence[int] | None, default: tuple[int, ...]) -> tuple[int, int, int]:
    """Normalise --size (None, int, "X,Y,Z" or a sequence) to a 3-tuple; fire turns "a,b,c" into a tuple."""
    if size is None:
        shape = default
    elif isinstance(size, int):
        shape = (size,) * 3
    elif isinstance(size, str):
        shape = tuple(int(s) for s in size.replace("x", ",").split(",") if s.strip())
        shape = shape * 3 if len(shape) == 1 else shape
    else:
        shape = tuple(int(s) for s in size)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"--size {size!r}: give one int or three ints X,Y,Z, each >= 8")
    return tuple(shape)  # type: ignore[return-value]


def _ellipsoid(shape: tuple[int, int, int], center: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipsoid (voxel units)."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii))
    return dist <= 1.0


def _jittered(rng: np.random.Generator, shape, frac_center, frac_radii, jitter=0.04, scale=(0.85, 1.15)):
    """Centre and radii in voxels from fractions of the shape, jittered per case."""
    dims = np.asarray(shape, float)
    center = (np.asarray(frac_center) + rng.uniform(-jitter, jitter, 3)) * dims
    radii = np.maximum(np.asarray(frac_radii) * dims * rng.uniform(*scale), 1.5)
    return center, radii


def _save(arr: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write NIfTI with the affine in both qform and sform (scanner space), units mm."""
    img = nib.Nifti1Image(arr, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


# --------------------------------------------------------------------------------------------- MMWHS
_MMWHS_CENTERS = [(0.35, 0.35, 0.35), (0.65, 0.35, 0.35), (0.35, 0.65, 0.35), (0.65, 0.65, 0.35),
                  (0.35, 0.35, 0.65), (0.65, 0.35, 0.65), (0.35, 0.65, 0.65)]
_MMWHS_HU = (-50, 0, 50, 100, 150, 200, 240)  # inside the bundle's -175..250 window, 50 HU apart


def _mmwhs_case(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CT-like volume: air, body (-120 HU), a bone blob (700 HU, unlabeled), 7 heart structures."""
    img = np.full(shape, -1000.0)
    body = _ellipsoid(shape, np.asarray(shape) / 2, np.asarray(shape) * 0.47)
    img[body] = -120.0
    c, r = _jittered(rng, shape, (0.5, 0.88, 0.5), (0.07, 0.05, 0.3))
    img[_ellipsoid(shape, c, r) & body] = 700.0
    lab = np.zeros(shape, np.int16)
    for k, (frac, hu) in enumerate(zip(_MMWHS_CENTERS, _MMWHS_HU)):
        c, r = _jittered(rng, shape, frac, (0.12, 0.12, 0.12))
        m = _ellipsoid(shape, c, r)
        lab[m] = RAW_MMWHS[k]
        img[m] = hu
    img += rng.normal(0, 10, shape) + rng.uniform(-10, 10)
    sx = rng.uniform(0.75, 0.85)
    affine = np.diag([-sx, -sx, 1.6, 1.0])  # LPS-like: first two axes flipped
    affine[:3, 3] = [shape[0] * sx / 2 + rng.uniform(-20, 20), shape[1] * sx / 2 + rng.uniform(-20, 20),
                     -150.0 + rng.uniform(-20, 20)]
    return np.clip(img, -1024, 3071).astype(np.float32), lab, affine


def _make_mmwhs(out: Path, num_cases: int, shape, seed: int) -> None:
    for i in range(num_cases):
        img, lab, affine = _mmwhs_case(np.random.default_rng([seed, _SEED_TAG["mmwhs"], i]), shape)
        _save(img, affine, out / f"ct_train_{1001 + i}_image.nii.gz")
        _save(lab, affine, out / f"ct_train_{1001 + i}_label.nii.gz")


# ----------------------------------------------------------------------------------------------- MSD
# per-class additive intensity for (FLAIR, T1w, t1gd, T2w)
_BRATS_DELTA = {1: (250, -50, 0, 250), 2: (100, -150, -50, 350), 3: (150, 0, 400, 150)}


def _brats_case(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-channel brain (zero outside, as MSD) with nested edema / enhancing / non-enhancing tumour."""
    brain = _ellipsoid(shape, np.asarray(shape) / 2, np.asarray(shape) * 0.42)
    c, _ = _jittered(rng, shape, (0.5, 0.5, 0.5), (0.1, 0.1, 0.1), jitter=0.12)
    r1 = max(0.18 * min(shape) * rng.uniform(0.8, 1.2), 2.5)
    lab = np.zeros(shape, np.uint8)
    for k, frac in ((1, 1.0), (3, 0.65), (2, 0.4)):
        lab[_ellipsoid(shape, c, np.full(3, max(r1 * frac, 1.0))) & brain] = k
    base = np.array([300.0, 500.0, 450.0, 400.0]) * rng.uniform(0.8, 1.2)
    img = np.zeros((*shape, 4))
    img[brain] = base
    for k, delta in _BRATS_DELTA.items():
        img[lab == k] += delta
    img += rng.normal(0, 20, img.shape)
    img[~brain] = 0.0
    return np.clip(img, 0, None).astype(np.float32), lab, np.eye(4)


def _hippocampus_case(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MRI crop around a hippocampus: anterior head and posterior tail ellipsoids along y."""
    lab = np.zeros(shape, np.uint8)
    c, r = _jittered(rng, shape, (0.5, 0.38, 0.5), (0.2, 0.17, 0.2))
    lab[_ellipsoid(shape, c, r)] = 1
    c, r = _jittered(rng, shape, (0.5, 0.66, 0.5), (0.13, 0.2, 0.13))
    lab[_ellipsoid(shape, c, r) & (lab == 0)] = 2
    img = np.full(shape, 200.0) + np.where(lab == 1, 120.0, 0) + np.where(lab == 2, 70.0, 0)
    img = img * rng.uniform(0.8, 1.2) + rng.normal(0, 20, shape)
    return np.clip(img, 0, None).astype(np.float32), lab, np.eye(4)


# dataset.json as the real MSD tasks spell it (labels and modality names are the tasks' own, not ours)
_MSD = {
    "brats": dict(folder="Task01_BrainTumour", prefix="BRATS", case=_brats_case, tensor="4D",
                  modality=dict(enumerate(DATASETS["brats"].channel_names)),
                  labels={"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}),
    "hippocampus": dict(folder="Task04_Hippocampus", prefix="hippocampus", case=_hippocampus_case, tensor="3D",
                        modality=dict(enumerate(DATASETS["hippocampus"].channel_names)),
                        labels={"0": "background", "1": "Anterior", "2": "Posterior"}),
}


def _make_msd(dataset: str, out: Path, num_cases: int, shape, seed: int) -> None:
    spec = _MSD[dataset]
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    num_test = max(1, num_cases // 4)
    training, test = [], []
    for i in range(num_cases + num_test):
        img, lab, affine = spec["case"](np.random.default_rng([seed, _SEED_TAG[dataset], i]), shape)
        name = f"{spec['prefix']}_{i + 1:03d}.nii.gz"
        if i < num_cases:
            _save(img, affine, out / "imagesTr" / name)
            _save(lab, affine, out / "labelsTr" / name)
            training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        else:
            _save(img, affine, out / "imagesTs" / name)
            test.append(f"./imagesTs/{name}")
    meta = {"name": spec["folder"].split("_", 1)[1], "description": f"synthetic demo data in {spec['folder']} format",
            "reference": "dsd-bundles dsd-make-demo-data", "licence": "CC-BY-SA 4.0", "release": "demo",
            "tensorImageSize": spec["tensor"], "modality": spec["modality"], "labels": spec["labels"],
            "numTraining": num_cases, "numTest": num_test, "training": training, "test": test}
    (out / "dataset.json").write_text(json.dumps(meta, indent=4) + "\n")


# ------------------------------------------------------------------------------------------ nnU-Net v2 raw
NNUNET_CHANNELS = ("T2", "ADC")
NNUNET_LABELS = {"background": 0, "peripheral_zone": 1, "transition_zone": 2}


def _nnunet_case(rng: np.random.Generator, shape) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Two MR-like channels (T2, ADC) of a prostate-like organ with two zones, anisotropic 0.6 x 0.6 x 3.0 mm."""
    lab = np.zeros(shape, np.uint8)
    c, r = _jittered(rng, shape, (0.5, 0.5, 0.5), (0.28, 0.24, 0.32))
    lab[_ellipsoid(shape, c, r)] = 1
    lab[_ellipsoid(shape, c, r * 0.55)] = 2
    body = _ellipsoid(shape, np.asarray(shape) / 2, np.asarray(shape) * 0.48)
    t2 = np.where(body, 300.0, 0.0) + np.where(lab == 1, 250.0, 0) + np.where(lab == 2, 120.0, 0)
    adc = np.where(body, 900.0, 0.0) - np.where(lab == 1, 300.0, 0) + np.where(lab == 2, 200.0, 0)
    chans = [np.clip(x * rng.uniform(0.9, 1.1) + rng.normal(0, 15, shape) * body, 0, None).astype(np.float32)
             for x in (t2, adc)]
    affine = np.diag([0.6 * rng.uniform(0.95, 1.05), 0.6 * rng.uniform(0.95, 1.05), 3.0, 1.0])
    affine[:3, 3] = rng.uniform(-30, 30, 3)
    return chans, lab, affine


def _make_nnunet(out: Path, num_cases: int, shape, seed: int) -> None:
    """nnU-Net v2 raw layout: imagesTr/CASE_0000.nii.gz one file per channel, labelsTr/CASE.nii.gz, dataset.json
    with channel_names, labels (name -> value), numTraining and file_ending; a few unlabelled cases in imagesTs."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    num_test = max(1, num_cases // 4)
    for i in range(num_cases + num_test):
        chans, lab, affine = _nnunet_case(np.random.default_rng([seed, _SEED_TAG["nnunet"], i]), shape)
        case = f"prostate_{i + 1:03d}"
        folder = out / ("imagesTr" if i < num_cases else "imagesTs")
        for c, img in enumerate(chans):
            _save(img, affine, folder / f"{case}_{c:04d}.nii.gz")
        if i < num_cases:
            _save(lab, affine, out / "labelsTr" / f"{case}.nii.gz")
    meta = {"channel_names": dict(enumerate(NNUNET_CHANNELS)), "labels": NNUNET_LABELS, "numTraining": num_cases,
            "file_ending": ".nii.gz", "name": "Dataset901_DemoProstate",
            "description": "synthetic demo data in nnU-Net v2 raw format (dsd-make-demo-data nnunet)"}
    (out / "dataset.json").write_text(json.dumps(meta, indent=4) + "\n")


def make_demo_data(dataset: str, out_dir: str, num_cases: int | None = None,
                   size: int | str | Sequence[int] | None = None, seed: int = 0) -> str:
    """Write a synthetic `dataset` ("mmwhs", "brats", "hippocampus", or "nnunet" for an nnU-Net v2 raw dataset
    with two channels, anisotropic spacing and three labels) into out_dir; returns out_dir."""
    dataset = str(dataset).lower()
    if dataset not in DEFAULTS:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DEFAULTS)}")
    default_n, default_shape = DEFAULTS[dataset]
    num_cases = default_n if num_cases is None else int(num_cases)
    if num_cases < 3:
        raise ValueError(f"--num_cases {num_cases}: need at least 3 for non-empty train/validation/test splits")
    shape = _shape(size, default_shape)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dataset == "mmwhs":
        _make_mmwhs(out, num_cases, shape, int(seed))
    elif dataset == "nnunet":
        _make_nnunet(out, num_cases, shape, int(seed))
    else:
        _make_msd(dataset, out, num_cases, shape, int(seed))
    return str(out)


def make_demo_data_cli(dataset: str, out_dir: str, num_cases: int | None = None,
                       size: int | str | Sequence[int] | None = None, seed: int = 0) -> None:
    """Write a synthetic dataset in the real on-disk format and print its folder.

    Args:
        dataset: mmwhs, brats, hippocampus, or nnunet (an nnU-Net v2 raw dataset: 2 channels, 3 labels).
        out_dir: the folder to write (created).
        num_cases: labelled cases (MSD tasks also get a quarter as many unlabelled test images).
        size: volume size, one int or X,Y,Z.
        seed: the same seed gives the same files.
    """
    print(make_demo_data(dataset, out_dir, num_cases=num_cases, size=size, seed=seed))


def main() -> None:
    run_cli(make_demo_data_cli)
