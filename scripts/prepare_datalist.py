"""Write the paper's split for one data set and fold as a decathlon-format datalist JSON, so a run's
exact cases can be inspected, versioned or edited and passed back to a bundle as `--datalist`.

    python scripts/prepare_datalist.py DATASET DATASET_DIR OUTPUT_JSON [--fold 0] [--seed 0] [--num_folds 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without PYTHONPATH

from dsd_components.data import build_datalist, write_datalist  # noqa: E402


def prepare_datalist(dataset: str, dataset_dir: str, output_json: str, fold: int = 0, seed: int = 0,
                     num_folds: int = 5) -> str:
    """Build the datalist, write it, print the split sizes; returns the JSON path."""
    datalist = build_datalist(dataset, dataset_dir, fold=fold, num_folds=num_folds, seed=seed)
    path = write_datalist(datalist, output_json)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in datalist.items())
    print(f"{dataset} fold {fold}: {counts} -> {path}")
    return path


if __name__ == "__main__":
    import fire

    fire.Fire(prepare_datalist, serialize=lambda result: None)  # the summary line is printed already
