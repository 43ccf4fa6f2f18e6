"""Smoke test of ``dsd-bench`` (dsd_tools.bench): every benchmark in its smallest setting, so the script cannot rot.

Asserts structure and finite numbers only, never timing targets (those are in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json
import math

import pytest

from dsd_tools import bench as bench_module


@pytest.fixture(scope="module")
def bench():
    return bench_module


def _finite_positive(*xs):
    for x in xs:
        assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, xs


def test_train_and_breakdown(bench, tmp_path, capsys):
    out = tmp_path / "train.json"
    res = bench.train(pairings="hippocampus_nnunet_dsd", size=32, batch=1, steps=1, warmup=0, tiny=True, out=str(out))
    assert json.loads(out.read_text())["benchmark"] == "train"
    assert "command" in res["machine"]
    (row,) = res["results"]
    _finite_positive(row["dsd_step_s"], row["backbone_step_s"], row["step_ratio"], row["step_cpu_ratio"])
    assert row["params"]["dsd"] > row["params"]["backbone"]
    saved = row["saved_activations_MiB"]
    assert saved["dsd"]["backbone"] == pytest.approx(saved["backbone"]["backbone"], rel=1e-6)
    assert {"backbone", "heads", "loss"} <= set(saved["dsd"]) and row["fused_loss"] is True
    comp = row["components_s"]
    _finite_positive(*comp.values(), row["overhead_model_ratio"], row["step_ratio_of_mins"])
    assert row["overhead_model_ratio"] > 1  # heads and the extra loss terms cost something
    bd = row["breakdown_dsd_s"]
    assert {"backbone_fwd", "heads_fwd", "loss_fwd", "backward", "optimizer"} <= set(bd)
    assert all(math.isfinite(v) for v in bd.values())
    assert json.loads(capsys.readouterr().out)["results"][0]["pairing"] == "hippocampus_nnunet"
    # the composed loss (--fused false) keeps more for backward than the fused one, on the same input
    (composed,) = bench.train(pairings="hippocampus_nnunet", size=32, batch=1, steps=1, warmup=0, tiny=True,
                              fused=False)["results"]
    assert composed["fused_loss"] is False
    assert composed["saved_activations_MiB"]["dsd"]["loss"] > 2 * saved["dsd"]["loss"]


def test_memory_subprocess(bench):
    res = bench.memory(pairings="hippocampus_nnunet", size=32, batch=1, steps=1, tiny=True, threads=1)
    (row,) = res["results"]
    _finite_positive(row["dsd_peak_MiB"], row["backbone_peak_MiB"], row["peak_ratio"])


def test_inference_is_the_backbone(bench):
    res = bench.inference(pairings="hippocampus_nnunet", size=32, repeats=1, tiny=True)
    (row,) = res["results"]
    _finite_positive(row["dsd_eval_s"], row["backbone_s"], row["ratio"])
    assert row["max_abs_output_diff"] == 0.0
    assert row["params_deployed"] == row["params_backbone"] < row["params_dsd_training"]
    assert row["deployed_state_dict_equals_backbone"]


def test_data_pipeline(bench, tmp_path):
    res = bench.data(bundles="hippocampus_nnunet_dsd", data_dir=str(tmp_path), num_cases=3, epochs=1,
                     real_size=False, workers=0)
    (row,) = res["results"]
    assert row["cases"] >= 1
    rates = {k: v for k, v in row.items() if k.endswith("_per_s")}
    assert {"dataset_cases_per_s", "cache_cases_per_s", "cache_fgbg_cases_per_s", "threaddataloader_w0_cases_per_s"} <= set(rates)
    _finite_positive(*rates.values())
    assert row["cache_patches_per_s"] == pytest.approx(row["cache_cases_per_s"] * row["num_samples"], rel=1e-3)


def test_gpu_suite_runs_on_cpu(bench, tmp_path):
    out = tmp_path / "gpu.json"
    # no time budget: on a loaded CI machine the default 150 s would skip configurations, which is the budget working
    res = bench.gpu(out=str(out), device="cpu", tiny=True, steps=1, warmup=0, pairings="mmwhs_nnunet", budget_s=1e6,
                    data_bundle="mmwhs_nnunet_dsd", data_cases=3, data_dir=str(tmp_path / "data"))
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "gpu" and not saved["skipped"]
    assert len(res["train"]) == 5  # amp x cudnn.benchmark with the fused loss, plus AMP + benchmark composed
    configs = {(r["amp"], r["cudnn_benchmark"], r["fused_loss"]) for r in res["train"]}
    assert configs == {(a, b, True) for a in (True, False) for b in (True, False)} | {(True, True, False)}
    for r in res["train"]:
        _finite_positive(r["dsd_step_s"], r["backbone_step_s"], r["step_ratio"])
    (inf,) = res["inference"]
    assert inf["deployed_state_dict_equals_backbone"]
    (est,) = res["epoch_estimates"]
    assert est["cases_per_epoch"] == 16 and est["epochs"] == 300
    _finite_positive(est["train_epoch_s"], est["schedule_h"])
    assert "dsd_steps_per_s" in res["data"] and res["data"]["loader_keeps_up"]
