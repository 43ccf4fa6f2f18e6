"""A study's results: per-case tables, summaries, paired Wilcoxon tests, the report in the paper's layout, plots.

Results go to ``<out_dir>/<study>/``: ``results.csv`` (one row per run, case and class), ``runs.csv`` (parameters,
time per epoch), ``summary.csv``, ``stats.csv`` (paired Wilcoxon tests), ``report.md`` and PNG plots.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsd_components.plots import read_scalars

from .definitions import STUDIES, paper_mean_dice
from .execute import read_per_case
from .plan import RunSpec, bundle_configs

__all__ = ["wilcoxon_paired", "collect_study", "nz_min_for_005"]


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


METRICS = (("dice", "mean_dice"), ("hd95", "mean_hd95"))


def _class_names(bundle: str) -> list[str]:
    return list(json.loads((bundle_configs(bundle) / "evaluate.json").read_text())["class_names"])


def _case_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """Long-format rows (one per case and class, plus class "mean") of a finished run."""
    rows = []
    classes = _class_names(spec.bundle)
    for r in read_per_case(spec.run_dir / "eval" / "per_case_metrics.csv"):
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
        paper = paper_mean_dice(study, bundle)
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
    data = [(r, read_scalars(r.run_dir / "bundle" / "logs", None)) for r in runs]
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


