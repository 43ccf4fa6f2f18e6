"""A bundle's configs from one :class:`~dsd_tools.bundlegen.spec.BundleSpec`: train, evaluate, inference and the
multi-GPU overrides, with the model zoo's ids (``network_def``, ``train#trainer``, ``validate#evaluator``,
``initialize``, ``run``, ``finalize``).

``inference.json`` uses MONAI only, so the shipped model runs (and loads in MONAI Label) with no project code;
train and evaluate configs call the runtime package ``dsd_components``.
"""

from __future__ import annotations

from typing import Any

from .spec import BundleSpec

__all__ = ["STDLIB_BUNDLE_ROOT", "train_config", "evaluate_config", "inference_config", "multi_gpu_train_config",
           "multi_gpu_evaluate_config", "RANK0_ONLY", "EVALUATE_LAYERING"]

# bundle_root of configs that must not import the project (inference.json, packaged bundles before the vendored
# package is importable): the folder above configs/ of the --config_file on the command line, else the working
# directory; the same rule as dsd_components.entry.bundle_root (a test holds them equal).
STDLIB_BUNDLE_ROOT = (
    "$next((os.path.dirname(os.path.dirname(os.path.abspath(p.strip(\"[]'\\\" \").split(',')[0]))) "
    "for i, a in enumerate(sys.argv) if a.startswith('--config_file') "
    "for p in [a.split('=', 1)[1] if '=' in a else (sys.argv[i + 1] if i + 1 < len(sys.argv) else '')] if p), "
    "os.getcwd())"
)
# a component (called when first needed), so configs that import nothing of the project (inference.json, which
# MONAI Label parses) can use it too
RUNTIME_BUNDLE_ROOT = {"_target_": "dsd_components.entry.bundle_root"}
INSTALL_ERROR_HANDLER = "$@error_handler"
ERROR_HANDLER = {"_target_": "dsd_components.entry.install_error_handler"}


def _load_transforms(spec: BundleSpec, keys: list[str], train: bool, reader: Any = None) -> list[dict[str, Any]]:
    """Deterministic preprocessing: training (padded to the patch, foreground indices cached when the recipe says
    so), validation and evaluation (no padding: the sliding window pads), inference (image only)."""
    k = keys if len(keys) > 1 else keys[0]
    ds = spec.dataset
    load: dict[str, Any] = {"_target_": "LoadImaged", "keys": k, "image_only": False}
    if reader is not None:
        load["reader"] = reader
    t: list[dict[str, Any]] = [
        load,
        {"_target_": "EnsureChannelFirstd", "keys": k},
    ]
    raw = ds.get("raw_label_values")
    if raw and "label" in keys:
        # raw on-disk label values (MMWHS 205, 420, ...) -> classes 1..K-1 in the paper's order; stray values
        # (MMWHS 421) -> background, as the reference code does
        stray = list(ds.get("background_values") or [])
        t.append({"_target_": "MapLabelValued", "keys": "label", "orig_labels": [0, *raw, *stray],
                  "target_labels": list(range(len(raw) + 1)) + [0] * len(stray)})
    # labels given explicitly: the RAS axis labels MONAI uses today (its default will change; monai >= 1.6 warns)
    orient = {"_target_": "Orientationd", "keys": k, "axcodes": "RAS", "labels": [["L", "R"], ["P", "A"], ["I", "S"]]}
    spacing = [{"_target_": "Spacingd", "keys": k, "pixdim": list(ds["target_spacing"]),
                "mode": ["bilinear", "nearest"][: len(keys)]}] if ds.get("target_spacing") else []
    t += spacing + [orient] if spec.spacing_before_orientation else [orient] + spacing
    t += [dict(x) for x in spec.intensity]
    if train:
        t.append({"_target_": "SpatialPadd", "keys": k, "spatial_size": "@patch_size", "mode": "@pad_mode"})
        if spec.cache_fg_bg_indices:  # computed once per case and cached, instead of a label scan per draw
            t.append({"_target_": "FgBgToIndicesd", "keys": "label", "image_key": "image", "image_threshold": 0})
    t.append({"_target_": "EnsureTyped", "keys": k, "dtype": ["$torch.float32", "$torch.uint8"][: len(keys)]})
    return t


