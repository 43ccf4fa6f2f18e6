"""Write every bundle's configs from one table: the single source of truth for the nine bundles.

    python scripts/generate_bundles.py            # (re)write bundles/*/configs, docs, LICENSE, large_files.yml
    python scripts/generate_bundles.py --check    # exit 1 if any committed file differs (CI runs this as a test)

Dataset facts (preprocessing, crops, schedules) come from SPEC.md; backbones from dsd_components/backbones.py.
Edit here, regenerate, commit both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import fire

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dsd_components.backbones import backbone_config  # noqa: E402
from dsd_components.data import DATASETS as DATA_FACTS  # noqa: E402

VERSION = "0.1.0"
CHANGELOG = {"0.1.0": "initial release: DSD training, evaluation and backbone-only inference"}

# bundle_root = the folder above configs/ of the --config_file given on the command line, so the same command
# works from the repository root, from inside the bundle, and from a copy anywhere. Pure MONAI/stdlib: inference
# (MONAI Label, packaged bundles) needs no project code. MONAI Label passes --bundle_root itself.
BUNDLE_ROOT_EXPR = (
    "$next((os.path.dirname(os.path.dirname(os.path.abspath(p.strip(\"[]'\\\" \").split(',')[0]))) "
    "for i, a in enumerate(sys.argv) if a.startswith('--config_file') "
    "for p in [a.split('=', 1)[1] if '=' in a else (sys.argv[i + 1] if i + 1 < len(sys.argv) else '')] if p), "
    "os.getcwd())"
)

DATASETS: dict[str, dict[str, Any]] = {
    "mmwhs": {
        "title": "MMWHS CT (cardiac substructures)",
        "modality": "CT",
        "channel_names": {"0": "CT"},
        "intensity": [
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175, "a_max": 250, "b_min": 0.0,
             "b_max": 1.0, "clip": True},
            {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True},
        ],
        "patch": 96,
        "num_samples": 2,
        "pos_neg": [1, 0],
        "flip_prob": 0.1,
        "rot90_prob": 0.1,
        "shift_prob": 0.5,
        "val_interval": 10,
        "split": "5 folds of 16/4 cases (fold k validates the k-th block of 4 sorted cases)",
    },
    "brats": {
        "title": "MSD Task01 BrainTumour (BraTS)",
        "modality": "MRI (FLAIR, T1w, T1gd, T2w)",
        "channel_names": {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"},
        "intensity": [],
        "patch": 128,
        "num_samples": 2,
        "pos_neg": [1, 1],
        "flip_prob": 0.5,
        "rot90_prob": 0.1,
        "shift_prob": 1.0,
        "val_interval": 5,
        "split": "388 train / 72 validation / 24 test (sorted, last 24 test, rest shuffled with seed 0)",
    },
    "hippocampus": {
        "title": "MSD Task04 Hippocampus",
        "modality": "MRI (T1)",
        "channel_names": {"0": "T1"},
        "intensity": [{"_target_": "ScaleIntensityd", "keys": "image", "minv": 0.0, "maxv": 1.0}],
        "patch": 32,
        "num_samples": 16,
        "pos_neg": [1, 1],
        "flip_prob": 0.5,
        "rot90_prob": 0.1,
        "shift_prob": 1.0,
        "val_interval": 5,
        "split": "first 200 cases train+val (last 30 of them validation), last 60 test",
    },
}

# Facts shared with the datalist builder and integrity checks live in dsd_components.data (one source of truth).
for _key, _ds in DATASETS.items():
    _info = DATA_FACTS[_key]
    _ds["in_channels"] = _info.in_channels
    _ds["classes"] = list(_info.class_names)
    _ds["raw_label_values"] = [0, *_info.raw_label_values] if _info.raw_label_values else None
    _ds["pixdim"] = list(_info.target_spacing) if _info.target_spacing else None

# name -> (dataset, backbone key, epochs, learning rate, step decay, paper result text)
PAIRINGS: dict[str, tuple[str, str, int, float, bool, str]] = {
    "mmwhs_unetr_dsd": ("mmwhs", "mmwhs_unetr", 600, 1e-3, True, "Table 1: mean Dice 78.24 -> 80.94, HD95 23.48 -> 20.26 mm (UNETR -> UNETR + DSD, 5-fold CV)"),
    "mmwhs_nnunet_dsd": ("mmwhs", "mmwhs_nnunet", 300, 1e-3, True, "Table 1: mean Dice 83.55 -> 86.49, HD95 26.31 -> 15.23 mm (nnU-Net -> nnU-Net + DSD, 5-fold CV)"),
    "brats_unetr_dsd": ("brats", "brats_unetr", 325, 1e-4, False, "Table 2: mean Dice 68.9 -> 76.6 (UNETR -> UNETR + DSD)"),
    "brats_unetr_light_dsd": ("brats", "brats_unetr_light", 325, 1e-4, False, "Table 2: mean Dice 68.4 -> 72.0 (light UNETR -> + DSD)"),
    "brats_nnunet_dsd": ("brats", "brats_nnunet", 300, 1e-3, True, "Table 2: mean Dice 74.2 -> 76.9 (nnU-Net -> + DSD)"),
    "brats_swinunetr_dsd": ("brats", "brats_swinunetr", 325, 1e-4, False, "Table 2: mean Dice 72.4 -> 76.5 (light Swin UNETR -> + DSD)"),
    "hippocampus_vnet_dsd": ("hippocampus", "hippocampus_vnet", 300, 1e-4, False, "Table 3: mean Dice 83.82 -> 85.45 (VNet -> + DSD)"),
    "hippocampus_unetr_dsd": ("hippocampus", "hippocampus_unetr", 300, 1e-4, False, "Table 3: mean Dice 84.32 -> 85.62 (UNETR -> + DSD)"),
    "hippocampus_nnunet_dsd": ("hippocampus", "hippocampus_nnunet", 300, 1e-4, False, "Table 3: mean Dice 86.16 -> 87.10 (nnU-Net -> + DSD)"),
}


def _load_transforms(ds: dict[str, Any], keys: list[str], train: bool) -> list[dict[str, Any]]:
    """Deterministic preprocessing shared by training, evaluation and inference (image only for inference)."""
    k = keys if len(keys) > 1 else keys[0]
    modes = ["bilinear", "nearest"][: len(keys)]
    t: list[dict[str, Any]] = [
        {"_target_": "LoadImaged", "keys": k, "image_only": False},
        {"_target_": "EnsureChannelFirstd", "keys": k},
    ]
    if ds["raw_label_values"] and "label" in keys:
        # MMWHS ships raw label values (205, 420, ...): map them to classes 1..7 in the paper's order.
        t.append({"_target_": "MapLabelValued", "keys": "label", "orig_labels": ds["raw_label_values"],
                  "target_labels": list(range(len(ds["raw_label_values"])))})
    t.append({"_target_": "Orientationd", "keys": k, "axcodes": "RAS"})
    if ds["pixdim"]:
        t.append({"_target_": "Spacingd", "keys": k, "pixdim": ds["pixdim"], "mode": modes})
    t += [dict(x) for x in ds["intensity"]]
    if train:
        t.append({"_target_": "SpatialPadd", "keys": k, "spatial_size": "@patch_size"})
    t.append({"_target_": "EnsureTyped", "keys": k, "dtype": ["$torch.float32", "$torch.uint8"][: len(keys)]})
    return t


def _random_transforms(ds: dict[str, Any]) -> list[dict[str, Any]]:
    pos, neg = ds["pos_neg"]
    t: list[dict[str, Any]] = [
        {"_target_": "RandCropByPosNegLabeld", "keys": ["image", "label"], "label_key": "label",
         "spatial_size": "@patch_size", "pos": pos, "neg": neg, "num_samples": "@num_samples",
         "image_key": "image", "image_threshold": 0, "allow_smaller": False},
    ]
    t += [{"_target_": "RandFlipd", "keys": ["image", "label"], "prob": ds["flip_prob"], "spatial_axis": a} for a in range(3)]
    t += [
        {"_target_": "RandRotate90d", "keys": ["image", "label"], "prob": ds["rot90_prob"], "max_k": 3},
        {"_target_": "RandShiftIntensityd", "keys": "image", "offsets": 0.1, "prob": ds["shift_prob"]},
    ]
    return t


def _sliding_window() -> dict[str, Any]:
    """The paper's inference: sliding window over patch-sized ROIs with 25% overlap."""
    return {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": "@sw_batch_size",
            "overlap": 0.25}


