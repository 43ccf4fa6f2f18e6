"""Training checkpoint of the DSD wrapper -> backbone-only weights (state dict or TorchScript).

The shipped ``models/model.pt`` must load with ``torch.load(weights_only=True)`` and ``strict=True`` into the
stock MONAI class named by ``inference.json``'s ``network_def``; no DSD code is needed to use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

__all__ = ["backbone_state_dict", "load_checkpoint", "export_backbone", "export_torchscript", "atomic_save"]

_CONTAINER_KEYS = ("model", "network", "state_dict")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``weights_only=True`` and a message that names the file when it fails.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is corrupt or holds pickled objects that ``weights_only`` refuses.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint {path} does not exist; train first or pass the right path.") from None
    except Exception as e:  # corrupt file, or pickled objects that weights_only refuses
        raise CheckpointError(
            f"Could not load {path} with torch.load(weights_only=True): {e}. Checkpoints must hold only tensors "
            "and plain containers; re-save it with dsd_components.export.export_backbone."
        ) from e


def backbone_state_dict(checkpoint: Mapping[str, torch.Tensor] | Mapping[str, Mapping]) -> dict[str, torch.Tensor]:
    """Strip a wrapper checkpoint to the backbone's own keys.

    Accepts a bare state dict or a MONAI ``CheckpointSaver`` dict (``{"network": ..., "optimizer": ...}``), with or
    without DDP's ``module.`` prefix; drops every DSD head and removes the ``backbone.`` prefix. A state dict that is
    already backbone-only comes back unchanged.
    """
    state: Mapping = checkpoint
    for key in _CONTAINER_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            state = checkpoint[key]
            break
    out: dict[str, torch.Tensor] = {}
    wrapped = any(k.removeprefix("module.").startswith("backbone.") for k in state)
    for key, value in state.items():
        key = key.removeprefix("module.")
        if wrapped:
            if not key.startswith("backbone."):
                continue  # a DSD head: training only
            key = key[len("backbone.") :]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"State dict entry {key!r} is a {type(value).__name__}, not a tensor.")
        out[key] = value.detach().cpu().clone()
    if not out:
        raise ValueError("The checkpoint holds no backbone weights.")
    return out


def atomic_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename: a reader (or a run restarted after
    SIGKILL or a power cut) sees the old file or the new one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped weights should be readable like any torch.save output
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:  # not supported on every OS / file system
            pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_backbone(checkpoint: str | os.PathLike | Mapping, output: str | os.PathLike, network: nn.Module | None = None) -> Path:
    """Write the backbone-only state dict of ``checkpoint`` to ``output``.

    If ``network`` (a stock backbone instance) is given, the weights are first loaded into it with ``strict=True``,
    so a mismatch fails here and not later in inference or MONAI Label.
    """
    ckpt = load_checkpoint(checkpoint) if not isinstance(checkpoint, Mapping) else checkpoint
    state = backbone_state_dict(ckpt)
    if network is not None:
        network.load_state_dict(state, strict=True)
    return atomic_save(state, output)


def export_torchscript(network: nn.Module, state: Mapping[str, torch.Tensor] | None, output: str | os.PathLike) -> Path:
    """Script the stock backbone (optionally loading ``state`` first, strictly) and save it to ``output``."""
    if state is not None:
        network.load_state_dict(backbone_state_dict(state), strict=True)
    network = network.eval()
    scripted = torch.jit.script(network)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(output))
    return output