def _training_reader(spec: BundleSpec) -> str | None:
    """NIfTI datasets (every paper dataset, most nnU-Net ones) name MONAI's NibabelReader, so MONAI does not build
    (and, with pydicom installed, warn about) every reader it knows; other file endings keep MONAI's choice."""
    return "NibabelReader" if str(spec.dataset.get("file_ending", ".nii.gz")).endswith((".nii", ".nii.gz")) else None


def _random_transforms(spec: BundleSpec) -> list[dict[str, Any]]:
    crop: dict[str, Any] = {
        "_target_": "RandCropByPosNegLabeld", "keys": ["image", "label"], "label_key": "label",
        "spatial_size": "@patch_size", "pos": spec.pos, "neg": spec.neg, "num_samples": "@num_samples",
        "image_key": "image", "image_threshold": 0, "allow_smaller": False}
    if spec.cache_fg_bg_indices:
        crop.update(fg_indices_key="label_fg_indices", bg_indices_key="label_bg_indices")
    t: list[dict[str, Any]] = [crop]
    t += [{"_target_": "RandFlipd", "keys": ["image", "label"], "prob": spec.flip_prob, "spatial_axis": a}
          for a in range(3)]
    t += [
        {"_target_": "RandRotate90d", "keys": ["image", "label"], "prob": spec.rot90_prob, "max_k": 3},
        {"_target_": "RandShiftIntensityd", "keys": "image", "offsets": spec.shift_offset, "prob": spec.shift_prob},
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


def _network_def(spec: BundleSpec) -> dict[str, Any]:
    net = dict(spec.network_def)
    if "img_size" in net:  # UNETR's position embedding is tied to the patch (ROI) size
        net["img_size"] = "@patch_size"
    return net


def _header(spec: BundleSpec, project_code: bool) -> dict[str, Any]:
    return {
        "imports": ["$import os", "$import sys", "$import glob", "$import torch", "$import monai"]
        + (["$import dsd_components", "$import dsd_components.entry", "$import dsd_components.knobs"]
           if project_code else []),
        "bundle_root": dict(RUNTIME_BUNDLE_ROOT),
        "error_handler": dict(ERROR_HANDLER),
        "dataset_dir": spec.dataset_dir or "$@bundle_root + '/data'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "patch_size": list(spec.patch),
        "num_classes": len(spec.class_names),
        "network_def": _network_def(spec),
    }


def _flag(name: str) -> str:
    """A boolean knob as its consumer reads it: ``--amp false`` arrives as the text 'false', which Python calls true;
    :func:`dsd_components.knobs.as_bool` reads what people type and names the knob on anything else."""
    return f"dsd_components.knobs.as_bool(@{name}, '{name}')"


def _flag_component(name: str) -> dict[str, Any]:
    """:func:`_flag` for configs without project import lines (inference.json): built when first used."""
    return {"_target_": "dsd_components.knobs.as_bool", "value": f"@{name}", "name": name}


def _datalists() -> str:
    return "$dsd_components.data.build_datalist(@dataset, @dataset_dir, fold=@fold, datalist=@datalist)"


def train_config(spec: BundleSpec) -> dict[str, Any]:
    cfg = _header(spec, project_code=True)
    cfg["imports"] += ["$import ignite", "$import dsd_components.data", "$import dsd_components.integrity",
                       "$import dsd_components.handlers", "$import dsd_components.runs"]
    cfg.update({
        "dataset": dict(spec.dataset),
        "datalist": None,
        "fold": 0,
        "seed": spec.seed,
        "num_epochs": spec.epochs,
        "val_interval": spec.val_interval,
        "learning_rate": spec.learning_rate,
        "weight_decay": spec.weight_decay,
        "lr_step_decay": spec.step_decay,
        "num_samples": spec.num_samples,
        "pad_mode": spec.pad_mode,
        # as many loader workers as the machine has cores, at most 4 (more only make PyTorch warn)
        "num_workers": "$min(4, os.cpu_count() or 1)",
        "cache_rate": 1.0,
        "amp": "$torch.cuda.is_available()",
        "sw_batch_size": 4,
        "check_data": True,
        "resume": True,
        "run_name": None,
        "dsd_mode": "dsd",
        "dsd_lambda": spec.lambda_ds,
        "dsd_alpha": spec.alpha,
        "dsd_beta": spec.beta,
        "temperature": spec.temperature,
        "detach_teacher": False,
        "ckpt_dir": "$@bundle_root + '/models'",
        # the run folder (models/runs/<time>[-run_name]/) this training writes into, and the bundle's training lock:
        # a new folder, or the newest one when it is unfinished and resume is on (dsd_components/runs.py)
        "training_run": {"_target_": "dsd_components.runs.TrainingRun", "models_dir": "@ckpt_dir",
                         "max_epochs": "@train#trainer#max_epochs", "resume": "@resume", "name": "@run_name"},
        "log_dir": "$@training_run.log_dir",
        "datalists": _datalists(),
        "dsd_network": {"_target_": "dsd_components.DSDNetwork", "backbone": "@network_def", "mode": "@dsd_mode",
                        "head_init": spec.head_init},
        "network": "$@dsd_network.to(@device)",
        "loss": {"_target_": "dsd_components.DSDLoss", "mode": "@dsd_mode", "lambda_ds": "@dsd_lambda",
                 "alpha": "@dsd_alpha", "beta": "@dsd_beta", "temperature": "@temperature",
                 "detach_teacher": f"${_flag('detach_teacher')}"},
        "optimizer": {"_target_": "torch.optim.AdamW", "params": "$@network.parameters()", "lr": "@learning_rate",
                      "weight_decay": "@weight_decay"},
        "lr_scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "optimizer": "@optimizer",
                         "step_size": f"$max(1, @num_epochs // 6) if {_flag('lr_step_decay')} else 10**9",
                         "gamma": 0.5},
        "train": {
            "deterministic_transforms": _load_transforms(spec, ["image", "label"], train=True,
                                                         reader=_training_reader(spec)),
            "random_transforms": _random_transforms(spec),
            "preprocessing": {"_target_": "Compose",
                              "transforms": "$@train#deterministic_transforms + @train#random_transforms"},
            "dataset": {"_target_": "CacheDataset", "data": "$@datalists['training']",
                        "transform": "@train#preprocessing", "cache_rate": "@cache_rate",
                        "num_workers": "@num_workers", "copy_cache": False},
            # persistent workers: no process restart (and re-pickling of the cache) every epoch (docs/PERFORMANCE.md)
            "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset", "batch_size": 1, "shuffle": True,
                           "num_workers": "@num_workers", "persistent_workers": "$@num_workers > 0"},
            "inferer": {"_target_": "SimpleInferer"},
            "handlers": [
                {"_target_": "dsd_components.console.TrainingAnnouncer", "num_samples": "@num_samples",
                 "patch_size": "@patch_size", "device": "@device", "amp": f"${_flag('amp')}",
                 "dsd_mode": "@dsd_mode", "ckpt_dir": "@ckpt_dir", "log_dir": "@log_dir",
                 "validator": "@validate#evaluator"},
                {"_target_": "LrScheduleHandler", "lr_scheduler": "@lr_scheduler", "print_lr": True},
                {"_target_": "ValidationHandler", "validator": "@validate#evaluator", "epoch_level": True,
                 "interval": "@val_interval"},
                {"_target_": "dsd_components.handlers.DSDCheckpointer", "run": "@training_run",
                 "network": "@network", "optimizer": "@optimizer", "lr_scheduler": "@lr_scheduler",
                 "validator": "@validate#evaluator", "key_metric": "val_mean_dice",
                 "seed": "@seed", "transform": "@train#preprocessing"},
                {"_target_": "dsd_components.handlers.FiniteLossGuard", "loss_function": "@loss",
                 "run": "@training_run"},
                {"_target_": "StatsHandler", "tag_name": "train_loss",
                 "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
                {"_target_": "TensorBoardStatsHandler", "log_dir": "@log_dir", "tag_name": "train_loss",
                 "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
            ],
            "trainer": {"_target_": "SupervisedTrainer", "max_epochs": "@num_epochs", "device": "@device",
                        "train_data_loader": "@train#dataloader", "network": "@network", "loss_function": "@loss",
                        "optimizer": "@optimizer", "inferer": "@train#inferer", "amp": f"${_flag('amp')}",
                        "train_handlers": "@train#handlers"},
        },
        "validate": {
            "preprocessing": {"_target_": "Compose",
                              "transforms": _load_transforms(spec, ["image", "label"], train=False,
                                                             reader=_training_reader(spec))},
            "dataset": {"_target_": "CacheDataset", "data": "$@datalists['validation']",
                        "transform": "@validate#preprocessing", "cache_rate": "@cache_rate",
                        "num_workers": "@num_workers", "copy_cache": False},
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
            "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device",
                          "val_data_loader": "@validate#dataloader", "network": "@network",
                          "inferer": "@validate#inferer", "postprocessing": "@validate#postprocessing",
                          "key_val_metric": "@validate#key_metric", "val_handlers": "@validate#handlers",
                          "amp": f"${_flag('amp')}"},
        },
        # the lists the datasets really use: MONAI Label replaces train#dataset#data and validate#dataset#data
        "check_lists": {"training": "@train#dataset#data", "validation": "@validate#dataset#data"},
        "check_dataset": "$dsd_components.integrity.preflight(@dataset, @dataset_dir, datalist=@check_lists, "
                         f"patch_size=@patch_size, dsd_mode=@dsd_mode, max_cases=None if {_flag('check_data')} else 0, "
                         "network=@network_def, pad_mode=@pad_mode)",
        # the run folder and the lock come first: a second training on this bundle stops before any work
        "initialize": [INSTALL_ERROR_HANDLER, "$@training_run", "$monai.utils.set_determinism(seed=@seed)",
                       "$@check_dataset"],
        "run": ["$@train#trainer.run()"],
        "finalize": ["$@training_run.close()"],
    })
    _add_tracking_details(cfg, spec)
    return cfg


