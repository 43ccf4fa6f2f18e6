"""Build the paper's backbones exactly as the bundle configs do, and shrink them for tests and smoke runs."""

from __future__ import annotations

from typing import Any

from monai.bundle import ConfigParser
from torch import nn

from .paper import BACKBONES

__all__ = ["TINY_OVERRIDES", "backbone_config", "build_backbone", "tiny_overrides"]

# Constructor overrides, per network class, that keep each architecture but make it tiny: the tests, the smoke
# benchmarks and quick studies shrink networks through these, never by editing the paper's configs.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "DynUNet": {"filters": [4, 8, 8, 16, 16]},
    "UNETR": {"feature_size": 4, "hidden_size": 24, "mlp_dim": 24, "num_heads": 2},
    "SwinUNETR": {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 4},
    "VNet": {},
}


def backbone_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``network_def`` config of backbone ``name`` (a key of :data:`dsd_tools.paper.BACKBONES`), overridden.

    Raises:
        KeyError: unknown backbone.
    """
    if name not in BACKBONES:
        raise KeyError(f"Unknown backbone {name!r}; known: {', '.join(BACKBONES)}.")
    return BACKBONES[name].config(**overrides)


def build_backbone(name: str, **overrides: Any) -> nn.Module:
    """Instantiate the stock MONAI backbone ``name`` exactly as the bundle config does."""
    return ConfigParser({"net": backbone_config(name, **overrides)}).get_parsed_content("net")


def tiny_overrides(network_def: dict[str, Any]) -> dict[str, Any]:
    """``{"network_def#<arg>": value, "patch_size": [...]}`` that shrink a bundle's network for a quick run."""
    cls = network_def["_target_"].rsplit(".", 1)[-1]
    over: dict[str, Any] = {f"network_def#{k}": v for k, v in TINY_OVERRIDES.get(cls, {}).items()}
    over["patch_size"] = [64 if cls == "SwinUNETR" else 32] * 3
    return over
