"""``configs/metadata.json`` of a bundle (MONAI bundle metadata schema)."""

from __future__ import annotations

from typing import Any

from .spec import BundleSpec

__all__ = ["metadata", "SCHEMA_URL", "REFERENCES"]

SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
REFERENCES = [
    "Banerjee S, Dong M, Glide-Hurst C. Dual Self-Distillation of U-shaped Networks for 3D Medical Image "
    "Segmentation. IEEE Transactions on Biomedical Engineering, 2025 (ISBI 2024 preliminary version).",
    "Cardoso MJ et al. MONAI: An open-source framework for deep learning in healthcare. arXiv:2211.02701, 2022.",
]


def metadata(spec: BundleSpec) -> dict[str, Any]:
    import monai
    import numpy
    import torch

    cls = spec.network_class
    classes = spec.class_names
    patch = list(spec.patch)
    return {
        "schema": SCHEMA_URL,
        "version": spec.version,
        "changelog": dict(spec.changelog),
        "monai_version": monai.__version__.split("+")[0],
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"nibabel": "5.4.2", "pytorch-ignite": "0.5.5", "einops": "0.8.2",
                                      "scipy": "1.17.1", "tqdm": "4.70.1", "matplotlib": "3.11.2",
                                      "tensorboard": "2.21.0"},
        "supported_apps": {"monai-label": "0.8.5"},
        "name": spec.name,
        "task": f"{spec.title} segmentation with {cls} trained by Dual Self-Distillation",
        "description": (
            f"A {cls} for {spec.title} segmentation, trained with Dual Self-Distillation (DSD): bottleneck heads on "
            "the encoder and decoder stages distill the deepest encoder and decoder into the shallower ones during "
            "training only. The shipped weights are the plain MONAI backbone."
        ),
        "authors": "dsd-bundles contributors",
        "copyright": "Copyright (c) dsd-bundles contributors",
        "data_source": spec.data_source,
        "data_type": "nibabel",
        "image_classes": f"{spec.in_channels} channel(s) {spec.modality} ({', '.join(spec.channel_names)})",
        "label_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(classes)),
        "pred_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(classes)),
        # a source bundle ships no weights, so no scores; dsd-package fills them from the weights' own evaluation
        "eval_metrics": {},
        "intended_use": "Research only, not for clinical use.",
        "references": list(REFERENCES),
        "network_data_format": {
            "inputs": {"image": {
                "type": "image", "format": "magnitude", "modality": spec.modality, "num_channels": spec.in_channels,
                "spatial_shape": patch, "dtype": "float32", "value_range": [], "is_patch_data": True,
                "channel_def": {str(i): c for i, c in enumerate(spec.channel_names)},
            }},
            "outputs": {"pred": {
                "type": "image", "format": "segmentation", "num_channels": len(classes),
                "spatial_shape": patch, "dtype": "float32", "value_range": [], "is_patch_data": True,
                "channel_def": {str(i): c for i, c in enumerate(classes)},
            }},
        },
    }
