"""Where the repository's bundles are, for tools run from a checkout (``pip install -e .``).

Every command that reads ``bundles/`` also takes a folder argument, so the tools work on bundles anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "BUNDLES_DIR", "resolve_bundle"]

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLES_DIR = Path(os.environ.get("DSD_BUNDLES_DIR", REPO_ROOT / "bundles"))


def resolve_bundle(bundle: str | os.PathLike, bundles_dir: str | os.PathLike = BUNDLES_DIR) -> Path:
    """A bundle folder from a path or a name under ``bundles_dir``.

    Raises:
        FileNotFoundError: neither is a bundle folder (one with configs/train.json or configs/inference.json).
    """
    for cand in (Path(bundle), Path(bundles_dir) / str(bundle)):
        if (cand / "configs" / "inference.json").is_file() or (cand / "configs" / "train.json").is_file():
            return cand
    known = sorted(p.name for p in Path(bundles_dir).iterdir() if (p / "configs").is_dir()) \
        if Path(bundles_dir).is_dir() else []
    raise FileNotFoundError(f"{bundle}: not a bundle folder nor a bundle under {bundles_dir} "
                            f"(known: {', '.join(known) or 'none'})")
