"""Qualitative figure like the paper's Figs. 2, 3 and 5: one slice, ground truth and predictions overlaid.

    dsd-plot-qualitative --image CASE.nii.gz --label CASE_label.nii.gz \
        --preds '{"nnU-Net": "basic/CASE_seg.nii.gz", "nnU-Net + DSD": "dsd/CASE_seg.nii.gz"}' --out fig.png

    # or let it segment the case with finished study runs (their bundle copy's inference.json):
    dsd-plot-qualitative --image CASE.nii.gz --label CASE_label.nii.gz \
        --runs '{"basic": "studies/runs/mmwhs_nnunet_dsd/basic-fold0-seed0-1234abcd", "DSD": "..."}' --out fig.png

Several cases: give --image and --label as comma-separated lists (same order) and, in --preds, a list of paths per
method; each case is one row. The slice is the one with the most ground-truth foreground along --axis (0, 1, 2;
default 2 = axial for RAS data) unless --slice is given. Predictions must be on the image's voxel grid, which is what
inference.json writes (it inverts the preprocessing). --dataset mmwhs maps MMWHS's raw label values (205 ... 850)
to classes 1..7 and names the classes (detected automatically when the label holds exactly those values).
Each panel's title gives the Dice of the whole 3D case and of the slice shown (each the mean over foreground classes
present in the ground truth or the prediction).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .cli import UsageError, run_cli
from .cli import as_list as _as_list_any
from .paper import DATASETS


def _as_list(x: Any) -> list[str]:
    return [str(s) for s in _as_list_any(x)]


def _as_dict(x: Any, what: str) -> dict[str, Any]:
    if x in (None, ""):
        return {}
    if isinstance(x, dict):
        return dict(x)
    if isinstance(x, str):
        try:
            return dict(json.loads(x))
        except json.JSONDecodeError:
            out = {}
            for item in x.split(","):  # name=path,name=path
                if "=" not in item:
                    raise UsageError(f"--{what}: give a JSON object or name=path pairs, got {x!r}")
                k, v = item.split("=", 1)
                out[k.strip()] = v.strip()
            return out
    if isinstance(x, (list, tuple)):
        return dict(str(i).split("=", 1) for i in x)
    raise UsageError(f"--{what}: cannot read {x!r}")


def _load(path: str, channel: int = 0) -> np.ndarray:
    arr = np.asarray(nib.load(str(path)).dataobj)
    if arr.ndim == 4:
        arr = arr[..., channel]
    if arr.ndim == 5:  # (x, y, z, 1, c) NIfTI vector images
        arr = arr[..., 0, channel]
    return np.asarray(arr)


def _class_info(label: np.ndarray, dataset: str | None) -> tuple[np.ndarray, list[str]]:
    """Label mapped to 0..K-1 and the foreground class names."""
    values = set(np.unique(label).astype(int).tolist())
    info = None
    if dataset:
        if dataset not in DATASETS:
            raise UsageError(f"--dataset {dataset!r}: use one of {', '.join(DATASETS)}")
        info = DATASETS[dataset]
    else:
        raw = DATASETS["mmwhs"].raw_label_values
        if values - {0} and values <= {0, *raw}:
            info = DATASETS["mmwhs"]
    lab = label.astype(np.int64)
    raw_values = set(info.raw_label_values or ()) if info is not None else set()
    if raw_values and (values - {0}) <= raw_values and max(values) > len(info.class_names):
        mapped = np.zeros_like(lab)
        for i, v in enumerate(info.raw_label_values, start=1):
            mapped[lab == v] = i
        lab = mapped
    if info is not None:
        names = list(info.class_names[1:])
    else:
        names = [f"class {i}" for i in range(1, int(lab.max()) + 1)]
    return lab, names


def dice_3d(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """Mean Dice over foreground classes present in the ground truth or the prediction (NaN if none)."""
    scores = []
    for c in range(1, num_classes + 1):
        p, g = pred == c, gt == c
        if not p.any() and not g.any():
            continue
        scores.append(2.0 * np.logical_and(p, g).sum() / (p.sum() + g.sum()))
    return float(np.mean(scores)) if scores else float("nan")


def best_slice(label: np.ndarray, axis: int) -> int:
    """Index of the slice with the most foreground along ``axis`` (the middle slice if there is none)."""
    counts = (label > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.max() > 0 else label.shape[axis] // 2


def _window(img: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(img[np.isfinite(img)], [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def plot_qualitative(image: Any, label: Any, preds: Any = None, out: str = "qualitative.png", runs: Any = None,
                     dataset: str | None = None, axis: int = 2,
                     slice: int | None = None, channel: int = 0,  # noqa: A002
                     alpha: float = 0.45, pred_dir: str | None = None, runner: str = "subprocess",
                     dpi: int = 120) -> str:
    """Draw one slice of each case with its ground truth and predictions overlaid; return the PNG's path.

    Args:
        image, label: one file each, or comma-separated lists (same order): one row per case.
        preds: ``{"method": path or [paths per case]}`` (JSON) or ``method=path,...``.
        out: the PNG to write.
        runs: ``{"method": finished study run folder}``: segment the cases with those runs instead of --preds.
        dataset: mmwhs, brats or hippocampus: class names (and MMWHS raw label values).
        axis, slice: the slice shown (default: the one with the most foreground along axis 2).
        channel: the image channel shown for multi-channel images.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    images, labels = _as_list(image), _as_list(label)
    if not images or len(images) != len(labels):
        raise UsageError(f"--image and --label: give the same number of files ({len(images)} vs {len(labels)})")
    methods: dict[str, list[str]] = {k: _as_list(v) for k, v in _as_dict(preds, "preds").items()}
    run_dirs = _as_dict(runs, "runs")
    if run_dirs:
        from .study.execute import predict_with_run

        base = Path(pred_dir) if pred_dir else Path(out).resolve().parent / (Path(out).stem + "_predictions")
        for i, (name, rd) in enumerate(run_dirs.items()):
            methods[name] = predict_with_run(rd, images, base / f"{i}_{Path(rd).name}", runner=runner)
    if not methods:
        raise UsageError("give --preds (NIfTI predictions) or --runs (finished study runs to segment with)")
    for name, paths in methods.items():
        if len(paths) != len(images):
            raise UsageError(f"--preds {name!r}: {len(paths)} file(s) for {len(images)} image(s)")

    ncols = 2 + len(methods)
    fig, axes = plt.subplots(len(images), ncols, figsize=(2.8 * ncols, 3.0 * len(images)), squeeze=False)
    legend_names: list[str] = []
    cmap = None
    for row, (img_p, lab_p) in enumerate(zip(images, labels)):
        img = _load(img_p, channel).astype(float)
        gt, names = _class_info(_load(lab_p), dataset)
        if gt.shape != img.shape[:3]:
            raise UsageError(f"{lab_p}: shape {gt.shape} differs from the image's {img.shape[:3]}")
        k = len(names)
        if len(names) > len(legend_names):
            legend_names = names
        colors = [plt.cm.tab10(i % 10) for i in range(max(k, 1))]
        cmap = ListedColormap(colors)
        idx = best_slice(gt, axis) if slice is None else int(slice)
        take = lambda a: np.rot90(np.take(a, idx, axis=axis))  # noqa: E731
        lo, hi = _window(img)
        panels = [("Image", None, None), ("Ground truth", gt, None)]
        for name, paths in methods.items():
            pr = _load(paths[row]).astype(np.int64)
            if pr.shape != gt.shape:
                raise UsageError(f"{paths[row]}: shape {pr.shape} differs from the label's {gt.shape}: "
                                 "predictions must be "
                                 "on the image's grid (inference.json output)")
            panels.append((name, pr, (dice_3d(pr, gt, k), dice_3d(take(pr), take(gt), k))))
        for col, (title, seg, d) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(take(img), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if seg is not None:
                s = take(seg).astype(float)
                ax.imshow(np.ma.masked_where(s <= 0, s - 1), cmap=cmap, vmin=0, vmax=max(k - 1, 1) if k > 1 else 1,
                          alpha=alpha, interpolation="nearest")
            t = title if d is None else f"{title}\nDice {100 * d[0]:.1f}% volume, {100 * d[1]:.1f}% slice"
            if col == 0:
                t = f"{Path(img_p).name.split('.nii')[0]}\nslice {idx} (axis {axis})"
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    if legend_names and cmap is not None:
        handles = [Patch(color=cmap(i), label=n) for i, n in enumerate(legend_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    Path(out).resolve().parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    print(f"wrote {out}")
    return str(out)


def main() -> None:
    run_cli(plot_qualitative)
