"""Evaluation numbers on hand-built volumes whose answers are known: HD95 in millimetres on anisotropic voxels (and
in voxels), the summaries and the per-case / per-class CSVs, cell by cell."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from dsd_components import metrics
from dsd_components.metrics import HausdorffDistanceMM, PerClassCSV, summarize

SPACING = (0.5, 1.0, 2.5)  # mm along x, y, z: every axis different, so a mix-up of axes or units shows
SHAPE = (16, 16, 12)


def _one_hot(points: dict[int, tuple[int, int, int]], classes: int = 4) -> MetaTensor:
    """A (C, x, y, z) one-hot volume holding one voxel of each class in ``points`` (background elsewhere), on a grid
    with SPACING (its affine, as LoadImage would give it)."""
    label = torch.zeros(SHAPE, dtype=torch.long)
    for c, p in points.items():
        label[p] = c
    onehot = torch.nn.functional.one_hot(label, classes).permute(3, 0, 1, 2).float()
    return MetaTensor(onehot, affine=torch.diag(torch.tensor([*SPACING, 1.0], dtype=torch.float64)))


# class 1 moved 6 voxels along x (0.5 mm): 3 mm; class 2 moved 2 voxels along z (2.5 mm): 5 mm; class 3 only in the
# label (no prediction): no distance
LABEL = {1: (4, 8, 6), 2: (8, 4, 3), 3: (12, 12, 9)}
PRED = {1: (10, 8, 6), 2: (8, 4, 5)}


def _hd95(unit: str, **kwargs) -> list[float]:
    metric = HausdorffDistanceMM(include_background=False, percentile=95, reduction="mean", unit=unit)
    metric(y_pred=[_one_hot(PRED)], y=[_one_hot(LABEL)], **kwargs)  # per case, as the Ignite handler passes them
    return metric.get_buffer()[0].tolist()


def test_hd95_is_in_millimetres_of_each_axis():
    mm = _hd95("mm")
    assert mm[:2] == pytest.approx([3.0, 5.0]) and math.isnan(mm[2])


def test_hd95_in_voxels_and_an_explicit_spacing():
    vox = _hd95("voxel")
    assert vox[:2] == pytest.approx([6.0, 2.0]) and math.isnan(vox[2])
    # a spacing passed by the caller wins over the tensor's
    assert _hd95("mm", spacing=[2.0, 2.0, 2.0])[:2] == pytest.approx([12.0, 4.0])
    # a diagonal move: sqrt((3 x 0.5)^2 + (4 x 1.0)^2 + (2 x 2.5)^2)
    metric = HausdorffDistanceMM(include_background=False, percentile=95)
    metric(y_pred=[_one_hot({1: (5, 6, 4)}, 2)], y=[_one_hot({1: (2, 2, 2)}, 2)])
    assert float(metric.aggregate()) == pytest.approx(math.sqrt(1.5**2 + 4.0**2 + 5.0**2))


def test_hd95_unit_is_checked():
    with pytest.raises(ValueError, match="unit 'cm': use 'mm' or 'voxel'"):
        HausdorffDistanceMM(unit="cm")


def test_summarize_leaves_absent_structures_out():
    s = summarize(np.array([1.0, np.nan, 3.0, np.inf]))
    assert s == {"mean": 2.0, "std": 1.0, "median": 2.0, "n": 2}
    assert summarize(np.array([4.0, 1.0, 2.0]))["median"] == 2.0  # the median, not the mean (7/3)
    empty = summarize(np.array([np.nan, np.nan]))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "std", "median"))


# metric details of two cases x two classes, as MONAI's metric handlers store them
DETAILS = {"mean_dice": [[0.5, 1.0], [math.nan, 0.25]], "hd": [[2.0, 4.0], [math.nan, math.nan]]}


def _image(*names: str) -> MetaTensor:
    return MetaTensor(torch.zeros(len(names), 1, 2, 2, 2), meta={"filename_or_obj": list(names)})


def _evaluate(writer: PerClassCSV, batches: list, details: dict = DETAILS) -> Engine:
    """An evaluator stand-in: iterates ``batches`` and leaves ``details`` where MONAI's handlers leave them."""
    engine = Engine(lambda e, batch: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def _details(e):
        e.state.metric_details = {k: torch.tensor(v) for k, v in details.items()}

    writer.attach(engine)
    engine.run(batches, max_epochs=1)
    return engine


def _rows(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_per_case_and_summary_csvs_cell_by_cell(tmp_path, caplog):
    out = tmp_path / "eval"
    writer = PerClassCSV(out, ["lv", "rv"], ["mean_dice", "hd", "not_computed"], prefix="regions_")
    caplog.set_level(logging.INFO)
    # a decollated batch (a list of items) and then a collated one (one image, its file names in a list)
    _evaluate(writer, [[{"image": _image("/data/a/case_a.nii.gz")}], {"image": _image("/data/b/case_b.nii.gz")}])
    assert _rows(out / "regions_per_case_metrics.csv") == [
        ["case", "mean_dice_lv", "mean_dice_rv", "hd_lv", "hd_rv", "mean_dice_mean", "hd_mean"],
        ["case_a.nii.gz", "0.5000", "1.0000", "2.0000", "4.0000", "0.7500", "3.0000"],
        ["case_b.nii.gz", "nan", "0.2500", "nan", "nan", "0.2500", "nan"],
    ]
    assert _rows(out / "regions_summary.csv") == [
        ["metric", "class", "mean", "std", "median", "n"],
        ["mean_dice", "lv", "0.5000", "0.0000", "0.5000", "1"],
        ["mean_dice", "rv", "0.6250", "0.3750", "0.6250", "2"],
        ["mean_dice", "mean", "0.5000", "0.2500", "0.5000", "2"],
        ["hd", "lv", "2.0000", "0.0000", "2.0000", "1"],
        ["hd", "rv", "4.0000", "0.0000", "4.0000", "1"],
        ["hd", "mean", "3.0000", "0.0000", "3.0000", "1"],
    ]
    assert sorted(p.name for p in out.iterdir()) == ["regions_per_case_metrics.csv", "regions_summary.csv"]
    assert (f"wrote {out / 'regions_per_case_metrics.csv'} and {out / 'regions_summary.csv'} (2 case(s))"
            in caplog.text)


def test_csv_rows_without_a_file_name_and_a_second_epoch(tmp_path):
    writer = PerClassCSV(tmp_path, ["lv", "rv"], ["hd"])
    # three rows of details, one named case, one item without image metadata, one without any item: numbered
    engine = _evaluate(writer, [{"image": _image("/d/only.nii.gz")}, {"other": 1}], {"hd": [*DETAILS["hd"], [1, 1]]})
    assert [r[0] for r in _rows(tmp_path / "per_case_metrics.csv")] == ["case", "only.nii.gz", "case_1", "case_2"]
    # the file list starts again each evaluation (the evaluator runs once per validation)
    engine.run([{"image": _image("/d/x.nii.gz")}, {"image": _image("/d/y.nii.gz")}], max_epochs=2)
    assert [r[0] for r in _rows(tmp_path / "per_case_metrics.csv")] == ["case", "x.nii.gz", "y.nii.gz", "case_2"]


def test_no_details_no_files(tmp_path):
    writer = PerClassCSV(tmp_path / "eval", ["lv"], ["mean_dice"])
    _evaluate(writer, [{"image": _image("/d/a.nii.gz")}], {"other_metric": [[1.0]]})
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("rank", [0, 1])
def test_under_ddp_rank_0_writes_every_ranks_cases(rank, tmp_path, monkeypatch):
    """MONAI gathers the metric details; the file names are gathered here and rank 0 alone writes."""
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: rank)
    monkeypatch.setattr(metrics, "string_list_all_gather", lambda names: names + ["from_rank_1.nii.gz"])
    writer = PerClassCSV(tmp_path, ["lv", "rv"], ["mean_dice"])
    _evaluate(writer, [{"image": _image("/d/from_rank_0.nii.gz")}], {"mean_dice": DETAILS["mean_dice"]})
    if rank:
        assert list(tmp_path.iterdir()) == []
    else:
        assert [r[0] for r in _rows(tmp_path / "per_case_metrics.csv")] == ["case", "from_rank_0.nii.gz",
                                                                           "from_rank_1.nii.gz"]


def test_file_names_from_meta_dicts_single_names_and_other_items(tmp_path):
    """Case names also come from a ``image_meta_dict`` beside a plain tensor (MONAI's older metadata style) and from a
    single file name that is not in a list; an item that is not a dict gives an unnamed (numbered) row; the output
    folder is made with its parents."""
    out = tmp_path / "nested" / "eval"
    writer = PerClassCSV(out, ["lv", "rv"], ["hd"])
    plain = {"image": torch.zeros(1, 1, 2, 2, 2), "image_meta_dict": {"filename_or_obj": ["/d/from_dict.nii.gz"]}}
    single = {"image": MetaTensor(torch.zeros(1, 2, 2, 2), meta={"filename_or_obj": "/d/single.nii.gz"})}
    _evaluate(writer, [plain, [single, torch.zeros(1)]], {"hd": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]})
    assert [r[0] for r in _rows(out / "per_case_metrics.csv")] == ["case", "from_dict.nii.gz", "single.nii.gz",
                                                                   "case_2"]


def test_hd95_takes_monais_positional_arguments():
    """``HausdorffDistanceMM`` is a drop-in ``HausdorffDistanceMetric``: positional arguments keep their meaning."""
    metric = HausdorffDistanceMM(True, "chessboard", 95, unit="voxel")
    assert (metric.include_background, metric.distance_metric, metric.percentile) == (True, "chessboard", 95)
