"""Feedback from a training run: TensorBoard scalars in the run's logs/, and evaluation's PNG of the curves."""

from __future__ import annotations

import json

import pytest
from monai.bundle import ConfigParser
from support.bundles import BUNDLES, ROOT

from dsd_tools.paths import config_files

from dsd_components.plots import plot_training_curves, read_scalars


def _write_events(log_dir, n_iter=6, n_val=3):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(log_dir))
    for i in range(1, n_iter + 1):
        w.add_scalar("train_loss", 1.0 / i, i)
    for e in range(1, n_val + 1):
        w.add_scalar("val_mean_dice", 0.2 * e, e)
    w.close()


def test_plot_training_curves_from_tensorboard_events(tmp_path):
    _write_events(tmp_path / "logs")
    scalars = read_scalars(tmp_path / "logs")
    assert [s for s, _ in scalars["train_loss"]] == list(range(1, 7))
    assert scalars["val_mean_dice"][-1] == (3, pytest.approx(0.6))
    png = plot_training_curves(tmp_path / "logs", tmp_path / "eval" / "training_curves.png")
    data = (tmp_path / "eval" / "training_curves.png").read_bytes()
    assert png and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_no_events_no_plot(tmp_path):
    assert plot_training_curves(tmp_path / "missing", tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("name", BUNDLES)
def test_evaluate_plots_and_train_logs_per_run(name):
    train = json.loads((ROOT / "bundles" / name / "configs" / "train.json").read_text())
    # evaluate.json as MONAI reads it: layered on train.json
    evaluate = ConfigParser.load_config_files(config_files(ROOT / "bundles" / name, "evaluate.json"))
    # training logs into its own run folder; evaluation plots the logs of the run its model comes from
    assert train["log_dir"] == "$@training_run.log_dir"
    assert evaluate["log_dir"] == "$(@model_run or @bundle_root) + '/logs'"
    tb = [h for h in train["train"]["handlers"] + train["validate"]["handlers"] if h["_target_"] == "TensorBoardStatsHandler"]
    assert len(tb) == 2 and all(h["log_dir"] == "@log_dir" for h in tb)
    assert any("plot_training_curves(@log_dir" in f for f in evaluate["finalize"])
    # MONAI's `--tracking mlflow` finds its handler lists under its default ids
    assert isinstance(train["train"]["handlers"], list) and isinstance(train["validate"]["handlers"], list)
    assert "trainer" in train["train"] and "evaluator" in train["validate"]
    assert isinstance(evaluate["handlers"], list) and "evaluator" in evaluate
    assert evaluate["run"] == ["$@evaluator.run()"]  # evaluation runs its own evaluator, not training's validator
    # our MLflow details (settings as params, loss terms as metrics) ride on both engines MONAI tracks
    details = "dsd_components.tracking.MLflowRunDetails"
    assert [h for h in train["train"]["handlers"] if h["_target_"] == details] == [
        {"_target_": details, "params": "@run_params", "loss": "@loss"}]
    assert [h["_target_"] for h in evaluate["handlers"]].count(details) == 1
