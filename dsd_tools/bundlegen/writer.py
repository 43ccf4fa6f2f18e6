"""Write a bundle folder from a :class:`~dsd_tools.bundlegen.spec.BundleSpec`, and check committed bundles."""

from __future__ import annotations

import json
from pathlib import Path

from . import configs, docs
from .metadata import metadata
from .readme import data_license
from .spec import BundleSpec

__all__ = ["bundle_files", "write_bundle", "stale_files"]

# metadata keys that record the generating environment, not the bundle: a different torch does not make it stale
ENVIRONMENT_KEYS = ("monai_version", "pytorch_version", "numpy_version")


def _dump(obj: object) -> str:
    return json.dumps(obj, indent=4) + "\n"


def bundle_files(spec: BundleSpec) -> dict[str, str]:
    """Relative path -> text of every generated file of one bundle."""
    files = {
        "configs/train.json": _dump(configs.train_config(spec)),
        "configs/evaluate.json": _dump(configs.evaluate_config(spec)),
        "configs/inference.json": _dump(configs.inference_config(spec)),
        "configs/multi_gpu_train.json": _dump(configs.multi_gpu_train_config(spec)),
        "configs/multi_gpu_evaluate.json": _dump(configs.multi_gpu_evaluate_config(spec)),
        "configs/metadata.json": _dump(metadata(spec)),
        "configs/logging.conf": docs.LOGGING_CONF,
        "docs/README.md": docs.bundle_readme(spec),
        "docs/data_license.txt": data_license(spec),
        "LICENSE": docs.LICENSE,
        "large_files.yml": docs.LARGE_FILES,
    }
    if spec.plan is not None:
        files["plan.json"] = _dump(dict(spec.plan))
    return files


def write_bundle(spec: BundleSpec, out_dir: str | Path) -> Path:
    """Write ``out_dir/<name>/`` and return it."""
    root = Path(out_dir) / spec.name
    for rel, text in bundle_files(spec).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def stale_files(specs: list[BundleSpec], bundles_dir: str | Path) -> list[str]:
    """Generated files that are missing or differ from what the writer writes now (environment versions excluded)."""
    stale = []
    for spec in specs:
        for rel, text in bundle_files(spec).items():
            path = Path(bundles_dir) / spec.name / rel
            if not path.exists():
                stale.append(str(path))
                continue
            current = path.read_text()
            if rel.endswith("metadata.json"):
                a, b = json.loads(current), json.loads(text)
                if {k: v for k, v in a.items() if k not in ENVIRONMENT_KEYS} != \
                        {k: v for k, v in b.items() if k not in ENVIRONMENT_KEYS}:
                    stale.append(str(path))
            elif current != text:
                stale.append(str(path))
    return stale
