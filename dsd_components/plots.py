"""Training curves for the evaluation report: TensorBoard events of the training run -> one PNG.

``evaluate.json`` calls :func:`plot_training_curves` in ``finalize`` with the ``logs/`` folder of the training run
whose model it evaluated (``models/runs/<run>/logs``, where that run's ``TensorBoardStatsHandler`` wrote ``train_loss``
per iteration and ``val_mean_dice`` per validation): each run logs into its own folder, so the curves never mix runs.
No events -> a warning and no file, so evaluating a downloaded model without its training logs still works.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["read_scalars", "plot_training_curves"]

logger = logging.getLogger(__name__)

DEFAULT_TAGS = ("train_loss", "val_mean_dice")
# what each curve is, for its axis label
AXIS_LABELS = {"train_loss": "training loss (DSD total)", "val_mean_dice": "validation mean Dice (foreground)"}


def read_scalars(log_dir: str | os.PathLike, tags: tuple[str, ...] | None = DEFAULT_TAGS
                 ) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from every TensorBoard event file under ``log_dir`` (sorted by step;
    a step logged twice, e.g. by a resumed run, keeps the later value). ``tags=None`` reads every scalar tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {t: {} for t in tags or ()}
    files = sorted(Path(log_dir).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime) if Path(log_dir).is_dir() else []
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        available = set(acc.Tags().get("scalars", []))
        for tag in (available if tags is None else set(tags) & available):
            for ev in acc.Scalars(tag):
                out.setdefault(tag, {})[int(ev.step)] = float(ev.value)
    return {t: sorted(v.items()) for t, v in out.items()}


def plot_training_curves(log_dir: str | os.PathLike, output_png: str | os.PathLike,
                         tags: tuple[str, ...] = DEFAULT_TAGS, title: str | None = None) -> str | None:
    """Plot each tag of ``tags`` in its own panel and save ``output_png``; return its path, or None without data.

    The figure is titled with ``title`` (default: the run, i.e. the folder above ``log_dir``); each panel's axes say
    what they show."""
    scalars = read_scalars(log_dir, tags)
    present = [t for t in tags if scalars[t]]
    if not present:
        logger.warning(f"No TensorBoard scalars {list(tags)} under {log_dir}: training curves not plotted.")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 3.6), squeeze=False)
    for ax, tag in zip(axes[0], present):
        steps, values = zip(*scalars[tag])
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(tag)
        ax.set_xlabel("iteration" if tag == "train_loss" else "epoch")
        ax.set_ylabel(AXIS_LABELS.get(tag, tag))
        ax.grid(alpha=0.3)
    run = title or f"run {Path(log_dir).resolve().parent.name}"
    fig.suptitle(run, fontsize=10)
    fig.tight_layout()
    Path(output_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output_png, dpi=100)
    plt.close(fig)
    counts = ", ".join(f"{len(scalars[t])} {t}" for t in present)
    logger.info(f"training curves of {log_dir} ({counts}) saved to {output_png}")
    return str(output_png)
