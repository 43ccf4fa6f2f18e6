"""Datalists, splits and folds: a dataset folder on disk -> training / validation / testing lists.

What a dataset *is* (channels, classes, raw label values, on-disk layout, split rule) comes from the bundle config's
``dataset`` item, read by :meth:`DatasetSpec.from_config`; this module knows no dataset by name, so the nine paper
bundles and bundles planned for a user's own data (``dsd-new-bundle``) share one code path.

Layouts: ``mmwhs`` (``ct_train_1001_image.nii.gz`` / ``..._label.nii.gz``), ``msd`` (Medical Segmentation Decathlon
task folder: ``dataset.json`` with a ``training`` list) and ``nnunetv2`` (nnU-Net v2 raw: ``dataset.json`` with
``channel_names``, ``labels`` and ``file_ending``; ``imagesTr/CASE_0000.nii.gz`` one file per channel,
``labelsTr/CASE.nii.gz``).

Split rules (:class:`SplitSpec`): ``blocks`` (k folds of consecutive sorted cases; the reference code's MMWHS
cross-validation), ``holdout`` (the reference code's MSD splits: sorted cases, the last ones held out for testing,
the rest shuffled with ``random.Random(seed)`` and the last of them validating; sizes scale down proportionally on
small data) and ``kfold`` (nnU-Net's 5-fold split, or the dataset's own ``splits_final.json``).
Nothing here needs torch.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatalistError

__all__ = [
    "DatasetSpec", "SplitSpec", "DatalistError", "LAYOUTS", "SPLIT_KINDS", "build_datalist", "load_datalist_json",
    "list_images", "write_datalist", "holdout_sizes", "nnunet_kfold", "detect_layout", "case_id", "list_cases",
]

LAYOUTS = ("mmwhs", "msd", "nnunetv2")
SPLIT_KINDS = ("blocks", "holdout", "kfold")
_MMWHS_IMAGE = re.compile(r"^ct_train_(\d+)_image\.nii(\.gz)?$")
NNUNET_SPLIT_SEED = 12345  # nnunetv2/utilities/crossval_split.py: generate_crossval_split(seed=12345)


@dataclass(frozen=True)
class SplitSpec:
    """How cases are split into training / validation / testing.

    Attributes:
        kind: ``blocks``, ``holdout`` or ``kfold`` (see the module docstring).
        num_folds: folds of ``blocks`` and ``kfold``.
        reference_cases, test, validation: ``holdout`` sizes on the full dataset (e.g. 484 BraTS cases: 24 test,
            72 validation); smaller datasets get proportionally smaller, never empty, splits.
        seed: the shuffle seed of ``holdout`` (the reference code's ``random.Random(0)``) and ``kfold``.
    """

    kind: str = "holdout"
    num_folds: int = 5
    reference_cases: int = 0
    test: int = 0
    validation: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise DatalistError(f"dataset split kind {self.kind!r} is unknown: use one of {', '.join(SPLIT_KINDS)}")


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset that the datalist builder and the data check need (from the bundle config).

    Attributes:
        name: a label for messages (``mmwhs``, ``Dataset501_Heart``, ...).
        layout: ``mmwhs``, ``msd`` or ``nnunetv2``.
        channel_names: one name per input channel (``CT``; ``FLAIR, T1w, T1gd, T2w``).
        class_names: network output classes, background first.
        raw_label_values: on-disk values of classes 1..K-1 when they are not already 1..K-1 (MMWHS: 205, 420, ...).
        background_values: stray on-disk values mapped to background with a warning (MMWHS: 421, one voxel).
        target_spacing: the spacing the bundle resamples to (``None``: native).
        split: the split rule.
        file_ending: image file ending of the ``nnunetv2`` layout.
    """

    name: str
    layout: str
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    raw_label_values: tuple[int, ...] | None = None
    background_values: tuple[int, ...] = ()
    target_spacing: tuple[float, ...] | None = None
    split: SplitSpec = field(default_factory=SplitSpec)
    file_ending: str = ".nii.gz"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise DatalistError(f"dataset layout {self.layout!r} is unknown: use one of {', '.join(LAYOUTS)}")
        if len(self.class_names) < 2:
            raise DatalistError(f"dataset {self.name}: class_names needs background and at least one class")
        if not self.channel_names:
            raise DatalistError(f"dataset {self.name}: channel_names needs at least one channel")

    @classmethod
    def from_config(cls, value: DatasetSpec | Mapping[str, Any]) -> DatasetSpec:
        """The spec from a bundle config's ``dataset`` item (a dict), or ``value`` itself.

        Raises:
            DatalistError: not a mapping, a missing or unknown key, or an unknown layout or split kind.
        """
        if isinstance(value, DatasetSpec):
            return value
        if not isinstance(value, Mapping):
            raise DatalistError(f"the bundle's 'dataset' item must be a dict of dataset facts, got {value!r}: "
                                "regenerate the bundle or restore configs/train.json")
        d = dict(value)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        missing = sorted({"name", "layout", "channel_names", "class_names"} - set(d))
        if unknown or missing:
            raise DatalistError(f"the bundle's 'dataset' item: unknown keys {unknown}, missing keys {missing} "
                                f"(known: {', '.join(sorted(known))})")
        split = d.get("split") or {}
        if not isinstance(split, (Mapping, SplitSpec)):
            raise DatalistError(f"dataset 'split' must be a dict, got {split!r}")
        tup = lambda x: None if x is None else tuple(x)  # noqa: E731
        return cls(
            name=str(d["name"]), layout=str(d["layout"]), channel_names=tuple(str(c) for c in d["channel_names"]),
            class_names=tuple(str(c) for c in d["class_names"]),
            raw_label_values=tup(d.get("raw_label_values")),
            background_values=tuple(int(v) for v in d.get("background_values") or ()),
            target_spacing=tup(d.get("target_spacing")),
            split=split if isinstance(split, SplitSpec) else SplitSpec(**dict(split)),
            file_ending=str(d.get("file_ending", ".nii.gz")),
        )

    @property
    def in_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        """Output channels of the network, background included."""
        return len(self.class_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Class indices 0..K-1, what the network trains on after any label mapping."""
        return tuple(range(self.num_classes))


# -------------------------------------------------------------------------------------------------- helpers
def _given(value: Any) -> bool:
    """Bundle configs pass '' / 'None' / None for 'not given'."""
    return value is not None and str(value).strip() not in ("", "None", "null")


def _abs(path: str | Path | Sequence[str | Path]) -> str | list[str]:
    if isinstance(path, (str, Path)):
        return os.path.abspath(path)
    return [os.path.abspath(p) for p in path]


def _entry(image: str | Path | Sequence, label: str | Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"image": _abs(image)}
    if label is not None:
        out["label"] = os.path.abspath(label)
    return out


def case_id(entry: Mapping[str, Any]) -> str:
    """A case's name: the label file's (or first image file's) name without its extension and channel suffix."""
    ref = entry.get("label") or entry["image"]
    ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    name = Path(str(ref)).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return re.sub(r"_\d{4}$", "", name) if entry.get("label") is None else name


def _sort_key(entry: Mapping[str, Any]) -> str:
    image = entry["image"]
    return str(image[0] if isinstance(image, (list, tuple)) else image)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DatalistError(f"no dataset.json in {path.parent}: point --dataset_dir at the {what} folder "
                            "(the one holding dataset.json) or pass --datalist")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatalistError(f"{path} is not valid JSON ({exc}): fix the file or re-download the dataset") from exc
    if not isinstance(meta, dict):
        raise DatalistError(f"{path} is not a JSON object: fix the file or re-download the dataset")
    return meta


def detect_layout(dataset_dir: str | Path) -> str:
    """``nnunetv2`` (dataset.json with ``channel_names``), ``msd`` (dataset.json with ``training``) or ``mmwhs``.

    Raises:
        DatalistError: the folder matches none of them.
    """
    root = Path(dataset_dir)
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        meta = _read_json(meta_path, "dataset")
        if "channel_names" in meta and "file_ending" in meta:
            return "nnunetv2"
        if isinstance(meta.get("training"), list):
            return "msd"
        raise DatalistError(f"{meta_path} is neither MSD (a 'training' list) nor nnU-Net v2 ('channel_names', "
                            "'labels', 'file_ending'): fix it, or pass --datalist")
    if _mmwhs_cases(root):
        return "mmwhs"
    raise DatalistError(f"{root} is not a dataset folder this project reads: expected an MSD task folder or an "
                        "nnU-Net v2 raw dataset (both with dataset.json) or MMWHS ct_train_*_image.nii.gz files")


# -------------------------------------------------------------------------------------------------- layouts
def _mmwhs_cases(dataset_dir: Path) -> list[tuple[int, Path]]:
    """(case number, image path) for every ``ct_train_NNNN_image.nii[.gz]``, also under ``ct_train/``."""
    found: dict[int, Path] = {}
    for folder in (dataset_dir, dataset_dir / "ct_train"):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _MMWHS_IMAGE.match(p.name)
            if m and int(m.group(1)) not in found:
                found[int(m.group(1))] = p
    return sorted(found.items())


def _mmwhs_entries(root: Path) -> list[dict[str, Any]]:
    cases = _mmwhs_cases(root)
    if not cases:
        raise DatalistError(f"no ct_train_*_image.nii.gz in {root} (or its ct_train/ subfolder): "
                            "point --dataset_dir at the MMWHS CT training folder")
    return [_entry(img, img.with_name(img.name.replace("_image.nii", "_label.nii"))) for _, img in cases]


def _msd_entries(root: Path) -> list[dict[str, Any]]:
    path = root / "dataset.json"
    meta = _read_json(path, "MSD task (e.g. Task01_BrainTumour)")
    training = meta.get("training")
    if not isinstance(training, list) or not training:
        hint = (" It looks like an nnU-Net v2 dataset.json: set the bundle's dataset layout to nnunetv2."
                if "channel_names" in meta else "")
        raise DatalistError(f"{path} has no 'training' list: expected MSD format "
                            '{"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]}.'
                            + hint)
    for i, item in enumerate(training):
        if not (isinstance(item, dict) and isinstance(item.get("image"), str) and isinstance(item.get("label"), str)):
            raise DatalistError(f"{path}: training[{i}] = {item!r} is not an {{'image', 'label'}} pair of paths")
    return sorted((_entry(root / t["image"], root / t["label"]) for t in training), key=_sort_key)


def _nnunet_entries(root: Path, spec: DatasetSpec) -> list[dict[str, Any]]:
    """One entry per label file in ``labelsTr``; ``image`` lists the case's channel files ``CASE_0000..`` in order
    (a single path for one channel). A missing channel file stays in the list: the data check names it."""
    meta = _read_json(root / "dataset.json", "nnU-Net v2 raw dataset (DatasetXXX_Name)")
    ending = str(meta.get("file_ending", spec.file_ending))
    channels = meta.get("channel_names") or {}
    n_channels = len(channels) or spec.in_channels
    labels_dir = root / "labelsTr"
    if not labels_dir.is_dir():
        raise DatalistError(f"{root} has no labelsTr/ folder: an nnU-Net v2 raw dataset keeps its labels there")
    cases = sorted(p.name[: -len(ending)] for p in labels_dir.iterdir()
                   if p.name.endswith(ending) and not p.name.startswith("._"))
    if not cases:
        raise DatalistError(f"no *{ending} label files in {labels_dir}: check dataset.json's file_ending")
    out = []
    for case in cases:
        files = [root / "imagesTr" / f"{case}_{c:04d}{ending}" for c in range(n_channels)]
        out.append(_entry(files[0] if n_channels == 1 else files, labels_dir / f"{case}{ending}"))
    return out


def _entries(spec: DatasetSpec, root: Path) -> list[dict[str, Any]]:
    if spec.layout == "mmwhs":
        return _mmwhs_entries(root)
    if spec.layout == "msd":
        return _msd_entries(root)
    return _nnunet_entries(root, spec)


def list_cases(dataset: DatasetSpec | Mapping[str, Any], dataset_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every labelled case of a dataset folder (``{"image", "label"}``, sorted), before any split.

    Raises:
        DatalistError: not a folder of this layout.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatalistError(f"dataset_dir {root} is not a folder")
    return _entries(DatasetSpec.from_config(dataset), root)


# --------------------------------------------------------------------------------------------------- splits
def holdout_sizes(split: SplitSpec, n: int) -> tuple[int, int, int]:
    """(train, validation, test) sizes for ``n`` cases: the reference sizes at full size, scaled below it.

    Raises:
        DatalistError: fewer than 3 cases.
    """
    if n < 3:
        raise DatalistError(f"{n} case(s) cannot give non-empty train/validation/test splits; need >= 3")
    ref = split.reference_cases or n
    scaled = lambda k: k if n >= ref else max(1, round(k / ref * n))  # noqa: E731
    test = min(scaled(split.test), n - 2)
    val = min(scaled(split.validation), n - 1 - test)
    return n - test - val, val, test


def _holdout(entries: list[dict], split: SplitSpec, fold: int, name: str) -> dict[str, list]:
    if fold != 0:
        raise DatalistError(f"fold {fold} is out of range for {name}: the paper uses one fixed split, "
                            "use --fold 0 (or pass your own --datalist)")
    n_train, n_val, n_test = holdout_sizes(split, len(entries))
    test, rest = entries[len(entries) - n_test:], entries[: len(entries) - n_test]
    random.Random(split.seed).shuffle(rest)
    return {"training": rest[:n_train], "validation": rest[n_train:], "testing": test}


def _blocks(entries: list[dict], split: SplitSpec, fold: int, name: str) -> dict[str, list]:
    k = split.num_folds
    if k < 2:
        raise DatalistError(f"num_folds={k}: need at least 2 folds for a train/validation split")
    if len(entries) < 2:
        raise DatalistError(f"only {len(entries)} case(s) in {name}: need at least 2 to split")
    size = math.ceil(len(entries) / k)
    valid = [f for f in range(k) if f * size < len(entries)]
    if fold not in valid:
        raise DatalistError(f"fold {fold} is out of range for {len(entries)} {name} cases in {k} folds of "
                            f"{size}: use --fold 0..{valid[-1]}")
    val_idx = set(range(fold * size, min((fold + 1) * size, len(entries))))
    val = [e for i, e in enumerate(entries) if i in val_idx]
    train = [e for i, e in enumerate(entries) if i not in val_idx]
    return {"training": train, "validation": val, "testing": [dict(e) for e in val]}


def nnunet_kfold(case_ids: Sequence[str], num_folds: int = 5, seed: int = NNUNET_SPLIT_SEED) -> list[dict[str, list]]:
    """nnU-Net v2's cross-validation split (``generate_crossval_split``: scikit-learn ``KFold(num_folds,
    shuffle=True, random_state=seed)`` over the sorted case ids), written with NumPy so no scikit-learn is needed.

    Returns ``[{"train": [...], "val": [...]}, ...]``, the format of nnU-Net's ``splits_final.json``.

    Raises:
        DatalistError: fewer cases than folds.
    """
    keys = np.sort(np.asarray(list(case_ids), dtype=object))
    n = len(keys)
    if len(set(keys.tolist())) != n:
        raise DatalistError("case identifiers must be unique for a k-fold split")
    if n < num_folds:
        raise DatalistError(f"{n} case(s) cannot be split into {num_folds} folds: add cases or lower the folds")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)  # what KFold(shuffle=True, random_state=seed) draws
    sizes = np.full(num_folds, n // num_folds)
    sizes[: n % num_folds] += 1
    out, start = [], 0
    for size in sizes:
        val = np.zeros(n, bool)
        val[order[start:start + size]] = True
        start += size
        out.append({"train": [str(k) for k in keys[~val]], "val": [str(k) for k in keys[val]]})
    return out


def _kfold(entries: list[dict], split: SplitSpec, fold: int, root: Path, name: str) -> dict[str, list]:
    by_id = {case_id(e): e for e in entries}
    own = root / "splits_final.json"
    if own.is_file():
        try:
            folds = json.loads(own.read_text())
            assert isinstance(folds, list) and all("train" in f and "val" in f for f in folds)
        except (json.JSONDecodeError, UnicodeDecodeError, AssertionError) as exc:
            raise DatalistError(f"{own} is not nnU-Net's splits_final.json format [{{'train': [...], 'val': [...]}}]: "
                                "fix or delete it") from exc
        unknown = sorted({c for f in folds for c in f["train"] + f["val"]} - set(by_id))
        if unknown:
            raise DatalistError(f"{own} names cases that are not in {root}: {unknown[:5]}: fix or delete it")
    else:
        folds = nnunet_kfold(list(by_id), split.num_folds, split.seed)
    if not 0 <= fold < len(folds):
        raise DatalistError(f"fold {fold} is out of range for {name}: use --fold 0..{len(folds) - 1}")
    val = [by_id[c] for c in folds[fold]["val"]]
    train = [by_id[c] for c in folds[fold]["train"]]
    return {"training": train, "validation": val, "testing": [dict(e) for e in val]}


# ------------------------------------------------------------------------------------------ datalist override
def _resolve(path: str, bases: list[Path]) -> str:
    """Absolute path for a datalist entry: the first base where it exists, else the first base."""
    if os.path.isabs(path):
        return path
    for base in bases:
        if (base / path).exists():
            return os.path.abspath(base / path)
    return os.path.abspath(bases[0] / path)


def load_datalist_json(datalist: str | Path, dataset_dir: str | Path | None = None, fold: int = 0) -> dict:
    """Read a decathlon-format datalist; relative paths resolve against dataset_dir, then the file's folder.

    Entries carrying a "fold" key (Auto3DSeg style) with no "validation" list are split by `fold`.
    A missing "testing" list falls back to the validation list (as cross-validation does).

    Raises:
        DatalistError: the file is missing, not JSON, or has no usable training/validation lists.
    """
    path = Path(datalist)
    if not path.is_file():
        raise DatalistError(f"datalist {path} does not exist: pass an existing JSON file or drop --datalist")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatalistError(f"datalist {path} is not valid JSON ({exc}): fix or regenerate it "
                            "(dsd-prepare-datalist)") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("training"), list):
        raise DatalistError(f"datalist {path} has no 'training' list: expected MONAI decathlon format "
                            '{"training": [{"image": ..., "label": ...}], "validation": [...], "testing": [...]}')
    bases = ([Path(dataset_dir)] if _given(dataset_dir) else []) + [path.parent]

    def convert(key: str) -> list[dict]:
        out = []
        for i, item in enumerate(raw.get(key) or []):
            item = {"image": item} if isinstance(item, str) else item
            image = item.get("image") if isinstance(item, dict) else None
            if not (isinstance(image, str) or (isinstance(image, list) and image and
                                                all(isinstance(p, str) for p in image))):
                raise DatalistError(f"datalist {path}: {key}[{i}] = {item!r} has no 'image' path")
            conv = dict(item)
            conv["image"] = _resolve(image, bases) if isinstance(image, str) else [_resolve(p, bases) for p in image]
            if isinstance(conv.get("label"), str):
                conv["label"] = _resolve(conv["label"], bases)
            out.append(conv)
        return out

    training = convert("training")
    if "validation" in raw:
        validation = convert("validation")
    elif any("fold" in e for e in training):
        folds = sorted({e.get("fold") for e in training if "fold" in e})
        if fold not in folds:
            raise DatalistError(f"fold {fold} is out of range for datalist {path}: use one of {folds}")
        validation = [e for e in training if e.get("fold") == fold]
        training = [e for e in training if e.get("fold") != fold]
    else:
        raise DatalistError(f"datalist {path} has neither a 'validation' list nor 'fold' keys: add one")
    testing = convert("testing") if "testing" in raw else [dict(e) for e in validation]
    if not training or not validation:
        raise DatalistError(f"datalist {path}: empty {'training' if not training else 'validation'} split")
    return {"training": training, "validation": validation, "testing": testing}


# ------------------------------------------------------------------------------------------------------ API
def build_datalist(dataset: DatasetSpec | Mapping[str, Any], dataset_dir: str | None, fold: Any = 0,
                   datalist: str | None = None) -> dict:
    """Training/validation/testing lists of ``{"image", "label"}`` absolute paths for one dataset and fold.

    ``datalist`` (decathlon-format JSON) replaces the derived split; otherwise the dataset's split rule is applied
    to the cases found in ``dataset_dir``.

    Raises:
        DatalistError: no or a wrong folder, a malformed dataset.json, a fold out of range, too few cases.
    """
    spec = DatasetSpec.from_config(dataset)
    try:
        fold = int(fold)
    except (TypeError, ValueError):
        raise DatalistError(f"--fold {fold!r} is not an integer: use --fold 0") from None
    if _given(datalist):
        return load_datalist_json(datalist, dataset_dir, fold)
    if not _given(dataset_dir):
        raise DatalistError(f"{spec.name}: no dataset_dir and no datalist given: pass --dataset_dir")
    root = Path(str(dataset_dir))
    if not root.is_dir():
        raise DatalistError(f"dataset_dir {root} is not a folder: pass --dataset_dir with the {spec.name} data "
                            "(or make demo data with dsd-make-demo-data)")
    entries = _entries(spec, root)
    if spec.split.kind == "blocks":
        return _blocks(entries, spec.split, fold, spec.name)
    if spec.split.kind == "kfold":
        return _kfold(entries, spec.split, fold, root, spec.name)
    return _holdout(entries, spec.split, fold, spec.name)


def _is_image_file(p: Path) -> bool:
    name = p.name
    return (name.endswith((".nii.gz", ".nii")) and not name.startswith("._")  # macOS forks in MSD tars
            and not re.search(r"_(label|seg)\.nii(\.gz)?$", name)
            and not any(part.startswith("labels") for part in p.parts[:-1]))


def list_images(input_dir: str) -> list[dict]:
    """Images to run inference on: an MSD dataset.json's test list, else every NIfTI image in the folder.

    Label files (``*_label.nii.gz``, anything under ``labelsTr``/``labelsTs``) are skipped. A single file
    path is accepted too.

    Raises:
        DatalistError: the path does not exist or holds no image.
    """
    root = Path(input_dir)
    if root.is_file():
        return [_entry(root)]
    if not root.is_dir():
        raise DatalistError(f"input_dir {root} does not exist: pass a folder of .nii.gz images")
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        meta = _read_json(meta_path, "dataset")
        items = meta.get("test") or meta.get("testing") or meta.get("training") or []
        paths = [it if isinstance(it, str) else it.get("image") for it in items if isinstance(it, (str, dict))]
        out = [_entry(_resolve(p, [root])) for p in paths if isinstance(p, str)]
        if out:
            return out
    found = sorted(p for p in root.rglob("*.nii*") if p.is_file() and _is_image_file(p.relative_to(root)))
    if not found:
        raise DatalistError(f"no *.nii.gz / *.nii images in {root}: point --input_dir at a folder of images")
    return [_entry(p) for p in found]


def write_datalist(datalist: dict, path: str | Path) -> str:
    """Write a datalist as JSON (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(datalist, indent=2) + "\n")
    return str(path)
