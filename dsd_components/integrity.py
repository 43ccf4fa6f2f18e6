"""Dataset integrity checks run before training, so a bad file fails in seconds with a clear message
instead of hours into an epoch (cf. nnU-Net's verify_dataset_integrity).

Every problem becomes one line: the file, what is wrong, what to do. Errors stop training (raised as one
:class:`~dsd_components.errors.DatasetIntegrityError` listing them all); warnings (tiny images that the bundle pads,
empty labels that cropping handles) are logged once each. Geometry comes from headers; voxel data is read only for
the NaN and label-value checks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nibabel as nib
import numpy as np

from .data import DatasetSpec, build_datalist
from .errors import DatalistError, DatasetIntegrityError

logger = logging.getLogger(__name__)

__all__ = ["IntegrityReport", "DatasetIntegrityError", "scan_datalist", "check_datalist", "verify_dataset",
           "parse_patch_size", "preflight"]

_TOL = 1e-3


@dataclass
class IntegrityReport:
    """Problems found in a datalist: `errors` block training, `warnings` are notes."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: int = 0
    context: str = ""  # the first line of the error message (what was checked)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        lines = [f"ERROR: {e}" for e in self.errors] + [f"WARNING: {w}" for w in self.warnings]
        lines.append(f"{self.checked} case(s) checked: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


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


def _image_spatial(path: str, shape: tuple[int, ...], spec: DatasetSpec, errors: list[str],
                   channels: int | None = None) -> tuple[int, ...] | None:
    """Spatial shape if the channel layout matches (channels last in a 4D NIfTI), else an error line.

    ``channels`` is what this one file must hold (1 for each file of an nnU-Net channel list)."""
    c = spec.in_channels if channels is None else channels
    if len(shape) == 3 and c == 1:
        return shape
    if len(shape) == 4 and shape[3] == c:
        return shape[:3]
    if c > 1 and len(shape) == 4 and shape[0] == c:
        errors.append(f"{path}: image shape {shape} has the {c} channels first: {spec.name} expects them last "
                      f"(x, y, z, {c}) as in MSD, re-save with channels on the last axis")
        return None
    found = shape[3] if len(shape) == 4 else (1 if len(shape) == 3 else None)
    what = f"{found} channel(s)" if found is not None else f"{len(shape)}D shape {shape}"
    need = f"{c} ({', '.join(spec.channel_names)})" if channels is None else f"{c} (one channel per file)"
    errors.append(f"{path}: image has {what}, {spec.name} needs {need} "
                  f"as a {'3D' if c == 1 else f'4D (x, y, z, {c})'} NIfTI: use the right files or dataset")
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


def _check_labels(path: str, data: np.ndarray, spec: DatasetSpec, errors: list[str], warnings: list[str],
                  blank_image: str | None = None) -> None:
    values = _label_values(data)
    if values is None:
        errors.append(f"{path}: label has non-integer, NaN or Inf values: labels must be integer class maps, "
                      "re-export with nearest-neighbour interpolation")
        return
    vals = {int(v) for v in values}
    classes = set(spec.label_values)
    raw = set(spec.raw_label_values or ())
    stray = vals & set(spec.background_values)
    bad = sorted(vals - classes - raw - stray)
    if bad:
        expected = f"0..{spec.num_classes - 1}" + (f" or raw {', '.join(map(str, sorted(raw)))}" if raw else "")
        errors.append(f"{path}: label values {bad} are not {spec.name} classes (expected {expected}): "
                      "fix the label file or the dataset")
    elif raw and (vals & raw) and (vals & (classes - {0})):
        errors.append(f"{path}: label mixes raw {spec.name} values {sorted(vals & raw)} with class indices "
                      f"{sorted(vals & (classes - {0}))}: use either raw values or 0..{spec.num_classes - 1}")
    for v in sorted(stray):
        count = int(np.count_nonzero(np.asarray(data) == v))
        warnings.append(f"{path}: {count} voxel(s) with the stray value {v} are mapped to background, as the "
                        "reference code does")
    if vals - stray <= {0} and blank_image is not None:
        errors.append(f"{path}: label has no foreground and its image {blank_image} is blank: nothing to learn, and "
                      "the foreground/background crop has no voxel to sample (training would stop with MONAI's "
                      "'No sampling location available'): remove the case from the datalist or re-export both files")
    elif vals - stray <= {0}:
        warnings.append(f"{path}: label has no foreground: the foreground-centred crop falls back to random "
                        "patches; check it is the right file")


def _bundle_shape(img: Any, spatial: tuple[int, ...], spec: DatasetSpec) -> tuple[int, ...]:
    """Spatial size after the bundle's RAS reorientation and (when it resamples) resampling."""
    ornt = nib.io_orientation(img.affine)
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    size, spacing = np.zeros(3), np.ones(3)
    for axis, (out_axis, _) in enumerate(ornt[:3]):
        size[int(out_axis)], spacing[int(out_axis)] = spatial[axis], zooms[axis]
    if spec.target_spacing:
        size = np.round(size * spacing / np.asarray(spec.target_spacing))
    return tuple(int(s) for s in size)


def _check_image(image: Any, spec: DatasetSpec, errors: list[str], warnings: list[str]
                 ) -> tuple[Any, tuple[int, ...] | None, str | None] | None:
    """Load the image (one file, or an nnU-Net list of one file per channel) and check channels, NaN and blankness.

    Returns (header image, spatial shape or None, the path if the image is blank), or None when unreadable."""
    files = [str(f) for f in image] if isinstance(image, (list, tuple)) else [str(image)]
    per_file = 1 if len(files) > 1 else None
    if per_file and len(files) != spec.in_channels:
        errors.append(f"{files[0]}: case has {len(files)} channel files, {spec.name} needs {spec.in_channels} "
                      f"({', '.join(spec.channel_names)}): fix the datalist or dataset.json's channel_names")
        return None
    loaded = [(_load(f, "image", errors), f) for f in files]
    if any(x is None for x, _ in loaded):
        return None
    first_img, spatial = loaded[0][0][0], None
    blank_all = True
    for (img, data), f in loaded:
        sp = _image_spatial(f, tuple(img.shape), spec, errors, per_file)
        if sp is None:
            return None
        if spatial is None:
            spatial = sp
        elif sp != spatial or not np.allclose(img.affine, first_img.affine, atol=_TOL):
            errors.append(f"{f}: channel file geometry {sp} differs from {files[0]} {spatial}: every channel of a "
                          "case must share one grid; resample it onto the first channel")
            return None
        finite = data
        if np.issubdtype(data.dtype, np.floating):
            ok = np.isfinite(data)
            n_bad = int(data.size - np.count_nonzero(ok))
            if n_bad:
                errors.append(f"{f}: {n_bad} NaN/Inf voxel(s): the loss would become NaN, "
                              "re-export the image or replace them (e.g. np.nan_to_num)")
                finite = data[ok]
        if not (finite.size and finite.min() == finite.max()):
            blank_all = False
        elif len(files) == 1:
            warnings.append(f"{f}: image is blank (every voxel = {finite.min().item():g}): check the export")
    return first_img, spatial, (files[0] if blank_all else None)


def _check_case(entry: dict, spec: DatasetSpec, patch: tuple[int, ...] | None, need_label: bool,
                errors: list[str], warnings: list[str], pad_mode: str = "constant") -> None:
    """All per-case checks for one {"image", "label"} entry."""
    image = entry["image"]
    first = str(image[0] if isinstance(image, (list, tuple)) else image)
    checked = _check_image(image, spec, errors, warnings)
    label = entry.get("label")
    lab = _load(str(label), "label", errors) if label is not None else None
    if label is None and need_label:
        errors.append(f"{first}: datalist entry has no 'label': add the label path")
    img, spatial, blank = checked if checked is not None else (None, None, None)
    if img is not None and spatial is not None and patch is not None:
        size = _bundle_shape(img, spatial, spec)
        where = " at the bundle's spacing" if spec.target_spacing else ""
        if pad_mode == "reflect" and any(s < p and 2 * s <= p - s for s, p in zip(size, patch)):
            # torch's reflect padding needs each side's pad narrower than the image along that axis
            errors.append(f"{first}: size {size}{where} is too small to reflect-pad to patch_size {patch} (each "
                          "axis needs more than a third of the patch): pass --pad_mode constant, a smaller "
                          "--patch_size, or leave the case out")
        elif any(s < p for s, p in zip(size, patch)):
            warnings.append(f"{first}: size {size}{where} is smaller than patch_size {patch}: "
                            f"the bundle pads it ({pad_mode}; fine for small/demo data)")
    if lab is None:
        return
    limg, ldata = lab
    lshape = tuple(limg.shape)
    if len(lshape) == 4 and lshape[3] == 1:
        lshape = lshape[:3]
    if len(lshape) != 3:
        errors.append(f"{label}: label shape {tuple(limg.shape)} is not 3D: save one integer class map per case")
    elif spatial is not None and tuple(spatial) != lshape:
        errors.append(f"{label}: label shape {lshape} != image shape {tuple(spatial)} ({first}): "
                      "use the matching image/label pair or resample the label")
    if img is not None:
        iz, lz = np.asarray(img.header.get_zooms()[:3]), np.asarray(limg.header.get_zooms()[:3])
        if not np.allclose(iz, lz, atol=_TOL):
            errors.append(f"{label}: label spacing {tuple(np.round(lz, 4).tolist())} != image spacing "
                          f"{tuple(np.round(iz, 4).tolist())} ({first}): resample the label onto the image grid")
        elif not np.allclose(img.affine, limg.affine, atol=_TOL):
            errors.append(f"{label}: label affine (origin/direction) differs from the image's ({first}) by more "
                          f"than {_TOL}: copy the image header onto the label or resample it")
    _check_labels(str(label), ldata, spec, errors, warnings, blank_image=blank)


# ------------------------------------------------------------------------------------------ datalist
def _image_key(entry: dict) -> str:
    image = entry["image"]
    return str(image[0] if isinstance(image, (list, tuple)) else image)


def scan_datalist(datalist: dict, dataset: DatasetSpec | Mapping[str, Any], patch_size: Any = None,
                  max_cases: int | None = None, required: tuple[str, ...] = ("training", "validation"),
                  labelled: tuple[str, ...] = ("training", "validation"), pad_mode: str = "constant") -> IntegrityReport:
    """Check every case of a datalist (each distinct case once) and return errors and warnings.

    ``required`` lists the splits that must be non-empty, ``labelled`` those whose cases need a label
    (evaluation passes ``("testing",)`` for both). ``pad_mode`` is the training padding: ``reflect`` cannot pad an
    image to more than about three times its size.
    """
    spec = DatasetSpec.from_config(dataset)
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
            images.setdefault(_image_key(entry), set()).add(split)
            key = (_image_key(entry), None if entry.get("label") is None else str(entry["label"]))
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
        _check_case(entry, spec, patch, need_label, report.errors, report.warnings, pad_mode)
    report.checked = len(todo)
    return report


def check_datalist(datalist: dict, dataset: DatasetSpec | Mapping[str, Any], patch_size: Any = None,
                   max_cases: int | None = None) -> list[str]:
    """Error lines only (empty list = usable); see `scan_datalist` for warnings too."""
    return scan_datalist(datalist, dataset, patch_size, max_cases).errors


def _log(report: IntegrityReport) -> None:
    """Each warning once, at WARNING; the summary at INFO."""
    for w in report.warnings:
        logger.warning(w)
    logger.info(f"data check: {report.checked} case(s), {len(report.errors)} error(s), "
                f"{len(report.warnings)} warning(s)")


def verify_dataset(dataset: DatasetSpec | Mapping[str, Any], dataset_dir: str | None = None,
                   datalist: str | dict | None = None, fold: int = 0, patch_size: Any = None,
                   max_cases: int | None = None) -> IntegrityReport:
    """Build (or take) the datalist and check it.

    Raises:
        DatasetIntegrityError: listing every error at once.
    """
    try:
        dl = datalist if isinstance(datalist, dict) else build_datalist(dataset, dataset_dir, fold=fold,
                                                                         datalist=datalist)
    except DatalistError as exc:
        raise DatasetIntegrityError(IntegrityReport(errors=[str(exc)])) from exc
    report = scan_datalist(dl, dataset, patch_size, max_cases)
    if report.errors:
        raise DatasetIntegrityError(report)
    return report


def _patch_problems(network: Any, patch_size: Any) -> list[str]:
    """Run the training-mode forward on ``meta`` tensors (shapes only, no compute): a patch the network cannot take
    (too small for its deepest stage, or not divisible by its strides) is reported here, not deep inside a norm layer."""
    patch = parse_patch_size(patch_size)
    if network is None or patch is None:
        return []
    import torch

    from .taps import input_spec, on_meta

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
                "re-export it with dsd-package or train again"]
    return []


