"""Reproduce the paper's studies (Tables 1-3, 5, 6, 7, temperature, cross-validation) by config overrides only.

A *study* is a list of *settings* (config overrides such as ``dsd_mode=basic``) run over one or more bundles,
folds and seeds. Every run trains (``train.json``) then evaluates (``evaluate.json``) a private copy of the
bundle's configs inside its own folder, so the repository's bundles are never written to::

    <out_dir>/runs/<bundle>/<setting>-fold<k>-seed<s>-<hash>/
        bundle/configs/*.json     the configs the run used (copied from bundles/<bundle>/configs)
        bundle/models/            latest.pt (resume), model.pt (best backbone)
        bundle/logs/              TensorBoard events (train_loss per iteration, val_mean_dice per validation)
        train_args.json           ``python -m monai.bundle run --args_file train_args.json`` reproduces training
        eval_args.json            ... and evaluation (per_case_metrics.csv / summary.csv in eval/)
        train.log, eval.log
        done.json                 written last: the run is finished and is skipped next time

The run folder's hash covers the bundle, every override, the fold, the seed and the evaluation split, so runs are
shared between studies that ask for the same thing (the ``dsd`` run of ``baseline_vs_dsd`` is the ``dsd`` run of
``ablation``), and changing ``--num_epochs`` or a network override starts new runs instead of reusing stale ones.
An interrupted run resumes from its ``latest.pt`` (the bundles' own checkpointer).

Results of a study go to ``<out_dir>/<study>/``: ``results.csv`` (one row per run, case and class), ``runs.csv``
(parameters, time per epoch), ``summary.csv``, ``stats.csv`` (paired Wilcoxon tests), ``report.md`` (the paper's
table layout with n and p-values) and PNG plots.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "STUDIES", "Setting", "RunSpec", "plan_study", "run_study", "collect_study", "wilcoxon_paired",
    "bundle_backbone_key", "small_network_overrides", "predict_with_run", "execute_run",
]

ROOT = Path(__file__).resolve().parents[1]
BUNDLES_DIR = ROOT / "bundles"
logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- studies
@dataclass(frozen=True)
class Setting:
    """One row of a study table: a label and the config overrides that make it."""

    name: str
    overrides: dict[str, Any]
    mode: str = "dsd"  # the DSD loss mode (decides which heads exist, for the parameter count)


@dataclass(frozen=True)
class StudyDef:
    title: str
    paper: str
    settings: Callable[[str, dict[str, Any] | None], list[Setting]]
    comparisons: Callable[[list[str]], list[tuple[str, str]]]  # (setting, reference) pairs for paired tests
    all_folds: bool = False  # cv: every fold of the data set by default


def _modes(*modes: str) -> Callable[[str, dict[str, Any] | None], list[Setting]]:
    return lambda bundle, small: [Setting(m, {"dsd_mode": m}, m) for m in modes]


def _vs(reference: str) -> Callable[[list[str]], list[tuple[str, str]]]:
    return lambda names: [(n, reference) for n in names if n != reference and reference in names]


def _temperature(bundle: str, small: dict[str, Any] | None) -> list[Setting]:
    return [Setting(f"T{t}", {"dsd_mode": "dsd", "temperature": float(t)}, "dsd") for t in (1, 2, 3, 4)]


def _capacity(bundle: str, small: dict[str, Any] | None) -> list[Setting]:
    small_over = small_network_overrides(bundle) if small is None else _net_overrides(small)
    out = []
    for size, over in (("small", small_over), ("large", {})):
        for mode in ("basic", "dsd"):
            out.append(Setting(f"{size}_{mode}", {"dsd_mode": mode, **over}, mode))
    return out


def _capacity_pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = [(f"{s}_dsd", f"{s}_basic") for s in ("small", "large")]
    pairs += [("large_basic", "small_basic"), ("large_dsd", "small_dsd")]
    return [p for p in pairs if p[0] in names and p[1] in names]


def _ablation_pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = [(n, "basic") for n in ("ds", "sdd", "sde", "dsd")] + [(n, "ds") for n in ("sdd", "sde", "dsd")]
    return [p for p in pairs if p[0] in names and p[1] in names]


STUDIES: dict[str, StudyDef] = {
    "baseline_vs_dsd": StudyDef("Backbone vs backbone + DSD", "Tables 1-3", _modes("basic", "dsd"), _vs("basic")),
    "ablation": StudyDef("Ablation of the DSD components", "Table 5",
                         _modes("basic", "ds", "sdd", "sde", "dsd"), _ablation_pairs),
    "teacher": StudyDef("Choice of teacher", "Table 6", _modes("dsd", "mean_teacher", "reversed_teacher"), _vs("dsd")),
    "temperature": StudyDef("Distillation temperature T", "Section 3 (T = 1, 2, 3, 4)", _temperature, _vs("T3")),
    "capacity": StudyDef("Network capacity: small vs large, with and without DSD", "Table 7", _capacity,
                         _capacity_pairs),
    "cv": StudyDef("k-fold cross-validation, backbone vs backbone + DSD", "Table 1 (5-fold CV on MMWHS)",
                   _modes("basic", "dsd"), _vs("basic"), all_folds=True),
}

# Mean Dice (%) the paper reports, for the report's reference line (SPEC.md "Paper results").
PAPER_MEAN_DICE: dict[tuple[str, str], dict[str, float]] = {
    ("baseline_vs_dsd", "mmwhs_unetr_dsd"): {"basic": 78.24, "dsd": 80.94},
    ("baseline_vs_dsd", "mmwhs_nnunet_dsd"): {"basic": 83.55, "dsd": 86.49},
    ("baseline_vs_dsd", "brats_unetr_light_dsd"): {"basic": 68.4, "dsd": 72.0},
    ("baseline_vs_dsd", "brats_unetr_dsd"): {"basic": 68.9, "dsd": 76.6},
    ("baseline_vs_dsd", "brats_nnunet_dsd"): {"basic": 74.2, "dsd": 76.9},
    ("baseline_vs_dsd", "brats_swinunetr_dsd"): {"basic": 72.4, "dsd": 76.5},
    ("baseline_vs_dsd", "hippocampus_vnet_dsd"): {"basic": 83.82, "dsd": 85.45},
    ("baseline_vs_dsd", "hippocampus_unetr_dsd"): {"basic": 84.32, "dsd": 85.62},
    ("baseline_vs_dsd", "hippocampus_nnunet_dsd"): {"basic": 86.16, "dsd": 87.10},
    ("cv", "mmwhs_unetr_dsd"): {"basic": 78.24, "dsd": 80.94},
    ("cv", "mmwhs_nnunet_dsd"): {"basic": 83.55, "dsd": 86.49},
    ("ablation", "mmwhs_unetr_dsd"): {"basic": 76.12, "ds": 78.29, "sdd": 80.13, "sde": 79.90, "dsd": 80.93},
    ("ablation", "mmwhs_nnunet_dsd"): {"basic": 76.97, "ds": 83.74, "sdd": 84.02, "sde": 84.42, "dsd": 86.10},
    ("temperature", "mmwhs_nnunet_dsd"): {"T1": 85.37, "T2": 85.89, "T3": 86.10, "T4": 86.07},
}


def bundle_backbone_key(bundle: str) -> str:
    """``mmwhs_nnunet_dsd`` -> ``mmwhs_nnunet`` (the key of dsd_components.backbones.BACKBONES)."""
    return bundle[: -len("_dsd")] if bundle.endswith("_dsd") else bundle


def _net_overrides(net: dict[str, Any] | None) -> dict[str, Any]:
    """``{"filters": [...]}`` -> ``{"network_def#filters": [...]}`` (keys already carrying ``#`` are kept)."""
    return {(k if "#" in k else f"network_def#{k}"): v for k, v in (net or {}).items()}


def small_network_overrides(bundle: str) -> dict[str, Any]:
    """``network_def`` overrides that turn the bundle's (large) backbone into the paper's small one (Table 7)."""
    from .backbones import BACKBONES

    key = bundle_backbone_key(bundle)
    if f"{key}_small" not in BACKBONES:
        have = sorted(k[: -len("_small")] + "_dsd" for k in BACKBONES if k.endswith("_small"))
        raise ValueError(f"{bundle}: the paper has no small variant of this backbone (Table 7 covers "
                         f"{', '.join(have)}); "
                         "pass --small_net '{\"filters\": [...]}' (network_def overrides) to define one")
    large, small = BACKBONES[key], BACKBONES[f"{key}_small"]
    return {f"network_def#{k}": v for k, v in small.items() if k != "img_size" and large.get(k) != v}


# ------------------------------------------------------------------------------------------------------ plan
@dataclass
class RunSpec:
    """One training + evaluation run."""

    bundle: str
    setting: str
    mode: str
    fold: int
    seed: int
    train_overrides: dict[str, Any]
    eval_overrides: dict[str, Any]
    run_dir: Path
    run_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done_file(self) -> Path:
        return self.run_dir / "done.json"

    @property
    def done(self) -> bool:
        return self.done_file.is_file()


def _bundle_configs(bundle: str) -> Path:
    path = BUNDLES_DIR / bundle / "configs"
    if not (path / "train.json").is_file():
        known = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "train.json").is_file())
        raise ValueError(f"unknown bundle {bundle!r}: use one of {', '.join(known)}")
    return path


