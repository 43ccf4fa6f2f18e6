"""Run bundles in-process with shrunken networks and patches (config overrides only, never edited bundles)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from dsd_components.backbones import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.name for p in (ROOT / "bundles").iterdir() if (p / "configs" / "train.json").exists())



def bundle_dataset(name: str) -> str:
    return json.loads((ROOT / "bundles" / name / "configs" / "train.json").read_text())["dataset"]


def tiny_overrides(name: str) -> dict[str, Any]:
    cfg = json.loads((ROOT / "bundles" / name / "configs" / "train.json").read_text())
    cls = cfg["network_def"]["_target_"].rsplit(".", 1)[-1]
    patch = 64 if cls == "SwinUNETR" else 32
    over: dict[str, Any] = {f"network_def#{k}": v for k, v in TINY_OVERRIDES[cls].items()}
    over["patch_size"] = [patch] * 3
    return over


def copy_bundle(name: str, dest: Path) -> Path:
    """A private copy of the bundle (tests never write into the repository's bundles/)."""
    target = dest / name
    shutil.copytree(ROOT / "bundles" / name, target, ignore=shutil.ignore_patterns("models", "eval", "logs"))
    return target


def parse(bundle: Path, config: str, **overrides: Any) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / config))
    parser.update({"bundle_root": str(bundle), **overrides})
    return parser
