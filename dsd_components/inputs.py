"""Turn what a user points inference at into MONAI datalist entries ``{"image": ..., "case": name}``.

Why: the bundles globbed ``dataset_dir/*.nii*``, so a single file path, a DICOM export, NRRD/MHA files or an nnU-Net
folder of ``CASE_0000`` channel files silently selected nothing and the run "succeeded" with no output.
``find_cases`` accepts every common layout and raises ``InputSelectionError`` (naming the path and what was looked
for) instead of returning an empty list.

Layouts, tried in this order for a folder:

1. ``dataset.json`` with ``channel_names`` + ``file_ending`` (nnU-Net v2 raw dataset): ``imagesTs/`` (else
   ``imagesTr/``), one case per ``CASE`` with its channel files in order.
2. ``dataset.json`` with ``test``/``training`` lists (MSD task folder): see ``read_datalist_json``.
3. image files directly in the folder (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``), skipping
   label files (``*_label.*``, ``*_seg.*``) and hidden/AppleDouble files (``.*``, ``._*``). If every file is named
   ``CASE_XXXX`` (4 digits) and at least one ``CASE_0000`` exists, they are nnU-Net channel files (see below).
   Subfolders are NOT searched for image files: a dataset folder that also holds ``labelsTr/``, old predictions
   or a second dataset must not be swept in. (``labels*/`` folders are therefore never read.)
4. ``imagesTs/`` or ``imagesTr/`` subfolder without a dataset.json (MSD/nnU-Net layout whose json got lost).
5. DICOM: files whose bytes 128..131 are ``DICM`` (any extension). The folder itself if it holds such files
   (one series), otherwise every folder below it (up to 4 levels: patient/study/series) that holds them: one case
   per series folder. Files without the DICOM preamble (old ACR-NEMA) are not recognised.

nnU-Net channel files: the channel count is ``len(channel_names)`` from dataset.json, else ``in_channels``, else
the highest channel index + 1. A ``CASE_XXXX`` index at or above ``in_channels`` means the files are not channel
files but numbered cases (e.g. ``amos_0001.nii.gz``), so they are read one case per file. A case that lacks a
channel raises ``InputSelectionError`` naming the case and the missing file.

Case names are unique per selection and name the outputs (:class:`dsd_components.inference.InferenceReport`).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from .errors import DSDUserError

__all__ = ["InputSelectionError", "find_cases", "read_datalist_json", "case_name", "split_suffix", "is_dicom_file",
           "is_label_name", "IMAGE_SUFFIXES", "DATALIST_KEYS", "CHANNEL_RE"]

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LABEL_STEM_ENDINGS = ("_label", "_seg")
DATALIST_KEYS = ("testing", "test", "validation", "training")
CHANNEL_RE = re.compile(r"^(?P<stem>.+)_(?P<channel>\d{4})$")
_DICOM_DEPTH = 4
_LOOKED_FOR = (f"image files ({', '.join('*' + s for s in IMAGE_SUFFIXES)}; label files *_label.*, *_seg.* and "
               "hidden files skipped, subfolders not searched), a dataset.json, imagesTs/ or imagesTr/, "
               "and DICOM series folders (files with 'DICM' at byte 128)")


class InputSelectionError(DSDUserError, ValueError):
    """The path selects no usable case (missing, empty, unsupported, incomplete channel files, duplicate names)."""


# ------------------------------------------------------------------------------------------ names
def split_suffix(name: str) -> tuple[str, str]:
    """``("CASE_0000", ".nii.gz")`` for a known image suffix (case-insensitive), else ``(name, "")``."""
    low = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


def is_label_name(name: str) -> bool:
    """Label maps that sit next to images: ``x_label.nii.gz``, ``x_seg.nrrd`` (also our own earlier outputs)."""
    stem, suffix = split_suffix(name)
    return bool(suffix) and stem.lower().endswith(LABEL_STEM_ENDINGS)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """DICOM Part 10 files carry ``DICM`` at byte 128, whatever their extension (many have none)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def case_name(image: str | os.PathLike | list | tuple) -> str:
    """The case name of a datalist ``image``: file stem; for channel files the stem without ``_XXXX``; for a
    folder (DICOM series) its name."""
    if isinstance(image, (list, tuple)):
        stem, _ = split_suffix(os.path.basename(str(image[0])))
        m = CHANNEL_RE.match(stem)
        return m.group("stem") if m else stem
    image = str(image).rstrip("/\\")
    if os.path.isdir(image):
        return os.path.basename(image)
    stem, suffix = split_suffix(os.path.basename(image))
    return stem if suffix else os.path.splitext(os.path.basename(image))[0]


def _visible(folder: Path) -> list[Path]:
    """Entries of a folder without hidden and macOS AppleDouble (``._x``) files, sorted by name."""
    try:
        return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as exc:
        raise InputSelectionError(f"{folder}: cannot list the folder ({exc.strerror or exc}): check the path "
                                  "and its permissions") from exc


