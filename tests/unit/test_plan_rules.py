"""The planner's rules (dsd_tools.plan.rules) against nnU-Net's.

Expected values come from three independent places, never from planner.py itself:
  * hand computation (written out in the comments),
  * published nnU-Net plans (Hippocampus: github.com/MIC-DKFZ/nnUNet/issues/148, patch [40, 56, 40], batch 9,
    strides [2,2,2] x 3, median [36, 50, 35]),
  * the real nnU-Net v2 ExperimentPlanner, run beside the planner once (values frozen below: docs/PLANNING.md),
  * MONAI / PyTorch themselves (hooks counting real conv outputs, real forward passes), scikit-learn's KFold
    (values frozen below).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import dsd_tools.plan.rules as P

# --------------------------------------------------------------------------------------------------------------
# target spacing
# --------------------------------------------------------------------------------------------------------------


def test_target_spacing_is_median_when_isotropic():
    sp = [(1.0, 1.0, 1.0), (1.0, 1.0, 1.2), (1.0, 1.0, 1.4)]
    sh = [(100, 100, 100)] * 3
    assert P.target_spacing(sp, sh) == pytest.approx((1.0, 1.0, 1.2))


def test_anisotropy_rule_takes_10th_percentile():
    # (0.7, 0.7, z) with z in {2.5, 3, 4, 5 x4, 6 x3}: median z = 5 > 3 * 0.7 and median z-size 40 * 3 < 512.
    # sorted z: 2.5 3 4 5 5 5 5 6 6 6; 10th percentile (linear): position 0.1 * 9 = 0.9 -> 2.5 + 0.9 * 0.5 = 2.95
    zs = [2.5, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0]
    sp = [(0.7, 0.7, z) for z in zs]
    sh = [(512, 512, 40)] * len(zs)
    assert P.target_spacing(sp, sh) == pytest.approx((0.7, 0.7, 2.95))


def test_anisotropic_spacing_but_many_slices_keeps_median():
    # 5.0 > 2.1 but 200 slices * 3 = 600 >= 512 in-plane: the voxel condition fails -> plain median
    sp = [(0.7, 0.7, 5.0)] * 5
    sh = [(512, 512, 200)] * 5
    assert P.target_spacing(sp, sh) == pytest.approx((0.7, 0.7, 5.0))


def test_anisotropy_never_goes_below_other_axes():
    # 10th percentile of [0.5, 0.5, 5 x 8] is 0.5 < 0.7 -> max(other spacings) + 1e-5
    sp = [(0.7, 0.7, 0.5)] * 2 + [(0.7, 0.7, 5.0)] * 8
    sh = [(512, 512, 40)] * 10
    assert P.target_spacing(sp, sh) == pytest.approx((0.7, 0.7, 0.70001), abs=1e-9)


def test_exactly_three_times_is_not_anisotropic():
    sp = [(1.0, 1.0, 3.0)] * 3
    sh = [(300, 300, 10)] * 3
    assert P.target_spacing(sp, sh) == pytest.approx((1.0, 1.0, 3.0))


def test_resampled_shape_mmwhs_to_paper_spacing():
    # 512 * 0.4 / 1.5 = 136.53 -> 137 ; 200 * 0.6 / 2.0 = 60
    assert P.resampled_shape((512, 512, 200), (0.4, 0.4, 0.6), (1.5, 1.5, 2.0)) == (137, 137, 60)


def test_median_resampled_shape_is_median_of_resampled_cases():
    sp = [(1.0, 1.0, 2.0), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)]
    sh = [(10, 10, 10), (10, 10, 30), (10, 10, 50)]
    # resampled to (1,1,1): z sizes 20, 30, 50 -> median 30 (the median of raw shapes would be 30 too, but of
    # spacing-scaled ones: check a case where they differ)
    assert P.median_resampled_shape(sp, sh, (1.0, 1.0, 1.0)) == (10.0, 10.0, 30.0)
    sh2 = [(10, 10, 40), (10, 10, 30), (10, 10, 35)]
    # to (1,1,2): z = 2/2*40 = 40, 1/2*30 = 15, 1/2*35 = 17.5 -> 18 (round half to even); median 18.
    # (the resampled median of the raw-median case (35 at 1 mm) would be the same here, 18, but x/y stay 10)
    assert P.median_resampled_shape(sp, sh2, (1.0, 1.0, 2.0)) == (10.0, 10.0, 18.0)


# --------------------------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------------------------

CT_STATS = P.ChannelIntensity(mean=120.0, std=200.0, percentile_00_5=-900.0, percentile_99_5=1500.0)


def test_ct_normalization_values():
    n = P.normalization("CT", CT_STATS)
    assert n.scheme == "CTNormalization"
    assert n.clip == (-900.0, 1500.0) and n.mean == 120.0 and n.std == 200.0
    assert n.use_mask_for_norm is False
    assert P.normalization("ct", CT_STATS, 0.2).use_mask_for_norm is False  # CT is never masked


def test_ct_normalization_needs_statistics():
    with pytest.raises(ValueError):
        P.normalization("CT", None)


@pytest.mark.parametrize("name", ["MRI", "FLAIR", "T1w", "t1gd", "T2w", "ADC", "T2", "anything"])
def test_other_names_are_zscore(name):
    n = P.normalization(name)
    assert n.scheme == "ZScoreNormalization" and n.use_mask_for_norm is False and n.clip is None


def test_zscore_uses_mask_only_after_strong_cropping():
    assert P.normalization("FLAIR", None, 0.36).use_mask_for_norm is True    # BraTS-like
    assert P.normalization("FLAIR", None, 0.75).use_mask_for_norm is False   # threshold is strict "< 3/4"
    assert P.normalization("noNorm", None, 0.1).scheme == "NoNormalization"
    assert P.normalization("rescale_to_0_1").scheme == "RescaleTo01Normalization"


def test_ct_monai_transform_equals_clip_then_zscore():
    from monai.bundle import ConfigParser
    n = P.normalization("CT", CT_STATS)
    cfg = n.monai_transform("image")
    t = ConfigParser({"t": cfg}).get_parsed_content("t")
    x = np.array([[-3000.0, -900.0, 0.0, 120.0, 1500.0, 4000.0]], dtype=np.float32)
    got = np.asarray(t({"image": x})["image"])
    expected = (np.clip(x, -900.0, 1500.0) - 120.0) / 200.0
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_zscore_monai_transform_masked():
    from monai.bundle import ConfigParser
    n = P.normalization("T2w", None, 0.3)
    t = ConfigParser({"t": n.monai_transform("image")}).get_parsed_content("t")
    x = np.zeros((1, 4, 4, 4), np.float32)
    x[0, 1:3, 1:3, 1:3] = np.arange(1, 9, dtype=np.float32).reshape(2, 2, 2)
    got = np.asarray(t({"image": x})["image"])
    inside = x[x != 0]
    np.testing.assert_allclose(got[x != 0], (inside - inside.mean()) / inside.std(), rtol=1e-5)
    assert np.all(got[x == 0] == 0)


# --------------------------------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------------------------------


def test_topology_hippocampus_matches_published_plan():
    # hand: 36,50,35 -> 18,25,18 -> 9,13,9 -> 5,7,5 (all >= 8 three times), then all < 8: 3 poolings per axis,
    # divisible by 8 -> 40, 56, 40.  nnU-Net's published Hippocampus plan (issue #148) says the same.
    t = P.dynunet_topology((1.0, 1.0, 1.0), (36, 50, 35))
    assert t.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    assert t.kernel_sizes == ((3, 3, 3),) * 4
    assert t.patch_size == (40, 56, 40)
    assert t.num_pool_per_axis == (3, 3, 3) and t.divisible_by == (8, 8, 8)
    assert t.upsample_kernel_sizes == ((2, 2, 2),) * 3


def test_topology_anisotropic_hand_computed():
    # spacing (5,1,1), patch (16,128,128), worked out by hand in the notes:
    # r1 pool y,x (5/1 >= 2), kernel (1,3,3) -> sizes 16,64,64 spacing 5,2,2
    # r2 pool y,x (5/2 >= 2), kernel (1,3,3) -> 16,32,32 / 5,4,4
    # r3 5/4 < 2: pool all, kernel (3,3,3) -> 8,16,16 / 10,8,8
    # r4 pool all -> 4,8,8 / 20,16,16
    # r5 z too small (4 < 8): pool y,x -> 4,4,4 ; r6 nothing >= 8 -> stop
    t = P.dynunet_topology((5.0, 1.0, 1.0), (16, 128, 128))
    assert t.strides == ((1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    assert t.kernel_sizes == ((1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))
    assert t.num_pool_per_axis == (2, 5, 5)
    assert t.patch_size == (16, 128, 128)


def test_topology_single_axis_needs_three_times_min_size():
    # only axis 0 is >= 8: it may still be pooled alone, but only while >= 3 * 4 = 12
    t = P.dynunet_topology((1.0, 1.0, 1.0), (12, 4, 4))
    assert t.strides == ((1, 1, 1), (2, 1, 1))
    t = P.dynunet_topology((1.0, 1.0, 1.0), (11, 4, 4))
    assert t.strides == ((1, 1, 1),) and t.kernel_sizes == ((3, 3, 3),) and t.patch_size == (11, 4, 4)


def test_topology_pads_to_multiple_of_pooling():
    t = P.dynunet_topology((1.0, 1.0, 1.0), (138, 169, 138))
    assert t.num_pool_per_axis == (5, 5, 5)
    assert t.patch_size == (160, 192, 160)


def test_topology_runs_in_monai_dynunet():
    from monai.networks.nets import DynUNet
    t = P.dynunet_topology((3.0, 0.8, 0.8), (20, 96, 80))
    assert all(p % d == 0 for p, d in zip(t.patch_size, t.divisible_by))
    net = DynUNet(3, 1, 2, [list(k) for k in t.kernel_sizes], [list(s) for s in t.strides],
                  [list(s) for s in t.upsample_kernel_sizes], filters=[4] * t.n_stages, norm_name="instance")
    out = net.eval()(torch.zeros(1, 1, *t.patch_size))
    assert tuple(out.shape[2:]) == t.patch_size


# --------------------------------------------------------------------------------------------------------------
# memory estimate
# --------------------------------------------------------------------------------------------------------------


def test_feature_map_elements_hand_computed():
    # patch 8^3, strides [1, 2], filters [32, 64], 2 classes:
    # encoder 2*32*512 + 2*64*64 = 40960 ; decoder stage 0: transp 32*512 + 2 convs 2*32*512 + head 2*512 = 50176
    assert P.dynunet_feature_map_elements((8, 8, 8), [(1, 1, 1), (2, 2, 2)], 2, [32, 64]) == 91136
    # deep supervision adds nothing here (no decoder stage >= 1); residual encoder blocks add a 1x1 conv output
    # per encoder stage: 32*512 + 64*64 (stage 0 only because 1 input channel != 32)
    assert P.dynunet_feature_map_elements((8, 8, 8), [(1, 1, 1), (2, 2, 2)], 2, [32, 64],
                                          res_block=True, in_channels=1) == 91136 + 32 * 512 + 64 * 64
    assert P.dynunet_feature_map_elements((8, 8, 8), [(1, 1, 1), (2, 2, 2)], 2, [32, 64],
                                          res_block=True, in_channels=32) == 91136 + 64 * 64


def _count_conv_outputs(net: torch.nn.Module, x: torch.Tensor) -> int:
    total = [0]

    def hook(_m, _i, out):
        total[0] += out.numel()

    hs = [m.register_forward_hook(hook) for m in net.modules()
          if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return total[0]


@pytest.mark.parametrize("res_block", [False, True])
@pytest.mark.parametrize("deep", [False, True])
def test_feature_map_elements_equals_real_dynunet_conv_outputs(res_block, deep):
    """Count every Conv3d / ConvTranspose3d output of a real MONAI DynUNet with forward hooks."""
    from monai.networks.nets import DynUNet
    t = P.dynunet_topology((2.0, 1.0, 1.0), (16, 32, 24))
    n = t.n_stages
    filters = [6, 8, 10, 12, 14, 16][:n]
    net = DynUNet(3, 2, 3, [list(k) for k in t.kernel_sizes], [list(s) for s in t.strides],
                  [list(s) for s in t.upsample_kernel_sizes], filters=filters, norm_name="instance",
                  res_block=res_block, deep_supervision=deep, deep_supr_num=max(1, n - 2))
    net.train(deep)  # DynUNet computes its deep-supervision heads only in training mode
    got = _count_conv_outputs(net, torch.zeros(1, 2, *t.patch_size))
    expected = P.dynunet_feature_map_elements(t.patch_size, t.strides, 3, filters, res_block=res_block,
                                              deep_supervision=deep, in_channels=2)
    assert got == expected


def test_bytes_per_element_calibration():
    # 560e6 elements * 2 samples * b = 8 GiB  ->  b = 8 * 2**30 / 1.12e9
    assert P.BYTES_PER_ELEMENT == pytest.approx(7.6695, abs=1e-4)
    assert P.estimate_vram_gb(560_000_000, 2) == pytest.approx(8.0)


# --------------------------------------------------------------------------------------------------------------
# patch size for a memory budget
# --------------------------------------------------------------------------------------------------------------


def test_patch_hippocampus_published_plan():
    # nnU-Net v1/v2 Hippocampus: patch 40x56x40, batch 9.  Batch by hand: the memory budget allows far more,
    # the 5% cap gives round(36*50*35*260*0.05 / (40*56*40)) = round(9.14) = 9.
    pp = P.patch_size_for_budget((36, 50, 35), (1.0, 1.0, 1.0), 1, 3, 8.0, num_training_cases=260)
    assert pp.patch_size == (40, 56, 40)
    assert pp.batch_size == 9
    assert pp.topology.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    assert pp.filters == (32, 64, 128, 256)
    assert pp.shrink_steps == ((40, 56, 40),)


def test_patch_brats_cropped_is_128_cubed():
    # real nnU-Net v2 on a 484-case fingerprint around 138x169x138 gives 128^3, batch 2 (oracle, frozen);
    # also what the nnU-Net paper lists for BraTS.
    pp = P.patch_size_for_budget((138, 169, 138), (1.0, 1.0, 1.0), 4, 4, 8.0, num_training_cases=484)
    assert pp.patch_size == (128, 128, 128)
    assert pp.batch_size == 2
    assert pp.topology.strides == ((1, 1, 1),) + ((2, 2, 2),) * 5
    assert pp.feature_map_elements == 454_893_568  # = nnU-Net's own compute_conv_feature_map_size (oracle)


def test_patch_brats_uncropped_240_240_155():
    # nnU-Net order (155, 240, 240) at 1 mm: real nnU-Net v2 gives [96, 160, 160], batch 2 (oracle, frozen)
    pp = P.patch_size_for_budget((155, 240, 240), (1.0, 1.0, 1.0), 4, 4, 8.0, num_training_cases=40)
    assert pp.patch_size == (96, 160, 160)
    assert pp.batch_size == 2


def test_patch_mmwhs_ct_native_resolution():
    # 20 cases 512x512x200 at (0.4,0.4,0.6) xyz -> nnU-Net order (200,512,512) at (0.6,0.4,0.4):
    # real nnU-Net v2 gives patch [64, 192, 192], batch 2 (oracle, frozen)
    pp = P.patch_size_for_budget((200, 512, 512), (0.6, 0.4, 0.4), 1, 8, 8.0, num_training_cases=20)
    assert pp.patch_size == (64, 192, 192)
    assert pp.batch_size == 2


def test_patch_fits_budget_and_previous_step_did_not():
    for gb in (2.0, 4.0, 8.0, 16.0, 40.0):
        pp = P.patch_size_for_budget((200, 512, 512), (0.6, 0.4, 0.4), 1, 8, gb)
        assert P.estimate_vram_gb(pp.feature_map_elements, 2) <= gb + 1e-9
        if len(pp.shrink_steps) > 1:
            prev = pp.shrink_steps[-2]
            t = P.dynunet_topology((0.6, 0.4, 0.4), prev)
            e = P.dynunet_feature_map_elements(t.patch_size, t.strides, 8, P.default_filters(t.n_stages))
            assert P.estimate_vram_gb(e, 2) > gb
        assert all(p % d == 0 for p, d in zip(pp.patch_size, pp.topology.divisible_by))


def test_patch_grows_with_budget():
    vox = [math.prod(P.patch_size_for_budget((200, 512, 512), (0.6, 0.4, 0.4), 1, 8, gb).patch_size)
           for gb in (2.0, 4.0, 8.0, 16.0, 32.0)]
    assert vox == sorted(vox) and vox[0] < vox[-1]


def test_patch_never_larger_than_padded_median():
    pp = P.patch_size_for_budget((30, 40, 20), (1.0, 1.0, 1.0), 1, 2, 80.0)
    # capped by the median (30,40,20); pooling by hand: (30,40,20) -> (15,20,10) -> (8,10,5) -> z too small, pool
    # x,y -> (4,5,5) -> stop: 3,3,2 poolings, multiples of (8,8,4): 30 -> 32, 40 -> 40, 20 -> 20
    assert pp.patch_size == (32, 40, 20)


def test_initial_patch_isotropic_in_mm():
    # 1/spacing = (1, 2, 2); scale to 256^3 voxels: k^3 * 4 = 256^3 -> k = 161.27 -> (161, 323, 323)
    assert P.initial_patch_size((1.0, 0.5, 0.5), (1000, 1000, 1000)) == (161.0, 323.0, 323.0)
    assert P.initial_patch_size((1.0, 0.5, 0.5), (100, 1000, 200)) == (100.0, 323.0, 200.0)


# --------------------------------------------------------------------------------------------------------------
# other backbones
# --------------------------------------------------------------------------------------------------------------


def test_backbone_divisors():
    # SwinUNETR / BasicUNet: a 1-voxel bottleneck breaks their InstanceNorm -> one axis gets a second multiple
    assert P.backbone_patch_size((40, 56, 40), "swinunetr") == (32, 64, 32)
    assert P.backbone_patch_size((40, 40, 40), "swinunetr") == (32, 32, 64)  # ties: last axis
    assert P.backbone_patch_size((128, 160, 112), "swinunetr") == (128, 160, 96)
    assert P.backbone_patch_size((20, 24, 16), "basicunet") == (16, 32, 16)
    assert P.backbone_patch_size((40, 56, 40), "unetr") == (32, 48, 32)
    assert P.backbone_patch_size((40, 56, 40), "vnet") == (32, 48, 32)
    assert P.backbone_patch_size((40, 56, 40), "segresnet") == (40, 56, 40)
    assert P.backbone_patch_size((40, 56, 40), "basicunet") == (32, 48, 32)
    assert P.backbone_patch_size((40, 56, 40), "unetr", mode="nearest") == (48, 64, 48)
    assert P.backbone_patch_size((8, 20, 40), "unetr") == (16, 16, 32)  # at least one multiple
    assert P.backbone_divisor("dynunet", [(1, 1, 1), (1, 2, 2), (2, 2, 2)]) == (2, 4, 4)
    with pytest.raises(KeyError):
        P.backbone_patch_size((40, 56, 40), "resnet")


def _tiny(backbone: str, patch):
    from monai.networks import nets
    if backbone == "unetr":
        return nets.UNETR(1, 2, patch, feature_size=4, hidden_size=24, mlp_dim=24, num_heads=2)
    if backbone == "swinunetr":
        return nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, depths=(1, 1, 1, 1),
                              num_heads=(1, 1, 1, 1), window_size=4)
    if backbone == "vnet":
        return nets.VNet(3, 1, 2)
    if backbone == "segresnet":
        return nets.SegResNet(3, init_filters=8, in_channels=1, out_channels=2)
    if backbone == "basicunet":
        return nets.BasicUNet(3, 1, 2, features=(4, 4, 4, 4, 4, 4))
    raise KeyError(backbone)


@pytest.mark.parametrize("backbone", ["unetr", "swinunetr", "vnet", "segresnet", "basicunet"])
def test_backbone_patch_runs_through_real_network(backbone):
    patch = P.backbone_patch_size((40, 56, 40), backbone)
    net = _tiny(backbone, patch).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, *patch))
    assert tuple(out.shape[2:]) == patch


@pytest.mark.parametrize("backbone,patch", [("swinunetr", (40, 56, 40)), ("swinunetr", (32, 32, 32)),
                                            ("basicunet", (16, 16, 16)), ("unetr", (40, 56, 40))])
def test_backbones_reject_patches_the_planner_avoids(backbone, patch):
    net = _tiny(backbone, patch).eval()
    with pytest.raises(Exception):
        with torch.no_grad():
            net(torch.zeros(1, 1, *patch))


# --------------------------------------------------------------------------------------------------------------
# cross-validation split
# --------------------------------------------------------------------------------------------------------------

HIPPO_IDS = [f"hippocampus_{i:03d}" for i in (1, 3, 4, 6, 7, 8, 10, 11, 13, 14)]
# sklearn 1.9.1 KFold(5, shuffle=True, random_state=12345) validation folds for HIPPO_IDS (frozen)
HIPPO_VAL = [["hippocampus_001", "hippocampus_011"], ["hippocampus_006", "hippocampus_014"],
             ["hippocampus_007", "hippocampus_010"], ["hippocampus_003", "hippocampus_013"],
             ["hippocampus_004", "hippocampus_008"]]


def test_kfold_frozen_sklearn_values():
    folds = P.nnunet_kfold(HIPPO_IDS)
    assert [f["val"] for f in folds] == HIPPO_VAL
    for f in folds:
        assert f["train"] == [c for c in HIPPO_IDS if c not in f["val"]]


def test_kfold_sorts_ids_first():
    assert P.nnunet_kfold(list(reversed(HIPPO_IDS))) == P.nnunet_kfold(HIPPO_IDS)


@pytest.mark.parametrize("n", [5, 7, 10, 23, 100, 260, 484])
def test_kfold_partition_properties(n):
    ids = [f"case_{i:04d}" for i in range(n)]
    folds = P.nnunet_kfold(ids)
    vals = [v for f in folds for v in f["val"]]
    assert sorted(vals) == ids
    sizes = [len(f["val"]) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    for f in folds:
        assert sorted(f["train"] + f["val"]) == ids and not set(f["train"]) & set(f["val"])


def test_kfold_errors():
    with pytest.raises(ValueError):
        P.nnunet_kfold(["a", "b", "c"], 5)
    with pytest.raises(ValueError):
        P.nnunet_kfold(["a", "a", "b", "c", "d", "e"])


# --------------------------------------------------------------------------------------------------------------
# plan()
# --------------------------------------------------------------------------------------------------------------


def _hippocampus_fp() -> P.Fingerprint:
    # xyz order (MONAI): nnU-Net's (z,y,x) median 36x50x35 is (35,50,36) in x,y,z
    rs = np.random.RandomState(0)
    shapes = tuple((35 + int(rs.randint(-2, 3)), 50 + int(rs.randint(-3, 4)), 36 + int(rs.randint(-2, 3)))
                   for _ in range(260))
    shapes = shapes[:-1] + ((35, 50, 36),)
    return P.Fingerprint(((1.0, 1.0, 1.0),) * 260, shapes, ("MRI",), ("background", "Anterior", "Posterior"),
                         case_ids=tuple(f"hippocampus_{i:03d}" for i in range(260)))


def test_plan_hippocampus():
    fp = _hippocampus_fp()
    pl = P.plan(fp)
    med = pl.median_shape_resampled
    assert pl.target_spacing == (1.0, 1.0, 1.0) and not pl.anisotropic
    expected_patch = P.dynunet_topology((1.0, 1.0, 1.0), med).patch_size  # no shrink at this size
    assert pl.patch_size == expected_patch
    assert pl.in_channels == 1 and pl.num_classes == 3
    assert pl.normalization[0].scheme == "ZScoreNormalization" and not pl.normalization[0].use_mask_for_norm
    assert len(pl.folds) == 5 and sum(len(f["val"]) for f in pl.folds) == 260
    assert not pl.lowres_suggested
    for key in ("target_spacing", "patch_size", "batch_size", "strides", "kernel_sizes", "filters", "normalization",
                "backbone_patch_sizes", "folds", "num_classes", "in_channels", "lowres_suggested",
                "vram_estimate_gb", "median_shape_resampled"):
        assert pl.why.get(key), key
    json.dumps(pl.to_dict())


def test_plan_exact_hippocampus_median():
    fp = P.Fingerprint(((1.0, 1.0, 1.0),) * 260, ((35, 50, 36),) * 260, ("MRI",), ("bg", "a", "b"))
    pl = P.plan(fp)
    assert pl.patch_size == (40, 56, 40) and pl.batch_size == 9


def test_plan_dynunet_kwargs_build_a_network():
    from monai.networks.nets import DynUNet
    pl = P.plan(P.Fingerprint(((1.0, 1.0, 1.0),) * 260, ((35, 50, 36),) * 260, ("MRI",), ("bg", "a", "b")))
    kw = pl.dynunet_kwargs()
    kw["filters"] = [4] * len(kw["filters"])
    net = DynUNet(**kw).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, *pl.patch_size))
    assert out.shape == (1, 3, *pl.patch_size)


def test_plan_brats_like():
    fp = P.Fingerprint(((1.0, 1.0, 1.0),) * 484, ((138, 169, 138),) * 484, ("FLAIR", "T1w", "t1gd", "T2w"),
                       ("background", "edema", "non-enhancing tumor", "enhancing tumour"),
                       median_relative_size_after_cropping=138 * 169 * 138 / (240 * 240 * 155))
    pl = P.plan(fp)
    assert pl.patch_size == (128, 128, 128) and pl.batch_size == 2
    assert pl.in_channels == 4
    assert all(n.scheme == "ZScoreNormalization" and n.use_mask_for_norm for n in pl.normalization)


def test_plan_mmwhs_ct_native():
    fp = P.Fingerprint(((0.4, 0.4, 0.6),) * 20, ((512, 512, 200),) * 20, ("CT",),
                       ("background",) + tuple(f"c{i}" for i in range(1, 8)), (CT_STATS,))
    pl = P.plan(fp)
    assert pl.target_spacing == pytest.approx((0.4, 0.4, 0.6))
    # real nnU-Net: order (200,512,512)@(0.6,0.4,0.4) -> [64,192,192]; back in xyz: (192,192,64)
    assert pl.patch_size == (192, 192, 64)
    assert pl.lowres_suggested  # 192*192*64 / (512*512*200) = 4.5% < 25%
    assert pl.normalization[0].scheme == "CTNormalization" and pl.normalization[0].clip == (-900.0, 1500.0)


def test_plan_anisotropic_xyz():
    zs = [2.5, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0] * 3
    fp = P.Fingerprint(tuple((0.7, 0.7, z) for z in zs), tuple((512, 512, int(round(200 / z))) for z in zs),
                       ("MRI",), ("bg", "a"))
    pl = P.plan(fp)
    assert pl.anisotropic and pl.target_spacing == pytest.approx((0.7, 0.7, 2.95))
    # the coarse z axis is pooled later: first real stride leaves z alone, first kernel is (3,3,1)
    assert pl.strides[1] == (2, 2, 1) and pl.kernel_sizes[0] == (3, 3, 1)
    # real nnU-Net v2 on the same fingerprint (nnU-Net order): patch [32, 256, 224] -> xyz (224, 256, 32)
    assert pl.patch_size == (224, 256, 32)


def test_plan_axis_order_equivariance():
    sp = tuple((0.45, 0.4, 0.6 + 0.01 * i) for i in range(12))
    sh = tuple((480 + i, 500, 180 + 5 * i) for i in range(12))
    fp_xyz = P.Fingerprint(sp, sh, ("CT",), ("bg", "a", "b"), (CT_STATS,))
    fp_zyx = P.Fingerprint(tuple(s[::-1] for s in sp), tuple(s[::-1] for s in sh), ("CT",), ("bg", "a", "b"),
                           (CT_STATS,))
    a, b = P.plan(fp_xyz, input_axes="xyz"), P.plan(fp_zyx, input_axes="zyx")
    assert a.patch_size == b.patch_size[::-1]
    assert a.strides == tuple(s[::-1] for s in b.strides)
    assert a.batch_size == b.batch_size


def test_plan_spacing_override_mmwhs_paper_setting():
    fp = P.Fingerprint(((0.4, 0.4, 0.6),) * 20, ((512, 512, 200),) * 20, ("CT",),
                       ("background",) + tuple(f"c{i}" for i in range(1, 8)), (CT_STATS,))
    pl = P.plan(fp, spacing_override=(1.5, 1.5, 2.0))
    assert pl.target_spacing == (1.5, 1.5, 2.0)
    assert pl.median_shape_resampled == (137.0, 137.0, 60.0)  # 512*0.4/1.5 = 136.53 -> 137; 200*0.6/2 = 60
    assert "given" in pl.why["target_spacing"]
    assert not pl.lowres_suggested


def test_plan_fewer_filters_allow_a_larger_patch():
    fp = P.Fingerprint(((1.0, 1.0, 1.0),) * 484, ((138, 169, 138),) * 484, ("FLAIR", "T1w", "t1gd", "T2w"),
                       ("bg", "a", "b", "c"), median_relative_size_after_cropping=0.36)
    default, small = P.plan(fp), P.plan(fp, base_filters=16, max_filters=256)
    assert small.filters == (16, 32, 64, 128, 256, 256)
    assert math.prod(small.patch_size) > math.prod(default.patch_size)


def test_plan_rejects_bad_fingerprints():
    with pytest.raises(ValueError):
        P.Fingerprint(((1.0, 1.0, 1.0),), ((10, 10),), ("MRI",), ("bg", "a"))
    with pytest.raises(ValueError):
        P.Fingerprint(((1.0, 1.0, 1.0),), ((10, 10, 10),), ("MRI",), ("bg",))
    with pytest.raises(ValueError):
        P.plan(P.Fingerprint(((1.0, 1.0, 1.0),), ((10, 10, 10),), ("CT",), ("bg", "a")))  # CT without stats


# --------------------------------------------------------------------------------------------------------------
# live differential test against the real nnU-Net planner (optional)
# --------------------------------------------------------------------------------------------------------------
