"""MLflow for real: a bundle trained with MONAI's own ``--tracking mlflow`` into a temporary SQLite store, read back
through MLflow's own client: the run's DSD and training settings as params, each DSD loss term as a metric, and an
evaluation run labelled with the same settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.bundles import copy_bundle, parse, tiny_overrides

from dsd_tools.demo_data import make_demo_data
from dsd_tools.paths import config_file_arg, config_files

mlflow = pytest.importorskip("mlflow")

NAME = "hippocampus_nnunet_dsd"
# non-default settings, so the params read back must come from this run's overrides
SETTINGS = {"dsd_mode": "dsd", "dsd_lambda": 0.5, "dsd_alpha": 0.25, "dsd_beta": 2.0, "temperature": 2.0, "fold": 0,
            "seed": 3, "learning_rate": 0.002, "num_epochs": 1, "val_interval": 1, "num_samples": 2}


def _cli(over: dict) -> list[str]:
    return [x for k, v in over.items() for x in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]


def test_train_and_evaluate_log_settings_and_loss_terms(tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    data = make_demo_data("hippocampus", str(tmp_path / "data"), num_cases=6, size=(24, 24, 24), seed=0)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlruns.db'}"
    (tmp_path / "store").mkdir()
    common = {**tiny_overrides(NAME), "dataset_dir": data, "num_workers": 0, "tracking": "mlflow",
              "tracking_uri": uri, "experiment_name": "dsd_ablation"}
    run = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    train = subprocess.run([*run, str(bundle / "configs" / "train.json"),
                            *_cli({**common, **SETTINGS, "run_name": "train"})],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    evaluate = subprocess.run([*run, config_file_arg(config_files(bundle, "evaluate.json")),
                               *_cli({**common, **SETTINGS, "eval_split": "validation", "run_name": "eval",
                                      "output_dir": str(tmp_path / "eval")})],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("dsd_ablation")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == ["eval", "train"]
    tr, ev = runs["train"], runs["eval"]
    assert tr.info.status == ev.info.status == "FINISHED"
    expected = {"bundle": NAME, "network": "DynUNet", "dataset": "hippocampus", "dsd_mode": "dsd", "dsd_lambda": "0.5",
                "dsd_alpha": "0.25", "dsd_beta": "2.0", "temperature": "2.0", "fold": "0", "seed": "3",
                "learning_rate": "0.002", "num_epochs": "1", "patch_size": "[32, 32, 32]", "num_samples": "2",
                "val_interval": "1", "dataset_dir": data}
    assert {k: tr.data.params.get(k) for k in expected} == expected
    assert {k: ev.data.params.get(k) for k in expected} == expected and ev.data.params["eval_split"] == "validation"

    # each loss term per iteration, and the total MONAI logs is their weighted sum (weights from SETTINGS)
    rid = tr.info.run_id
    history = {k: {m.step: m.value for m in client.get_metric_history(rid, k)}
               for k in ("train_loss", "loss_main", "loss_ds", "loss_kl_enc", "loss_kl_dec")}
    steps = sorted(history["train_loss"])
    n_train = len(parse(bundle, "train.json", dataset_dir=data).get_parsed_content("datalists")["training"])
    assert steps == list(range(1, n_train + 1))  # one iteration per training case (batch size 1)
    assert all(sorted(h) == steps for h in history.values()), {k: sorted(h) for k, h in history.items()}
    for s in steps:
        total = (history["loss_main"][s] + 0.5 * history["loss_ds"][s] + 0.25 * history["loss_kl_enc"][s]
                 + 2.0 * history["loss_kl_dec"][s])
        assert history["train_loss"][s] == pytest.approx(total, rel=1e-4)
    for k in ("main", "ds", "kl_enc", "kl_dec"):
        assert tr.data.metrics[f"epoch_loss_{k}"] == pytest.approx(
            sum(history[f"loss_{k}"].values()) / len(steps), rel=1e-5)
    assert 0.0 <= tr.data.metrics["val_mean_dice"] <= 1.0
    assert 0.0 <= ev.data.metrics["mean_dice"] <= 1.0 and "mean_hd95" in ev.data.metrics