def _scoring_postprocessing() -> dict[str, Any]:
    """Softmax -> argmax, prediction and label one-hot: what Dice and HD95 compare."""
    return {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": ["pred", "label"], "argmax": [True, False],
         "to_onehot": "$[@num_classes, @num_classes]"},
    ]}


def common_header(name: str) -> dict[str, Any]:
    dataset, bb_key, *_ = PAIRINGS[name]
    ds = DATASETS[dataset]
    return {
        "imports": ["$import os", "$import sys", "$import glob", "$import torch", "$import monai"],
        "bundle_root": BUNDLE_ROOT_EXPR,
        "dataset_dir": f"@bundle_root + '/../../demo/{dataset}'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "patch_size": [ds["patch"]] * 3,
        "num_classes": len(ds["classes"]),
        "network_def": _network_def(bb_key),
    }


def _network_def(bb_key: str) -> dict[str, Any]:
    net = backbone_config(bb_key)
    if "img_size" in net:  # UNETR's position embedding is tied to the patch (ROI) size
        net["img_size"] = "@patch_size"
    return net


def train_config(name: str) -> dict[str, Any]:
    dataset, bb_key, epochs, lr, step_decay, _ = PAIRINGS[name]
    ds = DATASETS[dataset]
    cfg = common_header(name)
    cfg["imports"] += ["$import ignite", "$import dsd_components", "$import dsd_components.data", "$import dsd_components.integrity", "$import dsd_components.handlers"]
    cfg["dataset_dir"] = f"$@bundle_root + '/../../demo/{dataset}'"
    cfg.update({
        "dataset": dataset,
        "datalist": None,
        "fold": 0,
        "seed": 0,
        "num_epochs": epochs,
        "val_interval": ds["val_interval"],
        "learning_rate": lr,
        "weight_decay": 1e-5,
        "lr_step_decay": step_decay,
        "num_samples": ds["num_samples"],
        "num_workers": 4,
        "cache_rate": 1.0,
        "amp": "$torch.cuda.is_available()",
        "sw_batch_size": 4,
        "check_data": True,
        "resume": True,
        "dsd_mode": "dsd",
        "dsd_lambda": 1.0,
        "dsd_alpha": 1.0,
        "dsd_beta": 1.0,
        "temperature": 3.0,
        "detach_teacher": False,
        "ckpt_dir": "$@bundle_root + '/models'",
        "log_dir": "$@bundle_root + '/logs'",
        "datalists": "$dsd_components.integrity.datalist_or_exit(@dataset, @dataset_dir, fold=@fold, datalist=@datalist, seed=@seed)",
        "dsd_network": {"_target_": "dsd_components.DSDNetwork", "backbone": "@network_def", "mode": "@dsd_mode"},
        "network": "$@dsd_network.to(@device)",
        "loss": {"_target_": "dsd_components.DSDLoss", "mode": "@dsd_mode", "lambda_ds": "@dsd_lambda",
                 "alpha": "@dsd_alpha", "beta": "@dsd_beta", "temperature": "@temperature",
                 "detach_teacher": "@detach_teacher"},
        "optimizer": {"_target_": "torch.optim.AdamW", "params": "$@network.parameters()", "lr": "@learning_rate",
                      "weight_decay": "@weight_decay"},
        "lr_scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "optimizer": "@optimizer",
                         "step_size": "$max(1, @num_epochs // 6) if @lr_step_decay else 10**9", "gamma": 0.5},
        "train": {
            "deterministic_transforms": _load_transforms(ds, ["image", "label"], train=True),
            "random_transforms": _random_transforms(ds),
            "preprocessing": {"_target_": "Compose", "transforms": "$@train#deterministic_transforms + @train#random_transforms"},
            "dataset": {"_target_": "CacheDataset", "data": "$@datalists['training']", "transform": "@train#preprocessing",
                        "cache_rate": "@cache_rate", "num_workers": "@num_workers", "copy_cache": False},
            # persistent workers: no process restart (and re-pickling of the cache) every epoch (docs/PERFORMANCE.md)
            "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset", "batch_size": 1, "shuffle": True,
                           "num_workers": "@num_workers", "persistent_workers": "$@num_workers > 0"},
            "inferer": {"_target_": "SimpleInferer"},
            "handlers": [
                {"_target_": "LrScheduleHandler", "lr_scheduler": "@lr_scheduler", "print_lr": True},
                {"_target_": "ValidationHandler", "validator": "@validate#evaluator", "epoch_level": True,
                 "interval": "@val_interval"},
                {"_target_": "dsd_components.handlers.DSDCheckpointer", "save_dir": "@ckpt_dir", "network": "@network",
                 "optimizer": "@optimizer", "lr_scheduler": "@lr_scheduler", "validator": "@validate#evaluator",
                 "key_metric": "val_mean_dice", "resume": "@resume",
                 "seed": "@seed", "transform": "@train#preprocessing"},
                {"_target_": "StatsHandler", "tag_name": "train_loss", "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
                {"_target_": "TensorBoardStatsHandler", "log_dir": "@log_dir", "tag_name": "train_loss",
                 "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
                {"_target_": "ignite.handlers.ProgressBar", "persist": False},
            ],
            "trainer": {"_target_": "SupervisedTrainer", "max_epochs": "@num_epochs", "device": "@device",
                        "train_data_loader": "@train#dataloader", "network": "@network", "loss_function": "@loss",
                        "optimizer": "@optimizer", "inferer": "@train#inferer", "amp": "@amp",
                        "train_handlers": "@train#handlers"},
        },
        "validate": {
            "preprocessing": {"_target_": "Compose", "transforms": "$@train#deterministic_transforms"},
            "dataset": {"_target_": "CacheDataset", "data": "$@datalists['validation']", "transform": "@validate#preprocessing",
                        "cache_rate": "@cache_rate", "num_workers": "@num_workers", "copy_cache": False},
            # cached, deterministic items: threads are enough and start instantly (docs/PERFORMANCE.md)
            "dataloader": {"_target_": "ThreadDataLoader", "dataset": "@validate#dataset", "batch_size": 1,
                           "shuffle": False, "num_workers": 0},
            "inferer": _sliding_window(),
            "postprocessing": _scoring_postprocessing(),
            "handlers": [
                {"_target_": "StatsHandler", "iteration_log": False},
                {"_target_": "TensorBoardStatsHandler", "log_dir": "@log_dir", "iteration_log": False},
            ],
            "key_metric": {"val_mean_dice": {"_target_": "MeanDice", "include_background": False,
                                             "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
            "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@validate#dataloader",
                          "network": "@network", "inferer": "@validate#inferer", "postprocessing": "@validate#postprocessing",
                          "key_val_metric": "@validate#key_metric", "val_handlers": "@validate#handlers", "amp": "@amp"},
        },
        # the lists the datasets really use: MONAI Label replaces train#dataset#data and validate#dataset#data
        "check_lists": {"training": "@train#dataset#data", "validation": "@validate#dataset#data"},
        "check_dataset": "$dsd_components.integrity.preflight(@dataset, @dataset_dir, datalist=@check_lists, patch_size=@patch_size, dsd_mode=@dsd_mode, max_cases=None if @check_data else 0, network=@network_def)",
        "initialize": ["$monai.utils.set_determinism(seed=@seed)", "$@check_dataset"],
        "run": ["$@train#trainer.run()"],
        "finalize": [],
    })
    return cfg


def evaluate_config(name: str) -> dict[str, Any]:
    """Load models/model.pt into the stock backbone; per-case, per-class Dice and HD95 (mm) to CSV."""
    dataset = PAIRINGS[name][0]
    ds = DATASETS[dataset]
    cfg = common_header(name)
    cfg["imports"] += ["$import dsd_components", "$import dsd_components.data", "$import dsd_components.integrity",
                       "$import dsd_components.metrics", "$import dsd_components.plots"]
    cfg.update({
        "dataset": dataset,
        "dataset_dir": f"$@bundle_root + '/../../demo/{dataset}'",
        "datalist": None,
        "fold": 0,
        "seed": 0,
        "eval_split": "testing",
        "num_workers": 4,
        "amp": "$torch.cuda.is_available()",
        "sw_batch_size": 4,
        "check_data": True,
        "log_dir": "$@bundle_root + '/logs'",
        "datalists": "$dsd_components.integrity.datalist_or_exit(@dataset, @dataset_dir, fold=@fold, datalist=@datalist, seed=@seed)",
        "network": "$@network_def.to(@device)",
        "class_names": ds["classes"][1:],
        "preprocessing": {"_target_": "Compose", "transforms": _load_transforms(ds, ["image", "label"], train=False)},
        "dataset_obj": {"_target_": "Dataset", "data": "$@datalists[@eval_split]", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset_obj", "batch_size": 1, "shuffle": False,
                       "num_workers": "@num_workers"},
        "inferer": _sliding_window(),
        "postprocessing": _scoring_postprocessing(),
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
             "load_dict": {"model": "@network"}, "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
            {"_target_": "MetricsSaver", "save_dir": "@output_dir", "metrics": ["mean_dice", "mean_hd95"],
             "metric_details": ["mean_dice", "mean_hd95"],
             "batch_transform": "$monai.handlers.from_engine(['image_meta_dict'])",
             "summary_ops": ["mean", "std", "median", "min", "max", "90percentile"]},
            {"_target_": "dsd_components.metrics.PerClassCSV", "save_dir": "@output_dir", "class_names": "@class_names",
             "metric_names": ["mean_dice", "mean_hd95"]},
        ],
        "key_metric": {"mean_dice": {"_target_": "MeanDice", "include_background": False, "reduction": "mean",
                                     "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        "additional_metrics": {"mean_hd95": {"_target_": "IgniteMetricHandler",
                                             "metric_fn": {"_target_": "dsd_components.metrics.HausdorffDistanceMM",
                                                           "include_background": False, "percentile": 95,
                                                           "reduction": "mean"},
                                             "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
                                             "save_details": True}},
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "key_val_metric": "@key_metric", "additional_metrics": "@additional_metrics",
                      "val_handlers": "@handlers", "amp": "@amp"},
        "check_dataset": "$dsd_components.integrity.preflight(@dataset, @dataset_dir, datalist={@eval_split: @dataset_obj#data}, splits=(@eval_split,), max_cases=None if @check_data else 0, model_path=@bundle_root + '/models/model.pt')",
        "initialize": ["$monai.utils.set_determinism(seed=@seed)", "$@check_dataset"],
        "run": ["$@evaluator.run()"],
        # PNG of train_loss and val_mean_dice read from the training run's TensorBoard events in log_dir
        "finalize": ["$dsd_components.plots.plot_training_curves(@log_dir, @output_dir + '/training_curves.png')"],
    })
    if dataset == "brats":
        _add_brats_regions(cfg)
    return cfg


