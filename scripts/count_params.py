"""Print backbone and DSD parameter counts of every pairing next to the paper's Tables 3 and 7.

    python scripts/count_params.py                 # every pairing
    python scripts/count_params.py mmwhs_nnunet    # one or more by name
"""

from __future__ import annotations

import sys
from pathlib import Path

import fire

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dsd_components.params import parameter_table  # noqa: E402


def main(*names: str, markdown: bool = True) -> None:
    """Print a table; ``--markdown=False`` prints tab-separated values instead."""
    rows = parameter_table(list(names) or None)
    cols = ["pairing", "backbone_M", "dsd_M", "heads", "overhead_%", "paper_backbone_M", "paper_dsd_M", "diff_backbone_%", "diff_dsd_%"]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    if markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    else:
        print("\t".join(cols))
        for r in rows:
            print("\t".join(fmt(r.get(c)) for c in cols))


if __name__ == "__main__":
    fire.Fire(main)