def _bundle_dataset(bundle: str) -> str:
    return json.loads((_bundle_configs(bundle) / "train.json").read_text())["dataset"]


def _eval_keys(bundle: str) -> set[str]:
    return set(json.loads((_bundle_configs(bundle) / "evaluate.json").read_text()))


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [s.strip() for s in x.split(",") if s.strip()]
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _as_dict(x: Any, what: str) -> dict[str, Any]:
    if x is None or x == "":
        return {}
    if isinstance(x, dict):
        return dict(x)
    try:
        out = json.loads(x)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--{what} must be a JSON object, e.g. '{{\"filters\": [4, 8, 8, 16, 16]}}': "
                         f"got {x!r}") from exc
    if not isinstance(out, dict):
        raise ValueError(f"--{what} must be a JSON object: got {x!r}")
    return out


def _normalise_overrides(over: dict[str, Any]) -> dict[str, Any]:
    out = dict(over)
    if isinstance(out.get("patch_size"), (int, float)):
        out["patch_size"] = [int(out["patch_size"])] * 3
    return out


def _num_folds(dataset: str, dataset_dir: str | None, overrides: dict[str, Any], num_folds: int = 5) -> int:
    """Folds of the data set: MMWHS 5 (fewer when there are fewer than 5 cases); MSD data sets 1 (a fixed split)."""
    if dataset != "mmwhs" or overrides.get("datalist"):
        return 1
    if not dataset_dir:
        return num_folds
    root = Path(dataset_dir)
    found = list(root.glob("ct_train_*_image.nii*")) + list(root.glob("ct_train/ct_train_*_image.nii*"))
    n = len({p.name for p in found})
    if n == 0:
        return num_folds
    size = math.ceil(n / num_folds)
    return len([k for k in range(num_folds) if k * size < n])