# the settings that tell runs apart, logged as MLflow params under --tracking mlflow (dsd_components.tracking)
RUN_PARAMS = ("dsd_mode", "dsd_lambda", "dsd_alpha", "dsd_beta", "temperature", "detach_teacher", "patch_size", "fold",
              "seed", "learning_rate", "weight_decay", "lr_step_decay", "num_epochs", "val_interval", "num_samples",
              "amp", "dataset_dir", "datalist")


def _add_tracking_details(cfg: dict[str, Any], spec: BundleSpec) -> None:
    """``run_params`` and the handler that logs them and each DSD loss term into MONAI's MLflow run."""
    cfg["imports"].append("$import dsd_components.tracking")
    cfg["run_params"] = {"bundle": spec.name, "network": spec.network_class, "dataset": spec.dataset["name"],
                         **{k: f"@{k}" for k in RUN_PARAMS}}
    cfg["train"]["handlers"].append({"_target_": "dsd_components.tracking.MLflowRunDetails", "params": "@run_params",
                                     "loss": "@loss"})


EVALUATE_LAYERING = ("train.json", "evaluate.json")  # evaluate.json is read on top of train.json, in this order


def evaluate_config(spec: BundleSpec) -> dict[str, Any]:
    """``evaluate.json``: a delta read on top of ``train.json``, the model zoo's way
    (``--config_file "['configs/train.json','configs/evaluate.json']"``).

    It keeps train.json's dataset facts, split, network definition, validation preprocessing (no padding),
    sliding-window inferer and scoring, and swaps in the stock backbone loaded from models/model.pt, the split to score
    (``eval_split``), per-case Dice and HD95 (mm and voxels) written by PerClassCSV, the provenance record the
    packager checks, the training run the model came from (its curves are plotted, a copy of the results is kept in
    its folder) and a lock on the output folder. Its evaluator keeps MONAI's default ids (``evaluator``,
    ``handlers``), so ``--tracking mlflow`` closes the evaluation run.
    """
    cfg: dict[str, Any] = {
        "+imports": ["$import dsd_components.metrics", "$import dsd_components.plots", "$import dsd_components.runs"],
        "eval_split": "testing",
        "network": "$@network_def.to(@device)",
        "class_names": spec.class_names[1:],
        "model_path": "$@bundle_root + '/models/model.pt'",
        # the training run models/model.pt comes from (None: a model from elsewhere); never train.json's own run
        "model_run": "$dsd_components.runs.published_run_dir(@bundle_root + '/models')",
        "log_dir": "$(@model_run or @bundle_root) + '/logs'",
        "output_lock": {"_target_": "dsd_components.runs.FolderLock", "folder": "@output_dir", "kind": "evaluate"},
        "validate#dataset": {"_target_": "Dataset", "data": "$@datalists[@eval_split]",
                             "transform": "@validate#preprocessing"},
        "validate#dataloader": {"_target_": "DataLoader", "dataset": "@validate#dataset", "batch_size": 1,
                                "shuffle": False, "num_workers": "@num_workers"},
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "@model_path", "load_dict": {"model": "@network"},
             "map_location": "@device"},
            {"_target_": "StatsHandler", "iteration_log": False},
            {"_target_": "dsd_components.metrics.PerClassCSV", "save_dir": "@output_dir",
             "class_names": "@class_names", "metric_names": ["mean_dice", "mean_hd95", "mean_hd95_vox"]},
        ],
        "key_metric": {"mean_dice": {"_target_": "MeanDice", "include_background": False, "reduction": "mean",
                                     "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        "additional_metrics": {"mean_hd95": {"_target_": "IgniteMetricHandler",
                                             "metric_fn": {"_target_": "dsd_components.metrics.HausdorffDistanceMM",
                                                           "include_background": False, "percentile": 95,
                                                           "reduction": "mean"},
                                             "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
                                             "save_details": True},
                               # the reference code's unit (MONAI's metric without spacing), to compare with R
                               "mean_hd95_vox": {"_target_": "IgniteMetricHandler",
                                                 "metric_fn": {"_target_": "dsd_components.metrics.HausdorffDistanceMM",
                                                               "include_background": False, "percentile": 95,
                                                               "reduction": "mean", "unit": "voxel"},
                                                 "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
                                                 "save_details": True}},
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@validate#dataloader",
                      "network": "@network", "inferer": "@validate#inferer", "postprocessing": "@validate#postprocessing",
                      "key_val_metric": "@key_metric", "additional_metrics": "@additional_metrics",
                      "val_handlers": "@handlers", "amp": f"${_flag('amp')}"},
        "check_dataset": "$dsd_components.integrity.preflight(@dataset, @dataset_dir, "
                         "datalist={@eval_split: @validate#dataset#data}, splits=(@eval_split,), "
                         f"max_cases=None if {_flag('check_data')} else 0, model_path=@model_path)",
        # one evaluation at a time writes into output_dir; the evaluated run is fixed before the model is loaded
        "initialize": [INSTALL_ERROR_HANDLER, "$@output_lock", "$@model_run",
                       "$monai.utils.set_determinism(seed=@seed)", "$@check_dataset"],
        "run": ["$@evaluator.run()"],
        "finalize": [PLOT_CURVES, "$dsd_components.runs.record_evaluation(@model_run, @output_dir)",
                     "$@output_lock.release()"],
    }
    _add_evaluation_record(cfg)
    if spec.regions:
        _add_regions(cfg, spec)
    # the evaluation's MLflow run carries the same settings as the training run, and the split it scored
    cfg["run_params#eval_split"] = "@eval_split"
    cfg["handlers"].append({"_target_": "dsd_components.tracking.MLflowRunDetails", "params": "@run_params"})
    return cfg