def _add_brats_regions(cfg: dict[str, Any]) -> None:
    """BraTS: besides the per-label scores of the reference code (edema, non-enhancing, enhancing), score the standard
    regions WT = 1|2|3, TC = 2|3, ET = 3 (SPEC.md), written to regions_per_case_metrics.csv / regions_summary.csv."""
    cfg["imports"].append("$import dsd_components.transforms")
    cfg["region_names"] = ["WT", "TC", "ET"]
    cfg["postprocessing"]["transforms"] = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "dsd_components.transforms.MSDBratsRegionsd", "keys": ["pred", "label"]},
        {"_target_": "AsDiscreted", "keys": ["pred", "label"], "to_onehot": "$[@num_classes, @num_classes]"},
    ]
    regions = "$monai.handlers.from_engine(['pred_regions', 'label_regions'])"
    cfg["additional_metrics"]["region_dice"] = {"_target_": "MeanDice", "include_background": True,
                                                "reduction": "mean", "output_transform": regions}
    cfg["additional_metrics"]["region_hd95"] = {
        "_target_": "IgniteMetricHandler", "output_transform": regions, "save_details": True,
        "metric_fn": {"_target_": "dsd_components.metrics.HausdorffDistanceMM", "include_background": True,
                      "percentile": 95, "reduction": "mean"}}
    cfg["handlers"].append({"_target_": "dsd_components.metrics.PerClassCSV", "save_dir": "@output_dir",
                            "class_names": "@region_names", "metric_names": ["region_dice", "region_hd95"],
                            "prefix": "regions_"})


