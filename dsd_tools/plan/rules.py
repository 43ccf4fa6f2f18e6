"""nnU-Net-style experiment planning for DSD bundles (pure functions, no I/O).

Why our own code: nnU-Net is not a dependency of a MONAI bundle, and its planner is tied to its own network class
and preprocessing. This module re-derives, in its own code, the rules nnU-Net v2 uses to turn a *dataset
fingerprint* into a training configuration, and maps them onto MONAI networks (``DynUNet`` first, then the other
paper backbones). Nothing is copied from nnU-Net; every rule cites the nnU-Net v2 file/function it follows
(MIC-DKFZ/nnUNet at commit 0e495086; dynamic-network-architectures at d35f85c7). On 111 fingerprints (7 named,
104 random, 4-40 GB budgets) it gave exactly nnU-Net's own patch, batch, strides, kernels, spacing and
normalisation when checked against nnU-Net's planner run beside it (docs/PLANNING.md).

Public API
----------
Data classes (frozen): :class:`ChannelIntensity`, :class:`Fingerprint`, :class:`Normalization`, :class:`Topology`,
:class:`PatchPlan`, :class:`Plan`.

Functions: :func:`target_spacing`, :func:`resampled_shape`, :func:`median_resampled_shape`, :func:`normalization`,
:func:`dynunet_topology`, :func:`default_filters`, :func:`dynunet_feature_map_elements`,
:func:`estimate_vram_gb`, :func:`initial_patch_size`, :func:`patch_size_for_budget`, :func:`backbone_divisor`,
:func:`backbone_patch_size`, :func:`nnunet_kfold`, :func:`plan`.

Axis order
----------
All functions work in whatever axis order they are given, except that nnU-Net breaks ties ("which axis to shrink
when two are equally too large") by axis position.  nnU-Net plans in its own order: the image array as SimpleITK
reads it (z, y, x: the reverse of NIfTI/MONAI x, y, z), then transposed so that the axis with the largest spacing
comes first (``ExperimentPlanner.determine_transpose``).  :func:`plan` reproduces that internally and returns every
value in the caller's order (``input_axes='xyz'`` for MONAI/nibabel arrays, ``'zyx'`` for nnU-Net/SimpleITK
arrays).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from dsd_components.data import nnunet_kfold

__all__ = [
    "ANISO_THRESHOLD",
    "FEATUREMAP_MIN_EDGE_LENGTH",
    "REFERENCE_ELEMENTS_3D",
    "REFERENCE_GB",
    "REFERENCE_BATCH_3D",
    "BYTES_PER_ELEMENT",
    "BACKBONE_DIVISORS",
    "BACKBONES_NEEDING_BOTTLENECK_GT1",
    "ChannelIntensity",
    "Fingerprint",
    "Normalization",
    "Topology",
    "PatchPlan",
    "Plan",
    "target_spacing",
    "resampled_shape",
    "median_resampled_shape",
    "normalization",
    "dynunet_topology",
    "default_filters",
    "dynunet_feature_map_elements",
    "estimate_vram_gb",
    "initial_patch_size",
    "patch_size_for_budget",
    "backbone_divisor",
    "backbone_patch_size",
    "nnunet_kfold",
    "plan",
]

# ----------------------------------------------------------------------------------------------------------------
# Constants, each with the nnU-Net v2 place it comes from.
# ----------------------------------------------------------------------------------------------------------------

#: nnunetv2/configuration.py ``ANISO_THRESHOLD = 3``: an axis is "anisotropic" when its spacing is > 3x the next
#: largest one (used by ExperimentPlanner.determine_fullres_target_spacing).
ANISO_THRESHOLD: float = 3.0

#: ExperimentPlanner.__init__ ``UNet_featuremap_min_edge_length = 4``: get_pool_and_conv_props keeps pooling an
#: axis only while it is >= 2 * 4 voxels (>= 3 * 4 when it is the only axis left to pool).
FEATUREMAP_MIN_EDGE_LENGTH: int = 4

#: ExperimentPlanner.__init__ ``UNet_reference_val_3d = 560000000``: the value of nnU-Net's VRAM proxy
#: (PlainConvUNet.compute_conv_feature_map_size, i.e. conv-output elements of ONE sample) that was found to fit ...
REFERENCE_ELEMENTS_3D: int = 560_000_000
#: ... ``UNet_reference_val_corresp_GB = 8`` GB of GPU memory ...
REFERENCE_GB: float = 8.0
#: ... at ``UNet_reference_val_corresp_bs_3d = 2`` samples per batch.
REFERENCE_BATCH_3D: int = 2
#: ExperimentPlanner.__init__ ``UNet_min_batch_size = 2``.
MIN_BATCH_SIZE: int = 2
#: ExperimentPlanner.__init__ ``max_dataset_covered = 0.05``: one batch may cover at most 5% of all voxels.
MAX_DATASET_COVERED: float = 0.05
#: ExperimentPlanner.__init__ ``UNet_base_num_features = 32`` and ``UNet_max_features_3d = 320``.
BASE_FEATURES: int = 32
MAX_FEATURES_3D: int = 320
#: ExperimentPlanner.__init__ ``lowres_creation_threshold = 0.25``: nnU-Net adds a 3d_lowres (cascade)
#: configuration when the fullres patch holds < 25% of the median image's voxels (plan_experiment).
LOWRES_CREATION_THRESHOLD: float = 0.25

#: Calibration of our memory model: nnU-Net's reference says 560e6 elements/sample x 2 samples fit in 8 GB
#: (nnU-Net's "GB" is the nominal GPU size; we read it as GiB).  So one counted element costs, all-inclusive
#: (activations saved for backward under AMP, norm/nonlin outputs, gradients, weights + Adam state, cuDNN
#: workspace, CUDA context), 8 * 2**30 / (2 * 560e6) = 7.67 bytes.  See the notes for the derivation.
BYTES_PER_ELEMENT: float = REFERENCE_GB * 2**30 / (REFERENCE_BATCH_3D * REFERENCE_ELEMENTS_3D)

#: Patch divisibility needed by the other paper backbones (stock MONAI 1.6 networks):
#: UNETR: fixed 16^3 ViT patch embedding (monai/networks/nets/unetr.py ``self.patch_size = 16``);
#: SwinUNETR: patch_size**5 = 32 with the default patch_size=2 (swin_unetr.py docstring / _check_input_size);
#: VNet: four stride-2 down transitions -> 16; SegResNet: 2**(len(blocks_down)-1) = 8 with the default
#: blocks_down=(1,2,2,4); BasicUNet: four max-poolings -> 16.  DynUNet: product of its strides (per axis).
BACKBONE_DIVISORS: Mapping[str, int] = {
    "unetr": 16,
    "swinunetr": 32,
    "vnet": 16,
    "segresnet": 8,
    "basicunet": 16,
}

#: Backbones whose deepest feature map (patch / divisor) goes through an InstanceNorm (their MONAI default norm):
#: torch's instance_norm refuses a single spatial element, so patch / divisor must hold more than one voxel
#: (SwinUNETR at 32^3 and BasicUNet at 16^3 fail; 64x32x64 and 32x16x16 run; checked in the tests).
BACKBONES_NEEDING_BOTTLENECK_GT1: frozenset[str] = frozenset({"swinunetr", "basicunet"})

# nnunetv2/preprocessing/normalization/map_channel_name_to_normalization.py
# ``channel_name_to_normalization_mapping``: lower-cased channel name -> scheme; anything else -> ZScoreNormalization.
_NORM_BY_CHANNEL_NAME: Mapping[str, str] = {
    "ct": "CTNormalization",
    "nonorm": "NoNormalization",
    "zscore": "ZScoreNormalization",
    "rescale_to_0_1": "RescaleTo01Normalization",
    "rgb_to_0_1": "RGBTo01Normalization",
}
# default_normalization_schemes.py: ``leaves_pixels_outside_mask_at_zero_if_use_mask_for_norm_is_true`` is True only
# for ZScoreNormalization; ExperimentPlanner.determine_normalization_scheme_and_whether_mask_is_used_for_norm uses
# it as the per-channel use_mask_for_norm when cropping to the nonzero region shrank the median image below 3/4.
_MASKABLE_SCHEMES = frozenset({"ZScoreNormalization"})
_MASK_CROP_THRESHOLD = 0.75


# ----------------------------------------------------------------------------------------------------------------
# Data classes
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelIntensity:
    """Foreground intensity statistics of one input channel over the whole training set.

    Mirrors ``foreground_intensity_properties_per_channel`` of nnU-Net's dataset_fingerprint.json
    (DatasetFingerprintExtractor.run): computed on voxels with label > 0, pooled over cases (nnU-Net samples the
    same number of foreground voxels from every case, 10e7 / n_cases, with replacement, seed 1234).
    """

    mean: float
    std: float
    percentile_00_5: float
    percentile_99_5: float
    median: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Fingerprint:
    """What the planner needs to know about a dataset (nnU-Net's dataset_fingerprint.json + dataset.json).

    Attributes:
        spacings: per training case, voxel spacing in mm (axis order: see ``input_axes`` of :func:`plan`).
        shapes: per training case, the image shape *after cropping to the nonzero region*
            (nnU-Net ``shapes_after_crop``; equals the raw shape when nothing is zero, e.g. CT).
        channel_names: one name per input channel, as in dataset.json ``channel_names`` (nnU-Net v2) or
            ``modality`` (MSD), e.g. ``("CT",)`` or ``("FLAIR", "T1w", "t1gd", "T2w")``.
        intensity: per channel, pooled foreground statistics (needed for CT channels; may be ``None`` otherwise).
        labels: class names in label-value order, background first (dataset.json ``labels``).
        median_relative_size_after_cropping: median over cases of voxels-after-crop / voxels-before-crop
            (nnU-Net ``median_relative_size_after_cropping``); decides use_mask_for_norm.
        case_ids: training case identifiers (for the cross-validation split); optional.
    """

    spacings: tuple[tuple[float, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    channel_names: tuple[str, ...]
    labels: tuple[str, ...]
    intensity: tuple[ChannelIntensity | None, ...] = ()
    median_relative_size_after_cropping: float = 1.0
    case_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.spacings) != len(self.shapes) or not self.spacings:
            raise ValueError("spacings and shapes must be non-empty and have one entry per case")
        dims = {len(s) for s in self.spacings} | {len(s) for s in self.shapes}
        if len(dims) != 1:
            raise ValueError(f"all spacings and shapes must have the same number of axes, got {sorted(dims)}")
        if self.intensity and len(self.intensity) != len(self.channel_names):
            raise ValueError("intensity needs one entry per channel (or be empty)")
        if len(self.labels) < 2:
            raise ValueError("labels must list background and at least one foreground class")
        if self.case_ids and len(self.case_ids) != len(self.spacings):
            raise ValueError("case_ids must have one entry per case")


@dataclass(frozen=True)
class Normalization:
    """How one input channel is normalised (nnU-Net default_normalization_schemes.py).

    ``scheme`` is nnU-Net's class name.  For ``CTNormalization``: clip to ``clip`` (foreground percentile 0.5 and
    99.5) then ``(x - mean) / std`` with the *dataset's* foreground mean/std.  For ``ZScoreNormalization``:
    per-image ``(x - mean) / std``, statistics over the nonzero mask when ``use_mask_for_norm``.
    """

    channel: int
    channel_name: str
    scheme: str
    use_mask_for_norm: bool
    clip: tuple[float, float] | None = None
    mean: float | None = None
    std: float | None = None
    why: str = ""

    def monai_transform(self, key: str = "image") -> dict[str, Any]:
        """A MONAI bundle-config dict doing the same thing for a one-channel ``key``.

        CT: ``ScaleIntensityRanged`` with ``clip=True`` maps [lo, hi] linearly onto [(lo-mean)/std, (hi-mean)/std],
        which is exactly ``(clip(x, lo, hi) - mean) / std``.  Z-score: ``NormalizeIntensityd`` (``nonzero`` =
        use_mask_for_norm; MONAI's nonzero mask is voxel != 0, nnU-Net's is the hole-filled nonzero region).
        """
        if self.scheme == "CTNormalization":
            assert self.clip is not None and self.mean is not None and self.std is not None
            lo, hi = self.clip
            s = max(self.std, 1e-8)
            return {"_target_": "ScaleIntensityRanged", "keys": key, "a_min": lo, "a_max": hi,
                    "b_min": (lo - self.mean) / s, "b_max": (hi - self.mean) / s, "clip": True}
        if self.scheme == "ZScoreNormalization":
            return {"_target_": "NormalizeIntensityd", "keys": key, "nonzero": self.use_mask_for_norm,
                    "channel_wise": True}
        if self.scheme == "RescaleTo01Normalization":
            return {"_target_": "ScaleIntensityd", "keys": key, "minv": 0.0, "maxv": 1.0}
        if self.scheme == "RGBTo01Normalization":
            return {"_target_": "ScaleIntensityRanged", "keys": key, "a_min": 0.0, "a_max": 255.0,
                    "b_min": 0.0, "b_max": 1.0, "clip": False}
        return {"_target_": "Identityd", "keys": key}


@dataclass(frozen=True)
class Topology:
    """A DynUNet / nnU-Net PlainConvUNet topology (nnU-Net network_topology.get_pool_and_conv_props).

    ``kernel_sizes`` and ``strides`` have one entry per resolution stage and are DynUNet's ``kernel_size`` and
    ``strides``; ``upsample_kernel_sizes`` = ``strides[1:]`` is DynUNet's ``upsample_kernel_size``.
    ``patch_size`` is the input patch padded up to a multiple of ``divisible_by`` (= 2**num_pool_per_axis).
    """

    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    patch_size: tuple[int, ...]
    num_pool_per_axis: tuple[int, ...]
    divisible_by: tuple[int, ...]

    @property
    def upsample_kernel_sizes(self) -> tuple[tuple[int, ...], ...]:
        return self.strides[1:]

    @property
    def n_stages(self) -> int:
        return len(self.strides)


@dataclass(frozen=True)
class PatchPlan:
    """Result of :func:`patch_size_for_budget`."""

    patch_size: tuple[int, ...]
    topology: Topology
    filters: tuple[int, ...]
    feature_map_elements: int
    vram_estimate_gb: float
    batch_size: int
    initial_patch_size: tuple[int, ...]
    shrink_steps: tuple[tuple[int, ...], ...]
    why: str


@dataclass(frozen=True)
class Plan:
    """Everything a DSD bundle needs from planning, each value with a ``why``."""

    in_channels: int
    num_classes: int
    labels: tuple[str, ...]
    original_median_spacing: tuple[float, ...]
    original_median_shape: tuple[float, ...]
    target_spacing: tuple[float, ...]
    anisotropic: bool
    median_shape_resampled: tuple[float, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    upsample_kernel_sizes: tuple[tuple[int, ...], ...]
    filters: tuple[int, ...]
    feature_map_elements: int
    vram_estimate_gb: float
    gpu_memory_gb: float
    normalization: tuple[Normalization, ...]
    lowres_suggested: bool
    patch_fraction_of_median: float
    backbone_patch_sizes: Mapping[str, tuple[int, ...]]
    folds: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    why: Mapping[str, str] = field(default_factory=dict)

    def dynunet_kwargs(self) -> dict[str, Any]:
        """Constructor arguments for ``monai.networks.nets.DynUNet`` (3D, instance norm as nnU-Net)."""
        return {
            "spatial_dims": len(self.patch_size),
            "in_channels": self.in_channels,
            "out_channels": self.num_classes,
            "kernel_size": [list(k) for k in self.kernel_sizes],
            "strides": [list(s) for s in self.strides],
            "upsample_kernel_size": [list(s) for s in self.upsample_kernel_sizes],
            "filters": list(self.filters),
            "norm_name": "instance",
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        def conv(v: Any) -> Any:
            if isinstance(v, Mapping):
                return {str(k): conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, (np.floating,)):
                return float(v)
            return v
        return conv(asdict(self))


# ----------------------------------------------------------------------------------------------------------------
# Spacing, shapes
# ----------------------------------------------------------------------------------------------------------------


def target_spacing(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                   anisotropy_threshold: float = ANISO_THRESHOLD) -> tuple[float, ...]:
    """Full-resolution target spacing: the per-axis median, except for anisotropic datasets.

    Follows nnU-Net ``ExperimentPlanner.determine_fullres_target_spacing``
    (experiment_planners/default_experiment_planner.py):

    1. target = per-axis median (50th percentile) of the case spacings; median shape = per-axis median of
       ``shapes`` (nnU-Net uses shapes_after_crop at the *original* spacing).
    2. worst axis = argmax(target).  The dataset is anisotropic when BOTH
       target[worst] > threshold * max(other target spacings)   and
       median_shape[worst] * threshold < min(other median sizes)   (threshold = ANISO_THRESHOLD = 3).
    3. Then the worst axis gets the 10th percentile of that axis' spacings instead of the median, but never less
       than the largest other spacing (if it would be, it becomes max(other) + 1e-5).

    Args:
        spacings: per-case spacings (mm), any consistent axis order.
        shapes: per-case shapes (voxels) in the same order.
        anisotropy_threshold: nnU-Net's ANISO_THRESHOLD.

    Returns:
        The target spacing, same axis order.
    """
    sp = np.asarray(spacings, dtype=np.float64)
    sh = np.asarray(shapes, dtype=np.float64)
    if sp.ndim != 2 or sp.shape != sh.shape:
        raise ValueError(f"spacings {sp.shape} and shapes {sh.shape} must both be (n_cases, n_axes)")
    target = np.percentile(sp, 50, axis=0)
    median_shape = np.percentile(sh, 50, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(sp.shape[1]) if a != worst]
    max_other_spacing = max(target[a] for a in others)
    aniso_spacing = target[worst] > anisotropy_threshold * max_other_spacing
    aniso_voxels = median_shape[worst] * anisotropy_threshold < min(median_shape[a] for a in others)
    if aniso_spacing and aniso_voxels:
        low = float(np.percentile(sp[:, worst], 10))
        if low < max_other_spacing:
            low = max(max_other_spacing, low) + 1e-5
        target[worst] = low
    return tuple(float(t) for t in target)


def _is_anisotropic(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                    anisotropy_threshold: float = ANISO_THRESHOLD) -> bool:
    sp = np.asarray(spacings, dtype=np.float64)
    sh = np.asarray(shapes, dtype=np.float64)
    target = np.percentile(sp, 50, axis=0)
    median_shape = np.percentile(sh, 50, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(sp.shape[1]) if a != worst]
    return bool(target[worst] > anisotropy_threshold * max(target[a] for a in others)
                and median_shape[worst] * anisotropy_threshold < min(median_shape[a] for a in others))


def resampled_shape(shape: Sequence[int], spacing: Sequence[float],
                    new_spacing: Sequence[float]) -> tuple[int, ...]:
    """Shape after resampling ``shape`` from ``spacing`` to ``new_spacing``.

    nnU-Net ``compute_new_shape`` (preprocessing/resampling/default_resampling.py): ``round(old_spacing /
    new_spacing * old_shape)`` per axis, with Python's round (half to even).
    """
    if not (len(shape) == len(spacing) == len(new_spacing)):
        raise ValueError("shape, spacing and new_spacing need the same length")
    return tuple(int(round(float(o) / float(n) * float(s))) for s, o, n in zip(shape, spacing, new_spacing))


def median_resampled_shape(spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]],
                           new_spacing: Sequence[float]) -> tuple[float, ...]:
    """Per-axis median of every case's shape after resampling to ``new_spacing``.

    nnU-Net ``ExperimentPlanner.plan_experiment``: ``np.median([compute_new_shape(shape, spacing, target)])``.
    Can be fractional (x.5) for an even number of cases, as in nnU-Net.
    """
    new = [resampled_shape(s, p, new_spacing) for s, p in zip(shapes, spacings)]
    return tuple(float(x) for x in np.median(np.asarray(new, dtype=np.float64), axis=0))


# ----------------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------------


def normalization(modality: str, intensity: ChannelIntensity | None = None,
                  median_relative_size_after_cropping: float = 1.0, channel: int = 0) -> Normalization:
    """The normalisation nnU-Net would use for a channel called ``modality``.

    * Scheme by name (nnU-Net map_channel_name_to_normalization.get_normalization_scheme): case-insensitive
      ``"CT"`` -> CTNormalization, ``"noNorm"``, ``"zscore"``, ``"rescale_to_0_1"``, ``"rgb_to_0_1"`` -> their
      schemes; anything else (MRI, T1, FLAIR, ADC, ...) -> ZScoreNormalization.
    * CTNormalization.run (default_normalization_schemes.py): clip to the dataset's foreground
      ``percentile_00_5`` / ``percentile_99_5``, subtract the foreground ``mean``, divide by ``max(std, 1e-8)``;
      all four numbers come from the fingerprint, so ``intensity`` is required for CT.
    * ZScoreNormalization.run: per image, ``(x - mean) / max(std, 1e-8)``; with use_mask_for_norm the statistics
      and the update cover only the nonzero region (voxels outside stay as they are, i.e. 0).
    * use_mask_for_norm (ExperimentPlanner.determine_normalization_scheme_and_whether_mask_is_used_for_norm):
      True only if ``median_relative_size_after_cropping < 3/4`` AND the scheme leaves outside pixels at zero
      (only ZScoreNormalization does).  So BraTS-like skull-stripped MRI -> masked z-score; CT -> never masked.
    """
    name = modality.casefold()
    scheme = _NORM_BY_CHANNEL_NAME.get(name, "ZScoreNormalization")
    cropped_a_lot = median_relative_size_after_cropping < _MASK_CROP_THRESHOLD
    use_mask = bool(cropped_a_lot and scheme in _MASKABLE_SCHEMES)
    if scheme == "CTNormalization":
        if intensity is None:
            raise ValueError(f"channel {channel} ({modality!r}) is CT: foreground intensity statistics are needed")
        why = (f"channel name {modality!r} -> CTNormalization (nnU-Net map_channel_name_to_normalization): clip to "
               f"foreground 0.5/99.5 percentiles [{intensity.percentile_00_5:g}, {intensity.percentile_99_5:g}] "
               f"then (x - {intensity.mean:g}) / {intensity.std:g}, dataset-wide foreground statistics; "
               "CT never uses the nonzero mask (CTNormalization leaves nothing at zero)")
        return Normalization(channel, modality, scheme, False,
                             (float(intensity.percentile_00_5), float(intensity.percentile_99_5)),
                             float(intensity.mean), float(intensity.std), why)
    if scheme == "ZScoreNormalization":
        src = "is not a special name" if name not in _NORM_BY_CHANNEL_NAME else "asks for it"
        mask_why = (f"median relative size after crop-to-nonzero is {median_relative_size_after_cropping:.3f}"
                    f" {'<' if cropped_a_lot else '>='} 0.75, so statistics are "
                    f"{'taken inside the nonzero mask only' if use_mask else 'taken over the whole image'}")
        why = (f"channel name {modality!r} {src} -> per-image z-score (nnU-Net ZScoreNormalization); {mask_why} "
               "(determine_normalization_scheme_and_whether_mask_is_used_for_norm)")
        return Normalization(channel, modality, scheme, use_mask, None, None, None, why)
    why = f"channel name {modality!r} -> {scheme} (nnU-Net map_channel_name_to_normalization)"
    return Normalization(channel, modality, scheme, False, None, None, None, why)


# ----------------------------------------------------------------------------------------------------------------
# Topology
# ----------------------------------------------------------------------------------------------------------------


def dynunet_topology(spacing: Sequence[float], patch_size: Sequence[float],
                     min_feature_map_size: int = FEATUREMAP_MIN_EDGE_LENGTH,
                     max_numpool: int = 999999) -> Topology:
    """Strides and kernel sizes for a U-Net on ``patch_size`` voxels of ``spacing`` mm.

    Own implementation of nnU-Net ``get_pool_and_conv_props`` (experiment_planners/network_topology.py), which the
    planner calls with ``min_feature_map_size = 4`` and ``max_numpool = 999999`` (i.e. no cap on poolings).
    Repeat, one resolution stage per round:

    * an axis may be pooled if its current size is >= 2 * min_feature_map_size, its current spacing is < 2x the
      smallest current spacing among those large-enough axes, and it has not been pooled max_numpool times;
    * stop when no axis may be pooled, or when only one may and its size is < 3 * min_feature_map_size;
    * kernel size of an axis becomes 3 (and stays 3) once its current spacing is < 2x the smallest current spacing
      of all axes, otherwise 1 (this yields the (1,3,3) kernels of anisotropic data);
    * pooled axes get stride 2, their spacing doubles, their size becomes ceil(size / 2).

    Stage 0 has stride 1; the bottleneck always gets kernel 3 on every axis.  Finally the patch is padded up to a
    multiple of 2**(poolings of that axis) (network_topology.pad_shape).

    Returns:
        :class:`Topology` (kernel_sizes / strides map 1:1 onto MONAI DynUNet ``kernel_size`` / ``strides``).
    """
    dim = len(spacing)
    if len(patch_size) != dim:
        raise ValueError("spacing and patch_size need the same length")
    cur_spacing = [float(s) for s in spacing]
    cur_size = [float(p) for p in patch_size]
    n_pool = [0] * dim
    kernel = [1] * dim
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    while True:
        big_enough = [a for a in range(dim) if cur_size[a] >= 2 * min_feature_map_size]
        if not big_enough:
            break
        finest = min(cur_spacing[a] for a in big_enough)
        poolable = [a for a in big_enough if cur_spacing[a] / finest < 2 and n_pool[a] < max_numpool]
        if not poolable:
            break
        if len(poolable) == 1 and cur_size[poolable[0]] < 3 * min_feature_map_size:
            break
        finest_all = min(cur_spacing)
        for a in range(dim):
            if kernel[a] != 3 and cur_spacing[a] / finest_all < 2:
                kernel[a] = 3
        stride = tuple(2 if a in poolable else 1 for a in range(dim))
        for a in poolable:
            n_pool[a] += 1
            cur_spacing[a] *= 2
            cur_size[a] = math.ceil(cur_size[a] / 2)
        strides.append(stride)
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)
    divisible_by = tuple(2**n for n in n_pool)
    padded = tuple(int(math.ceil(float(p) / d) * d) for p, d in zip(patch_size, divisible_by))
    return Topology(tuple(kernels), tuple(strides), padded, tuple(n_pool), divisible_by)


def default_filters(n_stages: int, base: int = BASE_FEATURES, max_features: int = MAX_FEATURES_3D) -> tuple[int, ...]:
    """Feature maps per stage: ``min(base * 2**i, max)`` (nnU-Net get_plans_for_configuration._features_per_stage
    with 32 / 320; identical to MONAI DynUNet's default ``filters`` for 3D)."""
    return tuple(min(max_features, base * 2**i) for i in range(n_stages))


def dynunet_feature_map_elements(patch_size: Sequence[int], strides: Sequence[Sequence[int]], num_classes: int,
                                 filters: Sequence[int] | None = None, n_conv_encoder: int = 2,
                                 n_conv_decoder: int = 2, res_block: bool = False, deep_supervision: bool = False,
                                 dsd_heads: bool = False, in_channels: int | None = None) -> int:
    """Number of conv-output elements of ONE sample in a DynUNet forward pass: our VRAM proxy.

    Counting rule (written for MONAI DynUNet; with the defaults it counts exactly what nnU-Net's proxy
    ``PlainConvUNet.compute_conv_feature_map_size`` in dynamic-network-architectures counts, which
    ExperimentPlanner.static_estimate_VRAM_usage uses):

    * encoder stage s (stage 0 = input block, last = bottleneck) at size v_s = v_{s-1} // stride_s:
      ``n_conv_encoder * filters[s] * prod(v_s)`` (each conv's output; norm/nonlin outputs are covered by the
      bytes-per-element calibration);
    * decoder stage s = n-2 .. 0: transposed-conv output ``filters[s] * prod(v_s)`` + ``n_conv_decoder *
      filters[s] * prod(v_s)``;
    * segmentation head(s): ``num_classes * prod(v_0)`` (nnU-Net's proxy builds the net without deep supervision);
      with ``deep_supervision`` one more ``num_classes * prod(v_s)`` per decoder stage s >= 1.

    Extensions (not in nnU-Net's proxy, off by default so the calibration holds):

    * ``res_block``: DynUNet builds its *encoder* blocks (input block, downsamples, bottleneck) as
      ``UnetResBlock``, which adds a 1x1 conv (conv3) whenever channels or stride change: +1
      ``filters[s] * prod(v_s)`` per encoder stage (stage 0 only if ``in_channels != filters[0]``; unknown
      ``in_channels`` counts it).  MONAI 1.6 DynUNet.get_upsamples never passes res_block to ``UnetUpBlock``, so
      the decoder stays plain (checked with forward hooks in the tests).
    * ``dsd_heads``: DSD bottleneck heads (dsd_components/heads.py + taps.py for DynUNet: encoder taps =
      input_block + downsamples = stages 0..n-2, decoder taps = upsamples[:-1] + bottleneck = stages 1..n-1).  A
      head at stage s projects to num_classes and upsamples x2 per step back to the input size, so it stores
      ``num_classes * sum_{t<=s} prod(v_t)``.

    Args:
        patch_size: input patch (voxels), divisible by the product of ``strides``.
        strides: per-stage strides (stage 0 = (1, 1, 1)).
        num_classes: output channels (incl. background).
        filters: per-stage channels; default :func:`default_filters`.
    """
    n = len(strides)
    feats = tuple(filters) if filters is not None else default_filters(n)
    if len(feats) < n:
        raise ValueError(f"need {n} filters, got {len(feats)}")
    sizes: list[tuple[int, ...]] = []
    cur = tuple(int(p) for p in patch_size)
    for st in strides:
        cur = tuple(c // s for c, s in zip(cur, st))
        sizes.append(cur)
    vox = [int(np.prod(s, dtype=np.int64)) for s in sizes]
    total = 0
    for s in range(n):  # encoder incl. bottleneck
        prev = (in_channels if in_channels is not None else -1) if s == 0 else feats[s - 1]
        residual_conv = res_block and (prev != feats[s] or any(st != 1 for st in strides[s]))
        total += (n_conv_encoder + (1 if residual_conv else 0)) * feats[s] * vox[s]
    for s in range(n - 2, -1, -1):  # decoder, deepest first
        total += (1 + n_conv_decoder) * feats[s] * vox[s]
        if s == 0 or deep_supervision:
            total += num_classes * vox[s]
    if dsd_heads:
        taps = list(range(0, n - 1)) + list(range(1, n))
        for s in taps:
            total += num_classes * sum(vox[: s + 1])
    return int(total)


def estimate_vram_gb(feature_map_elements: int, batch_size: int,
                     bytes_per_element: float = BYTES_PER_ELEMENT) -> float:
    """GiB of GPU memory for ``batch_size`` samples: elements x batch x bytes per element.

    With the default ``bytes_per_element`` (calibrated on nnU-Net's reference, 560e6 elements x 2 samples = 8 GiB)
    this is nnU-Net's own memory model: an estimate of the whole training step (AMP), not just activations.
    """
    return float(feature_map_elements) * batch_size * bytes_per_element / 2**30


def initial_patch_size(spacing: Sequence[float], median_shape: Sequence[float],
                       start_voxels: int = 256**3) -> tuple[float, ...]:
    """nnU-Net's starting patch (ExperimentPlanner.get_plans_for_configuration).

    Aspect ratio ∝ 1/spacing (isotropic in mm), scaled to the volume of a 256^3 patch, each axis rounded (Python
    round, half to even), then capped by the median image shape (which may stay fractional, as in nnU-Net).
    """
    inv = 1.0 / np.asarray(spacing, dtype=np.float64)
    scale = (start_voxels / float(np.prod(inv))) ** (1.0 / len(inv))
    start = [round(float(i)) for i in inv * scale]
    return tuple(min(float(s), float(m)) for s, m in zip(start, median_shape))


def patch_size_for_budget(median_shape_after_resampling: Sequence[float], spacing: Sequence[float],
                          in_channels: int, num_classes: int, gpu_memory_gb: float = 8.0,
                          base_filters: int = BASE_FEATURES, max_filters: int = MAX_FEATURES_3D,
                          min_batch_size: int = MIN_BATCH_SIZE,
                          num_training_cases: int | None = None, res_block: bool = False,
                          deep_supervision: bool = False, dsd_heads: bool = False,
                          bytes_per_element: float | None = None) -> PatchPlan:
    """Largest nnU-Net-style patch whose DynUNet memory estimate fits ``gpu_memory_gb`` at ``min_batch_size``.

    Follows nnU-Net ExperimentPlanner.get_plans_for_configuration (3D):

    1. start from :func:`initial_patch_size` (256^3 voxels, isotropic in mm, capped by the median shape);
    2. :func:`dynunet_topology` (pads the patch to a multiple of 2**poolings);
    3. while ``elements * min_batch_size * bytes_per_element > gpu_memory_gb`` (with the defaults, nnU-Net's test
       ``estimate / 2 * 2 > 560e6 * gpu_GB / 8``): take the axis whose patch/median ratio is largest (ties: the
       LAST such axis, as nnU-Net's ``np.argsort(...)[-1]``), reduce it by the divisibility step *recomputed for
       the reduced patch* (so e.g. 224 is not skipped between 256 and 192), and recompute the topology;
    4. batch size = round(budget / (elements * bytes_per_element)) (nnU-Net: ``round(reference / estimate * 2)``),
       capped so that one batch covers at most 5% of the dataset's voxels (``num_training_cases`` x median
       shape; skipped when unknown), and never below ``min_batch_size``.

    ``base_filters`` / ``max_filters`` (filters = min(base * 2**stage, max); nnU-Net: 32 / 320; the paper's
    DSD DynUNets use 16 / 256 for BraTS and Hippocampus) and ``res_block`` / ``deep_supervision`` / ``dsd_heads``
    change what is counted
    (:func:`dynunet_feature_map_elements`); with their defaults the result equals nnU-Net's 3d_fullres patch.

    Args:
        median_shape_after_resampling: median image shape at ``spacing`` (see :func:`median_resampled_shape`).
        spacing: target spacing.
        in_channels: input channels (nnU-Net's proxy ignores them; used only to decide whether a residual
            input block has a 1x1 projection).
        num_classes: output channels incl. background.
        gpu_memory_gb: memory budget in GiB.
    """
    if len(spacing) != 3 or len(median_shape_after_resampling) != 3:
        raise ValueError("patch_size_for_budget plans 3D patches")
    median = [float(m) for m in median_shape_after_resampling]
    # Budget in nnU-Net's own units (elements of a reference batch of REFERENCE_BATCH_3D samples), so that with the
    # default calibration the arithmetic, and hence every rounding, is nnU-Net's:
    # reference = UNet_reference_val_3d * (gpu_GB / UNet_reference_val_corresp_GB).
    if bytes_per_element is None:
        bpe = BYTES_PER_ELEMENT
        capacity = REFERENCE_ELEMENTS_3D * (gpu_memory_gb / REFERENCE_GB)
    else:
        bpe = float(bytes_per_element)
        capacity = gpu_memory_gb * 2**30 / (bpe * REFERENCE_BATCH_3D)

    def count(topo: Topology) -> tuple[int, tuple[int, ...]]:
        f = default_filters(topo.n_stages, base_filters, max_filters)
        e = dynunet_feature_map_elements(topo.patch_size, topo.strides, num_classes, f, res_block=res_block,
                                         deep_supervision=deep_supervision, dsd_heads=dsd_heads,
                                         in_channels=in_channels)
        return e, f

    start = initial_patch_size(spacing, median)
    topo = dynunet_topology(spacing, start)
    elements, feats = count(topo)
    steps: list[tuple[int, ...]] = [topo.patch_size]
    # nnU-Net: while estimate / ref_bs * 2 > reference  (i.e. min_batch_size samples must fit)
    while elements / REFERENCE_BATCH_3D * min_batch_size > capacity:
        ratios = [p / m for p, m in zip(topo.patch_size, median)]
        top = max(ratios)
        axis = max(a for a, r in enumerate(ratios) if r == top)
        trial = list(topo.patch_size)
        trial[axis] -= topo.divisible_by[axis]
        if trial[axis] <= 0:
            raise ValueError(f"cannot fit even the smallest patch into {gpu_memory_gb} GiB")
        step = dynunet_topology(spacing, trial).divisible_by[axis]
        new_patch = list(topo.patch_size)
        new_patch[axis] -= step
        topo = dynunet_topology(spacing, new_patch)
        elements, feats = count(topo)
        steps.append(topo.patch_size)
    batch = round(capacity / elements * REFERENCE_BATCH_3D)  # nnU-Net: round(reference / estimate * ref_bs)
    cap_note = ""
    if num_training_cases is not None:
        n_vox = float(np.prod(median, dtype=np.float64)) * num_training_cases
        cap = round(n_vox * MAX_DATASET_COVERED / float(np.prod(topo.patch_size, dtype=np.float64)))
        if cap < batch:
            cap_note = (f"; the 5% rule (one batch covers at most 5% of the {num_training_cases} cases' voxels) "
                        f"caps it at {cap}" + (f", raised to the minimum {min_batch_size}" if cap < min_batch_size
                                               else ""))
        batch = min(batch, cap)
    batch = max(batch, min_batch_size)
    vram = estimate_vram_gb(elements, batch, bpe)
    shrunk = len(steps) - 1
    why = (f"start {tuple(round(s, 2) for s in start)} = 256^3 voxels isotropic in mm capped by the median shape "
           f"{tuple(round(m, 1) for m in median)}; topology pads it to {steps[0]}"
           + (f"; {shrunk} shrink step(s) of the axis most oversized w.r.t. the median (nnU-Net "
              f"get_plans_for_configuration) until {elements:,} conv-output elements x {min_batch_size} samples x "
              f"{bpe:.2f} B fit {gpu_memory_gb:g} GiB" if shrunk else
              f"; {elements:,} elements x {min_batch_size} samples fit {gpu_memory_gb:g} GiB without shrinking")
           + f"; batch {batch} from the leftover budget{cap_note}")
    return PatchPlan(topo.patch_size, topo, feats, elements, vram, int(batch),
                     tuple(float(s) for s in start), tuple(steps), why)


# ----------------------------------------------------------------------------------------------------------------
# Other backbones
# ----------------------------------------------------------------------------------------------------------------


def backbone_divisor(backbone: str, strides: Sequence[Sequence[int]] | None = None) -> tuple[int, ...] | int:
    """Patch divisibility a MONAI backbone needs: see :data:`BACKBONE_DIVISORS`; DynUNet: product of strides."""
    key = backbone.replace("_", "").replace("-", "").casefold()
    if key == "dynunet":
        if strides is None:
            raise ValueError("DynUNet's divisor depends on its strides")
        return tuple(int(np.prod([s[a] for s in strides])) for a in range(len(strides[0])))
    if key not in BACKBONE_DIVISORS:
        raise KeyError(f"unknown backbone {backbone!r}; known: dynunet, {', '.join(BACKBONE_DIVISORS)}")
    return BACKBONE_DIVISORS[key]


def backbone_patch_size(patch_size: Sequence[int], backbone: str, mode: str = "down",
                        strides: Sequence[Sequence[int]] | None = None) -> tuple[int, ...]:
    """Make ``patch_size`` acceptable to ``backbone`` (a multiple of its divisor on every axis, at least one).

    ``mode="down"`` (default) rounds each axis down, so the patch never exceeds the memory-fitted DynUNet patch;
    ``"nearest"`` rounds half up; ``"up"`` rounds up.  For :data:`BACKBONES_NEEDING_BOTTLENECK_GT1` a result of one
    multiple on every axis (1-voxel bottleneck) gets a second multiple on the axis where ``patch_size`` was largest
    relative to the divisor (last such axis on ties).
    """
    div = backbone_divisor(backbone, strides)
    divs = div if isinstance(div, tuple) else (div,) * len(patch_size)
    key = backbone.replace("_", "").replace("-", "").casefold()
    out = []
    for p, d in zip(patch_size, divs):
        if mode == "down":
            q = math.floor(p / d)
        elif mode == "nearest":
            q = math.floor(p / d + 0.5)
        elif mode == "up":
            q = math.ceil(p / d)
        else:
            raise ValueError(f"mode must be 'down', 'nearest' or 'up', got {mode!r}")
        out.append(max(1, q) * d)
    if key in BACKBONES_NEEDING_BOTTLENECK_GT1 and all(o == d for o, d in zip(out, divs)):
        ratios = [p / d for p, d in zip(patch_size, divs)]
        axis = max(a for a, r in enumerate(ratios) if r == max(ratios))
        out[axis] = 2 * divs[axis]
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------------
# Cross-validation split
# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# Putting it together
# ----------------------------------------------------------------------------------------------------------------


def _nnunet_axis_permutation(spacing: Sequence[float], input_axes: str) -> list[int]:
    """Caller axis order -> nnU-Net planning order (SimpleITK z,y,x, then largest spacing first)."""
    dim = len(spacing)
    if input_axes == "xyz":
        base = list(range(dim))[::-1]
    elif input_axes == "zyx":
        base = list(range(dim))
    else:
        raise ValueError("input_axes must be 'xyz' (MONAI / nibabel arrays) or 'zyx' (nnU-Net / SimpleITK arrays)")
    sp = [spacing[a] for a in base]
    worst = int(np.argmax(sp))  # ExperimentPlanner.determine_transpose
    forward = [worst] + [i for i in range(dim) if i != worst]
    return [base[i] for i in forward]


def plan(fp: Fingerprint, gpu_memory_gb: float = 8.0, backbone: str = "dynunet",
         base_filters: int = BASE_FEATURES, max_filters: int = MAX_FEATURES_3D, res_block: bool = False,
         deep_supervision: bool = False, spacing_override: Sequence[float] | None = None,
         dsd_heads: bool = False, input_axes: str = "xyz", n_folds: int = 5, seed: int = 12345) -> Plan:
    """Plan a 3D DSD bundle from a dataset fingerprint, nnU-Net 3d_fullres style.

    Steps: target spacing (:func:`target_spacing`), median shape after resampling
    (:func:`median_resampled_shape`), per-channel normalisation (:func:`normalization`), patch/topology/batch
    (:func:`patch_size_for_budget`, done in nnU-Net's axis order so that ties break as in nnU-Net), patches for
    the other backbones (:func:`backbone_patch_size`) and, when ``fp.case_ids`` is given, the 5-fold split
    (:func:`nnunet_kfold`).  Every value gets a sentence in ``Plan.why``.

    Args:
        fp: the dataset fingerprint.
        gpu_memory_gb: training GPU budget (nnU-Net's default target is 8).
        backbone: the bundle's network (``dynunet``, ``unetr``, ``swinunetr``, ``vnet``, ``segresnet``,
            ``basicunet``); only changes which entry of ``backbone_patch_sizes`` is called out in ``why``.
        base_filters, max_filters: DynUNet filters = min(base * 2**stage, max); default 32 / 320 (nnU-Net).
        spacing_override: use this target spacing instead of the rule (nnU-Net's ``overwrite_target_spacing``),
            e.g. the paper's 1.5 x 1.5 x 2.0 mm for MMWHS.
        res_block, deep_supervision, dsd_heads: forwarded to the memory estimate.
        input_axes: axis order of ``fp.spacings`` / ``fp.shapes``: ``'xyz'`` (MONAI/nibabel) or ``'zyx'``.
    """
    dim = len(fp.spacings[0])
    if dim != 3:
        raise ValueError("plan() handles 3D data")
    why: dict[str, str] = {}
    sp = np.asarray(fp.spacings, dtype=np.float64)
    sh = np.asarray(fp.shapes, dtype=np.float64)
    med_sp = tuple(float(x) for x in np.median(sp, axis=0))
    med_sh = tuple(float(x) for x in np.median(sh, axis=0))
    if spacing_override is not None:
        if len(spacing_override) != dim:
            raise ValueError(f"spacing_override needs {dim} values")
        tgt = tuple(float(x) for x in spacing_override)
        aniso = False
        why["target_spacing"] = (f"given: {tgt} (spacing_override, nnU-Net's overwrite_target_spacing); the rule "
                                 f"would give {tuple(round(t, 4) for t in target_spacing(fp.spacings, fp.shapes))}")
    else:
        tgt = target_spacing(fp.spacings, fp.shapes)
        aniso = _is_anisotropic(fp.spacings, fp.shapes)
    if spacing_override is not None:
        pass
    elif aniso:
        worst = int(np.argmax(med_sp))
        why["target_spacing"] = (
            f"anisotropic: median spacing {med_sp} has axis {worst} > 3x the others and its median size "
            f"{med_sh[worst]:g} x 3 < the others' -> that axis takes the 10th percentile of its spacings "
            f"({tgt[worst]:g}) instead of the median (nnU-Net determine_fullres_target_spacing)")
    else:
        why["target_spacing"] = (f"per-axis median of the case spacings {tuple(round(t, 4) for t in tgt)}; the "
                                 "anisotropy rule (spacing > 3x and size < 1/3) does not fire (nnU-Net "
                                 "determine_fullres_target_spacing)")
    med_new = median_resampled_shape(fp.spacings, fp.shapes, tgt)
    why["median_shape_resampled"] = ("per-axis median of every case's crop-to-nonzero shape resampled to the "
                                     "target spacing (nnU-Net plan_experiment / compute_new_shape)")

    perm = _nnunet_axis_permutation(tgt, input_axes)
    inv = [perm.index(a) for a in range(dim)]
    pp = patch_size_for_budget([med_new[a] for a in perm], [tgt[a] for a in perm], len(fp.channel_names),
                               len(fp.labels), gpu_memory_gb, base_filters=base_filters, max_filters=max_filters,
                               num_training_cases=len(fp.spacings),
                               res_block=res_block, deep_supervision=deep_supervision, dsd_heads=dsd_heads)

    def back(t: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(t[inv[a]] for a in range(dim))

    patch = back(pp.patch_size)
    strides = tuple(back(s) for s in pp.topology.strides)
    kernels = tuple(back(k) for k in pp.topology.kernel_sizes)
    order = "".join("xyz"[a] if input_axes == "xyz" else "zyx"[a] for a in perm)
    why["patch_size"] = f"[sizes in nnU-Net's planning axis order {order}] " + pp.why
    why["batch_size"] = (f"{pp.batch_size}: leftover memory budget at the final patch, 5% dataset cap, minimum 2 "
                         "(nnU-Net get_plans_for_configuration)")
    why["strides"] = ("pool an axis while it is >= 8 voxels and within 2x of the finest spacing; one stage per "
                      f"pooling round, {pp.topology.n_stages} stages (nnU-Net get_pool_and_conv_props)")
    why["kernel_sizes"] = ("3 on axes whose current spacing is within 2x of the finest, else 1; bottleneck 3 "
                           "(nnU-Net get_pool_and_conv_props)")
    why["filters"] = (f"{pp.filters}: {base_filters} * 2**stage capped at {max_filters}"
                      + (" (nnU-Net / DynUNet default)" if (base_filters, max_filters) == (32, 320) else ""))
    why["vram_estimate_gb"] = (f"{pp.feature_map_elements:,} conv-output elements per sample x batch "
                               f"{pp.batch_size} x {BYTES_PER_ELEMENT:.2f} B (nnU-Net reference: 560e6 elements x 2 "
                               "= 8 GiB)")

    intens = fp.intensity or (None,) * len(fp.channel_names)
    norms = tuple(normalization(name, intens[c], fp.median_relative_size_after_cropping, c)
                  for c, name in enumerate(fp.channel_names))
    why["normalization"] = " | ".join(n.why for n in norms)

    frac = float(np.prod(pp.patch_size, dtype=np.float64) / np.prod(med_new, dtype=np.float64))
    lowres = frac < LOWRES_CREATION_THRESHOLD
    why["lowres_suggested"] = (
        f"the patch covers {100 * frac:.1f}% of the median resampled image; nnU-Net adds a 3d_lowres cascade "
        f"below 25% (plan_experiment, lowres_creation_threshold)" + (" -> consider a coarser spacing" if lowres
                                                                    else ""))

    bps: dict[str, tuple[int, ...]] = {"dynunet": patch}
    for b in BACKBONE_DIVISORS:
        bps[b] = backbone_patch_size(patch, b)
    bkey = backbone.replace("_", "").replace("-", "").casefold()
    if bkey not in bps:
        raise KeyError(f"unknown backbone {backbone!r}")
    why["backbone_patch_sizes"] = (f"{backbone}: {bps[bkey]}; DynUNet patch rounded down per axis to the "
                                   "backbone's divisor (UNETR 16, SwinUNETR 32, VNet 16, SegResNet 8, BasicUNet 16); "
                                   "memory was estimated for DynUNet only")
    folds: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    if fp.case_ids and len(fp.case_ids) >= n_folds:
        folds = tuple({"train": tuple(f["train"]), "val": tuple(f["val"])}
                      for f in nnunet_kfold(fp.case_ids, n_folds, seed))
        why["folds"] = (f"{n_folds}-fold KFold(shuffle=True, random_state={seed}) over the sorted case ids "
                        "(nnU-Net generate_crossval_split)")
    elif fp.case_ids:
        why["folds"] = (f"none: {len(fp.case_ids)} cases < {n_folds} folds (nnU-Net's KFold would refuse; "
                        "provide a datalist)")
    else:
        why["folds"] = "none: the fingerprint has no case ids"
    why["num_classes"] = f"{len(fp.labels)} = background + {len(fp.labels) - 1} classes from dataset.json labels"
    why["in_channels"] = f"{len(fp.channel_names)} channel(s): {', '.join(fp.channel_names)}"

    return Plan(
        in_channels=len(fp.channel_names),
        num_classes=len(fp.labels),
        labels=tuple(fp.labels),
        original_median_spacing=med_sp,
        original_median_shape=med_sh,
        target_spacing=tgt,
        anisotropic=aniso,
        median_shape_resampled=med_new,
        patch_size=patch,
        batch_size=pp.batch_size,
        kernel_sizes=kernels,
        strides=strides,
        upsample_kernel_sizes=strides[1:],
        filters=pp.filters,
        feature_map_elements=pp.feature_map_elements,
        vram_estimate_gb=pp.vram_estimate_gb,
        gpu_memory_gb=gpu_memory_gb,
        normalization=norms,
        lowres_suggested=lowres,
        patch_fraction_of_median=frac,
        backbone_patch_sizes=bps,
        folds=folds,
        why=why,
    )