# PNG of train_loss and val_mean_dice read from the training run's TensorBoard events in log_dir (rank 0 only)
PLOT_CURVES = ("$dsd_components.plots.plot_training_curves(@log_dir, @output_dir + '/training_curves.png') "
               "if int(os.environ.get('RANK', 0)) == 0 else None")


def _add_evaluation_record(cfg: dict[str, Any]) -> None:
    """``evaluation.json`` beside the CSVs: which weights (sha256) were scored on which split and fold, so that
    ``dsd-package`` ships scores only with the weights they belong to."""
    cfg["handlers"].append({"_target_": "dsd_components.metrics.EvaluationRecord", "save_dir": "@output_dir",
                            "model_path": "@model_path", "split": "@eval_split", "fold": "@fold",
                            "dataset_dir": "@dataset_dir"})


def _add_regions(cfg: dict[str, Any], spec: BundleSpec) -> None:
    """Besides the per-label scores, score label regions (BraTS WT = 1|2|3, TC = 2|3, ET = 3: the reference code
    reports per-label classes, the BraTS literature regions), written to regions_per_case_metrics.csv /
    regions_summary.csv."""
    assert spec.regions
    cfg["+imports"].append("$import dsd_components.transforms")
    cfg["region_names"] = list(spec.regions)
    cfg["validate#postprocessing"] = {"_target_": "Compose", "transforms": [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "dsd_components.transforms.LabelRegionsd", "keys": ["pred", "label"],
         "regions": {k: list(v) for k, v in spec.regions.items()}},
        {"_target_": "AsDiscreted", "keys": ["pred", "label"], "to_onehot": "$[@num_classes, @num_classes]"},
    ]}
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


