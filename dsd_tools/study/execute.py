"""Execute study runs: train then evaluate each run with ``python -m monai.bundle run`` (or in-process), and segment
images with a finished run."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..hashing import object_hash as _hash
from ..paths import config_files
from .plan import RunSpec, bundle_configs

__all__ = ["execute_run", "predict_with_run", "read_per_case"]


_EPOCH_RE = re.compile(r"SupervisedTrainer - INFO - Epoch\[(\d+)\] Complete\. Time taken: (\d+):(\d+):([\d.]+)")


def _epoch_times(log: Path) -> dict[int, float]:
    """Seconds per training epoch (Ignite's own timing, validation excluded) from a run's train.log."""
    out: dict[int, float] = {}
    if log.is_file():
        for m in _EPOCH_RE.finditer(log.read_text(errors="replace")):
            out[int(m.group(1))] = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
    return out


def _monai_run(args_file: Path, log_file: Path, runner: str, threads: int | None) -> None:
    """``python -m monai.bundle run --args_file ...`` in a subprocess (default) or in this process."""
    if runner == "subprocess":
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        with open(log_file, "w") as f:
            proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--args_file", str(args_file)],
                                  cwd=str(args_file.parent), env=env, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-25:])
            raise RuntimeError(f"monai.bundle run --args_file {args_file} exited {proc.returncode}; "
                               f"log {log_file}:\n{tail}")
        return
    if runner != "inprocess":
        raise ValueError(f"--runner {runner!r}: use subprocess or inprocess")
    import torch
    from monai.bundle import run

    if threads:
        torch.set_num_threads(int(threads))
    # mode "a" on a truncated file: fileConfig (run's logging_file) closes every existing handler, and a closed
    # FileHandler reopens on the next record only when its mode is not "w".
    Path(log_file).write_text("")
    handler = logging.FileHandler(log_file, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    names = ["ignite.engine.engine.SupervisedTrainer", "ignite.engine.engine.SupervisedEvaluator", "dsd_components"]
    for n in names:
        logging.getLogger(n).addHandler(handler)
    try:
        run(args_file=str(args_file))
    finally:
        for n in names:
            logging.getLogger(n).removeHandler(handler)
        handler.close()


def _parameter_counts(spec: RunSpec, bundle_root: Path) -> dict[str, int]:
    from monai.bundle import ConfigParser

    from dsd_components.network import DSDNetwork

    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "train.json"))
    parser.update({**spec.train_overrides, "bundle_root": str(bundle_root)})
    backbone = parser.get_parsed_content("network_def", lazy=False)
    counts = DSDNetwork(backbone, mode=spec.mode).num_parameters()
    return {"params_backbone": int(counts["backbone"]), "params_train": int(counts["dsd"])}


def read_per_case(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def tracking_args(tracking: dict[str, Any] | None, spec: RunSpec, stage: str) -> dict[str, Any]:
    """``monai.bundle run`` arguments that log one stage (``train`` / ``eval``) of a run to the study's MLflow
    experiment: MONAI's ``--tracking mlflow`` with the study's store and experiment, the run named after the run id.
    They are not config overrides of the run (its folder and hash do not depend on them)."""
    if not tracking:
        return {}
    return {"tracking": "mlflow", "tracking_uri": tracking["tracking_uri"],
            "experiment_name": tracking["experiment_name"], "run_name": f"{spec.run_id} {stage}"}


def execute_run(spec: RunSpec, runner: str = "subprocess", threads: int | None = None,
                tracking: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train then evaluate one run (resuming an interrupted one); write ``done.json`` last and return it.

    ``tracking`` (``{"tracking_uri": ..., "experiment_name": ...}``) logs both stages to that MLflow experiment."""
    rd = spec.run_dir
    bundle_root = rd / "bundle"
    cfg = bundle_root / "configs"
    if not (cfg / "train.json").is_file():
        shutil.copytree(bundle_configs(spec.bundle), cfg, dirs_exist_ok=True)
    (rd / "failed.txt").unlink(missing_ok=True)
    common = {"meta_file": str(cfg / "metadata.json"), "logging_file": str(cfg / "logging.conf"),
              "bundle_root": str(bundle_root)}
    train_args = {"config_file": str(cfg / "train.json"), **common, **spec.train_overrides,
                  "ckpt_dir": str(bundle_root / "models"), "log_dir": str(bundle_root / "logs"),
                  **tracking_args(tracking, spec, "train")}
    eval_args = {"config_file": config_files(bundle_root, "evaluate.json"), **common, **spec.eval_overrides,
                 "output_dir": str(rd / "eval"), "log_dir": str(bundle_root / "logs"),
                 **tracking_args(tracking, spec, "eval")}
    (rd / "train_args.json").write_text(json.dumps(train_args, indent=2) + "\n")
    (rd / "eval_args.json").write_text(json.dumps(eval_args, indent=2) + "\n")

    t0 = time.perf_counter()
    _monai_run(rd / "train_args.json", rd / "train.log", runner, threads)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    _monai_run(rd / "eval_args.json", rd / "eval.log", runner, threads)
    eval_s = time.perf_counter() - t1
    per_case = rd / "eval" / "per_case_metrics.csv"
    if not per_case.is_file():
        raise RuntimeError(f"evaluation wrote no {per_case}: see {rd / 'eval.log'}")
    rows = read_per_case(per_case)
    epochs = _epoch_times(rd / "train.log")
    done = {
        "run_id": spec.run_id, "bundle": spec.bundle, "setting": spec.setting, "mode": spec.mode, "fold": spec.fold,
        "seed": spec.seed, "train_overrides": spec.train_overrides, "eval_overrides": spec.eval_overrides,
        "train_wall_s": round(train_s, 2), "eval_wall_s": round(eval_s, 2),
        "epochs_timed": len(epochs),
        "s_per_epoch": round(float(np.median(list(epochs.values()))), 4) if epochs else None,
        "n_cases": len(rows),
        "mean_dice": _nanmean([float(r.get("mean_dice_mean", "nan")) for r in rows]),
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "configs_sha": _hash({p.name: p.read_text() for p in sorted(cfg.glob("*.json"))}),
    }
    try:
        done.update(_parameter_counts(spec, bundle_root))
    except Exception as exc:  # a count is a nicety: never lose a finished run over it
        done["params_error"] = str(exc)
    tmp = spec.done_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(done, indent=2) + "\n")
    os.replace(tmp, spec.done_file)
    return done


