"""Where the repository's bundles are, for tools run from a checkout (``pip install -e .``).

Every command that reads ``bundles/`` also takes a folder argument, so the tools work on bundles anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "BUNDLES_DIR", "resolve_bundle", "LAYERS", "config_files", "config_file_arg"]

# configs that are deltas read on top of others, in the order MONAI reads them (later files override earlier ones)
LAYERS = {
    "evaluate.json": ("train.json", "evaluate.json"),
    "multi_gpu_train.json": ("train.json", "multi_gpu_train.json"),
    "multi_gpu_evaluate.json": ("train.json", "evaluate.json", "multi_gpu_evaluate.json"),
}

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


def config_files(bundle_dir: str | os.PathLike, config: str) -> list[str]:
    """The files MONAI must read for ``config`` of the bundle in ``bundle_dir``: ``evaluate.json`` is a delta on
    ``train.json`` (the model zoo's layering), so it comes with the file it is layered on."""
    configs = Path(bundle_dir) / "configs"
    return [str(configs / c) for c in LAYERS.get(config, (config,))]


def config_file_arg(files: list[str]) -> str:
    """``--config_file`` for several files, in MONAI's list form: ``"['a.json','b.json']"`` (one file: as is)."""
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
