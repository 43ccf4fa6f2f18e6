"""Datalists, splits and folds for the three DSD datasets (MMWHS CT, MSD BraTS, MSD Hippocampus).

The splits reproduce the reference implementation ("R" in SPEC.md) exactly on the full data sets and
scale down proportionally on small (demo) data, so one code path serves real runs and tests.
Nothing here needs torch: bundles call `build_datalist` from their configs, scripts call it from the CLI.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DATASETS", "DatasetInfo", "DatalistError", "get_dataset", "build_datalist", "load_datalist_json",
    "list_images", "write_datalist", "split_sizes",
]


class DatalistError(ValueError):
    """A datalist cannot be built; the message names the file or folder and what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one data set that the bundles, the datalist builder and the integrity checks share."""

    name: str
    in_channels: int
    class_names: tuple[str, ...]
    modalities: tuple[str, ...]
    # Raw on-disk label values for classes 1..K-1 when they are not already 0..K-1 (MMWHS); None otherwise.
    raw_label_values: tuple[int, ...] | None = None
    target_spacing: tuple[float, ...] | None = None  # resampling the bundle applies (None = native)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Output channels of the network, background included."""
        return len(self.class_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Class indices 0..K-1, what the network trains on after any label mapping."""
        return tuple(range(self.num_classes))

    @property
    def orig_labels(self) -> list[int]:
        """`MapLabelValued(orig_labels=...)` argument: raw values (empty if no mapping is needed)."""
        return list(self.raw_label_values or ())

    @property
    def target_labels(self) -> list[int]:
        """`MapLabelValued(target_labels=...)` argument: the classes the raw values map to."""
        return list(range(1, len(self.orig_labels) + 1))

    def __getitem__(self, key: str) -> Any:
        """Dict-style access so bundle configs can write `DATASETS['mmwhs']['in_channels']`."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


DATASETS: dict[str, DatasetInfo] = {
    "mmwhs": DatasetInfo(
        name="mmwhs",
        in_channels=1,
        class_names=("background", "myocardium", "left_atrium", "left_ventricle", "right_atrium",
                     "right_ventricle", "ascending_aorta", "pulmonary_artery"),
        modalities=("CT",),
        raw_label_values=(205, 420, 500, 550, 600, 820, 850),
        target_spacing=(1.5, 1.5, 2.0),
    ),
    "brats": DatasetInfo(
        name="brats",
        in_channels=4,
        class_names=("background", "edema", "non_enhancing_tumor", "enhancing_tumor"),
        modalities=("FLAIR", "T1w", "t1gd", "T2w"),
    ),
    "hippocampus": DatasetInfo(
        name="hippocampus",
        in_channels=1,
        class_names=("background", "anterior", "posterior"),
        modalities=("MRI",),
    ),
}

# R's split sizes on the full data sets; smaller data sets are scaled proportionally.
_BRATS_FULL, _BRATS_TEST, _BRATS_VAL = 484, 24, 72
_HIPPO_FULL, _HIPPO_TRAINVAL, _HIPPO_VAL = 260, 200, 30
_MMWHS_IMAGE = re.compile(r"^ct_train_(\d+)_image\.nii(\.gz)?$")


def get_dataset(dataset: str) -> DatasetInfo:
    """Look a data set up by name, with an error that lists the valid names."""
    key = str(dataset).lower()
    if key not in DATASETS:
        raise DatalistError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[key]


def _given(value: Any) -> bool:
    """Bundle configs pass '' / 'None' / None for 'not given'."""
    return value is not None and str(value).strip() not in ("", "None", "null")


def _entry(image: str | Path, label: str | Path | None = None) -> dict[str, str]:
    out = {"image": os.path.abspath(image)}
    if label is not None:
        out["label"] = os.path.abspath(label)
    return out


# ----------------------------------------------------------------------------------------------- MMWHS
def _mmwhs_cases(dataset_dir: Path) -> list[tuple[int, Path]]:
    """(case number, image path) for every `ct_train_NNNN_image.nii[.gz]`, also under `ct_train/`."""
    found: dict[int, Path] = {}
    for folder in (dataset_dir, dataset_dir / "ct_train"):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _MMWHS_IMAGE.match(p.name)
            if m and int(m.group(1)) not in found:
                found[int(m.group(1))] = p
    return sorted(found.items())


def _mmwhs_label(image: Path) -> Path:
    return image.with_name(image.name.replace("_image.nii", "_label.nii"))


def _mmwhs_datalist(dataset_dir: Path, fold: int, num_folds: int) -> dict[str, list]:
    """R's MMWHS protocol: sorted cases, consecutive folds; testing = validation (cross-validation)."""
    cases = _mmwhs_cases(dataset_dir)
    if not cases:
        raise DatalistError(f"no ct_train_*_image.nii.gz in {dataset_dir} (or its ct_train/ subfolder): "
                            "point --dataset_dir at the MMWHS CT training folder")
    if num_folds < 2:
        raise DatalistError(f"num_folds={num_folds}: need at least 2 folds for a train/validation split")
    size = math.ceil(len(cases) / num_folds)
    valid = [k for k in range(num_folds) if k * size < len(cases)]
    if fold not in valid:
        raise DatalistError(f"fold {fold} is out of range for {len(cases)} MMWHS cases in {num_folds} folds: "
                            f"use --fold 0..{valid[-1]}")
    val_idx = set(range(fold * size, min((fold + 1) * size, len(cases))))
    entries = [_entry(img, _mmwhs_label(img)) for _, img in cases]
    val = [e for i, e in enumerate(entries) if i in val_idx]
    train = [e for i, e in enumerate(entries) if i not in val_idx]
    if not train:
        raise DatalistError(f"only {len(cases)} MMWHS case(s) in {dataset_dir}: need at least 2 to split")
    return {"training": train, "validation": val, "testing": [dict(e) for e in val]}


# ------------------------------------------------------------------------------------------------- MSD
def _read_msd_json(dataset_dir: Path) -> dict:
    """Load and sanity-check an MSD `dataset.json` (errors name the file and the fix)."""
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        raise DatalistError(f"no dataset.json in {dataset_dir}: point --dataset_dir at the MSD task folder "
                            "(e.g. Task01_BrainTumour) or pass --datalist")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatalistError(f"{path} is not valid JSON ({exc}): re-download the MSD task or fix the file") from exc
    training = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(training, list) or not training:
        raise DatalistError(f"{path} has no 'training' list: expected MSD format "
                            '{"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]}')
    for i, item in enumerate(training):
        if not (isinstance(item, dict) and isinstance(item.get("image"), str) and isinstance(item.get("label"), str)):
            raise DatalistError(f"{path}: training[{i}] = {item!r} is not an {{'image', 'label'}} pair of paths")
    return meta


def _msd_training(dataset_dir: Path) -> list[dict[str, str]]:
    meta = _read_msd_json(dataset_dir)
    items = [_entry(dataset_dir / t["image"], dataset_dir / t["label"]) for t in meta["training"]]
    return sorted(items, key=lambda e: e["image"])


def split_sizes(dataset: str, n: int) -> tuple[int, int, int]:
    """(train, validation, test) sizes for `n` MSD cases: R's numbers at full size, scaled below it."""
    if n < 3:
        raise DatalistError(f"{dataset}: {n} case(s) cannot give non-empty train/validation/test splits; need >= 3")
    if dataset == "brats":
        test = max(1, round(_BRATS_TEST / _BRATS_FULL * n)) if n < _BRATS_FULL else _BRATS_TEST
        val = max(1, round(_BRATS_VAL / _BRATS_FULL * n)) if n < _BRATS_FULL else _BRATS_VAL
        test, val = min(test, n - 2), min(val, n - 1 - min(test, n - 2))
        return n - test - val, val, test
    if dataset == "hippocampus":
        trainval = round(_HIPPO_TRAINVAL / _HIPPO_FULL * n) if n < _HIPPO_FULL else _HIPPO_TRAINVAL
        trainval = min(max(trainval, 2), n - 1)
        val = max(1, round(_HIPPO_VAL / _HIPPO_FULL * n)) if n < _HIPPO_FULL else _HIPPO_VAL
        val = min(val, trainval - 1)
        return trainval - val, val, n - trainval
    raise DatalistError(f"split_sizes: {dataset!r} has no fixed split (use one of brats, hippocampus)")


def _msd_datalist(dataset: str, dataset_dir: Path, fold: int, seed: int) -> dict[str, list]:
    """R's fixed MSD splits (one split, so only fold 0 exists)."""
    if fold != 0:
        raise DatalistError(f"fold {fold} is out of range for {dataset}: the paper uses one fixed split, "
                            "use --fold 0 (or pass your own --datalist)")
    items = _msd_training(dataset_dir)
    n_train, n_val, n_test = split_sizes(dataset, len(items))
    if dataset == "brats":
        test, rest = items[len(items) - n_test:], items[: len(items) - n_test]
        random.Random(seed).shuffle(rest)
        return {"training": rest[:n_train], "validation": rest[n_train:], "testing": test}
    trainval = items[: n_train + n_val]
    return {"training": trainval[:n_train], "validation": trainval[n_train:], "testing": items[n_train + n_val:]}


# ------------------------------------------------------------------------------------ datalist override
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
    A missing "testing" list falls back to the validation list (as MMWHS cross-validation does).
    """
    path = Path(datalist)
    if not path.is_file():
        raise DatalistError(f"datalist {path} does not exist: pass an existing JSON file or drop --datalist")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatalistError(f"datalist {path} is not valid JSON ({exc}): fix or regenerate it "
                            "(scripts/prepare_datalist.py)") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("training"), list):
        raise DatalistError(f"datalist {path} has no 'training' list: expected MONAI decathlon format "
                            '{"training": [{"image": ..., "label": ...}], "validation": [...], "testing": [...]}')
    bases = ([Path(dataset_dir)] if _given(dataset_dir) else []) + [path.parent]

    def convert(key: str) -> list[dict]:
        out = []
        for i, item in enumerate(raw.get(key) or []):
            item = {"image": item} if isinstance(item, str) else item
            if not isinstance(item, dict) or not isinstance(item.get("image"), str):
                raise DatalistError(f"datalist {path}: {key}[{i}] = {item!r} has no 'image' path")
            conv = dict(item)
            for k in ("image", "label"):
                if isinstance(conv.get(k), str):
                    conv[k] = _resolve(conv[k], bases)
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


# ------------------------------------------------------------------------------------------------ API
def build_datalist(dataset: str, dataset_dir: str, fold: int = 0, datalist: str | None = None,
                   num_folds: int = 5, seed: int = 0) -> dict:
    """Training/validation/testing lists of {"image", "label"} absolute paths for one data set and fold.

    `datalist` (decathlon-format JSON) overrides the derived split; otherwise the paper's split is built
    from `dataset_dir` (MMWHS: 5-fold CV on sorted cases; BraTS / Hippocampus: R's fixed MSD split).
    """
    info = get_dataset(dataset)
    fold = int(fold)
    if _given(datalist):
        return load_datalist_json(datalist, dataset_dir, fold)
    if not _given(dataset_dir):
        raise DatalistError(f"{info.name}: no dataset_dir and no datalist given: pass --dataset_dir")
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatalistError(f"dataset_dir {root} is not a folder: point --dataset_dir at the {info.name} data "
                            "(or make demo data with scripts/make_demo_data.py)")
    if info.name == "mmwhs":
        return _mmwhs_datalist(root, fold, int(num_folds))
    return _msd_datalist(info.name, root, fold, int(seed))


def _is_image_file(p: Path) -> bool:
    name = p.name
    return (name.endswith((".nii.gz", ".nii")) and not name.startswith("._")  # macOS forks in MSD tars
            and not re.search(r"_(label|seg)\.nii(\.gz)?$", name)
            and not any(part.startswith("labels") for part in p.parts[:-1]))


def list_images(input_dir: str) -> list[dict]:
    """Images to run inference on: an MSD dataset.json's test list, else every NIfTI image in the folder.

    Label files (`*_label.nii.gz`, anything under `labelsTr`/`labelsTs`) are skipped. A single file
    path is accepted too.
    """
    root = Path(input_dir)
    if root.is_file():
        return [_entry(root)]
    if not root.is_dir():
        raise DatalistError(f"input_dir {root} does not exist: pass a folder of .nii.gz images")
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatalistError(f"{meta_path} is not valid JSON ({exc}): fix it or remove it") from exc
        items = (meta.get("test") or meta.get("testing") or meta.get("training") or []) if isinstance(meta, dict) else []
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
