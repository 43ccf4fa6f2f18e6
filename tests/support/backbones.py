"""Shrunken versions of every supported backbone, built through constructor arguments only."""

from __future__ import annotations

from dsd_tools.networks import build_backbone
from monai.networks.nets import BasicUNet, SegResNet

# name -> (factory, input spatial size)
SMALL = {
    "nnunet": (lambda: build_backbone("mmwhs_nnunet", filters=[4, 8, 8, 16, 16], out_channels=3), (32, 32, 32)),
    "nnunet_aniso": (
        lambda: build_backbone(
            "mmwhs_nnunet", filters=[4, 8, 8, 16, 16], out_channels=3,
            strides=[1, [2, 2, 1], 2, 2, 2], upsample_kernel_size=[[2, 2, 1], 2, 2, 2],
        ),
        (32, 32, 16),
    ),
    "unetr": (
        lambda: build_backbone("mmwhs_unetr", img_size=[32, 32, 32], feature_size=4, hidden_size=24, mlp_dim=24,
                               num_heads=2, out_channels=3),
        (32, 32, 32),
    ),
    "swinunetr": (
        lambda: build_backbone("brats_swinunetr", feature_size=12, num_heads=[1, 1, 1, 1], window_size=4,
                               out_channels=3, in_channels=2),
        (64, 64, 64),
    ),
    "vnet": (lambda: build_backbone("hippocampus_vnet", dropout_prob_down=0.0, dropout_prob_up=(0.0, 0.0)), (32, 32, 32)),
    "basicunet": (lambda: BasicUNet(spatial_dims=3, in_channels=1, out_channels=3, features=(4, 4, 8, 8, 16, 4)), (32, 32, 32)),
    "segresnet": (lambda: SegResNet(spatial_dims=3, init_filters=4, in_channels=1, out_channels=3, norm=("group", {"num_groups": 2})), (16, 16, 16)),
}
