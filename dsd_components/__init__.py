"""Dual Self-Distillation (DSD) runtime: what bundle configs import and what a packaged bundle carries.

Heads, tap table, wrapper network, loss (fused), modes, export, the checkpointer and finite-loss guard, run folders
and the bundle lock, metrics, transforms, data, integrity checks, the training-curve plot and the bundle entry. The tools that build, check, package and study
bundles live in ``dsd_tools`` and are never vendored.

The names below load on first use (PEP 562), so ``import dsd_components.errors`` or ``.data`` does not pay for torch
and MONAI (MONAI's import alone takes seconds): command-line tools start fast and answer ``--help`` at once.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "CheckpointError": "errors", "DatalistError": "errors", "DatasetIntegrityError": "errors",
    "DSDUserError": "errors", "NonFiniteLossError": "errors", "RunLockedError": "errors",
    "FolderLock": "runs", "TrainingRun": "runs",
    "atomic_save": "export", "backbone_state_dict": "export", "export_backbone": "export",
    "export_torchscript": "export", "load_checkpoint": "export",
    "BottleneckHead": "heads",
    "DSDLoss": "loss", "pixelwise_kl": "loss",
    "DSD_MODES": "modes", "MODES": "modes", "ModeSpec": "modes", "mode_spec": "modes",
    "DSDNetwork": "network", "DSDOutput": "network", "ddp_needs_unused_parameters": "network",
    "heads_needed": "network",
    "TAP_TABLE": "taps", "TapSpec": "taps",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