def inference_config(name: str) -> dict[str, Any]:
    """Stock backbone, image-only preprocessing, sliding window, outputs in the input's space. No project code."""
    dataset = PAIRINGS[name][0]
    ds = DATASETS[dataset]
    cfg = common_header(name)
    cfg.update({
        "dataset_dir": "$@bundle_root + '/../../demo/" + dataset + "_infer'",
        "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*.nii*'))) if '_label.' not in os.path.basename(f)]",
        "network": "$@network_def.to(@device)",
        # MONAI Label adds a string `image_path` key; monai >= 1.6's Spacingd updates every `image_*` key and fails
        # on it. Park it under a name Spacingd ignores and put it back at the end (MONAI Label's writer takes the
        # output file type from it). Pure MONAI and a no-op for `monai.bundle run`, so MONAI Label needs no patch.
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "CopyItemsd", "keys": "image_path", "names": "source_path", "allow_missing_keys": True},
            {"_target_": "DeleteItemsd", "keys": "image_path"},
        ] + _load_transforms(ds, ["image"], train=False)},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False, "num_workers": 2},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": 4, "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "meta_key_postfix": "meta_dict", "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "CopyItemsd", "keys": "source_path", "names": "image_path", "allow_missing_keys": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
             "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False, "print_log": False},
        ]},
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
             "load_dict": {"model": "@network"}, "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": "$torch.cuda.is_available()"},
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    })
    cfg["imports"].append("$import numpy")
    return cfg


