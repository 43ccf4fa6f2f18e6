"""Studies (``dsd-study``, dsd_tools.study) and qualitative figures (``dsd-plot-qualitative``).

Two studies run end to end on demo data with tiny networks (one through the CLI and the default subprocess runner,
one in-process); every study's plan is checked by a dry run. Resuming must not retrain a finished run.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support import command
from support.bundles import ROOT

from dsd_tools.study import (
    plan_study, run_study, small_network_overrides, wilcoxon_paired,
)

from dsd_tools.cli import UsageError
from dsd_tools.demo_data import make_demo_data
from dsd_tools.qualitative import best_slice, dice_3d, plot_qualitative

TINY = {"filters": [4, 8, 8, 16, 16]}
FAST = {"num_epochs": 1, "val_interval": 1, "patch_size": 32, "num_workers": 0, "num_samples": 1, "cache_rate": 0.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study_data")
    make_demo_data("hippocampus", str(root / "hippocampus"), num_cases=8, seed=0)
    make_demo_data("mmwhs", str(root / "mmwhs"), num_cases=5, seed=0)
    return root


def _bundles_snapshot() -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (ROOT / "bundles").rglob("*") if p.is_file()}


@pytest.mark.parametrize("study,bundle,expected", [
    ("baseline_vs_dsd", "hippocampus_nnunet_dsd", ["basic", "dsd"]),
    ("ablation", "mmwhs_nnunet_dsd", ["basic", "ds", "sdd", "sde", "dsd"]),
    ("teacher", "mmwhs_nnunet_dsd", ["dsd", "mean_teacher", "reversed_teacher"]),
    ("temperature", "mmwhs_nnunet_dsd", ["T1", "T2", "T3", "T4"]),
    ("capacity", "mmwhs_nnunet_dsd", ["small_basic", "small_dsd", "large_basic", "large_dsd"]),
    ("cv", "mmwhs_nnunet_dsd", ["basic", "dsd"]),
])
def test_every_study_plans_by_overrides_only(study, bundle, expected, data, tmp_path):
    before = _bundles_snapshot()
    ds = "hippocampus" if bundle.startswith("hippocampus") else "mmwhs"
    res = run_study(study, bundle, out_dir=tmp_path, dataset_dir=str(data / ds), net=TINY, overrides=FAST,
                    dry_run=True, log=lambda s: None)
    plan = res["plan"]
    assert res["executed"] == 0 and not (tmp_path / "runs").exists()
    assert json.loads((tmp_path / study / "plan.json").read_text()) == json.loads(json.dumps(plan))
    assert list(dict.fromkeys(p["setting"] for p in plan)) == expected
    folds = sorted({p["fold"] for p in plan})
    assert folds == ([0, 1, 2, 3, 4] if study == "cv" else [0])  # 5 demo cases -> 5 folds of 1
    for p in plan:
        t = p["train_overrides"]
        assert t["network_def#filters"] == TINY["filters"] or p["setting"].startswith("small")
        assert t["patch_size"] == [32, 32, 32] and t["fold"] == p["fold"]
        # evaluate.json is layered on train.json: the evaluation gets the run's settings (its MLflow run is labelled
        # with them), but keeps its own seed
        assert p["eval_overrides"]["dsd_mode"] == t["dsd_mode"] and "seed" not in p["eval_overrides"]
        assert p["eval_overrides"]["network_def#filters"] == t["network_def#filters"]
        assert p["eval_overrides"]["eval_split"] == "validation"
    if study == "temperature":
        assert [p["train_overrides"]["temperature"] for p in plan] == [1.0, 2.0, 3.0, 4.0]
    if study == "capacity":  # paper Table 7: the small MMWHS nnU-Net has filters 16..256
        small = [p for p in plan if p["setting"].startswith("small")]
        assert all(p["train_overrides"]["network_def#filters"] == [16, 32, 64, 128, 256] for p in small)
    assert len({p["run_id"] for p in plan}) == len(plan)
    assert _bundles_snapshot() == before


def test_plan_errors_and_small_networks(data, tmp_path):
    assert small_network_overrides("mmwhs_nnunet_dsd") == {"network_def#filters": [16, 32, 64, 128, 256]}
    assert small_network_overrides("mmwhs_unetr_dsd") == {"network_def#feature_size": 16}
    with pytest.raises(ValueError, match="small_net"):
        small_network_overrides("hippocampus_vnet_dsd")
    with pytest.raises(ValueError, match="one fixed split"):
        plan_study("cv", "hippocampus_nnunet_dsd", tmp_path, str(data / "hippocampus"), folds="0,1")
    with pytest.raises(ValueError, match="unknown study"):
        plan_study("nope", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"))
    with pytest.raises(ValueError, match="has basic, dsd"):
        plan_study("baseline_vs_dsd", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"), settings="ds")
    # the same run asked for by two studies is one folder; different epochs are different runs
    a = plan_study("baseline_vs_dsd", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"), overrides={"num_epochs": 2})
    b = plan_study("ablation", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"), overrides={"num_epochs": 2})
    c = plan_study("ablation", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"), overrides={"num_epochs": 3})
    assert {r.run_dir for r in a} <= {r.run_dir for r in b}
    assert not {r.run_dir for r in a} & {r.run_dir for r in c}
    seeds = plan_study("baseline_vs_dsd", "mmwhs_nnunet_dsd", tmp_path, str(data / "mmwhs"), seeds="0,1")
    assert [(r.setting, r.seed) for r in seeds] == [("basic", 0), ("dsd", 0), ("basic", 1), ("dsd", 1)]
    # the training seed varies; the data split has its own seed in the dataset facts and stays fixed
    assert [r.train_overrides["seed"] for r in seeds if r.setting == "basic"] == [0, 1]
    assert all(not any(k.startswith("dataset") and k != "dataset_dir" for k in r.train_overrides) for r in seeds)


def test_wilcoxon_paired_edge_cases():
    from scipy.stats import wilcoxon

    a, b = np.array([0.9, 0.8, 0.85, 0.7, 0.95, 0.6, 0.75]), np.array([0.8, 0.7, 0.86, 0.6, 0.9, 0.5, 0.7])
    r = wilcoxon_paired(a, b)
    assert r["n"] == 7 and r["p"] == pytest.approx(wilcoxon(a, b).pvalue) and r["note"] == ""
    tied = wilcoxon_paired([0.5, 0.6], [0.5, 0.6])
    assert tied["p"] == 1.0 and "tied" in tied["note"]
    empty = wilcoxon_paired([np.nan], [0.3])
    assert empty["p"] is None and empty["n"] == 0 and "dropped" in empty["note"] and "no paired" in empty["note"]
    few = wilcoxon_paired([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    assert few["p"] is not None and few["p"] >= 0.05 and "cannot reach p < 0.05" in few["note"]


def _mtimes(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.name in ("done.json", "model.pt")}


def test_cli_baseline_vs_dsd_end_to_end_and_resume(data, tmp_path):
    out = tmp_path / "studies"
    cmd = [command("dsd-study"), "baseline_vs_dsd", "--bundles",
           "hippocampus_nnunet_dsd", "--dataset_dir", str(data / "hippocampus"), "--out_dir", str(out),
           "--net", json.dumps(TINY), "--threads", "2", "--tracking", "mlflow"] + [f"--{k}={v}" for k, v in FAST.items()]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "executed 2 run(s), 2/2 finished" in first.stdout
    sdir = out / "baseline_vs_dsd"
    for f in ("results.csv", "runs.csv", "summary.csv", "stats.csv", "report.md", "plan.json",
              "dice_hippocampus_nnunet_dsd.png", "curves_hippocampus_nnunet_dsd.png"):
        assert (sdir / f).is_file() and (sdir / f).stat().st_size > 0, f
    with open(sdir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["setting"] for r in rows} == {"basic", "dsd"}
    assert {r["class"] for r in rows} == {"anterior", "posterior", "mean"}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows if r["dice"] != "nan")
    with open(sdir / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [r["status"] for r in runs] == ["done", "done"]
    basic, dsd = runs
    assert float(dsd["params_train_M"]) > float(dsd["params_backbone_M"]) == float(basic["params_train_M"])
    assert float(basic["s_per_epoch"]) > 0
    report = (sdir / "report.md").read_text()
    assert "| Setting | n | anterior | posterior | mean |" in report
    assert "dsd vs basic" in report and "p=" in report and "One training run per setting" in report
    assert "cannot reach p < 0.05" in report  # one validation case: the test says it cannot be significant
    for run in (out / "runs" / "hippocampus_nnunet_dsd").iterdir():  # reproducible with plain monai.bundle run
        assert json.loads((run / "train_args.json").read_text())["bundle_root"] == str(run / "bundle")
        assert (run / "bundle" / "models" / "model.pt").is_file() and (run / "eval" / "per_case_metrics.csv").is_file()

    # one MLflow experiment named after the study: each run's training and evaluation, labelled with its settings
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    exp = client.get_experiment_by_name("baseline_vs_dsd")
    logged = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    ids = sorted(p.parent.name for p in (out / "runs" / "hippocampus_nnunet_dsd").glob("*/done.json"))
    assert sorted(logged) == sorted(f"hippocampus_nnunet_dsd/{i} {stage}" for i in ids for stage in ("train", "eval"))
    for name, r in logged.items():
        assert r.info.status == "FINISHED"
        assert name.split("/")[1].startswith(r.data.params["dsd_mode"] + "-fold0-seed0-"), (name, r.data.params)
        assert ("loss_main" in r.data.metrics) == name.endswith(" train")
        assert ("mean_dice" in r.data.metrics) == name.endswith(" eval")
    assert "loss_kl_dec" in logged[next(n for n in logged if "/dsd-" in n and n.endswith(" train"))].data.metrics

    before = _mtimes(out)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "executed 0 run(s), 2/2 finished" in second.stdout
    # per run: done.json, models/model.pt and the training run's own models/runs/<time>/model.pt; none rewritten
    assert _mtimes(out) == before and len(before) == 6
    assert len(client.search_runs([exp.experiment_id])) == 4  # nothing re-run, nothing re-logged


def test_cv_and_capacity_in_process_share_runs(data, tmp_path):
    kw = dict(out_dir=tmp_path, dataset_dir=str(data / "mmwhs"), net=TINY, overrides=FAST, runner="inprocess",
              threads=2, log=lambda s: None)
    cv = run_study("cv", "mmwhs_nnunet_dsd", folds="0,1", **kw)
    assert not cv["failed"], [(tmp_path / "runs" / f / "failed.txt").read_text() for f in cv["failed"]]
    assert cv["executed"] == 4
    report = (tmp_path / "cv" / "report.md").read_text()
    assert "| basic | " in report and "f0/s0 | f1/s0 | mean ± std over runs" in report
    assert "(runs=2)" in report and "dsd vs basic" in report and "myocardium" in report
    with open(tmp_path / "cv" / "per_run.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    # capacity's "large_dsd" run is cv's fold-0 "dsd" run (same overrides): only the small one trains
    cap_kw = dict(small_net={"filters": [2, 4, 4, 8, 8]}, settings="small_dsd,large_dsd", **kw)
    cap = run_study("capacity", "mmwhs_nnunet_dsd", **cap_kw)
    assert cap["executed"] == 1 and cap["finished"] == 2
    with open(tmp_path / "capacity" / "runs.csv") as f:
        params = {r["setting"]: (float(r["params_backbone_M"]), float(r["params_train_M"])) for r in csv.DictReader(f)}
    assert params["small_dsd"][0] < params["large_dsd"][0]
    assert params["small_dsd"][1] > params["small_dsd"][0]
    rep = (tmp_path / "capacity" / "report.md").read_text()
    assert "s / epoch" in rep and "large_dsd vs small_dsd" in rep
    # resume: nothing left to do
    assert run_study("capacity", "mmwhs_nnunet_dsd", **cap_kw)["executed"] == 0


def test_plot_qualitative(data, tmp_path):
    img = data / "mmwhs" / "ct_train_1001_image.nii.gz"
    lab = data / "mmwhs" / "ct_train_1001_label.nii.gz"
    raw = np.asarray(nib.load(lab).dataobj).astype(int)
    mapped = np.zeros_like(raw)
    for i, v in enumerate((205, 420, 500, 550, 600, 820, 850), start=1):
        mapped[raw == v] = i
    affine = nib.load(lab).affine
    good, bad = mapped.copy(), np.roll(mapped, 3, axis=0)
    preds = {}
    for name, arr in (("baseline", bad), ("DSD", good)):
        p = tmp_path / f"{name}_seg.nii.gz"
        nib.save(nib.Nifti1Image(arr.astype(np.uint8), affine), str(p))
        preds[name] = str(p)
    out = plot_qualitative(str(img), str(lab), preds=json.dumps(preds), out=str(tmp_path / "fig.png"))
    assert Path(out).is_file() and Path(out).stat().st_size > 5000
    assert dice_3d(good, mapped, 7) == 1.0 and dice_3d(bad, mapped, 7) < 1.0
    k = best_slice(mapped, 2)
    assert (mapped[:, :, k] > 0).sum() == max((mapped[:, :, i] > 0).sum() for i in range(mapped.shape[2]))
    with pytest.raises(UsageError, match="2 file"):
        plot_qualitative(str(img), str(lab), preds={"y": "a,b"}, out="x.png")