def _image_files(folder: Path, suffix: str | None = None) -> list[Path]:
    """Image files (not labels) directly in ``folder``; with ``suffix`` only those ending in it."""
    out = []
    for p in _visible(folder):
        if not p.is_file() or is_label_name(p.name):
            continue
        stem, suf = split_suffix(p.name)
        if suf and (suffix is None or p.name.endswith(suffix)):
            out.append(p)
    return out


def _abs(p: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(str(p)))


# ------------------------------------------------------------------------------------------ channel files
def _group_channels(files: list[Path], n_channels: int | None, in_channels: int | None,
                    forced: bool = False) -> list[dict] | None:
    """nnU-Net channel files -> one entry per case; None when the files are not channel files (unless forced).

    Raises:
        InputSelectionError: a case misses channel files, or (forced) a file is not named ``CASE_XXXX``.
    """
    groups: dict[str, dict[int, Path]] = defaultdict(dict)
    for f in files:
        m = CHANNEL_RE.match(split_suffix(f.name)[0])
        if m is None:
            if forced:
                raise InputSelectionError(f"{f}: nnU-Net dataset image not named CASE_XXXX (4-digit channel "
                                          "index before the file ending): rename it, e.g. CASE_0000.nii.gz")
            return None
        groups[m.group("stem")][int(m.group("channel"))] = f
    if not groups:
        return None
    highest = max(max(g) for g in groups.values())
    n = n_channels or in_channels or highest + 1
    if not forced and (highest >= n or not any(0 in g for g in groups.values())):
        return None  # numbered cases such as amos_0001, not channel files
    missing, extra = [], []
    for stem, chans in sorted(groups.items()):
        folder = next(iter(chans.values())).parent
        suffix = split_suffix(next(iter(chans.values())).name)[1]
        for c in range(n):
            if c not in chans:
                missing.append(f"case {stem}: channel {c} file {folder / f'{stem}_{c:04d}{suffix}'} is missing: "
                               f"every case needs {n} channel file(s) {stem}_0000..{stem}_{n - 1:04d}")
        extra += [f"case {stem}: {chans[c]} is channel {c} but the model/dataset has {n} channel(s) "
                  f"(0..{n - 1}): remove it or fix the channel count" for c in sorted(chans) if c >= n]
    if missing or extra:
        raise InputSelectionError(f"{len(missing) + len(extra)} channel-file problem(s):\n"
                                  + "\n".join(missing + extra))
    return [{"image": _abs(chans[0]) if n == 1 else [_abs(chans[c]) for c in range(n)], "case": stem}
            for stem, chans in sorted(groups.items())]


def _from_files(files: list[Path], in_channels: int | None, n_channels: int | None = None,
                forced: bool = False) -> list[dict]:
    """Plain image files -> one case each, unless they are nnU-Net channel files."""
    grouped = _group_channels(files, n_channels, in_channels, forced=forced)
    if grouped is not None:
        return grouped
    return [{"image": _abs(f), "case": case_name(f)} for f in files]


# ------------------------------------------------------------------------------------------ JSON lists
def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputSelectionError(f"{path}: cannot read the JSON ({type(exc).__name__}: {exc}): fix or "
                                  "regenerate the file") from exc


def _resolve(base: Path, p: Any, where: str) -> str:
    if not isinstance(p, (str, os.PathLike)) or not str(p):
        raise InputSelectionError(f"{where}: image entry {p!r} is not a path: use a string or a list of strings")
    p = os.path.expanduser(str(p))
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p))


def read_datalist_json(path: str | os.PathLike) -> list[dict]:
    """Entries of a decathlon-style datalist: the first non-empty of ``testing``, ``test``, ``validation``,
    ``training`` (strings or ``{"image": path or [channel paths]}``), relative paths resolved against the
    JSON's folder (as MONAI's ``load_decathlon_datalist`` does). Files are not opened here: a missing one is
    reported per case by :func:`dsd_components.case_checks.check_case`.

    Raises:
        InputSelectionError: unreadable JSON, no usable list, entries without an image, duplicate case names.
    """
    path = Path(_abs(path))
    data = _load_json(path)
    if not isinstance(data, dict):
        raise InputSelectionError(f"{path}: expected a JSON object with one of the lists {list(DATALIST_KEYS)}")
    key = next((k for k in DATALIST_KEYS if isinstance(data.get(k), list) and data[k]), None)
    if key is None:
        raise InputSelectionError(f"{path}: no non-empty list under {', '.join(repr(k) for k in DATALIST_KEYS)}: "
                                  "add the images to infer under \"testing\"")
    base, out = path.parent, []
    for i, item in enumerate(data[key]):
        where = f"{path} [{key!r} #{i}]"
        image = item.get("image") if isinstance(item, dict) else item
        if image is None:
            raise InputSelectionError(f"{where}: entry has no \"image\": use a path or {{\"image\": path}}")
        if isinstance(image, (list, tuple)):
            image = [_resolve(base, p, where) for p in image]
            if not image:
                raise InputSelectionError(f"{where}: empty image list")
        else:
            image = _resolve(base, image, where)
        out.append({"image": image, "case": case_name(image)})
    return _unique(out, str(path))