def _ddp_common() -> dict[str, Any]:
    """Process group from torchrun's environment; gloo on CPU so it runs anywhere."""
    return {
        "device": "$torch.device('cuda:' + os.environ['LOCAL_RANK'] if torch.cuda.is_available() else 'cpu')",
        "rank": "$int(os.environ.get('RANK', 0))",
        "world_size": "$int(os.environ.get('WORLD_SIZE', 1))",
        "backend": "$'nccl' if torch.cuda.is_available() else 'gloo'",
        "dist_init": [
            "$torch.distributed.is_initialized() or torch.distributed.init_process_group(backend=@backend)",
            "$torch.cuda.set_device(@device) if torch.cuda.is_available() else None",
        ],
        "check_data": "$@rank == 0",  # rank 0 checks the data; the others only build their datalists
        "finalize": ["$torch.distributed.is_initialized() and torch.distributed.destroy_process_group()"],
    }


def _distributed_sampler(dataset_ref: str) -> dict[str, Any]:
    """Evaluation split across ranks; with fewer cases than ranks, cases repeat (MONAI refuses otherwise)."""
    return {"_target_": "DistributedSampler", "dataset": dataset_ref,
            "even_divisible": f"$len({dataset_ref}) < @world_size", "shuffle": False}


# Handlers that only log: created on rank 0 only (a disabled list item is dropped by MONAI's config parser), so other
# ranks write no TensorBoard files and print no duplicate lines. MetricsSaver and PerClassCSV are not listed: they
# all-gather file names, so every rank must run them (they write on rank 0 only).
RANK0_ONLY = ("StatsHandler", "TensorBoardStatsHandler", "ignite.handlers.ProgressBar")


