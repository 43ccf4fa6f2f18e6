"""Backbone vs DSD parameter counts of every pairing, against the paper's Tables 3 and 7."""

from __future__ import annotations

from .backbones import BACKBONES, PAPER_PARAMS, build_backbone
from .network import DSDNetwork

__all__ = ["count_parameters", "parameter_table"]


def count_parameters(name: str, mode: str = "dsd") -> dict[str, int]:
    """Trainable parameters of pairing ``name``: the stock backbone and the DSD wrapper around it."""
    return DSDNetwork(build_backbone(name), mode=mode).num_parameters()


def parameter_table(names: list[str] | None = None) -> list[dict[str, object]]:
    """One row per pairing with measured and paper counts (millions) and the relative differences."""
    rows = []
    for name in names or list(BACKBONES):
        c = count_parameters(name)
        paper = PAPER_PARAMS.get(name)
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
