"""A dataset's fingerprint for the planner: what dataset.json says, and what MONAI's own analyzer measures.

The folder is read by the runtime's readers (:mod:`dsd_components.data`: MSD and nnU-Net v2 raw layouts, detected),
so the planned bundle later finds exactly the cases that were planned for. The statistics come from MONAI's
``DataAnalyzer`` (``monai.apps.auto3dseg``): per case the spacing (after RAS reorientation), the shape, and per
channel the foreground intensity mean, standard deviation and 0.5 / 99.5 percentiles. Its dataset summary is not
used: in MONAI 1.6.1 it averages per-case percentiles and covers channel 0 only, so the per-case numbers are pooled
here (mean of means; standard deviation by the law of total variance; mean of percentiles, an approximation of
nnU-Net's pooled percentiles).

One statistic is measured here because MONAI's does not serve: the fraction of the image left after cropping to
the nonzero region (nnU-Net's ``median_relative_size_after_cropping``, which decides whether z-scoring uses only the
nonzero voxels). MONAI 1.6.1's ``cropped_shape`` thresholds at ``x > 0`` and never crops the first axis.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsd_components.data import DatasetSpec, SplitSpec, case_id, detect_layout, list_cases
from dsd_components.errors import DatalistError

from .rules import ChannelIntensity, Fingerprint

__all__ = ["DatasetDescription", "describe_dataset", "analyze", "relative_size_after_crop", "fingerprint"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetDescription:
    """What a dataset folder's dataset.json declares, as the runtime's dataset facts."""

    root: Path
    name: str
    spec: DatasetSpec
    has_own_splits: bool

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.spec.channel_names

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names


def _ordered(d: Mapping[str, Any], what: str, path: Path) -> tuple[str, ...]:
    try:
        keys = sorted(d, key=int)
    except (TypeError, ValueError):
        raise DatalistError(f"{path}: {what} keys must be 0, 1, ...; got {list(d)}") from None
    if [int(k) for k in keys] != list(range(len(keys))):
        raise DatalistError(f"{path}: {what} keys must be 0..{len(keys) - 1}, got {keys}")
    return tuple(str(d[k]) for k in keys)


def describe_dataset(root: str | Path, num_folds: int = 5) -> DatasetDescription:
    """Read an MSD task folder or an nnU-Net v2 raw dataset (detected from dataset.json).

    Raises:
        DatalistError: no dataset.json, another layout, region-based or non-consecutive labels.
    """
    root = Path(root).resolve()
    layout = detect_layout(root)
    if layout not in ("msd", "nnunetv2"):
        raise DatalistError(f"{root}: a {layout} folder; dsd-new-bundle plans MSD task folders and nnU-Net v2 raw "
                            "datasets (DatasetXXX_Name with dataset.json)")
    path = root / "dataset.json"
    meta = json.loads(path.read_text())
    labels = meta.get("labels") or {}
    if layout == "nnunetv2":
        channels = _ordered(meta["channel_names"], "channel_names", path)
        if any(not isinstance(v, int) for v in labels.values()):
            raise DatalistError(f"{path}: region-based labels (lists of values) are not supported: give each class "
                                "one integer value")
        by_value = sorted((int(v), str(k)) for k, v in labels.items())
        ending = str(meta["file_ending"])
    else:
        channels = _ordered(meta.get("modality") or {}, "modality", path)
        by_value = sorted((int(k), str(v)) for k, v in labels.items())
        ending = ".nii.gz"
    values = [v for v, _ in by_value]
    if values != list(range(len(values))) or len(values) < 2:
        raise DatalistError(f"{path}: labels must be background 0 and consecutive classes 1..n, got {values}")
    name = str(meta.get("name") or root.name)
    spec = DatasetSpec(name=name, layout=layout, channel_names=channels, class_names=tuple(n for _, n in by_value),
                       split=SplitSpec(kind="kfold", num_folds=num_folds, seed=12345), file_ending=ending)
    return DatasetDescription(root, name, spec, (root / "splits_final.json").is_file())


def analyze(entries: Sequence[dict], device: str = "cpu") -> dict[str, Any]:
    """MONAI's DataAnalyzer over the training cases (nothing written to disk); returns its case statistics.

    Raises:
        DatalistError: MONAI skipped a case (it logs and drops cases it cannot read).
    """
    import warnings

    from monai.apps.auto3dseg import DataAnalyzer

    analyzer = DataAnalyzer({"training": [{**e, "fold": 0} for e in entries]}, dataroot="", output_path="",
                            device=device, worker=0, image_key="image", label_key="label")
    with warnings.catch_warnings():
        # the analyzer builds MONAI's Orientationd without `labels`, which MONAI 1.6 itself warns about
        warnings.filterwarnings("ignore", message=".*Orientationd.__init__:labels", category=FutureWarning)
        stats = analyzer.get_all_case_stats()
    cases = stats.get("stats_by_cases") or []
    if len(cases) != len(entries):
        raise DatalistError(f"MONAI's DataAnalyzer read {len(cases)} of {len(entries)} cases: run dsd-check-data on "
                            "the dataset to find the unreadable ones")
    return stats


def relative_size_after_crop(image: Any) -> float:
    """Voxels of the bounding box of the nonzero region (any channel, holes filled) over all voxels: nnU-Net's
    crop_to_nonzero, measured on one case."""
    import nibabel as nib
    from scipy.ndimage import binary_fill_holes

    files = image if isinstance(image, (list, tuple)) else [image]
    mask = None
    for f in files:
        data = np.asanyarray(nib.load(str(f)).dataobj)
        nz = data != 0
        nz = nz.any(axis=-1) if nz.ndim == 4 else nz
        mask = nz if mask is None else (mask | nz)
    assert mask is not None
    mask = binary_fill_holes(mask)
    if not mask.any():
        return 1.0
    box = 1
    for ax in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        box *= int(idx[-1] - idx[0] + 1)
    return box / mask.size


def fingerprint(desc: DatasetDescription, device: str = "cpu") -> tuple[Fingerprint, list[dict]]:
    """The planner's fingerprint of every labelled case, and those cases (``{"image", "label"}``).

    Raises:
        DatalistError: the folder cannot be read or MONAI's analyzer skipped cases.
    """
    entries = list_cases(desc.spec, desc.root)
    if len(entries) < 2:
        raise DatalistError(f"{desc.root}: {len(entries)} labelled case(s); planning needs at least 2")
    stats = analyze(entries, device=device)
    spacings, shapes, per_channel = [], [], [[] for _ in desc.channel_names]
    for cs in stats["stats_by_cases"]:
        ist = cs["image_stats"]
        spacings.append(tuple(float(x) for x in ist["spacing"]))
        shapes.append(tuple(int(x) for x in ist["shape"][0]))
        fg = cs["image_foreground_stats"]["intensity"]
        if len(fg) != len(desc.channel_names):
            raise DatalistError(f"{cs.get('image_filepath')}: {len(fg)} channel(s), dataset.json lists "
                                f"{len(desc.channel_names)}")
        for c, st in enumerate(fg):
            per_channel[c].append(st)
    intensity = []
    for stats_c in per_channel:
        means = np.array([s["mean"] for s in stats_c], dtype=np.float64)
        stds = np.array([s["stdev"] for s in stats_c], dtype=np.float64)
        intensity.append(ChannelIntensity(
            mean=float(means.mean()), std=float(np.sqrt(np.mean(stds**2) + np.var(means))),
            percentile_00_5=float(np.mean([s["percentile_00_5"] for s in stats_c])),
            percentile_99_5=float(np.mean([s["percentile_99_5"] for s in stats_c])),
            median=float(np.mean([s["median"] for s in stats_c])),
            min=float(np.min([s["min"] for s in stats_c])), max=float(np.max([s["max"] for s in stats_c]))))
    rel = float(np.median([relative_size_after_crop(e["image"]) for e in entries]))
    fp = Fingerprint(spacings=tuple(spacings), shapes=tuple(shapes), channel_names=desc.channel_names,
                     labels=desc.class_names, intensity=tuple(intensity),
                     median_relative_size_after_cropping=rel, case_ids=tuple(case_id(e) for e in entries))
    return fp, entries
