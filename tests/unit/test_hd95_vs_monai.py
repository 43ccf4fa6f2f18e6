"""HD95 in millimetres on anisotropic voxels: our metric (spacing read from the image's affine) against MONAI's own
``compute_hausdorff_distance(..., spacing=...)`` and against distances worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.metrics import compute_hausdorff_distance

from dsd_components.metrics import HausdorffDistanceMM

SPACING = (0.7, 1.3, 3.0)  # mm per voxel along x, y, z: strongly anisotropic, as MMWHS/BraTS volumes can be
AFFINE = torch.diag(torch.tensor([*SPACING, 1.0], dtype=torch.float64))


def _onehot(labels: np.ndarray, classes: int) -> MetaTensor:
    """(C, H, W, D) one-hot MetaTensor carrying the anisotropic affine, as the evaluator hands it to the metric."""
    x = torch.as_tensor(labels).long()
    oh = torch.stack([(x == c) for c in range(classes)]).float()
    return MetaTensor(oh, affine=AFFINE.clone())


def _score(pred: MetaTensor, label: MetaTensor) -> torch.Tensor:
    m = HausdorffDistanceMM(include_background=False, percentile=95, reduction="none")
    m([pred], [label])  # list of cases, exactly as MONAI's IgniteMetricHandler calls it
    return m.aggregate()


def test_single_voxel_distance_is_euclidean_in_mm():
    """One voxel per class: every percentile of the surface distance is the one distance between them."""
    shape = (12, 12, 12)
    pred, label = np.zeros(shape, int), np.zeros(shape, int)
    pred[2, 3, 4], label[5, 3, 6] = 1, 1  # class 1: 3 voxels in x, 2 in z
    pred[8, 8, 8], label[8, 10, 8] = 2, 2  # class 2: 2 voxels in y
    got = _score(_onehot(pred, 3), _onehot(label, 3))
    expected = [math.hypot(3 * 0.7, 2 * 3.0), 2 * 1.3]  # 6.3891 mm, 2.6 mm (in voxels: 3.606, 2)
    assert got.shape == (1, 2)
    assert got[0].tolist() == pytest.approx(expected, abs=1e-4)


# MONAI 1.6's own compute_hausdorff_distance passes get_mask_edges' deprecated argument (our metric silences it itself)
@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_blobs_match_monai_with_spacing_and_differ_from_voxels():
    rng = np.random.default_rng(0)
    shape = (24, 20, 10)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    label = np.zeros(shape, int)
    label[(zz - 12) ** 2 + (yy - 10) ** 2 + ((xx - 5) * 2) ** 2 < 40] = 1
    label[2:8, 3:9, 1:4] = 2
    pred = label.copy()
    pred[rng.random(shape) < 0.03] = 1  # scattered false positives
    pred[2:8, 3:9, 1:2] = 0  # class 2 loses a slab along z
    p, y = _onehot(pred, 3), _onehot(label, 3)
    ours = _score(p, y)
    monai_mm = compute_hausdorff_distance(p.as_tensor()[None], y.as_tensor()[None], include_background=False,
                                          percentile=95, spacing=list(SPACING))
    monai_vox = compute_hausdorff_distance(p.as_tensor()[None], y.as_tensor()[None], include_background=False,
                                           percentile=95)
    assert torch.allclose(ours, monai_mm.float(), atol=1e-4), (ours, monai_mm)
    assert not torch.allclose(ours, monai_vox.float(), atol=1e-2)  # spacing really was applied
    assert float(ours[0, 1]) == pytest.approx(3.0, abs=1e-4)  # one missing slice along z is one 3 mm step


def test_explicit_spacing_wins_over_the_affine():
    pred, label = np.zeros((8, 8, 8), int), np.zeros((8, 8, 8), int)
    pred[1, 1, 1], label[1, 1, 3] = 1, 1
    m = HausdorffDistanceMM(include_background=False, percentile=95)
    got = m._compute_tensor(_onehot(pred, 2)[None], _onehot(label, 2)[None], spacing=[1.0, 1.0, 1.0])
    assert float(got) == pytest.approx(2.0, abs=1e-4)
