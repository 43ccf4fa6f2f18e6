"""Per-case checks run before inference, so one bad case is skipped with one line instead of ending the run.

Why: MONAI's evaluator stops at the first exception (a truncated gzip gave a 480-line traceback, a wrong channel
count a conv traceback naming no file) and segments NaN images as all background without a word. Each case is
loaded here with MONAI's own ``LoadImaged`` + ``EnsureChannelFirstd`` and the same ``reader`` argument the
pipeline uses, so "MONAI cannot read it" is found here, by the same code, with the file named.

Cost: every case is read once more than inference needs (the voxels are needed for the NaN count).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["check_case", "screen_cases", "describe_image"]

MIN_SIZE = 2
MAX_DIM = 4096
MAX_VOXELS = 2048**3 // 4  # 2.1e9 voxels: ~8.6 GB as float32, beyond any CT/MR volume


def describe_image(image: Any) -> str:
    """How a case's image is named in messages: the file, the DICOM folder, or the first channel file (+N)."""
    if isinstance(image, (list, tuple)):
        return f"{image[0]} (+{len(image) - 1} channel file(s))" if len(image) > 1 else str(image[0])
    return f"{image} (DICOM series)" if os.path.isdir(str(image)) else str(image)


_LOADERS: dict[Any, tuple[Any, Any]] = {}


def _loader(reader: Any) -> tuple[Any, Any]:
    """LoadImaged + EnsureChannelFirstd as the pipeline builds them, made once per reader (building LoadImage
    registers every installed reader, and MONAI 1.6.1 logs an nvImageCodec warning each time)."""
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    key = reader if isinstance(reader, (str, type(None))) else id(reader)
    if key not in _LOADERS:
        _LOADERS[key] = (LoadImaged("image", reader=reader, image_only=True), EnsureChannelFirstd("image"))
    return _LOADERS[key]


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else ""
    text = text[:limit] + ("..." if len(text) > limit else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _series_uids(folder: str) -> set[str] | None:
    """SeriesInstanceUIDs in a DICOM folder (None without pydicom): MONAI's readers would mix or drop series."""
    try:
        import pydicom
    except ImportError:
        return None
    from .inputs import is_dicom_file

    uids = set()
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(p) or not is_dicom_file(p) or name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            uids.add(str(getattr(ds, "SeriesInstanceUID", "")))
        except Exception:  # noqa: BLE001 - an unreadable slice is reported by the load below
            continue
    return uids


def _read_problem(exc: BaseException, image: Any = None) -> str:
    """What went wrong reading, and the fix, from MONAI's/the reader's exception."""
    msg = str(exc)
    first = str(image[0] if isinstance(image, (list, tuple)) else image or "")
    if type(exc).__name__ == "InvalidDicomError" and first and not os.path.isdir(first):
        # without itk, MONAI's PydicomReader claims every file (its verify_suffix is just `has_pydicom`)
        return ("MONAI handed this non-DICOM file to PydicomReader, so no installed reader supports its format: "
                "pip install itk (NRRD, MHA/MHD), or convert it to NIfTI")
    if "cannot find a suitable reader" in msg:
        return ("no installed reader can read this format: pip install itk (NRRD, MHA/MHD, DICOM) or pydicom "
                "(DICOM), or convert it to NIfTI")
    if "channel-wise concatenation" in msg:
        what = "shape" if "spatial_shape" in msg else "affine" if "affine" in msg else "geometry"
        return (f"its channel files differ in {what} ({msg.splitlines()[0][:120]}): resample all channels onto "
                "one grid (nnU-Net needs identical geometry)")
    return f"cannot be read ({_first_line(exc)}): the file is corrupt or truncated: re-export or re-download it"


def check_case(entry: dict, in_channels: int, reader: Any = None, min_size: int = MIN_SIZE,
               max_voxels: int = MAX_VOXELS, max_dim: int = MAX_DIM) -> str | None:
    """None if the case can be segmented, else ONE line ``"<file>: <what is wrong>: <fix>"``.

    Checked in order, first problem wins: files exist; a DICOM folder holds one series; MONAI can load it
    (``reader`` as in the pipeline's LoadImaged); 3 spatial dims; ``in_channels`` channels after
    EnsureChannelFirst; every spatial dim in ``[min_size, max_dim]`` and at most ``max_voxels`` voxels;
    no NaN/Inf voxels.

    Raises:
        KeyError: ``entry`` has no ``"image"`` (a programming error, not a data problem).
    """
    image = entry["image"]
    where = describe_image(image)
    files = list(image) if isinstance(image, (list, tuple)) else [image]
    for f in files:
        if not os.path.exists(str(f)):
            return f"{f}: file is missing: restore it or fix the datalist/selection"
    if not isinstance(image, (list, tuple)) and os.path.isdir(str(image)):
        uids = _series_uids(str(image))
        if uids is not None and len(uids) > 1:
            return (f"{where}: the folder holds {len(uids)} DICOM series (MONAI would mix or drop slices): put "
                    "each series in its own folder")
    try:
        with warnings.catch_warnings():
            # with pydicom installed MONAI probes NVIDIA's nvImageCodec each time it builds a reader: not news here
            warnings.filterwarnings("ignore", message=".*nvImageCodec", category=UserWarning)
            load, channel_first = _loader(reader)
            img = channel_first(load({"image": image}))["image"]
    except Exception as exc:  # noqa: BLE001 - nibabel/ITK/pydicom/zlib raise many types
        return f"{where}: {_read_problem(exc, image)}"
    shape = tuple(int(s) for s in img.shape)
    channels, spatial = shape[0], shape[1:]
    if len(spatial) != 3:
        return (f"{where}: is {len(spatial)}D after EnsureChannelFirst (shape {shape}, channel first): the model "
                "needs 3D volumes; export the whole volume, not a slice or a time series")
    if channels != int(in_channels):
        if channels < in_channels:
            fix = (f"give all {in_channels} channels: one 4D image with channels last, or nnU-Net files "
                   f"CASE_0000..CASE_{in_channels - 1:04d} in one folder")
        else:
            fix = (f"give only the {in_channels} channel(s) the model was trained on (a 4D image's last axis, or "
                   "nnU-Net CASE_XXXX files, are read as channels)")
        return f"{where}: has {channels} channel(s), the model expects {in_channels}: {fix}"
    n_vox = 1
    for s in spatial:
        n_vox *= s
    if min(spatial) < min_size or max(spatial) > max_dim or n_vox > max_voxels:
        return (f"{where}: implausible size {spatial} ({n_vox} voxels; allowed each dim {min_size}..{max_dim}, "
                f"at most {max_voxels} voxels): check it is a whole 3D volume and not a slice, a stack of series "
                "or a header error")
    t = img.as_tensor() if hasattr(img, "as_tensor") else torch.as_tensor(img)
    if t.is_floating_point():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            return (f"{where}: has {bad} non-finite voxel(s) (NaN/Inf) of {t.numel()}: the network would predict "
                    "garbage (all background); replace them, e.g. with the background intensity, and re-save")
    return None


def screen_cases(entries: Iterable[dict], in_channels: int, reader: Any = None,
                 **limits: Any) -> tuple[list[dict], list[str]]:
    """Split entries into (good ones, one problem line per bad one), in input order.

    Raises:
        KeyError: an entry has no ``"image"``.
    """
    good, problems = [], []
    for entry in entries:
        problem = check_case(entry, in_channels, reader=reader, **limits)
        if problem is None:
            good.append(entry)
        else:
            problems.append(problem if "case" not in entry else f"[{entry['case']}] {problem}")
    return good, problems

