"""Feedback from a training run: TensorBoard scalars in the run's logs/, and evaluation's PNG of the curves."""

from __future__ import annotations

import json

import pytest
from support.bundles import BUNDLES, ROOT

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
    evaluate = json.loads((ROOT / "bundles" / name / "configs" / "evaluate.json").read_text())
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


def test_mlflow_tracking_settings_match_our_ids():
    """`python -m monai.bundle run ... --tracking mlflow` patches these ids; keep them in sync with MONAI."""
    from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

    ids = DEFAULT_MLFLOW_SETTINGS["handlers_id"]
    assert ids["trainer"] == {"id": "train#trainer", "handlers": "train#handlers"}
    assert ids["validator"] == {"id": "validate#evaluator", "handlers": "validate#handlers"}
    assert ids["evaluator"] == {"id": "evaluator", "handlers": "handlers"}
