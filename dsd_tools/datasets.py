"""``dsd-check-data`` and ``dsd-prepare-datalist``: a dataset folder checked, or its split written, before training.

    dsd-check-data DATASET_DIR --bundle hippocampus_nnunet_dsd [--fold 0] [--patch_size 32] [--max_cases N]
    dsd-check-data DATASET_DIR --dataset mmwhs                   # one of the paper's datasets
    dsd-prepare-datalist DATASET_DIR OUTPUT_JSON --bundle mmwhs_nnunet_dsd --fold 2

The dataset's facts (channels, classes, layout, split) come from a bundle's ``train.json`` (``--bundle``, a name
under bundles/ or a folder) or from the paper's table (``--dataset``), the same facts the bundle trains with.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dsd_components.data import DatasetSpec, build_datalist, write_datalist
from dsd_components.errors import DatasetIntegrityError
from dsd_components.integrity import verify_dataset

from .cli import UsageError, run_cli
from .paper import DATASETS
from .paths import resolve_bundle

__all__ = ["dataset_spec", "check_data", "prepare_datalist", "main_check", "main_prepare"]


def dataset_spec(bundle: str | None = None, dataset: str | None = None) -> DatasetSpec:
    """The dataset facts of a bundle (its train.json ``dataset`` item) or of one of the paper's datasets.

    Raises:
        UsageError: neither or both given, or an unknown paper dataset.
        FileNotFoundError: no such bundle.
    """
    if (bundle is None) == (dataset is None):
        raise UsageError("give the dataset's facts with --bundle NAME (or a bundle folder) or --dataset "
                         f"{'|'.join(DATASETS)}")
    if bundle is not None:
        cfg = json.loads((resolve_bundle(bundle) / "configs" / "train.json").read_text())
        return DatasetSpec.from_config(cfg["dataset"])
    if str(dataset).lower() not in DATASETS:
        raise UsageError(f"--dataset {dataset!r}: use one of {', '.join(DATASETS)} or --bundle NAME")
    return DatasetSpec.from_config(DATASETS[str(dataset).lower()].as_config())


def check_data(dataset_dir: str, bundle: str | None = None, dataset: str | None = None, datalist: str | None = None,
               fold: int = 0, patch_size: Any = None, max_cases: int | None = None) -> None:
    """Check every case: readable, channels, geometry, label values, NaN. Prints all problems at once; exit 2 on any.

    Args:
        dataset_dir: the dataset folder.
        bundle: a bundle name under bundles/ or a bundle folder: its dataset facts are used.
        dataset: one of the paper's datasets (mmwhs, brats, hippocampus), instead of --bundle.
        datalist: a decathlon-format JSON that replaces the derived split.
        fold: the fold whose training/validation lists are checked.
        patch_size: warn about images smaller than this (one int or X,Y,Z).
        max_cases: check only the first N cases.
    """
    spec = dataset_spec(bundle, dataset)
    try:
        report = verify_dataset(spec, dataset_dir, datalist=datalist, fold=fold, patch_size=patch_size,
                                max_cases=max_cases)
    except DatasetIntegrityError as exc:
        print(exc.report, file=sys.stderr)  # every error and warning, one line each
        raise SystemExit(2) from None
    print(report)
    print("OK")


def prepare_datalist(dataset_dir: str, output_json: str, bundle: str | None = None, dataset: str | None = None,
                     fold: int = 0) -> None:
    """Write a bundle's split for one fold as a decathlon-format datalist JSON (to inspect, version or edit, then
    pass back as ``--datalist``).

    Args:
        dataset_dir: the dataset folder.
        output_json: the JSON file to write.
        bundle: a bundle name or folder whose dataset facts (layout, split) are used.
        dataset: one of the paper's datasets, instead of --bundle.
        fold: the fold to write.
    """
    spec = dataset_spec(bundle, dataset)
    datalist = build_datalist(spec, dataset_dir, fold=fold)
    path = write_datalist(datalist, output_json)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in datalist.items())
    print(f"{spec.name} fold {fold}: {counts} -> {path}")


def main_check() -> None:
    run_cli(check_data)


def main_prepare() -> None:
    run_cli(prepare_datalist)
