"""The one file-hash helper of the tooling (packages, large_files.yml, the local zoo index, study ids)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["file_hash", "object_hash"]


def file_hash(path: str | os.PathLike, hash_type: str = "sha256") -> str:
    """Hex digest of a file's bytes (``hash_type``: any ``hashlib`` name; the zoo uses md5 or sha256)."""
    h = hashlib.new(hash_type)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def object_hash(obj: Any, length: int = 8) -> str:
    """Short stable digest of a JSON-able object (keys sorted), for folder names."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]
