"""A planned DSD bundle for a user's dataset: fingerprint -> nnU-Net-style plan -> :class:`BundleSpec` -> the same
writer as the nine paper bundles (``dsd-new-bundle``).

What the plan decides (each with its reason in ``plan.json`` and the bundle README): target spacing, normalisation,
patch size within the GPU memory budget, DynUNet kernels and strides, patches per step, the other backbones' patch
constraints, classes and channels from dataset.json, nnU-Net's 5-fold split (or the dataset's own
``splits_final.json``). What follows the paper's recipe instead of nnU-Net's: the DSD loss, AdamW, the schedule
(300 epochs; 1e-3 with step decay for convolutional backbones, 1e-4 constant for transformers, as the paper's
nnU-Net and UNETR rows), and the augmentations of the Hippocampus bundles.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dsd_components.data import list_cases
from dsd_components.errors import DatasetIntegrityError
from dsd_components.integrity import scan_datalist

from ..bundlegen import BundleSpec, write_bundle
from ..cli import UsageError
from .fingerprint import DatasetDescription, describe_dataset, fingerprint
from .rules import BACKBONE_DIVISORS, Fingerprint, Plan, plan

__all__ = ["BACKBONE_CHOICES", "network_def", "intensity_transforms", "planned_bundle_spec", "new_bundle"]

logger = logging.getLogger(__name__)

BACKBONE_CHOICES = ("dynunet", "unetr", "swinunetr", "segresnet", "basicunet", "vnet")
EPOCHS = 300
VAL_INTERVAL = 5
# nnU-Net samples a third of its patches around foreground (oversample_foreground_percent = 0.33)
POS, NEG = 1, 2


def network_def(backbone: str, p: Plan, patch: tuple[int, ...]) -> dict[str, Any]:
    """The stock MONAI backbone for a plan (``network_def`` of the bundle configs).

    Raises:
        UsageError: unknown backbone.
    """
    c_in, c_out = p.in_channels, p.num_classes
    if backbone == "dynunet":  # nnU-Net's topology; residual encoder blocks as the paper's nnU-Net
        return {"_target_": "monai.networks.nets.DynUNet", **p.dynunet_kwargs(), "res_block": True}
    if backbone == "unetr":  # the paper's UNETR (Hippocampus, feature size 16)
        return {"_target_": "monai.networks.nets.UNETR", "in_channels": c_in, "out_channels": c_out,
                "img_size": list(patch), "feature_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_heads": 12,
                "proj_type": "perceptron", "norm_name": "instance", "res_block": True, "dropout_rate": 0.0}
    if backbone == "swinunetr":
        return {"_target_": "monai.networks.nets.SwinUNETR", "in_channels": c_in, "out_channels": c_out,
                "feature_size": 24, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24], "patch_size": 2,
                "window_size": 7}
    if backbone == "segresnet":
        return {"_target_": "monai.networks.nets.SegResNet", "spatial_dims": 3, "in_channels": c_in,
                "out_channels": c_out, "init_filters": 16}
    if backbone == "basicunet":
        return {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3, "in_channels": c_in,
                "out_channels": c_out}
    if backbone == "vnet":
        if 16 % c_in:
            raise UsageError(f"--backbone vnet: MONAI's VNet needs 16 divisible by the channel count, got {c_in}")
        return {"_target_": "monai.networks.nets.VNet", "spatial_dims": 3, "in_channels": c_in, "out_channels": c_out}
    raise UsageError(f"--backbone {backbone!r}: use one of {', '.join(BACKBONE_CHOICES)}")


def intensity_transforms(p: Plan) -> list[dict[str, Any]]:
    """MONAI transforms doing the plan's per-channel normalisation.

    Raises:
        UsageError: CT and non-CT channels mixed, or several CT channels (one MONAI transform cannot hold their
            different clip ranges); convert the dataset or plan the channels separately.
    """
    schemes = {n.scheme for n in p.normalization}
    if schemes == {"CTNormalization"}:
        if len(p.normalization) > 1:
            raise UsageError("several CT channels: each needs its own clip range, which one transform cannot apply")
        return [p.normalization[0].monai_transform()]
    if "CTNormalization" in schemes:
        raise UsageError("CT and non-CT channels in one dataset: their normalisations differ per channel; "
                         "rename the channels in dataset.json or split the dataset")
    if schemes == {"ZScoreNormalization"}:
        return [{"_target_": "NormalizeIntensityd", "keys": "image", "channel_wise": True,
                 "nonzero": any(n.use_mask_for_norm for n in p.normalization)}]
    if len(schemes) == 1:
        return [p.normalization[0].monai_transform()]
    raise UsageError(f"channels ask for different normalisations {sorted(schemes)}: not supported in one bundle")


def _plan_record(name: str, backbone: str, desc: DatasetDescription, fp: Fingerprint, p: Plan,
                 patch: tuple[int, ...], gpu_memory_gb: float) -> dict[str, Any]:
    """``plan.json``: the fingerprint summary and every planned value with why."""
    rec = p.to_dict()
    why = dict(rec.pop("why"))
    why["patch_size_used"] = (f"{backbone}: {list(patch)}" + (" (the DynUNet patch)" if backbone == "dynunet" else
                              f" (the DynUNet patch rounded down to {backbone}'s divisor "
                              f"{BACKBONE_DIVISORS.get(backbone)})"))
    why["median_shape_resampled"] = ("per-axis median of every case's shape as the bundle sees it (the bundle does "
                                     "not crop to the nonzero region) resampled to the target spacing (nnU-Net "
                                     "plan_experiment / compute_new_shape)")
    why["num_samples"] = (f"{p.batch_size} patches per step: nnU-Net's batch size (memory budget, 5% dataset cap, "
                          "minimum 2), drawn from one volume per step as in the paper's bundles")
    return {
        "bundle": name, "backbone": backbone, "created": datetime.date.today().isoformat(),
        "dataset": {"root": str(desc.root), "name": desc.name, "layout": desc.spec.layout,
                    "channels": list(desc.channel_names), "classes": list(desc.class_names),
                    "cases": len(fp.spacings), "own_splits": desc.has_own_splits},
        "fingerprint": {
            "source": "MONAI DataAnalyzer (per case); relative size after crop-to-nonzero measured by dsd_tools",
            "median_spacing": [float(x) for x in np.median(np.asarray(fp.spacings), axis=0)],
            "median_shape": [float(x) for x in np.median(np.asarray(fp.shapes), axis=0)],
            "median_relative_size_after_cropping": fp.median_relative_size_after_cropping,
            "foreground_intensity": [dict(zip(("mean", "std", "p00_5", "p99_5"),
                                              (c.mean, c.std, c.percentile_00_5, c.percentile_99_5)))
                                     for c in fp.intensity if c is not None],
        },
        "gpu_memory_gb": gpu_memory_gb,
        "patch_size_used": list(patch),
        "plan": rec,
        "why": why,
    }


def planned_bundle_spec(name: str, desc: DatasetDescription, fp: Fingerprint, backbone: str = "dynunet",
                        gpu_memory_gb: float = 24.0) -> BundleSpec:
    """Plan the dataset and describe the bundle (nothing written).

    Raises:
        UsageError: an unknown backbone or normalisations one bundle cannot hold.
    """
    if backbone not in BACKBONE_CHOICES:
        raise UsageError(f"--backbone {backbone!r}: use one of {', '.join(BACKBONE_CHOICES)}")
    p = plan(fp, gpu_memory_gb=gpu_memory_gb, backbone=backbone, res_block=True, dsd_heads=True)
    patch = tuple(int(x) for x in p.backbone_patch_sizes[backbone])
    transformer = backbone in ("unetr", "swinunetr")
    dataset = {
        "name": desc.name, "layout": desc.spec.layout, "channel_names": list(desc.channel_names),
        "class_names": list(desc.class_names), "raw_label_values": None, "background_values": [],
        "target_spacing": [round(float(x), 6) for x in p.target_spacing],
        "split": {"kind": "kfold", "num_folds": desc.spec.split.num_folds, "reference_cases": 0, "test": 0,
                  "validation": 0, "seed": desc.spec.split.seed},
        "file_ending": desc.spec.file_ending,
    }
    modality = "CT" if all(c.casefold() == "ct" for c in desc.channel_names) else "MR"
    return BundleSpec(
        name=name, dataset=dataset, title=f"{desc.name} ({', '.join(desc.channel_names)})", modality=modality,
        network_def=network_def(backbone, p, patch), patch=patch, intensity=tuple(intensity_transforms(p)),
        num_samples=int(p.batch_size), pos=POS, neg=NEG, flip_prob=0.5, rot90_prob=0.1, shift_prob=1.0,
        epochs=EPOCHS, learning_rate=1e-4 if transformer else 1e-3, step_decay=not transformer,
        val_interval=VAL_INTERVAL, data_source=str(desc.root), data_license="see the dataset's own licence",
        plan=_plan_record(name, backbone, desc, fp, p, patch, gpu_memory_gb), dataset_dir=str(desc.root),
    )


def new_bundle(dataset_dir: str, name: str, backbone: str = "dynunet", output_dir: str = "bundles",
               gpu_memory_gb: float = 24.0, check_data: bool = True, device: str = "cpu") -> Path:
    """Check, fingerprint and plan ``dataset_dir``; write ``output_dir/name/``; return the bundle folder.

    Raises:
        DatasetIntegrityError: the data check found problems (all listed, nothing written).
        DatalistError: the folder is not an MSD or nnU-Net v2 dataset.
        UsageError: a bad name, backbone or an existing folder that is not a planned bundle.
    """
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r}: give a folder name for the bundle, e.g. --name heart_dynunet_dsd")
    target = Path(output_dir) / name
    if target.exists() and not (target / "plan.json").is_file():
        raise UsageError(f"{target} exists and is not a planned bundle: choose another --name or --output_dir")
    desc = describe_dataset(dataset_dir)
    if check_data:  # every problem at once, before any statistics: a planned bundle starts from clean data
        report = scan_datalist({"training": list_cases(desc.spec, desc.root)}, desc.spec, required=("training",),
                               labelled=("training",))
        if report.errors:
            report.context = f"{len(report.errors)} problem(s) in {desc.root}, nothing planned"
            raise DatasetIntegrityError(report)
        for w in report.warnings:
            logger.warning(w)
    fp, _ = fingerprint(desc, device=device)
    spec = planned_bundle_spec(name, desc, fp, backbone=backbone, gpu_memory_gb=gpu_memory_gb)
    out = write_bundle(spec, Path(output_dir))
    logger.info(f"wrote {out}")
    return out