# ------------------------------------------------------------------------------------------ DICOM
def _dicom_series(root: Path) -> list[dict]:
    """Folders (root itself, else up to 4 levels below) holding DICOM files -> one case per folder."""
    def has_dicom(folder: Path) -> bool:
        return any(p.is_file() and p.name.upper() != "DICOMDIR" and is_dicom_file(p) for p in _visible(folder))

    if has_dicom(root):
        return [{"image": _abs(root), "case": root.name}]
    found: list[Path] = []
    todo = [(root, 0)]
    while todo:
        folder, depth = todo.pop()
        for p in _visible(folder):
            if p.is_dir():
                if has_dicom(p):
                    found.append(p)  # a series folder: do not descend into it
                elif depth + 1 < _DICOM_DEPTH:
                    todo.append((p, depth + 1))
    return [{"image": _abs(p), "case": "_".join(p.relative_to(root).parts)} for p in sorted(found)]


# ------------------------------------------------------------------------------------------ entry point
def _unique(entries: list[dict], where: str) -> list[dict]:
    """Case names name the outputs: two cases with one name would overwrite each other's prediction."""
    seen: dict[str, Any] = {}
    dups = []
    for e in entries:
        if e["case"] in seen:
            dups.append(f"case {e['case']!r}: {seen[e['case']]} and {e['image']}")
        seen.setdefault(e["case"], e["image"])
    if dups:
        raise InputSelectionError(f"{where}: {len(dups)} duplicate case name(s), their predictions would "
                                  "overwrite each other: " + "; ".join(dups) + ": rename or move one of each pair")
    return sorted(entries, key=lambda e: e["case"])


def _from_dataset_json(ds: Path, in_channels: int | None) -> list[dict] | None:
    data = _load_json(ds)
    if not isinstance(data, dict):
        return None
    if "channel_names" in data and "file_ending" in data:  # nnU-Net v2 raw dataset
        n = len(data["channel_names"]) or None
        for sub in ("imagesTs", "imagesTr"):
            folder = ds.parent / sub
            files = _image_files(folder, data["file_ending"]) if folder.is_dir() else []
            if files:
                return _from_files(files, in_channels, n_channels=n, forced=True)
        raise InputSelectionError(f"{ds.parent}: nnU-Net dataset without images: looked for "
                                  f"imagesTs/*{data['file_ending']} and imagesTr/*{data['file_ending']}")
    if any(isinstance(data.get(k), list) and data[k] for k in DATALIST_KEYS):  # MSD task folder
        return read_datalist_json(ds)
    return None


def find_cases(path: str | os.PathLike, in_channels: int | None = None) -> list[dict]:
    """Datalist entries ``{"image": path | [channel paths] | DICOM folder, "case": name}``, sorted by case name,
    with absolute paths, for a file, a folder, a dataset folder, a DICOM tree or a datalist ``.json``
    (layouts and their order: module docstring). ``in_channels`` (the model's) only disambiguates
    ``CASE_XXXX`` files; channel counts are checked per case by :func:`dsd_components.case_checks.check_case`.

    Raises:
        InputSelectionError: nothing selected (the message names the path and what was looked for), a path that
            does not exist, an unsupported or single-DICOM file, incomplete nnU-Net channel files, duplicate
            case names, or an unreadable dataset.json/datalist.
    """
    if path is None or not str(path).strip():
        raise InputSelectionError("no input path given: pass --dataset_dir with an image, a folder or a datalist .json")
    p = Path(_abs(path))
    if not p.exists():
        raise InputSelectionError(f"{p}: does not exist: pass an image file, a folder of images, a DICOM series "
                                  "folder, a dataset folder with dataset.json, or a datalist .json")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return read_datalist_json(p)
        if split_suffix(p.name)[1]:
            return [{"image": str(p), "case": case_name(p)}]
        if is_dicom_file(p):
            raise InputSelectionError(f"{p}: is a single DICOM file: pass the folder that holds the whole series "
                                      f"({p.parent})")
        raise InputSelectionError(f"{p}: not a supported image file: use {', '.join(IMAGE_SUFFIXES)}, a DICOM "
                                  "series folder, or a datalist .json")
    ds = p / "dataset.json"
    if ds.is_file():
        entries = _from_dataset_json(ds, in_channels)
        if entries is not None:
            return _unique(entries, str(ds))
    files = _image_files(p)
    if files:
        return _unique(_from_files(files, in_channels), str(p))
    for sub in ("imagesTs", "imagesTr"):
        if (p / sub).is_dir():
            files = _image_files(p / sub)
            if files:
                return _unique(_from_files(files, in_channels), str(p / sub))
    series = _dicom_series(p)
    if series:
        return _unique(series, str(p))
    raise InputSelectionError(f"{p}: no input images found: looked for {_LOOKED_FOR}")