def inference_config(spec: BundleSpec) -> dict[str, Any]:
    """Stock backbone, image-only preprocessing, sliding window, outputs in the input's space.

    ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` (all MONAI Label builds) are pure MONAI
    and the config has no project import lines, so MONAI Label and the model zoo's checks parse it with no project
    code. Case selection, screening and the run's summary (:mod:`dsd_components.inference`) are components built
    only by ``monai.bundle run``.
    """
    cfg = _header(spec, project_code=False)
    cfg.update({
        "dataset_dir": "$@bundle_root + '/inputs'",
        "output_dir": "$@bundle_root + '/predictions'",
        "in_channels": "@network_def#in_channels",
        "image_reader": None,
        "check_cases": True,
        "amp": "$torch.cuda.is_available()",
        # (cases to segment, one line per skipped case): a file, a folder, nnU-Net channel files, DICOM series,
        # a dataset folder or a datalist .json
        "selection": {"_target_": "dsd_components.inference.select_cases", "dataset_dir": "@dataset_dir",
                      "in_channels": "@in_channels", "reader": "@image_reader", "check": "@check_cases"},
        "datalist": "$@selection[0]",
        "report": {"_target_": "dsd_components.inference.InferenceReport", "output_dir": "@output_dir",
                   "cases": "@datalist", "problems": "$@selection[1]", "postfix": "seg"},
        "network": "$@network_def.to(@device)",
        # MONAI Label adds a string `image_path` key; monai >= 1.6's Spacingd updates every `image_*` key and fails
        # on it. Park it under a name Spacingd ignores and put it back at the end (MONAI Label's writer takes the
        # output file type from it). Pure MONAI and a no-op for `monai.bundle run`, so MONAI Label needs no patch.
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "CopyItemsd", "keys": "image_path", "names": "source_path", "allow_missing_keys": True},
            {"_target_": "DeleteItemsd", "keys": "image_path"},
        ] + _load_transforms(spec, ["image"], train=False, reader="@image_reader")},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": 2},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": 4,
                    "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "meta_key_postfix": "meta_dict", "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "CopyItemsd", "keys": "source_path", "names": "image_path", "allow_missing_keys": True},
            # the report renames each file after its case (CASE_seg.nii.gz; nnU-Net channel files CASE.nii.gz)
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
             "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False, "print_log": False,
             "savepath_in_metadict": True},
        ]},
        "handlers": [
            {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
             "load_dict": {"model": "@network"}, "map_location": "@device"},
            "@report",
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": _flag_component("amp")},
        "initialize": [INSTALL_ERROR_HANDLER, "$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
        "finalize": ["$@report.finish()"],
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
# ranks write no TensorBoard files and print no duplicate lines. PerClassCSV is not listed: it all-gathers file
# names, so every rank must run it (it writes on rank 0 only).
RANK0_ONLY = ("StatsHandler", "TensorBoardStatsHandler", "dsd_components.console.TrainingAnnouncer")


def _rank0_only(handler_lists: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``{config id of a handler list: the list}`` -> overrides disabling its logging handlers on ranks > 0."""
    return {f"{list_id}#{i}#_disabled_": "$@rank > 0"
            for list_id, handlers in handler_lists.items()
            for i, handler in enumerate(handlers) if handler["_target_"] in RANK0_ONLY}


def multi_gpu_train_config(spec: BundleSpec) -> dict[str, Any]:
    """DDP override of train.json under torchrun (the model-zoo pattern).

    Each rank caches and trains on its own partition of the training cases; validation is split by a
    DistributedSampler and MONAI's metric handlers all-gather the scores, so every rank sees the same metric; only
    rank 0 logs, writes TensorBoard and saves checkpoints (DSDCheckpointer reads the rank itself).
    """
    train = train_config(spec)
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
            "data": "$monai.data.partition_dataset(@train#dataset#data, num_partitions=@world_size, shuffle=True, "
                    "seed=@seed, even_divisible=True)[@rank]"},
        "train#dataloader#dataset": "@train#dataset_rank",
        "validate#sampler": _distributed_sampler("@validate#dataset"),
        "validate#dataloader#sampler": "@validate#sampler",
        **_rank0_only({"train#handlers": train["train"]["handlers"],
                       "validate#handlers": train["validate"]["handlers"]}),
        "initialize": [INSTALL_ERROR_HANDLER, "$@dist_init", "$@training_run",
                       "$monai.utils.set_determinism(seed=@seed + @rank)", "$@check_dataset"],
        "run": ["$@train#trainer.run()"],
        "finalize": ["$@training_run.close()", *_ddp_common()["finalize"]],
    }


def multi_gpu_evaluate_config(spec: BundleSpec) -> dict[str, Any]:
    """DDP override of train.json + evaluate.json: each rank evaluates a share of the cases; rank 0 writes the CSVs,
    the evaluation record and the training-curve PNG (evaluate.json's ``finalize``, kept before the process group
    is destroyed)."""
    common = _ddp_common()
    return {
        **common,
        "validate#sampler": _distributed_sampler("@validate#dataset"),
        "validate#dataloader#sampler": "@validate#sampler",
        **_rank0_only({"handlers": evaluate_config(spec)["handlers"]}),
        "initialize": [INSTALL_ERROR_HANDLER, "$@dist_init", "$@output_lock", "$@model_run",
                       "$monai.utils.set_determinism(seed=@seed)", "$@check_dataset"],
        "run": ["$@evaluator.run()"],
        "finalize": [PLOT_CURVES, "$dsd_components.runs.record_evaluation(@model_run, @output_dir)",
                     "$@output_lock.release()", *common["finalize"]],
    }
