"""What the bundle writer needs to know about one bundle, whoever decided it: the paper's table
(:func:`paper_bundle_spec`) or the planner for a user's own dataset (``dsd_tools.plan``).

One :class:`BundleSpec` in, one complete bundle out (:mod:`dsd_tools.bundlegen.writer`), so the nine paper bundles
and planned bundles share every line of config-writing code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..paper import BACKBONES, DATASETS, PAIRINGS, TRAINING, PairingFacts, deviations_for, pairing

__all__ = ["BundleSpec", "paper_bundle_spec", "paper_bundle_specs", "VERSION", "CHANGELOG"]

VERSION = "0.1.0"
CHANGELOG = {"0.1.0": "initial release: DSD training, evaluation and backbone-only inference"}


@dataclass(frozen=True)
class BundleSpec:
    """Every decision that shapes a bundle's files.

    Attributes:
        name: the bundle folder name.
        dataset: the runtime's dataset facts (``dsd_components.data.DatasetSpec`` as a dict: name, layout,
            channel_names, class_names, raw_label_values, background_values, target_spacing, split).
        title, modality: for metadata and docs ("MSD Task04 Hippocampus", "MRI").
        network_def: the stock MONAI backbone config (``_target_`` + arguments); UNETR's ``img_size`` is tied to
            ``patch_size`` by the writer.
        patch: training patch and sliding-window ROI.
        intensity: MONAI transform configs applied after orientation (and resampling).
        num_samples, pos, neg: ``RandCropByPosNegLabeld``.
        flip_prob, rot90_prob, shift_prob, shift_offset: augmentation.
        epochs, learning_rate, step_decay, val_interval: schedule.
        regions: extra evaluation regions, name -> label values (BraTS WT/TC/ET).
        data_source, data_license: where the data comes from and under which terms.
        paper: the paper's pairing when this is a paper bundle (README results, references).
        plan: the planner's record (planned bundles; written to ``plan.json`` and shown in the README).
        dataset_dir: the default ``dataset_dir`` (planned bundles point at the planned dataset; paper bundles at
            ``<bundle>/data``).
    """

    name: str
    dataset: Mapping[str, Any]
    title: str
    modality: str
    network_def: Mapping[str, Any]
    patch: tuple[int, int, int]
    intensity: tuple[Mapping[str, Any], ...]
    num_samples: int
    pos: float
    neg: float
    flip_prob: float
    rot90_prob: float
    shift_prob: float
    epochs: int
    learning_rate: float
    step_decay: bool
    val_interval: int
    shift_offset: float = 0.1
    pad_mode: str = "constant"
    cache_fg_bg_indices: bool = False
    spacing_before_orientation: bool = False
    head_init: str = "default"
    seed: int = TRAINING.seed
    deviations: tuple[Any, ...] = ()  # dsd_tools.paper.Deviation entries listed in the README
    regions: Mapping[str, tuple[int, ...]] | None = None
    data_source: str = ""
    data_license: str = ""
    paper: PairingFacts | None = None
    plan: Mapping[str, Any] | None = None
    dataset_dir: str | None = None
    version: str = VERSION
    changelog: Mapping[str, str] = field(default_factory=lambda: dict(CHANGELOG))
    weight_decay: float = TRAINING.weight_decay
    lambda_ds: float = TRAINING.lambda_ds
    alpha: float = TRAINING.alpha
    beta: float = TRAINING.beta
    temperature: float = TRAINING.temperature

    @property
    def channel_names(self) -> list[str]:
        return list(self.dataset["channel_names"])

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset["class_names"])

    @property
    def in_channels(self) -> int:
        return len(self.channel_names)

    @property
    def network_class(self) -> str:
        return str(self.network_def["_target_"]).rsplit(".", 1)[-1]


def paper_bundle_spec(name: str) -> BundleSpec:
    """The spec of one of the nine paper bundles, from :mod:`dsd_tools.paper`."""
    p = pairing(name)
    d = DATASETS[p.dataset]
    from ..networks import backbone_config

    return BundleSpec(
        name=name, dataset=d.as_config(), title=d.title, modality=d.modality,
        network_def=backbone_config(p.backbone), patch=(d.crop.patch,) * 3, intensity=tuple(d.intensity),
        num_samples=d.crop.num_samples, pos=d.crop.pos, neg=d.crop.neg, flip_prob=d.augmentation.flip_prob,
        rot90_prob=d.augmentation.rot90_prob, shift_prob=d.augmentation.shift_prob,
        shift_offset=d.augmentation.shift_offset, pad_mode=d.crop.pad_mode,
        cache_fg_bg_indices=d.crop.cache_fg_bg_indices, spacing_before_orientation=d.spacing_before_orientation,
        head_init=BACKBONES[p.backbone].head_init, deviations=tuple(deviations_for(p.dataset)),
        epochs=p.epochs, learning_rate=p.learning_rate,
        step_decay=p.step_decay, val_interval=d.val_interval,
        regions=d.regions,
        data_source=d.data_source, data_license=d.data_license, paper=p,
    )


def paper_bundle_specs() -> list[BundleSpec]:
    return [paper_bundle_spec(n) for n in PAIRINGS]
