"""Dual Self-Distillation (DSD) for any U-shaped MONAI network: heads, tap table, wrapper, loss and export."""

from .backbones import BACKBONES, PAPER_PARAMS, backbone_config, build_backbone
from .export import atomic_save, backbone_state_dict, export_backbone, export_torchscript, load_checkpoint
from .heads import BottleneckHead
from .loss import DSDLoss, pixelwise_kl
from .network import DSD_MODES, DSDNetwork, DSDOutput, ddp_needs_unused_parameters, heads_needed
from .taps import TAP_TABLE, TapSpec

__version__ = "0.1.0"
__all__ = [
    "BACKBONES", "PAPER_PARAMS", "backbone_config", "build_backbone", "atomic_save", "backbone_state_dict",
    "export_backbone", "export_torchscript", "load_checkpoint", "BottleneckHead", "DSDLoss", "pixelwise_kl",
    "DSD_MODES", "DSDNetwork", "DSDOutput", "ddp_needs_unused_parameters", "heads_needed", "TAP_TABLE", "TapSpec",
]
