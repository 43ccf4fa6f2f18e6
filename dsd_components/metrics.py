"""Evaluation pieces MONAI lacks: HD95 in millimetres, a per-case, per-class CSV with class names, and a record of
which weights were scored on which split."""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.metrics import HausdorffDistanceMetric
from monai.utils import string_list_all_gather

from .export import atomic_write

__all__ = ["HausdorffDistanceMM", "PerClassCSV", "EvaluationRecord", "summarize", "RECORD_NAME"]

RECORD_NAME = "evaluation.json"

logger = logging.getLogger(__name__)


class HausdorffDistanceMM(HausdorffDistanceMetric):
    """``HausdorffDistanceMetric`` in millimetres: the voxel spacing is read from the prediction's metadata.

    MONAI's metric works in voxels unless ``spacing`` is passed to each call, which the Ignite metric handler does not
    do; the paper reports HD95 in mm on resampled volumes, so the spacing must travel with the tensor. ``unit="voxel"``
    gives the reference code's number (MONAI's metric without spacing), to compare with its tables.

    Raises:
        ValueError: ``unit`` is neither ``mm`` nor ``voxel``.
    """

    def __init__(self, *args: Any, unit: str = "mm", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if unit not in ("mm", "voxel"):
            raise ValueError(f"unit {unit!r}: use 'mm' or 'voxel'")
        self.unit = unit

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        if self.unit == "mm" and "spacing" not in kwargs and isinstance(y_pred, MetaTensor):
            kwargs["spacing"] = [float(s) for s in y_pred.pixdim[: y_pred.ndim - 2]]
        with warnings.catch_warnings():
            # MONAI 1.6's own get_edge_surface_distance passes get_mask_edges' deprecated always_return_as_numpy
            # (monai/metrics/utils.py); nothing a caller can change, so that one message is silenced here.
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            # an absent class (empty prediction or label) gives NaN, which the CSVs record as "nan" and leave out of
            # the means (n counts the rest); MONAI would also warn once per case and class
            warnings.filterwarnings("ignore", message="the (prediction|ground truth) of class .* is all 0",
                                    category=UserWarning)
            return super()._compute_tensor(y_pred, y, **kwargs)


def summarize(values: np.ndarray) -> dict[str, float]:
    """mean, std, median, n over the finite entries (an absent structure gives NaN, which is not averaged)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)), "n": int(v.size)}


def _filenames(batch: Any) -> list[str]:
    items = batch if isinstance(batch, list) else [batch]
    names = []
    for item in items:
        image = item.get("image") if isinstance(item, dict) else None
        meta = getattr(image, "meta", None) or (item.get("image_meta_dict") if isinstance(item, dict) else None) or {}
        name = meta.get("filename_or_obj", "")
        names.extend(name if isinstance(name, (list, tuple)) else [name])
    return [os.path.basename(str(n)) for n in names]


class PerClassCSV:
    """Write ``per_case_metrics.csv`` (one row per case, one column per metric and class) and ``summary.csv``
    (mean ± std per class and overall) from the evaluator's ``metric_details``.

    Attach to an evaluator whose metric handlers use ``save_details=True`` (MONAI's default).
    """

    def __init__(self, save_dir: str | os.PathLike, class_names: list[str], metric_names: list[str],
                 prefix: str = "") -> None:
        self.save_dir = Path(save_dir)
        self.prefix = prefix  # e.g. "regions_" for the BraTS regions next to the per-label files
        self.class_names = list(class_names)
        self.metric_names = list(metric_names)
        self.files: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.files.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: self.files.extend(_filenames(e.state.batch)))
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def write(self, engine: Engine) -> None:
        details = {k: np.asarray(torch.as_tensor(engine.state.metric_details[k]).cpu(), dtype=float)
                   for k in self.metric_names if k in engine.state.metric_details}
        files = list(self.files)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            files = string_list_all_gather(files)  # metric details are already gathered by MONAI
            if dist.get_rank() != 0:
                return
        if not details:
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        n = min(len(v) for v in details.values())
        # a case without a file name (no image metadata) is numbered by its row
        files = [f or f"case_{i}" for i, f in enumerate(files[:n])] + [f"case_{i}" for i in range(len(files), n)]
        header = ["case"] + [f"{m}_{c}" for m in details for c in self.class_names] + [f"{m}_mean" for m in details]
        with open(self.save_dir / f"{self.prefix}per_case_metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i in range(n):
                row: list[Any] = [files[i]]
                for v in details.values():
                    row += [f"{x:.4f}" for x in v[i]]
                for v in details.values():
                    row.append(f"{np.nanmean(v[i]):.4f}" if np.isfinite(v[i]).any() else "nan")
                w.writerow(row)
        with open(self.save_dir / f"{self.prefix}summary.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["metric", "class", "mean", "std", "median", "n"])
            for m, v in details.items():
                for j, c in enumerate(self.class_names):
                    s = summarize(v[:n, j])
                    w.writerow([m, c, f"{s['mean']:.4f}", f"{s['std']:.4f}", f"{s['median']:.4f}", s["n"]])
                per_case = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in v[:n]])
                s = summarize(per_case)
                w.writerow([m, "mean", f"{s['mean']:.4f}", f"{s['std']:.4f}", f"{s['median']:.4f}", s["n"]])
        logger.info(f"wrote {self.save_dir / f'{self.prefix}per_case_metrics.csv'} and "
                    f"{self.save_dir / f'{self.prefix}summary.csv'} ({n} case(s))")


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class EvaluationRecord:
    """Write ``evaluation.json`` beside the CSVs when an evaluation completes: the sha256 of the weights scored, the
    split, fold and data folder, the number of cases and the mean metrics.

    Why: scores are only worth shipping with the weights they were measured on. ``dsd-package`` fills a release's
    ``eval_metrics`` from ``summary.csv`` only when this record names the same weights (by hash), so a later
    training run cannot silently inherit an earlier run's scores.
    """

    def __init__(self, save_dir: str | os.PathLike, model_path: str | os.PathLike, split: str,
                 fold: int | None = None, dataset_dir: str | os.PathLike | None = None,
                 filename: str = RECORD_NAME) -> None:
        self.save_dir = Path(save_dir)
        self.model_path = Path(model_path)
        self.split = str(split)
        self.fold = fold
        self.dataset_dir = None if dataset_dir is None else str(dataset_dir)
        self.filename = filename

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self.write)

    def write(self, engine: Engine) -> dict[str, Any] | None:
        """The record (also written to ``save_dir/evaluation.json``, atomically, on rank 0 only)."""
        if _rank() != 0:
            return None
        details = getattr(engine.state, "metric_details", None) or {}
        cases = next((len(torch.as_tensor(v)) for v in details.values()), None)
        metrics = {k: float(v) for k, v in engine.state.metrics.items()
                   if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)}
        record = {
            "model_path": str(self.model_path.resolve()),
            "model_sha256": _sha256(self.model_path) if self.model_path.is_file() else None,
            "split": self.split, "fold": self.fold, "dataset_dir": self.dataset_dir, "num_cases": cases,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        self.save_dir.mkdir(parents=True, exist_ok=True)
        out = self.save_dir / self.filename
        atomic_write(out, lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
        return record
