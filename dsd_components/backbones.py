"""The paper's backbones, as stock MONAI constructor arguments: the one source of truth for every bundle.

Each pairing maps to ``{"_target_": "monai.networks.nets.<Class>", **kwargs}``, the form a MONAI bundle config
uses for ``network_def``, so the bundle generator, the parameter report and the tests instantiate the very same
networks. Numbers come from SPEC.md (paper section 3.1 and the reference code).
"""

from __future__ import annotations

import copy
from typing import Any

from monai.bundle import ConfigParser
from torch import nn

__all__ = ["BACKBONES", "PAPER_PARAMS", "TINY_OVERRIDES", "backbone_config", "build_backbone"]


def _dynunet(in_channels: int, out_channels: int, filters: list[int]) -> dict[str, Any]:
    return {
        "_target_": "monai.networks.nets.DynUNet",
        "spatial_dims": 3,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "kernel_size": [3, 3, 3, 3, 3],
        "strides": [1, 2, 2, 2, 2],
        "upsample_kernel_size": [2, 2, 2, 2],
        "filters": filters,
        "norm_name": "instance",
        "res_block": True,
    }


def _unetr(in_channels: int, out_channels: int, roi: int, feature_size: int) -> dict[str, Any]:
    return {
        "_target_": "monai.networks.nets.UNETR",
        "in_channels": in_channels,
        "out_channels": out_channels,
        "img_size": [roi, roi, roi],
        "feature_size": feature_size,
        "hidden_size": 768,
        "mlp_dim": 3072,
        "num_heads": 12,
        "proj_type": "perceptron",
        "norm_name": "instance",
        "res_block": True,
        "dropout_rate": 0.0,
    }


BACKBONES: dict[str, dict[str, Any]] = {
    "mmwhs_unetr": _unetr(1, 8, 96, 32),
    "mmwhs_nnunet": _dynunet(1, 8, [32, 64, 128, 256, 320]),
    "brats_unetr": _unetr(4, 4, 128, 64),
    "brats_unetr_light": _unetr(4, 4, 128, 16),
    "brats_nnunet": _dynunet(4, 4, [16, 32, 64, 128, 256]),
    "brats_swinunetr": {
        "_target_": "monai.networks.nets.SwinUNETR",
        "in_channels": 4,
        "out_channels": 4,
        "feature_size": 12,
        "depths": [2, 2, 2, 2],
        "num_heads": [3, 6, 12, 24],
        "patch_size": 2,
        "window_size": 7,
    },
    "hippocampus_vnet": {"_target_": "monai.networks.nets.VNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3},
    "hippocampus_unetr": _unetr(1, 3, 32, 16),
    "hippocampus_nnunet": _dynunet(1, 3, [16, 32, 64, 128, 256]),
    # Table 7 capacity study (MMWHS): the "small" variants of the two MMWHS backbones.
    "mmwhs_unetr_small": _unetr(1, 8, 96, 16),
    "mmwhs_nnunet_small": _dynunet(1, 8, [16, 32, 64, 128, 256]),
}

# Constructor overrides, per network class, that keep each architecture but make it tiny: the tests, the smoke
# benchmarks and quick studies shrink networks through these, never by editing the paper's configs above.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "DynUNet": {"filters": [4, 8, 8, 16, 16]},
    "UNETR": {"feature_size": 4, "hidden_size": 24, "mlp_dim": 24, "num_heads": 2},
    "SwinUNETR": {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 4},
    "VNet": {},
}

# Paper Tables 3 and 7: trainable parameters in millions, (backbone, with DSD).
PAPER_PARAMS: dict[str, tuple[float, float]] = {
    "hippocampus_vnet": (45.602, 45.605),
    "hippocampus_unetr": (92.624, 92.628),
    "hippocampus_nnunet": (5.6870, 5.6890),
    "mmwhs_unetr_small": (92.784, 92.797),
    "mmwhs_unetr": (101.787, 101.804),
    "mmwhs_nnunet_small": (5.6870, 5.6950),
    "mmwhs_nnunet": (16.664, 16.672),
}


def backbone_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``network_def`` config of pairing ``name``, with constructor arguments overridden (e.g. for tests)."""
    if name not in BACKBONES:
        raise KeyError(f"Unknown pairing {name!r}; known: {', '.join(BACKBONES)}.")
    cfg = copy.deepcopy(BACKBONES[name])
    cfg.update(overrides)
    return cfg


def build_backbone(name: str, **overrides: Any) -> nn.Module:
    """Instantiate the stock MONAI backbone of pairing ``name`` exactly as the bundle config does."""
    return ConfigParser({"net": backbone_config(name, **overrides)}).get_parsed_content("net")
