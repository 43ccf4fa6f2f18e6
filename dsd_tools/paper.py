"""The paper's facts, in one typed table: datasets, backbones, the nine pairings, parameter counts and results.

Sources: the paper (Banerjee et al., "Dual Self-Distillation of U-shaped Networks for 3D Medical Image
Segmentation", IEEE TBME 2025; ISBI 2024 preliminary version) and its reference code ("R",
github.com/soumbane/DualSelfDistillation). Where the paper and R disagree the paper's text wins for what it states,
R for what it leaves out; each fact names where it comes from.

Everything else reads these tables: the bundle generator (configs, metadata, READMEs), the parameter report, the
study runner's reference lines, the benchmarks' patch sizes and the demo data's label values. Tests keep their own
copy of the numbers they check, so a wrong entry here cannot pass by agreeing with itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

__all__ = [
    "SplitFacts", "CropFacts", "AugmentationFacts", "DatasetFacts", "BackboneFacts", "PairingFacts", "TrainingFacts",
    "Deviation", "DATASETS", "BACKBONES", "PAIRINGS", "TRAINING", "STUDY_RESULTS", "DEVIATIONS", "pairing",
    "dataset_of", "deviations_for",
]


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


# ------------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class SplitFacts:
    """The reference code's split (the runtime's ``dsd_components.data.SplitSpec``)."""

    kind: str  # "blocks" (k-fold on sorted cases) | "holdout" (test tail, shuffled validation)
    num_folds: int = 5
    reference_cases: int = 0
    test: int = 0
    validation: int = 0
    seed: int = 0
    text: str = ""
    source: str = ""

    def as_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_folds": self.num_folds, "reference_cases": self.reference_cases,
                "test": self.test, "validation": self.validation, "seed": self.seed}


@dataclass(frozen=True)
class CropFacts:
    """``RandCropByPosNegLabeld`` patches and the padding before it."""

    patch: int  # cube edge, voxels
    num_samples: int
    pos: float
    neg: float
    pad_mode: str = "constant"  # SpatialPadd mode before the crop
    cache_fg_bg_indices: bool = False  # FgBgToIndicesd before the crop (computed once, kept in the cache)
    source: str = ""


@dataclass(frozen=True)
class AugmentationFacts:
    """Random flips (each axis), 90-degree rotations and intensity shifts."""

    flip_prob: float
    rot90_prob: float
    shift_prob: float
    shift_offset: float = 0.1
    source: str = ""


@dataclass(frozen=True)
class DatasetFacts:
    """One of the paper's three datasets."""

    key: str
    title: str
    modality: str  # "CT" / "MRI": the metadata's modality
    layout: str  # how it lies on disk: "mmwhs" | "msd"
    channel_names: tuple[str, ...]
    class_names: tuple[str, ...]
    split: SplitFacts
    crop: CropFacts
    augmentation: AugmentationFacts
    intensity: tuple[Mapping[str, Any], ...]  # MONAI transform configs after orientation/spacing
    val_interval: int  # ours: the reference code validates every epoch (see DEVIATIONS)
    data_source: str
    data_license: str
    spacing_before_orientation: bool = False  # the reference code resamples, then reorients
    raw_label_values: tuple[int, ...] | None = None  # on-disk values of classes 1..K-1
    background_values: tuple[int, ...] = ()  # stray on-disk values the reference code maps to background
    target_spacing: tuple[float, float, float] | None = None
    real_size: tuple[int, int, int] = (0, 0, 0)  # a typical full volume, for benchmarks
    regions: Mapping[str, tuple[int, ...]] | None = None  # evaluation regions scored besides the per-label classes
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def as_config(self) -> dict[str, Any]:
        """The bundle config's ``dataset`` item (read by ``dsd_components.data.DatasetSpec.from_config``)."""
        return {
            "name": self.key, "layout": self.layout, "channel_names": list(self.channel_names),
            "class_names": list(self.class_names),
            "raw_label_values": list(self.raw_label_values) if self.raw_label_values else None,
            "background_values": list(self.background_values),
            "target_spacing": list(self.target_spacing) if self.target_spacing else None,
            "split": self.split.as_config(),
        }


