"""Backbone vs DSD parameter counts of every backbone, against the paper's Tables 3 and 7 (``dsd-count-params``)."""

from __future__ import annotations

from .cli import run_cli
from .paper import BACKBONES

__all__ = ["count_parameters", "parameter_table", "main"]

COLUMNS = ["pairing", "backbone_M", "dsd_M", "heads", "overhead_%", "paper_backbone_M", "paper_dsd_M",
           "diff_backbone_%", "diff_dsd_%"]


def count_parameters(name: str, mode: str = "dsd") -> dict[str, int]:
    """Trainable parameters of backbone ``name``: the stock backbone and the DSD wrapper around it."""
    from dsd_components.network import DSDNetwork  # torch and MONAI load only when counting, not for --help

    from .networks import build_backbone

    return DSDNetwork(build_backbone(name), mode=mode).num_parameters()


def parameter_table(names: list[str] | None = None) -> list[dict[str, object]]:
    """One row per backbone with measured and paper counts (millions) and the relative differences."""
    rows = []
    for name in names or list(BACKBONES):
        c = count_parameters(name)
        paper = BACKBONES[name].paper_params_m
        row: dict[str, object] = {
            "pairing": name,
            "backbone_M": c["backbone"] / 1e6,
            "dsd_M": c["dsd"] / 1e6,
            "heads": c["dsd"] - c["backbone"],
            "overhead_%": 100 * (c["dsd"] - c["backbone"]) / c["backbone"],
        }
        if paper:
            row["paper_backbone_M"], row["paper_dsd_M"] = paper
            row["diff_backbone_%"] = 100 * (row["backbone_M"] / paper[0] - 1)
            row["diff_dsd_%"] = 100 * (row["dsd_M"] / paper[1] - 1)
        rows.append(row)
    return rows


def count_params(*names: str, markdown: bool = True) -> None:
    """Print backbone and DSD parameter counts next to the paper's Tables 3 and 7.

    Args:
        names: backbones to count (default: all), e.g. ``mmwhs_nnunet hippocampus_vnet``.
        markdown: a markdown table (default) or tab-separated values (``--markdown false``).
    """
    rows = parameter_table(list(names) or None)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    if markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for r in rows:
            print("| " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |")
    else:
        print("\t".join(COLUMNS))
        for r in rows:
            print("\t".join(fmt(r.get(c)) for c in COLUMNS))


def main() -> None:
    run_cli(count_params)