def _nanmean(v: Iterable[float]) -> float | None:
    a = np.asarray(list(v), dtype=float)
    a = a[np.isfinite(a)]
    return round(float(a.mean()), 6) if a.size else None


# ------------------------------------------------------------------------------------------- predictions
def predict_with_run(run_dir: str | os.PathLike, images: Sequence[str], out_dir: str | os.PathLike,
                     runner: str = "subprocess", threads: int | None = None) -> list[str]:
    """Segment ``images`` with a finished run's best model via its bundle copy's ``inference.json``.

    The run's network and patch overrides are reused, so shrunken test networks load their weights. Returns the
    paths of the ``*_seg.nii.gz`` files (inference.json writes them in each input image's space).
    """
    rd = Path(run_dir).resolve()
    args = json.loads((rd / "eval_args.json").read_text())
    bundle_root = Path(args["bundle_root"])
    out = Path(out_dir).resolve()
    in_dir = out / "_inputs"
    in_dir.mkdir(parents=True, exist_ok=True)
    for p in images:
        link = in_dir / Path(p).name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(Path(p).resolve(), link)
    keep = {k: v for k, v in args.items() if k.startswith("network_def") or k in ("patch_size", "device")}
    inf = {"config_file": str(bundle_root / "configs" / "inference.json"), "meta_file": args["meta_file"],
           "logging_file": args["logging_file"], "bundle_root": str(bundle_root), **keep,
           "dataset_dir": str(in_dir), "output_dir": str(out), "dataloader#num_workers": 0}
    (out / "infer_args.json").write_text(json.dumps(inf, indent=2) + "\n")
    _monai_run(out / "infer_args.json", out / "infer.log", runner, threads)
    segs = []
    for p in images:
        name = Path(p).name
        stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
        segs.append(str(out / f"{stem}_seg.nii.gz"))
    return segs
