"""A full disk (or a folder without write permission) for the files our atomic writer opens, without filling a disk.

``fail_writes(monkeypatch, match, err)`` makes every temporary file that ``dsd_components.export.atomic_write`` opens
for a target matching ``match`` raise ``OSError(err)`` once ``after`` bytes were written to it, the way a real write
fails when the disk fills up mid-file (torch.save then reports it as a RuntimeError whose context is that OSError).
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsd_components import export


class _FailingFile:
    def __init__(self, f: Any, err: int, after: int) -> None:
        self._f, self._err, self._left = f, err, after

    def write(self, data: bytes) -> int:
        if len(data) > self._left:
            self._f.write(bytes(data[: self._left]))
            self._left = 0
            raise OSError(self._err, os.strerror(self._err))
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def fail_writes(monkeypatch, match: Callable[[Path], bool], err: int = errno.ENOSPC, after: int = 1024) -> list[Path]:
    """Patch the atomic writer's ``open``: writes to temporaries of targets for which ``match(target)`` is true fail
    with ``err`` after ``after`` bytes. Returns the list of targets that failed (filled as it happens)."""
    failed: list[Path] = []

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = builtins.open(file, mode, *args, **kwargs)
        tmp = Path(file)
        # atomic_write's temporaries: <folder>/.<target name>.<random>.tmp
        target = tmp.parent / tmp.name[1:].rsplit(".", 2)[0] if tmp.name.endswith(".tmp") else tmp
        if "w" in mode and tmp.name.endswith(".tmp") and match(target):
            failed.append(target)
            return _FailingFile(f, err, after)
        return f

    monkeypatch.setattr(export, "open", fake_open, raising=False)
    return failed