def preflight(dataset: DatasetSpec | Mapping[str, Any], dataset_dir: str | None, fold: Any = 0,
              datalist: str | dict | None = None, patch_size: Any = None,
              splits: tuple[str, ...] = ("training", "validation"), dsd_mode: str | None = None,
              max_cases: int | None = None, model_path: str | None = None, network: Any = None,
              pad_mode: str = "constant") -> IntegrityReport:
    """The check a bundle runs before training or evaluation: every problem at once, before any work.

    Validates ``dsd_mode``, builds the datalist (or takes ``datalist`` as given: bundles pass the very lists their
    datasets use, so the check also covers data that MONAI Label or a study runner put in) and scans the cases of
    ``splits``. Warnings are logged once each.

    Raises:
        DatasetIntegrityError: with every problem, one line each (the bundle's entry prints it and exits 2).
    """
    spec = DatasetSpec.from_config(dataset)
    problems: list[str] = []
    if dsd_mode is not None:
        from .modes import DSD_MODES

        if dsd_mode not in DSD_MODES:
            problems.append(f"unknown --dsd_mode {dsd_mode!r}: choose one of {', '.join(DSD_MODES)}")
    if model_path is not None:
        problems += _model_problems(model_path)
    problems += _patch_problems(network, patch_size)
    report = IntegrityReport()
    try:
        dl = datalist if isinstance(datalist, dict) else build_datalist(spec, dataset_dir, fold=fold,
                                                                         datalist=datalist)
        dl = {k: v for k, v in dl.items() if k in splits}
        report = scan_datalist(dl, spec, patch_size, max_cases, required=splits, labelled=splits, pad_mode=pad_mode)
    except DatalistError as exc:
        problems.append(str(exc))
    problems += report.errors
    if problems:
        raise DatasetIntegrityError(IntegrityReport(
            errors=problems, warnings=report.warnings, checked=report.checked,
            context=f"{len(problems)} problem(s) found before running (dataset {spec.name}, dataset_dir "
                    f"{dataset_dir})"))
    _log(report)
    return report
