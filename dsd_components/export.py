"""Training checkpoint of the DSD wrapper -> backbone-only weights (state dict or TorchScript).

The shipped ``models/model.pt`` must load with ``torch.load(weights_only=True)`` and ``strict=True`` into the
stock MONAI class named by ``inference.json``'s ``network_def``; no DSD code is needed to use it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from .errors import CheckpointError, error_in_chain

__all__ = ["backbone_state_dict", "load_checkpoint", "export_backbone", "export_torchscript", "atomic_save",
           "atomic_write", "atomic_copy", "payload_bytes", "write_error"]

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


def _first_os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write as ``RuntimeError("... unexpected pos ...")``
    with the file system's OSError (ENOSPC, EACCES, ...) only as its context."""
    return error_in_chain(exc, OSError)


def payload_bytes(obj: object) -> int:
    """About how many bytes ``torch.save(obj)`` writes: the tensors' storages (each counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def walk(x: object) -> None:
        nonlocal total
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(x, Mapping):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(obj)
    return total


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EROFS: "read-only file system"}


def write_error(path: Path, exc: OSError, size_hint: int | None = None) -> CheckpointError:
    """A :class:`CheckpointError` that says which file could not be written, why, how much space it needed and that
    the previous file is unchanged."""
    reason = _REASONS.get(exc.errno or -1, exc.strerror or str(exc))
    code = errno.errorcode.get(exc.errno or -1, "")
    what = f"{reason} ({code})" if code else reason
    detail = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else Path(path.anchor or ".")).free
            free_text = f"{_mb(free)} free there"
        except OSError:
            free_text = "the free space is unknown"
        need = f"it needs about {_mb(size_hint)}" if size_hint else "its size is unknown"
        detail = f" ({need}; {free_text})"
        fix = f"Free space on the disk of {path.parent} (or write to another disk)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"Make {path.parent} writable for this user (or write to another folder)"
    else:
        fix = f"Check the disk and the folder {path.parent}"
    previous = f"the previous {path.name} is unchanged" if path.exists() else f"no {path.name} was there before"
    err = CheckpointError(f"cannot write {path}: {what}{detail}; {previous}. {fix}.")
    err.errno = exc.errno  # type: ignore[attr-defined]
    err.path = path  # type: ignore[attr-defined]
    return err


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # not supported on every OS / file system
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], size_hint: int | None = None) -> Path:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync, then rename it to ``path``: a reader (or
    a run restarted after SIGKILL or a power cut) sees the old file or the new one, never half a file.

    Raises:
        CheckpointError: the folder or the file could not be written (ENOSPC, EACCES, a read-only disk, ...): the
            message names the file, the reason, the space it needed (``size_hint`` bytes) and says the previous
            file is unchanged; the temporary file is removed.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as f:  # by name: ``f.name`` says which file is written
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; shipped weights should be readable like any torch.save output
        os.replace(tmp, path)
        tmp = None
    except Exception as exc:
        os_error = _first_os_error(exc)
        if os_error is None:
            raise
        raise write_error(path, os_error, size_hint) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)
    return path


def atomic_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` through :func:`atomic_write`: the old file or the new one, never half a file.

    Raises:
        CheckpointError: the file could not be written (see :func:`atomic_write`); the previous file is unchanged.
    """
    return atomic_write(path, lambda f: torch.save(obj, f), size_hint=payload_bytes(obj))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, hasher: Any = None) -> Path:
    """Copy ``src`` to ``dst`` through :func:`atomic_write`, feeding the bytes to ``hasher`` (a ``hashlib`` object)
    on the way when given.

    Raises:
        CheckpointError: ``dst`` could not be written; the previous ``dst`` is unchanged.
    """
    src = Path(src)

    def write(f: BinaryIO) -> None:
        with open(src, "rb") as s:
            for block in iter(lambda: s.read(2**22), b""):
                if hasher is not None:
                    hasher.update(block)
                f.write(block)

    return atomic_write(dst, write, size_hint=src.stat().st_size)


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
    return atomic_write(output, lambda f: torch.jit.save(scripted, f))
