"""``dsd-new-bundle DATASET_DIR --name NAME``: a planned DSD bundle for your own MSD or nnU-Net v2 dataset."""

from __future__ import annotations

from ..cli import run_cli
from .bundle import new_bundle

__all__ = ["new_bundle_cli", "main"]


def new_bundle_cli(dataset_dir: str, name: str, backbone: str = "dynunet", output_dir: str = "bundles",
                   gpu_memory_gb: float = 24.0, check_data: bool = True) -> None:
    """Check, fingerprint (MONAI's DataAnalyzer) and plan (nnU-Net's rules) a dataset, then write a complete bundle.

    Args:
        dataset_dir: an MSD task folder or an nnU-Net v2 raw dataset (DatasetXXX_Name with dataset.json).
        name: the bundle folder name, e.g. heart_dynunet_dsd.
        backbone: dynunet, unetr, swinunetr, segresnet, basicunet or vnet.
        output_dir: where the bundle folder is written.
        gpu_memory_gb: the training GPU's memory; the patch is as large as it allows (nnU-Net's estimate).
        check_data: check every case first (default true); all problems are listed and nothing is written.
    """
    out = new_bundle(dataset_dir, name, backbone=backbone, output_dir=output_dir, gpu_memory_gb=gpu_memory_gb,
                     check_data=check_data)
    print(f"wrote {out} (plan: {out / 'plan.json'})")
    print(f"train:  python -m monai.bundle run --config_file {out / 'configs' / 'train.json'}")


def main() -> None:
    run_cli(new_bundle_cli)
