"""Run bundles in-process with shrunken networks and patches (config overrides only, never edited bundles)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from dsd_tools.networks import tiny_overrides as _tiny
from dsd_tools.paths import config_files

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (ROOT / "bundles").iterdir() if (p / "configs" / "train.json").exists())


def train_config(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "bundles" / name / "configs" / "train.json").read_text())


def bundle_dataset(name: str) -> str:
    """The dataset's name (mmwhs, brats, hippocampus) of a bundle."""
    return train_config(name)["dataset"]["name"]


def tiny_overrides(name: str) -> dict[str, Any]:
    return _tiny(train_config(name)["network_def"])


def copy_bundle(name: str, dest: Path) -> Path:
    """A private copy of the bundle (tests never write into the repository's bundles/)."""
    target = dest / name
    shutil.copytree(ROOT / "bundles" / name, target, ignore=shutil.ignore_patterns("models", "eval", "logs"))
    return target


def parse(bundle: Path, config: str, **overrides: Any) -> ConfigParser:
    """``config`` of ``bundle`` as MONAI reads it: ``evaluate.json`` on top of ``train.json``."""
    parser = ConfigParser()
    parser.read_config(config_files(bundle, config))
    parser.update({"bundle_root": str(bundle), **overrides})
    return parser
