"""Dataset integrity checks run before training, so a bad file fails in seconds with a clear message
instead of hours into an epoch (cf. nnU-Net's verify_dataset_integrity).

Every problem becomes one line: the file, what is wrong, what to do. Errors stop training; warnings
(tiny images that the bundle pads, empty labels that cropping handles) are only reported.
Geometry comes from headers; voxel data is read only for the NaN and label-value checks.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

from .data import DatalistError, DatasetInfo, build_datalist, get_dataset

logger = logging.getLogger(__name__)

__all__ = ["IntegrityReport", "DatasetIntegrityError", "scan_datalist", "check_datalist", "verify_dataset",
           "parse_patch_size"]

_TOL = 1e-3


@dataclass
class IntegrityReport:
    """Problems found in a datalist: `errors` block training, `warnings` are notes."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        lines = [f"ERROR: {e}" for e in self.errors] + [f"WARNING: {w}" for w in self.warnings]
        lines.append(f"{self.checked} case(s) checked: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


class DatasetIntegrityError(ValueError):
    """Raised by `verify_dataset` with every error at once (one line each)."""

    def __init__(self, report: IntegrityReport):
        self.report = report
        super().__init__(f"{len(report.errors)} dataset problem(s):\n" + "\n".join(report.errors))


def parse_patch_size(patch_size: Any) -> tuple[int, ...] | None:
    """None, an int, "96,96,96" or a sequence -> tuple of 3 ints (or None)."""
    if patch_size is None or (isinstance(patch_size, str) and patch_size.strip() in ("", "None")):
        return None
    if isinstance(patch_size, (int, np.integer)):
        return (int(patch_size),) * 3
    if isinstance(patch_size, str):
        patch_size = [p for p in patch_size.strip("()[] ").split(",") if p.strip()]
    out = tuple(int(p) for p in patch_size)
    return out * 3 if len(out) == 1 else out


# ------------------------------------------------------------------------------------------ one file
def _load(path: str, role: str, errors: list[str]) -> tuple[Any, np.ndarray] | None:
    """Header and voxels of one NIfTI, or None with an error line (missing, not NIfTI, corrupt gzip)."""
    if not os.path.isfile(path):
        errors.append(f"{path}: {role} file is missing: restore it or fix the datalist entry")
        return None
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, zlib.error, OSError, ValueError...
        msg = str(exc).splitlines()[0] if str(exc) else ""
        errors.append(f"{path}: cannot read {role} ({type(exc).__name__}: {msg}): the file is corrupt or "
                      "truncated, re-download or re-export it")
        return None
    return img, data


def _image_spatial(path: str, shape: tuple[int, ...], info: DatasetInfo, errors: list[str]) -> tuple[int, ...] | None:
    """Spatial shape if the channel layout matches the data set (channels last in 4D NIfTI), else an error."""
    c = info.in_channels
    if len(shape) == 3 and c == 1:
        return shape
    if len(shape) == 4 and shape[3] == c:
        return shape[:3]
    if c > 1 and len(shape) == 4 and shape[0] == c:
        errors.append(f"{path}: image shape {shape} has the {c} channels first: {info.name} expects them last "
                      f"(x, y, z, {c}) as in MSD, re-save with channels on the last axis")
        return None
    found = shape[3] if len(shape) == 4 else (1 if len(shape) == 3 else None)
    what = f"{found} channel(s)" if found is not None else f"{len(shape)}D shape {shape}"
    errors.append(f"{path}: image has {what}, {info.name} needs {c} ({', '.join(info.modalities)}) "
                  f"as a {'3D' if c == 1 else f'4D (x, y, z, {c})'} NIfTI: use the right files or dataset name")
    return None


def _label_values(data: np.ndarray) -> np.ndarray | None:
    """Distinct label values (cheap bincount for small non-negative ints); None if not integral."""
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            return None
        data = data.astype(np.int64)
    if data.size and data.min() >= 0 and data.max() < 1 << 16:
        return np.flatnonzero(np.bincount(data.ravel()))
    return np.unique(data)


def _check_labels(path: str, values: np.ndarray | None, info: DatasetInfo, errors: list[str],
                  warnings: list[str], blank_image: str | None = None) -> None:
    if values is None:
        errors.append(f"{path}: label has non-integer, NaN or Inf values: labels must be integer class maps, "
                      "re-export with nearest-neighbour interpolation")
        return
    vals = {int(v) for v in values}
    classes = set(info.label_values)
    raw = set(info.raw_label_values or ())
    bad = sorted(vals - classes - raw)
    if bad:
        expected = f"0..{info.num_classes - 1}" + (f" or raw {', '.join(map(str, sorted(raw)))}" if raw else "")
        errors.append(f"{path}: label values {bad} are not {info.name} classes (expected {expected}): "
                      "fix the label file or the dataset name")
    elif raw and (vals & raw) and (vals & (classes - {0})):
        errors.append(f"{path}: label mixes raw {info.name} values {sorted(vals & raw)} with class indices "
                      f"{sorted(vals & (classes - {0}))}: use either raw values or 0..{info.num_classes - 1}")
    if vals <= {0} and blank_image is not None:
        errors.append(f"{path}: label has no foreground and its image {blank_image} is blank: nothing to learn, and "
                      "the foreground/background crop has no voxel to sample (training would stop with MONAI's "
                      "'No sampling location available'): remove the case from the datalist or re-export both files")
    elif vals <= {0}:
        warnings.append(f"{path}: label has no foreground: the foreground-centred crop falls back to random "
                        "patches; check it is the right file")


def _bundle_shape(img: Any, spatial: tuple[int, ...], info: DatasetInfo) -> tuple[int, ...]:
    """Spatial size after the bundle's RAS reorientation and (for MMWHS) resampling."""
    ornt = nib.io_orientation(img.affine)
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    size, spacing = np.zeros(3), np.ones(3)
    for axis, (out_axis, _) in enumerate(ornt[:3]):
        size[int(out_axis)], spacing[int(out_axis)] = spatial[axis], zooms[axis]
    if info.target_spacing:
        size = np.round(size * spacing / np.asarray(info.target_spacing))
    return tuple(int(s) for s in size)


def _check_case(entry: dict, info: DatasetInfo, patch: tuple[int, ...] | None, need_label: bool,
                errors: list[str], warnings: list[str]) -> None:
    """All per-case checks for one {"image", "label"} entry."""
    image = str(entry["image"])
    loaded = _load(image, "image", errors)
    label = entry.get("label")
    lab = _load(str(label), "label", errors) if label is not None else None
    if label is None and need_label:
        errors.append(f"{image}: datalist entry has no 'label': add the label path")
    spatial = None
    blank = None  # the image when every (finite) voxel has one value: an empty or failed export
    if loaded is not None:
        img, data = loaded
        spatial = _image_spatial(image, tuple(img.shape), info, errors)
        finite = data
        if np.issubdtype(data.dtype, np.floating):
            ok = np.isfinite(data)
            n_bad = int(data.size - np.count_nonzero(ok))
            if n_bad:
                errors.append(f"{image}: {n_bad} NaN/Inf voxel(s): the loss would become NaN, "
                              "re-export the image or replace them (e.g. np.nan_to_num)")
                finite = data[ok]
        if finite.size and finite.min() == finite.max():
            blank = image
            warnings.append(f"{image}: image is blank (every voxel = {finite.min().item():g}): check the export")
        if spatial is not None and patch is not None:
            size = _bundle_shape(img, spatial, info)
            if any(s < p for s, p in zip(size, patch)):
                where = " at the bundle's spacing" if info.target_spacing else ""
                warnings.append(f"{image}: size {size}{where} is smaller than patch_size {patch}: "
                                "the bundle pads it (fine for small/demo data)")
    if lab is None:
        return
    limg, ldata = lab
    lshape = tuple(limg.shape)
    if len(lshape) == 4 and lshape[3] == 1:
        lshape = lshape[:3]
    if len(lshape) != 3:
        errors.append(f"{label}: label shape {tuple(limg.shape)} is not 3D: save one integer class map per case")
    elif spatial is not None and tuple(spatial) != lshape:
        errors.append(f"{label}: label shape {lshape} != image shape {tuple(spatial)} ({image}): "
                      "use the matching image/label pair or resample the label")
    if loaded is not None:
        iz, lz = np.asarray(loaded[0].header.get_zooms()[:3]), np.asarray(limg.header.get_zooms()[:3])
        if not np.allclose(iz, lz, atol=_TOL):
            errors.append(f"{label}: label spacing {tuple(np.round(lz, 4).tolist())} != image spacing "
                          f"{tuple(np.round(iz, 4).tolist())} ({image}): resample the label onto the image grid")
        elif not np.allclose(loaded[0].affine, limg.affine, atol=_TOL):
            errors.append(f"{label}: label affine (origin/direction) differs from the image's ({image}) by more "
                          f"than {_TOL}: copy the image header onto the label or resample it")
    _check_labels(str(label), _label_values(ldata), info, errors, warnings, blank_image=blank)


# ------------------------------------------------------------------------------------------ datalist
def scan_datalist(datalist: dict, dataset: str, patch_size: Any = None,
                  max_cases: int | None = None, required: tuple[str, ...] = ("training", "validation"),
                  labelled: tuple[str, ...] = ("training", "validation")) -> IntegrityReport:
    """Check every case of a datalist (each distinct case once) and return errors and warnings.

    ``required`` lists the splits that must be non-empty, ``labelled`` those whose cases need a label
    (evaluation passes ``("testing",)`` for both).
    """
    info = get_dataset(dataset)
    patch = parse_patch_size(patch_size)
    report = IntegrityReport()
    if not isinstance(datalist, dict):
        report.errors.append(f"datalist is a {type(datalist).__name__}, not a dict with training/validation lists")
        return report
    for key in required:
        if not datalist.get(key):
            report.errors.append(f"datalist has no '{key}' cases: add some (or fix dataset_dir / the fold)")
    images: dict[str, set[str]] = {}
    todo: list[tuple[dict, bool]] = []
    seen: set[tuple[str, str | None]] = set()
    for split in ("training", "validation", "testing"):
        for i, entry in enumerate(datalist.get(split) or []):
            if not isinstance(entry, dict) or "image" not in entry:
                report.errors.append(f"datalist {split}[{i}] = {entry!r}: no 'image' key, fix the entry")
                continue
            images.setdefault(str(entry["image"]), set()).add(split)
            key = (str(entry["image"]), None if entry.get("label") is None else str(entry["label"]))
            if key not in seen:
                seen.add(key)
                todo.append((entry, split in labelled))
    for image, splits in images.items():
        if "training" in splits and len(splits) > 1:
            report.errors.append(f"{image}: in training and {', '.join(sorted(splits - {'training'}))}: "
                                 "the split leaks, fix the datalist")
    if max_cases is not None and len(todo) > int(max_cases):
        report.warnings.append(f"checked only {int(max_cases)} of {len(todo)} cases: drop max_cases to check all")
        todo = todo[: int(max_cases)]
    for entry, need_label in todo:
        _check_case(entry, info, patch, need_label, report.errors, report.warnings)
    report.checked = len(todo)
    return report


def check_datalist(datalist: dict, dataset: str, patch_size: Any = None, max_cases: int | None = None) -> list[str]:
    """Error lines only (empty list = usable); see `scan_datalist` for warnings too."""
    return scan_datalist(datalist, dataset, patch_size, max_cases).errors


def verify_dataset(dataset: str, dataset_dir: str | None = None, datalist: str | dict | None = None,
                   fold: int = 0, patch_size: Any = None, max_cases: int | None = None,
                   num_folds: int = 5, seed: int = 0) -> IntegrityReport:
    """Build (or take) the datalist and check it; raise DatasetIntegrityError listing all errors at once."""
    try:
        if isinstance(datalist, dict):
            get_dataset(dataset)
            dl = datalist
        else:
            dl = build_datalist(dataset, dataset_dir, fold=fold, datalist=datalist, num_folds=num_folds, seed=seed)
    except DatalistError as exc:
        raise DatasetIntegrityError(IntegrityReport(errors=[str(exc)])) from exc
    report = scan_datalist(dl, dataset, patch_size, max_cases)
    if report.errors:
        raise DatasetIntegrityError(report)
    logger.info(str(report))
    return report


def _exit_with(problems: list[str], dataset: str, dataset_dir: Any) -> None:
    """Log and print every problem at once, then ``SystemExit(2)`` (MONAI's config runner would bury a traceback)."""
    msg = f"{len(problems)} problem(s) found before running (dataset {dataset!r}, dataset_dir {dataset_dir}):\n"
    msg += "\n".join(f"  - {p}" for p in problems)
    logger.error(msg)
    print(msg, file=sys.stderr)
    raise SystemExit(2)


def _fold_problem(fold: Any) -> str | None:
    try:
        int(fold)
    except (TypeError, ValueError):
        return f"--fold {fold!r} is not an integer: use --fold 0 (MMWHS cross-validation: 0..4)"
    return None


def _patch_problems(network: Any, patch_size: Any) -> list[str]:
    """Run the training-mode forward on ``meta`` tensors (shapes only, no compute): a patch the network cannot take
    (too small for its deepest stage, or not divisible by its strides) is reported here, not deep inside a norm layer."""
    patch = parse_patch_size(patch_size)
    if network is None or patch is None:
        return []
    import torch

    from .taps import on_meta, input_spec

    _, in_channels = input_spec(network)
    was_training = network.training
    try:
        with torch.no_grad(), on_meta(network):
            network.train()(torch.empty(1, in_channels, *patch, device="meta"))
    except Exception as exc:  # noqa: BLE001 - any failure means this patch size cannot train
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return [f"--patch_size {list(patch)}: {type(network).__name__} cannot train on it ({first}); use the bundle's "
                "default patch size or a larger multiple of the network's total stride (16 for these networks)"]
    finally:
        network.train(was_training)
    return []


def _model_problems(model_path: str) -> list[str]:
    """Evaluation needs trained weights: say so before any data is read."""
    if not os.path.isfile(model_path):
        return [f"{model_path}: no trained model; train the bundle first (configs/train.json) or copy the released "
                "models/model.pt into the bundle"]
    try:
        import torch

        torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated download, or pickled objects that weights_only refuses
        return [f"{model_path}: cannot be loaded with torch.load(weights_only=True) ({type(exc).__name__}); "
                "re-export it with scripts/package_bundle.py or train again"]
    return []


def datalist_or_exit(dataset: str, dataset_dir: str | None, fold: Any = 0, datalist: str | dict | None = None,
                     seed: int = 0) -> dict:
    """`build_datalist` for bundle configs: a bad folder, file or fold ends in one clear message, not a traceback."""
    problem = _fold_problem(fold)
    if problem is None:
        try:
            return datalist if isinstance(datalist, dict) else build_datalist(
                dataset, dataset_dir, fold=int(fold), datalist=datalist, seed=seed)
        except (DatalistError, KeyError, ValueError) as exc:
            problem = str(exc)
    _exit_with([problem], dataset, dataset_dir)
    raise AssertionError("unreachable")


def preflight(dataset: str, dataset_dir: str | None, fold: Any = 0, datalist: str | dict | None = None,
              seed: int = 0, patch_size: Any = None, splits: tuple[str, ...] = ("training", "validation"),
              dsd_mode: str | None = None, max_cases: int | None = None,
              model_path: str | None = None, network: Any = None) -> IntegrityReport:
    """The check a bundle runs before training or evaluation: clear message and exit, never a deep traceback.

    Validates ``dsd_mode``, builds the datalist (or takes ``datalist`` as given: bundles pass the very lists their
    datasets use, so the check also covers data that MONAI Label or a study runner put in) and scans the cases of
    ``splits``. On any problem it lists every problem at once and raises ``SystemExit(2)``.
    """
    problems: list[str] = []
    if dsd_mode is not None:
        from .network import DSD_MODES

        if dsd_mode not in DSD_MODES:
            problems.append(f"unknown --dsd_mode {dsd_mode!r}: choose one of {', '.join(DSD_MODES)}")
    if model_path is not None:
        problems += _model_problems(model_path)
    problems += _patch_problems(network, patch_size)
    report = IntegrityReport()
    fold_problem = None if isinstance(datalist, dict) else _fold_problem(fold)
    if fold_problem:
        problems.append(fold_problem)
    else:
        try:
            dl = datalist if isinstance(datalist, dict) else build_datalist(
                dataset, dataset_dir, fold=int(fold), datalist=datalist, seed=seed)
            dl = {k: v for k, v in dl.items() if k in splits}
            report = scan_datalist(dl, dataset, patch_size, max_cases, required=splits, labelled=splits)
        except (DatalistError, KeyError, ValueError) as exc:
            problems.append(str(exc))
    problems += report.errors
    if problems:
        _exit_with(problems, dataset, dataset_dir)
    logger.info(str(report))
    return report
