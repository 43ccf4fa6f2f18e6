"""Reproduce one of the paper's studies over one or more bundles with one command (config overrides only).

    dsd-study STUDY --bundles B1[,B2] --dataset_dir DATA [options] [--KEY VALUE ...]

Studies (settings; paper table):
    baseline_vs_dsd   basic, dsd                                    Tables 1-3
    ablation          basic, ds, sdd, sde, dsd                      Table 5
    teacher           dsd, mean_teacher, reversed_teacher           Table 6
    temperature       T1, T2, T3, T4 (dsd)                          Section 3
    capacity          small/large x basic/dsd (+ params, s/epoch)   Table 7
    cv                basic, dsd on every fold (MMWHS: 5)           Table 1

Options:
    --out_dir studies           runs go to OUT/runs/<bundle>/..., results to OUT/<study>/
    --dataset_dir DIR           the data set (or --demo_cases N [--demo_size S] to make demo data under OUT/data)
    --settings a,b              run a subset of the study's settings
    --folds 0,1 / --fold 2      folds (cv: all by default; others: fold 0)
    --seeds 0,1,2               training seeds (monai set_determinism); the data split is unchanged
    --eval_split validation     split evaluate.json scores (validation | testing)
    --net '{"filters": [...]}'  network_def overrides for every setting (e.g. a shrunken network)
    --small_net '{...}'         network_def overrides of the capacity study's "small" network
                                (default for MMWHS: dsd_components.backbones BACKBONES['<backbone>_small'])
    --overrides '{"k": v}'      any other config overrides (ids may contain '#')
    --KEY VALUE                 shorthand override, e.g. --num_epochs 40 --patch_size 32 --num_workers 0
    --dry_run                   list the plan (and which runs are already finished) and stop
    --collect_only              do not train: rebuild tables and plots from the finished runs
    --runner subprocess         one `python -m monai.bundle run` per train/evaluate (or: inprocess)
    --threads N                 torch/OpenMP threads per run
    --tracking mlflow           log every run (training and evaluation) to one MLflow experiment: the run's settings
                                as params, each DSD loss term as a metric (needs mlflow: pip install -e ".[mlflow]")
    --tracking_uri URI          the MLflow store (default sqlite:///OUT/mlruns.db)
    --experiment_name NAME      the MLflow experiment (default: the study's name)

Finished runs (OUT/runs/.../done.json) are skipped, so the same command resumes a study; an interrupted run resumes
from its latest.pt. Exit status 1 when any run failed.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from ..cli import UsageError, parse_json_arg, run_cli
from . import STUDIES, run_study

__all__ = ["study", "main"]


def study(study: str, bundles: Any = None, out_dir: str = "studies", dataset_dir: str | None = None,
         settings: Any = None, folds: Any = None, fold: int | None = None, seeds: Any = 0,
         eval_split: str = "validation", net: Any = None, small_net: Any = None, overrides: Any = None,
         dry_run: bool = False, collect_only: bool = False, runner: str = "subprocess", threads: int | None = None,
         demo_cases: int | None = None, demo_size: Any = None, keep_going: bool = True, plots: bool = True,
         tracking: str | None = None, tracking_uri: str | None = None, experiment_name: str | None = None,
         **extra: Any) -> None:
    """Run (or resume) STUDY over one or more bundles (``dsd-study list`` names the studies); see the module
    docstring for every option."""
    if study in ("list", "studies"):
        for k, v in STUDIES.items():
            print(f"{k:16s} {v.title} (paper {v.paper})")
        return
    if bundles is None:
        raise UsageError("--bundles: give one or more bundles, e.g. --bundles mmwhs_nnunet_dsd")
    if fold is not None:
        folds = [int(fold)]
    over = {**parse_json_arg(overrides, "overrides"), **extra}
    command = "dsd-study " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    res = run_study(study, bundles, out_dir=out_dir, dataset_dir=dataset_dir, settings=settings, folds=folds,
                    seeds=seeds, eval_split=eval_split, net=net, small_net=small_net, overrides=over,
                    dry_run=dry_run, collect_only=collect_only, runner=runner, threads=threads,
                    demo_cases=demo_cases, demo_size=demo_size, keep_going=keep_going, plots=plots, command=command,
                    tracking=tracking, tracking_uri=tracking_uri, experiment_name=experiment_name)
    print(f"executed {res['executed']} run(s), {res['finished']}/{res['planned']} finished, "
          f"{len(res['failed'])} failed -> {res['study_dir']}")
    if res["failed"]:
        raise SystemExit(1)


def main() -> None:
    run_cli(study)
