"""Reproduce the paper's studies (Tables 1-3, 5, 6, 7, temperature, cross-validation) by config overrides only.

:mod:`.definitions` (what a study runs), :mod:`.plan` (every run's folder and overrides), :mod:`.execute` (train and
evaluate a run), :mod:`.report` (tables, Wilcoxon tests, plots); :func:`run_study` ties them together and
``dsd-study`` is its command line. An interrupted study resumes: finished runs are skipped, an interrupted run
resumes from its ``latest.pt`` (the bundles' own checkpointer).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cli import as_list as _as_list
from .definitions import STUDIES, Setting, small_network_overrides
from .execute import execute_run, predict_with_run
from .plan import RunSpec, bundle_dataset, plan_study
from .report import collect_study, wilcoxon_paired

__all__ = ["STUDIES", "Setting", "RunSpec", "plan_study", "run_study", "collect_study", "wilcoxon_paired",
           "small_network_overrides", "predict_with_run", "execute_run"]


def _ensure_demo_data(bundles: list[str], out_dir: Path, demo_cases: int, demo_size: Any) -> str:
    """Demo data (dsd-make-demo-data) for the bundles' data set under ``<out_dir>/data``."""
    datasets = {bundle_dataset(b).name for b in bundles}
    if len(datasets) != 1:
        raise ValueError(f"--demo_cases makes one data set; the bundles use {sorted(datasets)}: run them separately")
    ds = datasets.pop()
    tag = f"{ds}_{int(demo_cases)}" + (f"_{re.sub(r'[^0-9]+', 'x', str(demo_size)).strip('x')}" if demo_size else "")
    target = out_dir / "data" / tag
    if not (target / ".complete").is_file():
        from ..demo_data import make_demo_data

        make_demo_data(ds, str(target), num_cases=int(demo_cases), size=demo_size, seed=0)
        (target / ".complete").write_text("ok\n")
    return str(target)


def run_study(
    study: str,
    bundles: Sequence[str] | str,
    out_dir: str | os.PathLike = "studies",
    dataset_dir: str | None = None,
    settings: Sequence[str] | str | None = None,
    folds: Sequence[int] | int | str | None = None,
    seeds: Sequence[int] | int | str = (0,),
    eval_split: str = "validation",
    net: dict[str, Any] | str | None = None,
    small_net: dict[str, Any] | str | None = None,
    overrides: dict[str, Any] | str | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    runner: str = "subprocess",
    threads: int | None = None,
    demo_cases: int | None = None,
    demo_size: Any = None,
    keep_going: bool = True,
    plots: bool = True,
    command: str = "",
    log: Callable[[str], None] = print,
    tracking: str | None = None,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
) -> dict[str, Any]:
    """Plan, run (skipping finished runs) and collect a study. Returns counts and the study folder.

    ``tracking="mlflow"`` logs every run's training and evaluation to one MLflow experiment (default: the study's
    name, in ``sqlite:///<out_dir>/mlruns.db``), each with the run's settings as params, so the runs of an ablation
    compare side by side in MLflow's UI.

    Raises:
        ValueError: an unknown ``tracking`` kind (only ``mlflow``), or no data set.
    """
    out = Path(out_dir).resolve()
    if tracking not in (None, "", "mlflow"):
        raise ValueError(f"--tracking {tracking!r}: the study runner logs to MLflow only (--tracking mlflow)")
    track = None
    if tracking:
        track = {"tracking_uri": tracking_uri or f"sqlite:///{out / 'mlruns.db'}",
                 "experiment_name": experiment_name or study}
    blist = _as_list(bundles)
    if dataset_dir in (None, "") and demo_cases:
        dataset_dir = _ensure_demo_data(blist, out, int(demo_cases), demo_size)
    if dataset_dir in (None, ""):
        raise ValueError("--dataset_dir: point it at the data set (or pass --demo_cases N to make demo data)")
    runs = plan_study(study, blist, out, dataset_dir, settings, folds, seeds, eval_split, net, small_net, overrides)
    sdir = out / study
    sdir.mkdir(parents=True, exist_ok=True)
    plan = [{"run_id": r.run_id, "bundle": r.bundle, "setting": r.setting, "fold": r.fold, "seed": r.seed,
             "status": "done" if r.done else "pending", "train_overrides": r.train_overrides,
             "eval_overrides": r.eval_overrides} for r in runs]
    (sdir / "plan.json").write_text(json.dumps(plan, indent=2, default=str) + "\n")
    n_done = sum(r.done for r in runs)
    log(f"[{study}] {len(runs)} run(s): {n_done} finished, {len(runs) - n_done} to run -> {sdir}")
    for p in plan:
        log(f"  {'done   ' if p['status'] == 'done' else 'pending'} {p['run_id']}")
    if dry_run:
        return {"study_dir": str(sdir), "planned": len(runs), "finished": n_done, "executed": 0, "failed": [],
                "plan": plan}
    executed, failed = 0, []
    if not collect_only:
        for i, r in enumerate(runs):
            if r.done:
                continue
            r.run_dir.mkdir(parents=True, exist_ok=True)
            log(f"[{study}] run {i + 1}/{len(runs)}: {r.run_id}")
            t0 = time.perf_counter()
            try:
                info = execute_run(r, runner=runner, threads=threads, tracking=track)
                executed += 1
                log(f"    done in {time.perf_counter() - t0:.0f}s: mean Dice {info.get('mean_dice')} over "
                    f"{info.get('n_cases')} case(s)")
            except Exception as exc:
                (r.run_dir / "failed.txt").write_text(f"{type(exc).__name__}: {exc}\n")
                failed.append(r.run_id)
                log(f"    FAILED: {type(exc).__name__}: {str(exc)[-2000:]}")
                if not keep_going:
                    break
    res = collect_study(study, runs, out, command=command, plots=plots)
    log(f"[{study}] report: {sdir / 'report.md'}")
    if track:
        log(f"[{study}] MLflow: mlflow ui --backend-store-uri {track['tracking_uri']} (experiment "
            f"{track['experiment_name']!r})")
    return {**res, "executed": executed, "failed": failed, "plan": plan}