DATASETS: Mapping[str, DatasetFacts] = _frozen({d.key: d for d in (
    DatasetFacts(
        key="mmwhs", title="MMWHS CT (cardiac substructures)", modality="CT", layout="mmwhs",
        channel_names=("CT",),
        class_names=("background", "myocardium", "left_atrium", "left_ventricle", "right_atrium", "right_ventricle",
                     "ascending_aorta", "pulmonary_artery"),
        raw_label_values=(205, 420, 500, 550, 600, 820, 850), background_values=(421,),
        target_spacing=(1.5, 1.5, 2.0),
        split=SplitFacts("blocks", num_folds=5,
                         text="20 cases, 5 folds of 16/4 (fold k validates the k-th block of 4 sorted cases)",
                         source="R data/challenge.py (train_split=4)"),
        crop=CropFacts(96, 2, 1, 0, pad_mode="reflect",
                       source="paper 2.1 (iv); R data/challenge.py (SpatialPadd mode reflect, pos 1, neg 0)"),
        spacing_before_orientation=True,
        augmentation=AugmentationFacts(0.1, 0.1, 0.5, source="paper 2.1 (v)-(vii); R data/challenge.py"),
        intensity=(
            _frozen({"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175, "a_max": 250, "b_min": 0.0,
                     "b_max": 1.0, "clip": True}),
            _frozen({"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}),
        ),
        val_interval=10, real_size=(256, 256, 120),
        data_source="https://zmiclab.github.io/zxh/0/mmwhs/",
        data_license="MM-WHS 2017 challenge data: research use under the organisers' terms; cite Zhuang & Shen, "
                     "Medical Image Analysis 2016, and Zhuang et al., Medical Image Analysis 2019.",
        sources=_frozen({"labels": "R data/transforms.py ConvertLabel (205..850 -> 1..7, 421 -> 0)",
                         "spacing": "paper 2.1 (i); R data/challenge.py Spacingd",
                         "intensity": "paper 2.1 (iii); R data/challenge.py"}),
    ),
    DatasetFacts(
        key="brats", title="MSD Task01 BrainTumour (BraTS)", modality="MRI", layout="msd",
        channel_names=("FLAIR", "T1w", "t1gd", "T2w"),  # exactly as the real MSD dataset.json spells them
        class_names=("background", "edema", "non_enhancing_tumor", "enhancing_tumor"),
        split=SplitFacts("holdout", reference_cases=484, test=24, validation=72, seed=0,
                         text="388 train / 72 validation / 24 test (sorted, last 24 test, rest shuffled with "
                              "random.Random(0), last 72 of them validation)",
                         source="R data/MSD_loadBraTS.py"),
        # R pads nothing (MSD BraTS volumes exceed 128^3); the bundle's constant pad is a no-op there (DEVIATIONS)
        crop=CropFacts(128, 2, 1, 0, pad_mode="constant",
                       source="paper 2.1 (ii): every patch centred on foreground; R data/MSD_loadBraTS.py (neg 0)"),
        augmentation=AugmentationFacts(0.5, 0.1, 1.0, source="paper 2.1 (iii)-(v); R data/MSD_loadBraTS.py"),
        intensity=(), val_interval=5, real_size=(240, 240, 155),
        # the standard BraTS regions in MSD label values: whole tumour, tumour core, enhancing tumour
        regions=_frozen({"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}),
        data_source="http://medicaldecathlon.com/",
        data_license="Medical Segmentation Decathlon Task01_BrainTumour: CC-BY-SA 4.0 (Antonelli et al., Nature "
                     "Communications 2022; BraTS: Menze et al., IEEE TMI 2015; Bakas et al., Sci. Data 2017).",
        sources=_frozen({"intensity": "R data/MSD_loadBraTS.py (z-score commented out)"}),
    ),
    DatasetFacts(
        key="hippocampus", title="MSD Task04 Hippocampus", modality="MRI", layout="msd",
        channel_names=("MRI",),
        class_names=("background", "anterior", "posterior"),
        split=SplitFacts("holdout", reference_cases=260, test=60, validation=30, seed=0,
                         text="first 200 cases train+val (shuffled with random.Random(0), last 30 of them "
                              "validation), last 60 test",
                         source="R data/Hippocampus.py"),
        crop=CropFacts(32, 16, 1, 0.1, pad_mode="edge", cache_fg_bg_indices=True,
                       source="paper 2.1 (iii) (16 samples; R's default 8); R data/Hippocampus.py (pos 1, neg 0.1, "
                              "FgBgToIndicesd, SpatialPadd mode edge)"),
        augmentation=AugmentationFacts(0.5, 0.1, 1.0, source="paper 2.1 (iv)-(vi); R data/Hippocampus.py"),
        intensity=(_frozen({"_target_": "ScaleIntensityd", "keys": "image", "minv": 0.0, "maxv": 1.0}),),
        val_interval=5, real_size=(36, 50, 36),
        data_source="http://medicaldecathlon.com/",
        data_license="Medical Segmentation Decathlon Task04_Hippocampus: CC-BY-SA 4.0 (Antonelli et al., Nature "
                     "Communications 2022; data from Vanderbilt University Medical Center).",
        sources=_frozen({"intensity": "paper 2.1; R data/Hippocampus.py ScaleIntensityd"}),
    ),
)})


# ------------------------------------------------------------------------------------------------ backbones
@dataclass(frozen=True)
class BackboneFacts:
    """A stock MONAI backbone as ``network_def`` constructor arguments (paper section 3.1 and R)."""

    key: str
    target: str  # "monai.networks.nets.DynUNet"
    kwargs: Mapping[str, Any]
    label: str  # how the paper names it
    paper_params_m: tuple[float, float] | None = None  # (backbone, with DSD), millions, Tables 3 and 7
    head_init: str = "default"  # R's nnU-Net initialises its heads like its convolutions: "kaiming_normal"

    @property
    def class_name(self) -> str:
        return self.target.rsplit(".", 1)[-1]

    def config(self, **overrides: Any) -> dict[str, Any]:
        """``{"_target_": ..., **kwargs}`` with ``overrides`` applied (a fresh, mutable copy)."""
        import copy

        return {"_target_": self.target, **copy.deepcopy(dict(self.kwargs)), **overrides}


def _dynunet(key: str, in_ch: int, out_ch: int, filters: list[int], label: str,
             params: tuple[float, float] | None = None) -> BackboneFacts:
    return BackboneFacts(key, "monai.networks.nets.DynUNet", _frozen({
        "spatial_dims": 3, "in_channels": in_ch, "out_channels": out_ch, "kernel_size": [3, 3, 3, 3, 3],
        "strides": [1, 2, 2, 2, 2], "upsample_kernel_size": [2, 2, 2, 2], "filters": filters,
        "norm_name": "instance", "res_block": True}), label, params, head_init="kaiming_normal")


def _unetr(key: str, in_ch: int, out_ch: int, roi: int, feature_size: int, label: str,
           params: tuple[float, float] | None = None) -> BackboneFacts:
    return BackboneFacts(key, "monai.networks.nets.UNETR", _frozen({
        "in_channels": in_ch, "out_channels": out_ch, "img_size": [roi, roi, roi], "feature_size": feature_size,
        "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12, "proj_type": "perceptron", "norm_name": "instance",
        "res_block": True, "dropout_rate": 0.0}), label, params)


BACKBONES: Mapping[str, BackboneFacts] = _frozen({b.key: b for b in (
    _unetr("mmwhs_unetr", 1, 8, 96, 32, "UNETR (large, feature size 32)", (101.787, 101.804)),
    _dynunet("mmwhs_nnunet", 1, 8, [32, 64, 128, 256, 320], "nnU-Net (large, 32..320)", (16.664, 16.672)),
    _unetr("brats_unetr", 4, 4, 128, 64, "UNETR (feature size 64)"),
    _unetr("brats_unetr_light", 4, 4, 128, 16, "light UNETR (feature size 16)"),
    _dynunet("brats_nnunet", 4, 4, [16, 32, 64, 128, 256], "nnU-Net (16..256)"),
    BackboneFacts("brats_swinunetr", "monai.networks.nets.SwinUNETR", _frozen({
        "in_channels": 4, "out_channels": 4, "feature_size": 12, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24],
        "patch_size": 2, "window_size": 7}), "light Swin UNETR (feature size 12)"),
    BackboneFacts("hippocampus_vnet", "monai.networks.nets.VNet", _frozen({
        "spatial_dims": 3, "in_channels": 1, "out_channels": 3}), "VNet", (45.602, 45.605)),
    _unetr("hippocampus_unetr", 1, 3, 32, 16, "UNETR (feature size 16)", (92.624, 92.628)),
    _dynunet("hippocampus_nnunet", 1, 3, [16, 32, 64, 128, 256], "nnU-Net (16..256)", (5.6870, 5.6890)),
    # Table 7 capacity study (MMWHS): the "small" variants of the two MMWHS backbones.
    _unetr("mmwhs_unetr_small", 1, 8, 96, 16, "UNETR (small, feature size 16)", (92.784, 92.797)),
    _dynunet("mmwhs_nnunet_small", 1, 8, [16, 32, 64, 128, 256], "nnU-Net (small, 16..256)", (5.6870, 5.6950)),
)})


# ------------------------------------------------------------------------------------------------- pairings
@dataclass(frozen=True)
class PairingFacts:
    """One bundle: a dataset, a backbone, its schedule and the paper's result."""

    bundle: str
    dataset: str
    backbone: str
    epochs: int
    learning_rate: float
    step_decay: bool
    paper_table: str
    dice: tuple[float, float]  # mean Dice (%), backbone -> backbone + DSD
    hd95: tuple[float, float] | None = None  # mean HD95 (mm), where the paper reports it
    small_backbone: str | None = None  # the Table 7 small variant, if any

    @property
    def result_text(self) -> str:
        bb = BACKBONES[self.backbone].label
        text = f"{self.paper_table}: mean Dice {self.dice[0]} -> {self.dice[1]}"
        if self.hd95:
            text += f", HD95 {self.hd95[0]} -> {self.hd95[1]} mm"
        return text + f" ({bb} -> + DSD)"


PAIRINGS: Mapping[str, PairingFacts] = _frozen({p.bundle: p for p in (
    PairingFacts("mmwhs_unetr_dsd", "mmwhs", "mmwhs_unetr", 600, 1e-3, True, "Table 1 (5-fold CV)", (78.24, 80.94),
                 (23.48, 20.26), small_backbone="mmwhs_unetr_small"),
    PairingFacts("mmwhs_nnunet_dsd", "mmwhs", "mmwhs_nnunet", 300, 1e-3, True, "Table 1 (5-fold CV)", (83.55, 86.49),
                 (26.31, 15.23), small_backbone="mmwhs_nnunet_small"),
    PairingFacts("brats_unetr_dsd", "brats", "brats_unetr", 325, 1e-4, False, "Table 2", (68.9, 76.6)),
    PairingFacts("brats_unetr_light_dsd", "brats", "brats_unetr_light", 325, 1e-4, False, "Table 2", (68.4, 72.0)),
    PairingFacts("brats_nnunet_dsd", "brats", "brats_nnunet", 300, 1e-3, True, "Table 2", (74.2, 76.9)),
    PairingFacts("brats_swinunetr_dsd", "brats", "brats_swinunetr", 325, 1e-4, False, "Table 2", (72.4, 76.5)),
    PairingFacts("hippocampus_vnet_dsd", "hippocampus", "hippocampus_vnet", 300, 1e-4, False, "Table 3",
                 (83.82, 85.45)),
    PairingFacts("hippocampus_unetr_dsd", "hippocampus", "hippocampus_unetr", 300, 1e-4, False, "Table 3",
                 (84.32, 85.62)),
    PairingFacts("hippocampus_nnunet_dsd", "hippocampus", "hippocampus_nnunet", 300, 1e-4, False, "Table 3",
                 (86.16, 87.10)),
)})


@dataclass(frozen=True)
class TrainingFacts:
    """Settings shared by every pairing (R train_SelfDistil_Original.py, loss_functions.py; paper 3.1)."""

    optimizer: str = "AdamW"
    weight_decay: float = 1e-5
    step_gamma: float = 0.5  # StepLR(step_size = epochs // 6)
    batch_size: int = 1
    lambda_ds: float = 1.0
    alpha: float = 1.0
    beta: float = 1.0
    temperature: float = 3.0
    sw_overlap: float = 0.25
    seed: int = 100  # R: freeze_seed(100)
    amp: bool = False  # R trains in FP32 (no autocast)
    val_interval: int = 1  # R (torchmanager fit) validates every epoch
    checkpoints_reported: str = "last and best"  # R tests both; eval.py defaults to last
    hd95_unit: str = "voxels"  # R: HausdorffDistanceMetric without spacing; the paper reports mm


TRAINING = TrainingFacts()

# Mean Dice (%) of the paper's studies beyond Tables 1-3, for the study reports' reference lines.
STUDY_RESULTS: Mapping[tuple[str, str], Mapping[str, float]] = _frozen({
    ("ablation", "mmwhs_unetr_dsd"): _frozen({"basic": 76.12, "ds": 78.29, "sdd": 80.13, "sde": 79.90, "dsd": 80.93}),
    ("ablation", "mmwhs_nnunet_dsd"): _frozen({"basic": 76.97, "ds": 83.74, "sdd": 84.02, "sde": 84.42, "dsd": 86.10}),
    ("temperature", "mmwhs_nnunet_dsd"): _frozen({"T1": 85.37, "T2": 85.89, "T3": 86.10, "T4": 86.07}),
})


@dataclass(frozen=True)
class Deviation:
    """A deliberate difference between the bundles' defaults and the paper / reference code, and how to undo it."""

    setting: str
    paper: str
    bundle: str
    why: str
    restore: str = ""  # the override that gives the paper's setting, when there is one
    datasets: tuple[str, ...] = ("mmwhs", "brats", "hippocampus")


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("precision", "FP32 (R has no autocast)", "AMP when CUDA is available (`amp` defaults to yes on a GPU)",
              "about half the memory and faster steps on a GPU; CPU runs are FP32 anyway", "--amp false"),
    Deviation("validation interval", "every epoch (R's torchmanager fit)", "every 10 epochs (MMWHS), every 5 (MSD)",
              "a sliding-window pass over the validation cases each epoch is a large share of an epoch (72 full "
              "BraTS volumes); the best model is still chosen by validation Dice", "--val_interval 1"),
    Deviation("checkpoint shipped", "R evaluates the last and the best checkpoint (eval.py defaults to last)",
              "models/model.pt is the best on validation; the last state is in models/latest.pt",
              "one deployable model per training run, chosen on validation"),
    Deviation("padding before the crop (BraTS)", "none (every MSD BraTS volume exceeds 128^3)",
              "SpatialPadd to the patch, mode constant", "a no-op on the real data; lets small (demo) volumes train",
              datasets=("brats",)),
    Deviation("sliding-window batch", "1 window per forward", "4 windows per forward (`sw_batch_size`)",
              "speed only: the same windows and the same blending", "--sw_batch_size 1"),
    Deviation("averaging over cases", "plain means (a class absent from a case makes the mean NaN); overall std "
              "over the cases x classes matrix", "means over the finite values; n is reported; overall std over "
              "per-case means", "a structure missing from one case does not void the whole table"),
    Deviation("determinism", "seed 100 for random/NumPy/torch, cudnn.benchmark on, MONAI transforms unseeded",
              "seed 100 through MONAI's set_determinism, reseeded every epoch from (seed, rank, epoch)",
              "an interrupted run resumes exactly; results repeat on the same machine"),
    Deviation("patches per volume (Hippocampus)", "R's default 8", "16, as the paper states (section 2.1)",
              "the paper's text wins over the reference code where they disagree", datasets=("hippocampus",)),
)


def deviations_for(dataset: str) -> list[Deviation]:
    """The deviations that apply to a dataset's bundles."""
    return [d for d in DEVIATIONS if dataset in d.datasets]


def pairing(bundle: str) -> PairingFacts:
    """The facts of one of the nine paper bundles.

    Raises:
        KeyError: not a paper bundle (the message lists them).
    """
    if bundle not in PAIRINGS:
        raise KeyError(f"{bundle!r} is not one of the paper's bundles: {', '.join(PAIRINGS)}")
    return PAIRINGS[bundle]


def dataset_of(bundle: str) -> DatasetFacts:
    return DATASETS[pairing(bundle).dataset]
