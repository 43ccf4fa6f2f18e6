"""Check a data set before training: every file readable, geometry and channels consistent, label
values valid, no NaN. Prints all problems at once (file, what is wrong, what to do); exit code 1 on errors.

    python scripts/check_dataset.py DATASET DATASET_DIR [--datalist X] [--fold 0] [--patch_size 96,96,96]
        [--max_cases N]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without PYTHONPATH

from dsd_components.integrity import DatasetIntegrityError, verify_dataset  # noqa: E402


def check_dataset(dataset: str, dataset_dir: str | None = None, datalist: str | None = None, fold: int = 0,
                  patch_size=None, max_cases: int | None = None, seed: int = 0) -> int:
    """Run verify_dataset and print the report; returns the exit code (0 ok, 1 errors)."""
    try:
        report = verify_dataset(dataset, dataset_dir, datalist=datalist, fold=fold, patch_size=patch_size,
                                max_cases=max_cases, seed=seed)
    except DatasetIntegrityError as exc:
        print(exc.report, file=sys.stderr)
        return 1
    print(report)
    print("OK")
    return 0


if __name__ == "__main__":
    import fire

    code = fire.Fire(check_dataset, serialize=lambda result: None)  # exit code, not printed
    sys.exit(code if isinstance(code, int) else 0)