def plan_study(
    study: str,
    bundles: Sequence[str] | str,
    out_dir: str | os.PathLike,
    dataset_dir: str | None = None,
    settings: Sequence[str] | str | None = None,
    folds: Sequence[int] | int | str | None = None,
    seeds: Sequence[int] | int | str = (0,),
    eval_split: str = "validation",
    net: dict[str, Any] | str | None = None,
    small_net: dict[str, Any] | str | None = None,
    overrides: dict[str, Any] | str | None = None,
) -> list[RunSpec]:
    """Every run of a study, with its folder, overrides and id; nothing is run or written."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}: use one of {', '.join(STUDIES)}")
    sdef = STUDIES[study]
    bundles = _as_list(bundles)
    if not bundles:
        raise ValueError("--bundles: give at least one bundle, e.g. --bundles mmwhs_nnunet_dsd")
    user = _normalise_overrides({**_net_overrides(_as_dict(net, "net")), **_as_dict(overrides, "overrides")})
    small = _as_dict(small_net, "small_net") if small_net not in (None, "") else None
    wanted = [str(s) for s in _as_list(settings)]
    seeds_l = [int(s) for s in _as_list(seeds)] or [0]
    out = Path(out_dir).resolve()
    runs: list[RunSpec] = []
    for bundle in bundles:
        _bundle_configs(bundle)
        dataset = _bundle_dataset(bundle)
        ddir = dataset_dir if isinstance(dataset_dir, str) or dataset_dir is None else str(dataset_dir)
        all_settings = sdef.settings(bundle, small)
        names = [s.name for s in all_settings]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"--settings {', '.join(unknown)}: study {study!r} has {', '.join(names)}")
        chosen = [s for s in all_settings if not wanted or s.name in wanted]
        if folds is None or folds == "":
            fold_l = list(range(_num_folds(dataset, ddir, user))) if sdef.all_folds else [int(user.get("fold", 0))]
        else:
            fold_l = [int(f) for f in _as_list(folds)]
        if sdef.all_folds and dataset != "mmwhs" and not user.get("datalist") and fold_l != [0]:
            raise ValueError(f"{bundle}: {dataset} has one fixed split (fold 0); cross-validation needs MMWHS or a "
                             "--overrides '{\"datalist\": \"folds.json\"}' whose entries carry \"fold\" keys")
        eval_keys = _eval_keys(bundle)
        # fold- and seed-major order: a study stopped half-way has every setting of its first replicates
        for fold, seed, s in ((f, sd, s) for f in fold_l for sd in seeds_l for s in chosen):
            train = {**user, **s.overrides, "fold": fold,
                     "initialize#0": f"$monai.utils.set_determinism(seed={seed})"}
            if ddir:
                train["dataset_dir"] = str(Path(ddir).resolve())
            ev = {k: v for k, v in train.items()
                  if k.split("#", 1)[0] in eval_keys and not k.startswith("initialize")}
            ev["eval_split"] = eval_split
            ident = {"bundle": bundle, "train": train, "eval": ev}
            h = _hash(ident)
            rid = f"{bundle}/{s.name}-fold{fold}-seed{seed}-{h}"
            if not (out / "runs" / rid / "done.json").is_file():
                # the same run finished under another study's label (capacity's large_dsd = cv's dsd)
                same = sorted((out / "runs" / bundle).glob(f"*-fold{fold}-seed{seed}-{h}/done.json"))
                if same:
                    rid = f"{bundle}/{same[0].parent.name}"
            runs.append(RunSpec(bundle, s.name, s.mode, fold, seed, train, ev, out / "runs" / rid, rid))
    return runs


# ------------------------------------------------------------------------------------------------ execution
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
        paths = [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
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

    from .network import DSDNetwork

    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "train.json"))
    parser.update({**spec.train_overrides, "bundle_root": str(bundle_root)})
    backbone = parser.get_parsed_content("network_def", lazy=False)
    counts = DSDNetwork(backbone, mode=spec.mode).num_parameters()
    return {"params_backbone": int(counts["backbone"]), "params_train": int(counts["dsd"])}


def _read_per_case(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def execute_run(spec: RunSpec, runner: str = "subprocess", threads: int | None = None) -> dict[str, Any]:
    """Train then evaluate one run (resuming an interrupted one); write ``done.json`` last and return it."""
    rd = spec.run_dir
    bundle_root = rd / "bundle"
    cfg = bundle_root / "configs"
    if not (cfg / "train.json").is_file():
        shutil.copytree(_bundle_configs(spec.bundle), cfg, dirs_exist_ok=True)
    (rd / "failed.txt").unlink(missing_ok=True)
    common = {"meta_file": str(cfg / "metadata.json"), "logging_file": str(cfg / "logging.conf"),
              "bundle_root": str(bundle_root)}
    train_args = {"config_file": str(cfg / "train.json"), **common, **spec.train_overrides,
                  "ckpt_dir": str(bundle_root / "models"), "log_dir": str(bundle_root / "logs")}
    eval_args = {"config_file": str(cfg / "evaluate.json"), **common, **spec.eval_overrides,
                 "output_dir": str(rd / "eval"), "log_dir": str(bundle_root / "logs")}
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
    rows = _read_per_case(per_case)
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


# ------------------------------------------------------------------------------------------------ statistics
def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` vs ``b`` (same cases, same order).

    Pairs with a non-finite value (absent structure, empty prediction) are dropped. Returns n (pairs used),
    the median and mean difference a - b, the statistic, the p-value (None when no test is possible) and a note.
    """
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    dropped = int((~keep).sum())
    d = x[keep] - y[keep]
    out: dict[str, Any] = {"n": int(d.size), "median_diff": float(np.median(d)) if d.size else math.nan,
                           "mean_diff": float(d.mean()) if d.size else math.nan, "statistic": math.nan, "p": None,
                           "note": ""}
    notes = [f"{dropped} pair(s) with a missing value dropped"] if dropped else []
    nz = int(np.count_nonzero(d))
    if d.size == 0:
        notes.append("no paired cases: no test")
    elif nz == 0:
        out["p"] = 1.0
        notes.append("all pairs tied (identical values): no difference to test")
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = wilcoxon(x[keep], y[keep], zero_method="wilcox", alternative="two-sided")
            out["statistic"], out["p"] = float(res.statistic), float(res.pvalue)
        except ValueError as exc:
            notes.append(f"test not possible: {exc}")
        if nz < nz_min_for_005():
            notes.append(f"only {nz} non-tied pair(s): the exact two-sided test cannot reach p < 0.05 "
                         "with fewer than 6")
        if nz < d.size:
            notes.append(f"{d.size - nz} tied pair(s) dropped by the test")
    out["note"] = "; ".join(notes)
    return out