def _rank0_only(handler_lists: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``{config id of a handler list: the list}`` -> overrides disabling its logging handlers on ranks > 0."""
    return {f"{list_id}#{i}#_disabled_": "$@rank > 0"
            for list_id, handlers in handler_lists.items()
            for i, handler in enumerate(handlers) if handler["_target_"] in RANK0_ONLY}


def multi_gpu_train_config(name: str) -> dict[str, Any]:
    """DDP override of train.json under torchrun (the model-zoo pattern).

    Each rank caches and trains on its own partition of the training cases; validation is split by a
    DistributedSampler and MONAI's metric handlers all-gather the scores, so every rank sees the same metric; only
    rank 0 logs, writes TensorBoard and saves checkpoints (DSDCheckpointer reads the rank itself).
    """
    train = train_config(name)
    return {
        **_ddp_common(),
        "network": {"_target_": "torch.nn.parallel.DistributedDataParallel", "module": "$@dsd_network.to(@device)",
                    "device_ids": "$[@device] if torch.cuda.is_available() else None",
                    "find_unused_parameters": "$dsd_components.ddp_needs_unused_parameters(@network_def)"},
        # Each rank caches and trains on its own partition of whatever train#dataset#data holds (the bundle's split,
        # or the list MONAI Label injects): a new dataset object, so that key itself is never overridden here.
        "train#dataset_rank": {
            "_target_": "CacheDataset", "transform": "@train#preprocessing", "cache_rate": "@cache_rate",
            "num_workers": "@num_workers", "copy_cache": False,
            "data": "$monai.data.partition_dataset(@train#dataset#data, num_partitions=@world_size, shuffle=True, seed=@seed, even_divisible=True)[@rank]"},
        "train#dataloader#dataset": "@train#dataset_rank",
        "validate#sampler": _distributed_sampler("@validate#dataset"),
        "validate#dataloader#sampler": "@validate#sampler",
        **_rank0_only({"train#handlers": train["train"]["handlers"], "validate#handlers": train["validate"]["handlers"]}),
        "initialize": ["$@dist_init", "$monai.utils.set_determinism(seed=@seed + @rank)", "$@check_dataset"],
        "run": ["$@train#trainer.run()"],
    }


def multi_gpu_evaluate_config(name: str) -> dict[str, Any]:
    """DDP override of evaluate.json: each rank evaluates a share of the cases; rank 0 writes the CSVs."""
    return {
        **_ddp_common(),
        "sampler": _distributed_sampler("@dataset_obj"),
        "dataloader#sampler": "@sampler",
        **_rank0_only({"handlers": evaluate_config(name)["handlers"]}),
        "initialize": ["$@dist_init", "$monai.utils.set_determinism(seed=@seed)", "$@check_dataset"],
        "run": ["$@evaluator.run()"],
    }


def metadata(name: str) -> dict[str, Any]:
    import monai
    import numpy
    import torch

    dataset, bb_key, epochs, lr, step_decay, result = PAIRINGS[name]
    ds = DATASETS[dataset]
    net = backbone_config(bb_key)
    patch = [ds["patch"]] * 3
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json",
        "version": VERSION,
        "changelog": CHANGELOG,
        "monai_version": monai.__version__.split("+")[0],
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": numpy.__version__,
        "required_packages_version": {"nibabel": "5.4.2", "pytorch-ignite": "0.5.5", "einops": "0.8.2",
                                      "scipy": "1.17.1", "tqdm": "4.70.1", "matplotlib": "3.11.2",
                                      "tensorboard": "2.21.0"},
        "optional_packages_version": {"mlflow": "3.17.2"},
        "supported_apps": {"monai-label": "0.8.5"},
        "name": f"{name}",
        "task": f"{ds['title']} segmentation with {net['_target_'].rsplit('.', 1)[-1]} trained by Dual Self-Distillation",
        "description": (
            f"A {net['_target_'].rsplit('.', 1)[-1]} for {ds['title']} segmentation, trained with Dual Self-Distillation "
            "(DSD): bottleneck heads on the encoder and decoder stages distill the deepest encoder and decoder into the "
            "shallower ones during training only. The shipped weights are the plain MONAI backbone."
        ),
        "authors": "dsd-bundles contributors",
        "copyright": "Copyright (c) dsd-bundles contributors",
        "data_source": {"mmwhs": "https://zmiclab.github.io/zxh/0/mmwhs/", "brats": "http://medicaldecathlon.com/",
                        "hippocampus": "http://medicaldecathlon.com/"}[dataset],
        "data_type": "nibabel",
        "image_classes": f"{ds['in_channels']} channel(s) {ds['modality']}",
        "label_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(ds["classes"])),
        "pred_classes": ", ".join(f"{i}: {c}" for i, c in enumerate(ds["classes"])),
        "eval_metrics": {"mean_dice": None},
        "intended_use": "Research only, not for clinical use.",
        "references": [
            "Banerjee S, Dong M, Glide-Hurst C. Dual Self-Distillation of U-shaped Networks for 3D Medical Image "
            "Segmentation. IEEE Transactions on Biomedical Engineering, 2025 (ISBI 2024 preliminary version).",
            "Cardoso MJ et al. MONAI: An open-source framework for deep learning in healthcare. arXiv:2211.02701, 2022.",
        ],
        "network_data_format": {
            "inputs": {"image": {
                "type": "image", "format": "magnitude", "modality": ds["modality"], "num_channels": ds["in_channels"],
                "spatial_shape": patch, "dtype": "float32", "value_range": [], "is_patch_data": True,
                "channel_def": ds["channel_names"],
            }},
            "outputs": {"pred": {
                "type": "image", "format": "segmentation", "num_channels": len(ds["classes"]),
                "spatial_shape": patch, "dtype": "float32", "value_range": [], "is_patch_data": True,
                "channel_def": {str(i): c for i, c in enumerate(ds["classes"])},
            }},
        },
    }


LOGGING_CONF = """[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""

LICENSE = """Copyright (c) dsd-bundles contributors

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""

LARGE_FILES = """large_files:
  - path: "models/model.pt"
    url: ""
    hash_val: ""
    hash_type: "sha256"
  - path: "models/model.ts"
    url: ""
    hash_val: ""
    hash_type: "sha256"
"""


def bundle_readme(name: str) -> str:
    dataset, bb_key, epochs, lr, step_decay, result = PAIRINGS[name]
    ds = DATASETS[dataset]
    net = backbone_config(bb_key)
    cls = net["_target_"].rsplit(".", 1)[-1]
    args = ", ".join(f"{k}={v}" for k, v in net.items() if k != "_target_")
    pre = "; ".join(t["_target_"] + ("(" + ", ".join(f"{k}={v}" for k, v in t.items() if k not in ("_target_", "keys")) + ")") for t in _load_transforms(ds, ["image", "label"], train=False))
    aug = "; ".join(t["_target_"] for t in _random_transforms(ds))
    classes = ", ".join(f"{i} {c}" for i, c in enumerate(ds["classes"]))
    schedule = "StepLR(step = epochs // 6, gamma 0.5)" if step_decay else "constant learning rate"
    regions = (
        "\nThe network is trained, as in the reference code, on the MSD labels (1 edema, 2 non-enhancing tumour, "
        "3 enhancing tumour)\nand those per-label scores are what the paper's Table 2 reports; the standard BraTS "
        "regions WT = 1|2|3,\nTC = 2|3, ET = 3 are scored too, in `regions_per_case_metrics.csv` and "
        "`regions_summary.csv`."
    ) if dataset == "brats" else ""
    return f"""# {name}

{ds['title']} segmentation with MONAI `{cls}` trained by **Dual Self-Distillation (DSD)**
(Banerjee et al., IEEE TBME 2025). DSD heads exist only during training; `models/model.pt` is the stock
`{cls}` state dict, so inference needs no custom code and loads in MONAI Label.

## Model
- Backbone: `monai.networks.nets.{cls}({args})`
- Classes ({len(ds['classes'])}): {classes}
- Input: {ds['in_channels']} channel(s), {ds['modality']}; patch {ds['patch']}^3

## Data
- {ds['title']}: {ds['split']}.
- `--dataset_dir` points at the dataset folder (MMWHS: the folder with `ct_train_1001_image.nii.gz` ...; MSD: the
  `Task0x_...` folder with `dataset.json`). `--datalist my.json` (MONAI decathlon format) replaces the derived split.
- The data are checked before training and evaluation (`python scripts/check_dataset.py {dataset} DATASET_DIR`);
  every problem is listed with the file and the fix. Set `--check_data false` to skip.

## Preprocessing and training (paper settings, SPEC.md)
- Preprocessing: {pre}.
- Augmentation: {aug} ({ds['num_samples']} patches per volume).
- Loss: `DSDLoss(mode=dsd, lambda=1, alpha=1, beta=1, T=3)`; `--dsd_mode basic` trains the plain baseline.
- AdamW, lr {lr}, weight decay 1e-5, {schedule}, {epochs} epochs, batch size 1, AMP on CUDA.
- Validation every {ds['val_interval']} epochs: sliding window {ds['patch']}^3, overlap 0.25, mean foreground Dice.
- Checkpoints: `models/latest.pt` after every epoch, written atomically; running the same command again after a
  crash or kill resumes from it (model, optimizer, scheduler, epoch, best score; random state is reseeded per
  epoch, so with `--num_workers 0` the interrupted epoch is replayed exactly; with worker processes it draws other
  random patches). `--resume false` starts over; a finished run is not
  resumed but moved to `models/previous_run/`. `models/model.pt` = best backbone.

## Commands (from the repository root, the bundle folder, or a copy of it)

```bash
python -m monai.bundle run --config_file bundles/{name}/configs/train.json --dataset_dir /data/{dataset}
python -m monai.bundle run --config_file bundles/{name}/configs/evaluate.json --dataset_dir /data/{dataset}
python -m monai.bundle run --config_file bundles/{name}/configs/inference.json --dataset_dir /data/new_cases
torchrun --nproc_per_node 2 -m monai.bundle run \\
    --config_file "['bundles/{name}/configs/train.json','bundles/{name}/configs/multi_gpu_train.json']" --dataset_dir /data/{dataset}
```

Common overrides: `--fold`, `--num_epochs`, `--val_interval`, `--learning_rate`, `--patch_size`, `--num_workers`,
`--device`, `--amp`, `--output_dir`, `--dsd_mode {{basic,ds,sdd,sde,dsd,mean_teacher,reversed_teacher}}`,
`--dsd_lambda`, `--dsd_alpha`, `--dsd_beta`, `--temperature`.

## Evaluation
`evaluate.json` loads `models/model.pt` into the stock backbone, runs the test split (`--eval_split validation`
for validation) and writes `per_case_metrics.csv` (Dice and HD95 in mm per case and class, foreground only) and
`summary.csv` (mean ± std) to `--output_dir` (default `eval/`).{regions}

## Expected results (paper)
{result}. These need the full dataset and schedule; the demo data only shows that the pipeline works.

## License
Code: Apache-2.0. The datasets have their own licenses (MMWHS: research use; MSD: CC-BY-SA 4.0).
"""


def bundle_files(name: str) -> dict[str, str]:
    """Relative path -> text of every generated file of bundle ``name``."""
    dump = lambda obj: json.dumps(obj, indent=4) + "\n"  # noqa: E731
    return {
        "configs/train.json": dump(train_config(name)),
        "configs/evaluate.json": dump(evaluate_config(name)),
        "configs/inference.json": dump(inference_config(name)),
        "configs/multi_gpu_train.json": dump(multi_gpu_train_config(name)),
        "configs/multi_gpu_evaluate.json": dump(multi_gpu_evaluate_config(name)),
        "configs/metadata.json": dump(metadata(name)),
        "configs/logging.conf": LOGGING_CONF,
        "docs/README.md": bundle_readme(name),
        "LICENSE": LICENSE,
        "large_files.yml": LARGE_FILES,
    }


def stale_files(bundles_dir: Path = ROOT / "bundles") -> list[str]:
    """Generated files that are missing or differ from what the generator writes now (metadata versions excluded)."""
    stale = []
    for name in PAIRINGS:
        for rel, text in bundle_files(name).items():
            path = bundles_dir / name / rel
            if not path.exists():
                stale.append(str(path))
                continue
            current = path.read_text()
            if rel.endswith("metadata.json"):
                drop = ("monai_version", "pytorch_version", "numpy_version")
                a, b = json.loads(current), json.loads(text)
                if {k: v for k, v in a.items() if k not in drop} != {k: v for k, v in b.items() if k not in drop}:
                    stale.append(str(path))
            elif current != text:
                stale.append(str(path))
    return stale


def main(check: bool = False, bundles_dir: str = str(ROOT / "bundles")) -> None:
    """Write all bundles, or with ``--check`` list the files that would change and exit 1."""
    out = Path(bundles_dir)
    if check:
        stale = stale_files(out)
        for s in stale:
            print(f"stale: {s}")
        if stale:
            print("Run: python scripts/generate_bundles.py")
            raise SystemExit(1)
        print(f"{len(PAIRINGS)} bundles up to date")
        return
    for name in PAIRINGS:
        for rel, text in bundle_files(name).items():
            path = out / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(f"wrote {len(PAIRINGS)} bundles under {out}")


if __name__ == "__main__":
    fire.Fire(main)
