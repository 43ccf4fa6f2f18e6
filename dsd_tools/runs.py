"""``dsd-runs``: a bundle's training runs with their scores, and any run's model put back as ``models/model.pt``.

    dsd-runs list hippocampus_nnunet_dsd                  # a name under bundles/, or a bundle folder
    dsd-runs promote hippocampus_nnunet_dsd 20261204-2337 # a run folder name (or a unique start of one)

Every training writes into its own ``models/runs/<YYYYmmdd-HHMMSS>[-run_name]/`` (``dsd_components/runs.py``), and
``models/model.pt`` is the current run's best backbone. ``list`` shows each run's status, epochs, best validation
score and, once evaluated, its test Dice; ``*`` marks the run ``models/model.pt`` comes from. ``promote`` copies a
run's best model to ``models/model.pt`` (refused while a training runs on the bundle); the model it replaces stays in
its own run folder. Nothing is deleted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsd_components.runs import list_runs, promote

from .cli import run_cli
from .paths import BUNDLES_DIR, resolve_bundle

__all__ = ["runs_list", "runs_promote", "main"]


def _models_dir(bundle: str, models_dir: str | None, bundles_dir: str) -> Path:
    """Raises:
        FileNotFoundError: ``bundle`` is neither a bundle folder nor a bundle name."""
    return Path(models_dir) if models_dir else resolve_bundle(bundle, bundles_dir) / "models"


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(float(value), spec)


def format_runs(rows: list[dict[str, Any]]) -> str:
    """The table ``dsd-runs list`` prints."""
    key = next((r["key_metric"] for r in rows if r.get("key_metric")), "val_mean_dice")
    header = ["", "run", "status", "epochs", f"best {key} (epoch)", "eval mean_dice"]
    table = [header]
    for r in rows:
        epochs = "-" if r["epoch"] is None else f"{r['epoch']}/{r['max_epochs'] or '?'}"
        best = "-" if r["best_metric"] is None else f"{_fmt(r['best_metric'])} ({r['best_epoch']})"
        table.append(["*" if r["published"] else "", r["run"], r["status"], epochs, best, _fmt(r["eval_mean_dice"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def runs_list(bundle: str, models_dir: str | None = None, bundles_dir: str = str(BUNDLES_DIR)) -> list[dict]:
    """Print the bundle's training runs, oldest first; ``*`` marks the one in models/model.pt.

    Args:
        bundle: a bundle folder, or a bundle name under ``bundles_dir``.
        models_dir: the training's ``--ckpt_dir`` when it was not the bundle's ``models/``.
    """
    folder = _models_dir(bundle, models_dir, bundles_dir)
    rows = list_runs(folder)
    if not rows:
        print(f"no training runs under {folder / 'runs'}")
        return rows
    print(format_runs(rows))
    print(f"* = {folder / 'model.pt'} (what inference, evaluation and MONAI Label load); "
          f"runs in {folder / 'runs'}")
    return rows


def runs_promote(bundle: str, run: str, models_dir: str | None = None, bundles_dir: str = str(BUNDLES_DIR)) -> str:
    """Make ``run``'s best model ``models/model.pt`` again; the model it replaces stays in its own run folder.

    Args:
        bundle: a bundle folder, or a bundle name under ``bundles_dir``.
        run: a run folder name under ``models/runs/`` (or a unique start of one).
        models_dir: the training's ``--ckpt_dir`` when it was not the bundle's ``models/``.
    """
    result = promote(_models_dir(bundle, models_dir, bundles_dir), run)
    print(result["message"])
    return result["run"]


def main() -> None:
    run_cli({"list": runs_list, "promote": runs_promote})