def nz_min_for_005() -> int:
    """Smallest number of non-tied pairs for which the exact two-sided signed-rank test can give p < 0.05."""
    return 6


# ------------------------------------------------------------------------------------------------ collection
METRICS = (("dice", "mean_dice"), ("hd95", "mean_hd95"))


def _class_names(bundle: str) -> list[str]:
    return list(json.loads((_bundle_configs(bundle) / "evaluate.json").read_text())["class_names"])


def _case_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """Long-format rows (one per case and class, plus class "mean") of a finished run."""
    rows = []
    classes = _class_names(spec.bundle)
    for r in _read_per_case(spec.run_dir / "eval" / "per_case_metrics.csv"):
        per_class = {}
        for c in classes:
            per_class[c] = {m: _float(r.get(f"{col}_{c}")) for m, col in METRICS}
        per_class["mean"] = {m: _finite_mean([per_class[c][m] for c in classes]) for m, _ in METRICS}
        for c, vals in per_class.items():
            rows.append({"run_id": spec.run_id, "bundle": spec.bundle, "setting": spec.setting, "fold": spec.fold,
                         "seed": spec.seed, "case": r["case"], "class": c, **vals})
    return rows


def _float(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _finite_mean(v: Sequence[float]) -> float:
    a = np.asarray(v, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def _case_values(rows: list[dict[str, Any]], setting: str, cls: str, metric: str) -> dict[tuple[int, str], float]:
    """(fold, case) -> value, averaged over seeds (replicates of one case are not independent cases)."""
    acc: dict[tuple[int, str], list[float]] = {}
    for r in rows:
        if r["setting"] == setting and r["class"] == cls:
            acc.setdefault((int(r["fold"]), r["case"]), []).append(r[metric])
    return {k: _finite_mean(v) for k, v in acc.items()}


def _fmt(mean: float, std: float, scale: float = 1.0, nd: int = 2) -> str:
    """"m ± s"; a single value has no spread, shown as "m ± –"."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean * scale:.{nd}f} ± " + (f"{std * scale:.{nd}f}" if np.isfinite(std) else "–")


def _fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.3g}"


def _write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> None:
    header = header or (list(rows[0]) if rows else [])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def _read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of one run: tag -> [(step, value)]."""
    if not log_dir.is_dir() or not any(log_dir.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags().get("scalars", [])}


def collect_study(study: str, runs: list[RunSpec], out_dir: str | os.PathLike, command: str = "",
                  plots: bool = True) -> dict[str, Any]:
    """Write results.csv, runs.csv, summary.csv, stats.csv, report.md and the plots of a study's finished runs."""
    sdef = STUDIES[study]
    sdir = Path(out_dir).resolve() / study
    sdir.mkdir(parents=True, exist_ok=True)
    done = [r for r in runs if r.done]
    missing = [r for r in runs if not r.done]
    rows: list[dict[str, Any]] = []
    run_rows: list[dict[str, Any]] = []
    for r in runs:
        info = json.loads(r.done_file.read_text()) if r.done else {}
        run_rows.append({
            "run_id": r.run_id, "bundle": r.bundle, "setting": r.setting, "fold": r.fold, "seed": r.seed,
            "status": "done" if r.done else ("failed" if (r.run_dir / "failed.txt").is_file() else "pending"),
            "n_cases": info.get("n_cases", ""), "mean_dice": info.get("mean_dice", ""),
            "params_backbone_M": round(info["params_backbone"] / 1e6, 6) if "params_backbone" in info else "",
            "params_train_M": round(info["params_train"] / 1e6, 6) if "params_train" in info else "",
            "s_per_epoch": info.get("s_per_epoch", ""), "train_wall_s": info.get("train_wall_s", ""),
            "run_dir": str(r.run_dir),
        })
        if r.done:
            rows.extend(_case_rows(r))
    _write_csv(sdir / "results.csv", rows,
               ["run_id", "bundle", "setting", "fold", "seed", "case", "class", "dice", "hd95"])
    _write_csv(sdir / "runs.csv", run_rows)

    summary: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    replicate_rows: list[dict[str, Any]] = []
    md: list[str] = [f"# Study `{study}`: {sdef.title} (paper {sdef.paper})", ""]
    if command:
        md += ["Command:", "", "```bash", command, "```", ""]
    md += [f"Runs: {len(done)} finished of {len(runs)} planned"
           + (f" ({len(missing)} not finished: {', '.join(m.run_id for m in missing[:6])}"
              f"{' ...' if len(missing) > 6 else ''})" if missing else "")
           + ". Each run trains with `train.json` and evaluates the best checkpoint with `evaluate.json`; "
           "the evaluation split and every override are in each run's `train_args.json` / `eval_args.json`.", ""]

    bundles = list(dict.fromkeys(r.bundle for r in runs))
    for bundle in bundles:
        brs = [r for r in runs if r.bundle == bundle]
        brows = [x for x in rows if x["bundle"] == bundle]
        settings = list(dict.fromkeys(r.setting for r in brs))
        classes = _class_names(bundle) + ["mean"]
        folds = sorted({r.fold for r in brs})
        seeds = sorted({r.seed for r in brs})
        split = brs[0].eval_overrides.get("eval_split", "validation")
        md += [f"## {bundle}", ""]
        n_by_setting = {s: len(_case_values(brows, s, "mean", "dice")) for s in settings}
        reps = {s: len({(x["fold"], x["seed"]) for x in brows if x["setting"] == s}) for s in settings}
        md.append(f"Evaluation split: `{split}`; folds {folds}; seeds {seeds}. n = evaluated cases per setting "
                  f"(each case once; a case's values are first averaged over seeds): "
                  + ", ".join(f"{s} n={n_by_setting[s]}" for s in settings) + ".")
        if max(reps.values(), default=0) <= 1:
            md.append("")
            md.append("**One training run per setting.** Differences between rows mix the effect of the setting with "
                      "run-to-run noise (initialisation, patch sampling); they are not evidence of a trend. "
                      "Run more seeds (`--seeds 0,1,2`) or folds before reading one into them.")
        md.append("")
        for metric, label, scale, nd in (("dice", "Dice (%)", 100.0, 2), ("hd95", "HD95 (mm)", 1.0, 2)):
            md += [f"### {label}, mean ± std over cases", "",
                   "| Setting | n | " + " | ".join(classes) + " |",
                   "|---|---|" + "---|" * len(classes)]
            for s in settings:
                cells = []
                for c in classes:
                    vals = np.asarray(list(_case_values(brows, s, c, metric).values()), dtype=float)
                    fin = vals[np.isfinite(vals)]
                    m = float(fin.mean()) if fin.size else math.nan
                    sd = float(fin.std(ddof=1)) if fin.size > 1 else math.nan
                    summary.append({"bundle": bundle, "setting": s, "class": c, "metric": metric, "mean": m, "std": sd,
                                    "n": int(fin.size), "n_missing": int(vals.size - fin.size)})
                    cells.append(_fmt(m, sd, scale, nd) + (f" (n={fin.size})" if fin.size != n_by_setting[s] else ""))
                md.append(f"| {s} | {n_by_setting[s]} | " + " | ".join(cells) + " |")
            md.append("")
        md.append("std is the sample standard deviation (ddof=1) over cases (\"–\" for a single case); "
                  "HD95 in mm on the resampled grid; "
                  "a class absent from a case's ground truth or prediction counts as missing (n shown when lower).")
        paper = PAPER_MEAN_DICE.get((study, bundle))
        if paper:
            md.append("Paper (full data and schedule), mean Dice %: "
                      + ", ".join(f"{k} {v}" for k, v in paper.items()) + ".")
        md.append("")

        # replicate level: one number per (fold, seed) run, the honest unit for run-to-run variability
        combos = sorted({(r.fold, r.seed) for r in brs})
        if len(combos) > 1:
            md += ["### Mean Dice (%) per run (fold / seed), and mean ± std over runs", "",
                   "| Setting | " + " | ".join(f"f{f}/s{s}" for f, s in combos) + " | mean ± std over runs |",
                   "|---|" + "---|" * (len(combos) + 1)]
            for s in settings:
                vals = []
                for f, sd_ in combos:
                    sel = [x for x in brows
                           if x["setting"] == s and x["class"] == "mean" and x["fold"] == f and x["seed"] == sd_]
                    m = _finite_mean([x["dice"] for x in sel]) if sel else math.nan
                    vals.append(m)
                    replicate_rows.append({"bundle": bundle, "setting": s, "fold": f, "seed": sd_, "n_cases": len(sel),
                                           "mean_dice": m,
                                           "mean_hd95": _finite_mean([x["hd95"] for x in sel]) if sel else math.nan})
                fin = np.asarray([v for v in vals if np.isfinite(v)])
                sd_runs = float(fin.std(ddof=1)) if fin.size > 1 else math.nan
                agg = _fmt(float(fin.mean()), sd_runs, 100) if fin.size else "n/a"
                md.append(f"| {s} | " + " | ".join("n/a" if not np.isfinite(v) else f"{100 * v:.2f}" for v in vals)
                          + f" | {agg} (runs={fin.size}) |")
            md.append("")

        pairs = sdef.comparisons(settings)
        if pairs:
            md += ["### Paired Wilcoxon signed-rank tests (two-sided, paired by case)", "",
                   "| Comparison | Metric | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
            for a, b in pairs:
                for metric, label, scale in (("dice", "Dice", 100.0), ("hd95", "HD95", 1.0)):
                    cells = []
                    for c in classes:
                        va, vb = _case_values(brows, a, c, metric), _case_values(brows, b, c, metric)
                        keys = sorted(set(va) & set(vb))
                        res = wilcoxon_paired([va[k] for k in keys], [vb[k] for k in keys])
                        stats.append({"bundle": bundle, "setting": a, "reference": b, "metric": metric, "class": c,
                                      **res})
                        diff = res["median_diff"] * scale
                        cells.append(f"Δ̃={diff:+.2f}, p={_fmt_p(res['p'])}, n={res['n']}" if res["n"] else "n/a")
                    md.append(f"| {a} vs {b} | {label} | " + " | ".join(cells) + " |")
            md.append("")
            md.append("Δ̃ = median paired difference (setting − reference; Dice in points, HD95 in mm). "
                      "`scipy.stats.wilcoxon`, zero differences dropped (`zero_method='wilcox'`), "
                      "no correction for multiple comparisons. The test treats each setting's trained model(s) as "
                      "fixed and asks whether the cases agree; it says nothing about run-to-run (seed, fold) "
                      "variability, which the per-run table shows: when runs of one setting differ more than the "
                      "settings do, a small p here is not evidence that the setting helps.")
            notes = sorted({f"{s['setting']} vs {s['reference']} ({s['metric']}, {s['class']}): {s['note']}"
                            for s in stats if s["bundle"] == bundle and s["note"]})
            if notes:
                md += ["", "Notes on the tests:", ""] + [f"- {n}" for n in notes[:30]]
                if len(notes) > 30:
                    md.append(f"- ... {len(notes) - 30} more in stats.csv")
            md.append("")

        # cost: parameters and time per epoch
        md += ["### Cost", "",
               "| Setting | backbone params (M) | params while training (M) | s / epoch (median) | train wall (s) |",
               "|---|---|---|---|---|"]
        for s in settings:
            infos = [json.loads(r.done_file.read_text()) for r in brs if r.setting == s and r.done]
            if not infos:
                md.append(f"| {s} | n/a | n/a | n/a | n/a |")
                continue
            pb = infos[0].get("params_backbone")
            pt = infos[0].get("params_train")
            spe = [i["s_per_epoch"] for i in infos if i.get("s_per_epoch") is not None]
            tw = [i["train_wall_s"] for i in infos if i.get("train_wall_s") is not None]
            cells = [f"{pb / 1e6:.4f}" if pb is not None else "n/a", f"{pt / 1e6:.4f}" if pt is not None else "n/a",
                     f"{np.median(spe):.2f}" if spe else "n/a", f"{np.median(tw):.0f}" if tw else "n/a"]
            md.append(f"| {s} | " + " | ".join(cells) + " |")
        md += ["", "s / epoch is Ignite's training-epoch time (validation excluded), median over epochs and runs; "
               "train wall includes start-up, data caching and validation.", ""]

        if plots and brows:
            try:
                png = _plot_dice(sdir / f"dice_{bundle}.png", brows, settings, classes, bundle, study)
                md += [f"![Dice per class]({png.name})", ""]
            except Exception as exc:  # plots never cost the tables
                md += [f"(Dice plot failed: {exc})", ""]
            try:
                png = _plot_curves(sdir / f"curves_{bundle}.png", [r for r in brs if r.done], bundle, study)
                if png:
                    md += [f"![Training curves]({png.name})", ""]
            except Exception as exc:
                md += [f"(training-curve plot failed: {exc})", ""]

    _write_csv(sdir / "summary.csv", summary, ["bundle", "setting", "class", "metric", "mean", "std", "n", "n_missing"])
    _write_csv(sdir / "stats.csv", stats, ["bundle", "setting", "reference", "metric", "class", "n", "median_diff",
                                          "mean_diff", "statistic", "p", "note"])
    _write_csv(sdir / "per_run.csv", replicate_rows,
               ["bundle", "setting", "fold", "seed", "n_cases", "mean_dice", "mean_hd95"])
    (sdir / "report.md").write_text("\n".join(md) + "\n")
    return {"study_dir": str(sdir), "finished": len(done), "planned": len(runs), "rows": len(rows)}


# ------------------------------------------------------------------------------------------------------ plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_dice(path: Path, rows: list[dict[str, Any]], settings: list[str], classes: list[str], bundle: str,
               study: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(classes) * max(1, len(settings)) / 2.5), 4.0))
    width = 0.8 / max(1, len(settings))
    x = np.arange(len(classes))
    for i, s in enumerate(settings):
        means, stds, ns = [], [], []
        for c in classes:
            v = np.asarray(list(_case_values(rows, s, c, "dice").values()), dtype=float)
            v = v[np.isfinite(v)]
            means.append(100 * v.mean() if v.size else 0.0)
            stds.append(100 * v.std(ddof=1) if v.size > 1 else 0.0)
            ns.append(v.size)
        ax.bar(x + (i - (len(settings) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=f"{s} (n={max(ns) if ns else 0})")
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("Dice (%)  mean ± std over cases")
    ax.set_ylim(0, 105)
    ax.set_title(f"{study}: {bundle}")
    ax.legend(fontsize=8, ncol=min(len(settings), 3))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if v.size < 3 or k <= 1:
        return v
    k = min(k, v.size)
    return np.convolve(v, np.ones(k) / k, mode="valid")


def _plot_curves(path: Path, runs: list[RunSpec], bundle: str, study: str) -> Path | None:
    data = [(r, _read_scalars(r.run_dir / "bundle" / "logs")) for r in runs]
    data = [(r, d) for r, d in data if d]
    if not data:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    settings = list(dict.fromkeys(r.setting for r, _ in data))
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(settings)}
    labelled: set[str] = set()
    for r, d in data:
        lab = r.setting if r.setting not in labelled else None
        labelled.add(r.setting)
        if "train_loss" in d:
            steps = np.asarray([s for s, _ in d["train_loss"]], float)
            vals = np.asarray([v for _, v in d["train_loss"]], float)
            k = max(1, vals.size // 50)
            sm = _smooth(vals, k)
            a1.plot(steps[len(steps) - sm.size:], sm, color=colors[r.setting], alpha=0.8, lw=1, label=lab)
        if "val_mean_dice" in d:
            a2.plot([s for s, _ in d["val_mean_dice"]], [100 * v for _, v in d["val_mean_dice"]], "o-", ms=3,
                    color=colors[r.setting], alpha=0.8, lw=1, label=lab)
    a1.set_xlabel("iteration")
    a1.set_ylabel("training loss (moving average)")
    a1.set_title("train loss (each setting's own loss: DSD adds terms)", fontsize=9)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation mean Dice (%)")
    a2.set_title("validation Dice (one line per run)", fontsize=9)
    for a in (a1, a2):
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.suptitle(f"{study}: {bundle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ top level
def _ensure_demo_data(bundles: list[str], out_dir: Path, demo_cases: int, demo_size: Any) -> str:
    """Demo data (scripts/make_demo_data.py) for the bundles' data set under ``<out_dir>/data``."""
    datasets = {_bundle_dataset(b) for b in bundles}
    if len(datasets) != 1:
        raise ValueError(f"--demo_cases makes one data set; the bundles use {sorted(datasets)}: run them separately")
    ds = datasets.pop()
    tag = f"{ds}_{int(demo_cases)}" + (f"_{re.sub(r'[^0-9]+', 'x', str(demo_size)).strip('x')}" if demo_size else "")
    target = out_dir / "data" / tag
    if not (target / ".complete").is_file():
        sys.path.insert(0, str(ROOT / "scripts"))
        try:
            from make_demo_data import make_demo_data
        finally:
            sys.path.pop(0)
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
) -> dict[str, Any]:
    """Plan, run (skipping finished runs) and collect a study. Returns counts and the study folder."""
    out = Path(out_dir).resolve()
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
                info = execute_run(r, runner=runner, threads=threads)
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
    return {**res, "executed": executed, "failed": failed, "plan": plan}


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
