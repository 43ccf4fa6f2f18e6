"""The paper's studies as data: which settings (config overrides) a study runs and which pairs it compares.

A *study* is a list of *settings* (config overrides such as ``dsd_mode=basic``) run over one or more bundles, folds
and seeds; its paper reference values come from :data:`dsd_tools.paper.STUDY_RESULTS` and the pairings' Dice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..overrides import network_overrides
from ..paper import BACKBONES, PAIRINGS, STUDY_RESULTS

__all__ = ["Setting", "StudyDef", "STUDIES", "paper_mean_dice", "small_network_overrides", "bundle_backbone_key"]


@dataclass(frozen=True)
class Setting:
    """One row of a study table: a label and the config overrides that make it."""

    name: str
    overrides: dict[str, Any]
    mode: str = "dsd"  # the DSD loss mode (decides which heads exist, for the parameter count)


@dataclass(frozen=True)
class StudyDef:
    title: str
    paper: str
    settings: Callable[[str, dict[str, Any] | None], list[Setting]]
    comparisons: Callable[[list[str]], list[tuple[str, str]]]  # (setting, reference) pairs for paired tests
    all_folds: bool = False  # cv: every fold of the data set by default


def _modes(*modes: str) -> Callable[[str, dict[str, Any] | None], list[Setting]]:
    return lambda bundle, small: [Setting(m, {"dsd_mode": m}, m) for m in modes]


def _vs(reference: str) -> Callable[[list[str]], list[tuple[str, str]]]:
    return lambda names: [(n, reference) for n in names if n != reference and reference in names]


def _temperature(bundle: str, small: dict[str, Any] | None) -> list[Setting]:
    return [Setting(f"T{t}", {"dsd_mode": "dsd", "temperature": float(t)}, "dsd") for t in (1, 2, 3, 4)]


def _capacity(bundle: str, small: dict[str, Any] | None) -> list[Setting]:
    small_over = small_network_overrides(bundle) if small is None else network_overrides(small)
    out = []
    for size, over in (("small", small_over), ("large", {})):
        for mode in ("basic", "dsd"):
            out.append(Setting(f"{size}_{mode}", {"dsd_mode": mode, **over}, mode))
    return out


def _capacity_pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = [(f"{s}_dsd", f"{s}_basic") for s in ("small", "large")]
    pairs += [("large_basic", "small_basic"), ("large_dsd", "small_dsd")]
    return [p for p in pairs if p[0] in names and p[1] in names]


def _ablation_pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = [(n, "basic") for n in ("ds", "sdd", "sde", "dsd")] + [(n, "ds") for n in ("sdd", "sde", "dsd")]
    return [p for p in pairs if p[0] in names and p[1] in names]


STUDIES: dict[str, StudyDef] = {
    "baseline_vs_dsd": StudyDef("Backbone vs backbone + DSD", "Tables 1-3", _modes("basic", "dsd"), _vs("basic")),
    "ablation": StudyDef("Ablation of the DSD components", "Table 5",
                         _modes("basic", "ds", "sdd", "sde", "dsd"), _ablation_pairs),
    "teacher": StudyDef("Choice of teacher", "Table 6", _modes("dsd", "mean_teacher", "reversed_teacher"), _vs("dsd")),
    "temperature": StudyDef("Distillation temperature T", "Section 3 (T = 1, 2, 3, 4)", _temperature, _vs("T3")),
    "capacity": StudyDef("Network capacity: small vs large, with and without DSD", "Table 7", _capacity,
                         _capacity_pairs),
    "cv": StudyDef("k-fold cross-validation, backbone vs backbone + DSD", "Table 1 (5-fold CV on MMWHS)",
                   _modes("basic", "dsd"), _vs("basic"), all_folds=True),
}

# Mean Dice (%) the paper reports, for the report's reference line (SPEC.md "Paper results").


def paper_mean_dice(study: str, bundle: str) -> dict[str, float] | None:
    """Mean Dice (%) the paper reports per setting of ``study`` on ``bundle`` (None when it reports none)."""
    if (study, bundle) in STUDY_RESULTS:
        return dict(STUDY_RESULTS[(study, bundle)])
    if study in ("baseline_vs_dsd", "cv") and bundle in PAIRINGS:
        basic, dsd = PAIRINGS[bundle].dice
        return {"basic": basic, "dsd": dsd}
    return None


def bundle_backbone_key(bundle: str) -> str:
    """``mmwhs_nnunet_dsd`` -> ``mmwhs_nnunet`` (the key of :data:`dsd_tools.paper.BACKBONES`)."""
    return PAIRINGS[bundle].backbone if bundle in PAIRINGS else bundle.removesuffix("_dsd")


def small_network_overrides(bundle: str) -> dict[str, Any]:
    """``network_def`` overrides that turn the bundle's (large) backbone into the paper's small one (Table 7).

    Raises:
        ValueError: the paper has no small variant of this bundle's backbone.
    """
    small_key = PAIRINGS[bundle].small_backbone if bundle in PAIRINGS else None
    if small_key is None:
        have = sorted(b for b, p in PAIRINGS.items() if p.small_backbone)
        raise ValueError(f"{bundle}: the paper has no small variant of this backbone (Table 7 covers "
                         f"{', '.join(have)}); "
                         "pass --small_net '{\"filters\": [...]}' (network_def overrides) to define one")
    large, small = BACKBONES[bundle_backbone_key(bundle)].kwargs, BACKBONES[small_key].kwargs
    return {f"network_def#{k}": v for k, v in small.items() if k != "img_size" and large.get(k) != v}
