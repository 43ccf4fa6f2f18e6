"""A bundle's ``docs/README.md`` in the shape of the MONAI model zoo's ``docs/readme_template.md`` (model
description, data, preprocessing, training configuration, system configuration, performance, usage, limitations,
citation, references), and its ``docs/data_license.txt`` in the zoo's third-party-license format.

Everything is written from the :class:`~dsd_tools.bundlegen.spec.BundleSpec` and the generated configs, so the README
says what the configs do: transforms are listed by name with readable arguments, and the performance section shows
the paper's numbers, labelled as such, until ``dsd-package`` replaces it with the shipped weights' own scores
(:func:`performance_section`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from dsd_components.modes import MODES

from .citations import citations_for
from .spec import BundleSpec

__all__ = ["bundle_readme", "data_license", "performance_section", "PERFORMANCE_HEADING", "readable_transforms"]

PERFORMANCE_HEADING = "## **Performance**"

# Each dataset as it is distributed (what --dataset_dir points at), by the runtime's dataset name.
_DATASET_LAYOUTS = {
    "hippocampus": """Task04_Hippocampus/                 (Medical Segmentation Decathlon, 260 labelled + 130 test cases)
├── dataset.json                    "training": [{"image": "./imagesTr/...", "label": "./labelsTr/..."}, ...]
├── imagesTr/hippocampus_001.nii.gz 3D MRI, one channel, about 35 x 50 x 35 voxels of 1 mm
├── labelsTr/hippocampus_001.nii.gz 0 background, 1 anterior, 2 posterior
└── imagesTs/                       test images without labels""",
    "brats": """Task01_BrainTumour/                 (Medical Segmentation Decathlon, 484 labelled + 266 test cases)
├── dataset.json                    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}, "training": [...]
├── imagesTr/BRATS_001.nii.gz       4D: 240 x 240 x 155 voxels of 1 mm x 4 channels (channels last)
├── labelsTr/BRATS_001.nii.gz       0 background, 1 edema, 2 non-enhancing tumour, 3 enhancing tumour
└── imagesTs/                       test images without labels""",
    "mmwhs": """ct_train/                           (MM-WHS 2017 CT training set, 20 labelled cases)
├── ct_train_1001_image.nii.gz      3D CT
├── ct_train_1001_label.nii.gz      raw values 205 myocardium, 420 left atrium, 500 left ventricle, 550 right atrium,
│                                   600 right ventricle, 820 ascending aorta, 850 pulmonary artery (421 -> background)
└── ... ct_train_1020_*             (the files may also lie directly in --dataset_dir)""",
}
_LAYOUT_TEXT = {
    "mmwhs": "the MMWHS CT training folder (`ct_train_1001_image.nii.gz`, `ct_train_1001_label.nii.gz`, ...)",
    "msd": "a Medical Segmentation Decathlon task folder (`dataset.json`, `imagesTr/`, `labelsTr/`, `imagesTs/`)",
    "nnunetv2": "an nnU-Net v2 raw dataset folder (`DatasetXXX_Name/` with `dataset.json`, `imagesTr/CASE_0000.nii.gz` "
                "one file per channel, `labelsTr/CASE.nii.gz`)",
}


# ------------------------------------------------------------------------------------------- transforms
def _value(v: Any, spec: BundleSpec) -> str:
    """A config value as a reader wants it: references and expressions resolved to what they mean."""
    if isinstance(v, str):
        if v == "@patch_size":
            return " x ".join(map(str, spec.patch))
        if v == "@num_samples":
            return str(spec.num_samples)
        if v.startswith("$torch."):
            return v[len("$torch."):]
        return v.lstrip("$@")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, spec) for x in v) + "]"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _keys(t: Mapping[str, Any]) -> list[str]:
    k = t.get("keys", [])
    return [k] if isinstance(k, str) else list(k)


def _per_key(keys: list[str], values: Any, spec: BundleSpec) -> str:
    vals = values if isinstance(values, list) else [values] * len(keys)
    return ", ".join(f"{k} {_value(v, spec)}" for k, v in zip(keys, vals))


def _describe(t: Mapping[str, Any], spec: BundleSpec) -> str:
    """One transform as ``Name (keys): readable arguments``."""
    name, keys = t["_target_"], _keys(t)
    on = f" ({', '.join(keys)})" if keys else ""
    if name == "LoadImaged":
        args = "NIfTI via nibabel, with its metadata"
    elif name == "EnsureChannelFirstd":
        args = "channels first (BraTS: the 4 modalities from the last axis)" if spec.in_channels > 1 else \
            "adds the channel axis"
    elif name == "MapLabelValued":
        pairs = ", ".join(f"{o}->{n}" for o, n in zip(t["orig_labels"], t["target_labels"]) if o != 0)
        args = f"raw label values to classes: {pairs}"
    elif name == "Orientationd":
        args = f"{t['axcodes']} (axis labels L-R, P-A, I-S given explicitly)"
    elif name == "Spacingd":
        args = f"resample to {' x '.join(map(str, t['pixdim']))} mm; {_per_key(keys, t['mode'], spec)} interpolation"
    elif name == "EnsureTyped":
        args = _per_key(keys, t["dtype"], spec)
    else:
        args = ", ".join(f"{k}={_value(v, spec)}" for k, v in t.items() if k not in ("_target_", "keys"))
    return f"`{name}`{on}: {args}" if args else f"`{name}`{on}"


def readable_transforms(transforms: Sequence[Mapping[str, Any]], spec: BundleSpec) -> list[str]:
    """Transforms as README bullet texts; the per-axis ``RandFlipd`` trio becomes one line."""
    lines: list[str] = []
    flips = [t for t in transforms if t["_target_"] == "RandFlipd"]
    for t in transforms:
        if t["_target_"] == "RandFlipd":
            if t is flips[0]:
                axes = ", ".join(str(f["spatial_axis"]) for f in flips)
                lines.append(f"`RandFlipd` ({', '.join(_keys(t))}): flip with probability {_value(t['prob'], spec)}, "
                             f"independently along each spatial axis ({axes})")
            continue
        lines.append(_describe(t, spec))
    return lines


# ------------------------------------------------------------------------------------------- sections
def _performance_paper(spec: BundleSpec) -> str:
    p = spec.paper
    if p is None:
        return "No published result for this configuration."
    line = f"mean Dice {p.dice[0]} -> {p.dice[1]} %"
    if p.hd95:
        line += f", HD95 {p.hd95[0]} -> {p.hd95[1]} mm"
    return (f"Paper result, {p.paper_table}, the backbone alone -> trained with DSD: {line}. These are the paper's "
            "numbers on the full dataset and schedule, not scores of weights shipped with this bundle.")


def performance_section(spec_text: str, shipped: str | None = None) -> str:
    """The README's performance section: the shipped weights' table (``shipped``, from ``dsd-package``) when there
    is one, then the paper's result (``spec_text``), labelled as such."""
    if shipped is None:
        body = ("No weights are shipped with this source bundle (train it, evaluate it, then `dsd-package` it: the "
                "package's README shows its own scores here).\n\n" + spec_text)
    else:
        body = shipped + "\n\nFor reference: " + spec_text[0].lower() + spec_text[1:]
    return f"{PERFORMANCE_HEADING}\n{body}\n"


def _usage(spec: BundleSpec) -> str:
    n, d = spec.name, spec.dataset["name"]
    pair = f"\"['bundles/{n}/configs/train.json','bundles/{n}/configs/evaluate.json']\""
    return f"""Train, evaluate the best model, segment new images (from the repository root; from the bundle folder drop
`bundles/{n}/`):

```bash
python -m monai.bundle run --config_file bundles/{n}/configs/train.json --dataset_dir /data/{d}
python -m monai.bundle run --config_file {pair} --dataset_dir /data/{d}
python -m monai.bundle run --config_file bundles/{n}/configs/inference.json --dataset_dir /data/new_cases
dsd-runs list {n}      # the training runs and their scores; dsd-runs promote {n} RUN
```

`evaluate.json` is a delta read on top of `train.json` (the model zoo's layering): it keeps the training config's data,
split, network and inferer and swaps in the stock backbone with `models/model.pt`, the split to score (`--eval_split
testing`, the default, or `validation`) and the metrics. Several GPUs (PyTorch DDP under torchrun):

```bash
torchrun --nproc_per_node 2 -m monai.bundle run \\
    --config_file "['bundles/{n}/configs/train.json','bundles/{n}/configs/multi_gpu_train.json']" --dataset_dir /data/{d}
torchrun --nproc_per_node 2 -m monai.bundle run --config_file \\
    "['bundles/{n}/configs/train.json','bundles/{n}/configs/evaluate.json','bundles/{n}/configs/multi_gpu_evaluate.json']" \\
    --dataset_dir /data/{d}
```

Without `--dataset_dir` the configs read `data/` (training, evaluation) and `inputs/` (inference) inside the bundle
folder. Common overrides: `--fold`, `--num_epochs`, `--val_interval`, `--learning_rate`, `--patch_size`,
`--num_workers`, `--device`, `--amp`, `--output_dir`, `--dsd_mode`, `--dsd_lambda`, `--dsd_alpha`, `--dsd_beta`,
`--temperature`, `--resume`, `--run_name`.

#### **Inference inputs**
`--dataset_dir` of `inference.json` may be a single image (`.nii.gz`, `.nii`, `.nrrd`, `.mha`), a folder of images, a
folder of nnU-Net channel files (`CASE_0000.nii.gz`, `CASE_0001.nii.gz`, ...: one case each, written as
`CASE.nii.gz`), a DICOM series folder or a folder of series folders, an MSD or nnU-Net dataset folder, or a datalist
`.json`. DICOM needs `pydicom` or `itk-io`, NRRD/MHA `itk-io` (`pip install pydicom itk-io`). Each case is checked first
(readable, {spec.in_channels} channel(s), finite values, plausible size); a bad case is skipped with one line naming the
file and the fix, the others are written to `predictions/` (or `--output_dir`) in the input's geometry, and the run
ends with `wrote N prediction(s) to DIR` and exit code 1 when any case failed (2 when nothing matched).
`--check_cases false` skips the checks.

#### **Evaluation output**
`--output_dir` (default `eval/`) receives `per_case_metrics.csv` (Dice, HD95 in mm and HD95 in voxels per case and
foreground class), `summary.csv` (mean, std, median and n per class and overall; an absent structure scores NaN and is
left out of the means), `evaluation.json` (the sha256 of the weights scored, the split, fold and number of cases) and
`training_curves.png`: the training loss and validation Dice of the run `models/model.pt` comes from, and of no other
run. A copy of the results is kept in that run's `eval/` folder (what `dsd-runs list` shows).{_regions_note(spec)}

#### **Experiment tracking (optional: MLflow)**
MLflow is optional (MONAI 1.6 reads only `required_packages_version`, so it is not listed there):
`pip install "mlflow>=3.15.2"`, then add `--tracking mlflow` (and e.g. `--tracking_uri sqlite:///runs.db
--experiment_name ablation --run_name dsd`) to the train or evaluate command. Besides MONAI's loss, learning rate and
Dice, every run logs its settings as params (`dsd_mode`, `dsd_lambda`, `dsd_alpha`, `dsd_beta`, `temperature`,
`patch_size`, `fold`, `learning_rate`, `num_epochs`, `seed`, ...) and each loss term as metrics (`loss_main`,
`loss_ds`, `loss_kl_enc`, `loss_kl_dec` per iteration, `epoch_loss_*` per epoch), so the runs of an ablation compare
side by side in `mlflow ui --backend-store-uri sqlite:///runs.db`."""


def _checkpoints(spec: BundleSpec) -> str:
    """What a user sees when training again, after a crash, with two trainings, a NaN loss or a full disk: the
    messages quoted are the ones the code prints (a test holds the two together)."""
    n = spec.name
    return f"""Every training run writes into its own folder, `models/runs/<YYYYmmdd-HHMMSS>[-<run_name>]/`: `latest.pt` (after
every epoch, written atomically), `model.pt` (the run's best backbone), `config.json` (the merged config it ran with),
`run.json` (status, command, epochs, best score), `logs/` (its TensorBoard events) and, once evaluated, `eval/`.
`models/model.pt`, what inference, evaluation and MONAI Label load, is a copy of the current run's best backbone.
Training deletes nothing. What you see in each case:

- **Training again** (the newest run is finished, or `--resume false`, or another `--run_name NAME`) starts a new run
  folder. When its first best model replaces `models/model.pt`, the log names the model it replaced: `... published
  as models/model.pt, replacing the model of run RUN, which stays in models/runs/RUN/model.pt (dsd-runs promote RUN
  puts it back)`. `dsd-runs list {n}` lists the runs with epochs, best validation Dice and test Dice (`*` marks
  the one in `models/model.pt`); `dsd-runs promote {n} RUN` makes any run's model `models/model.pt` again. A
  `models/model.pt` from elsewhere (a package, a copy) is first kept in a run folder of its own (`<time>-imported`).
- **After a crash or kill** the same command resumes the newest run from its `latest.pt` (model, optimizer,
  scheduler, AMP scaler, epoch, best score; random state is reseeded per epoch, so with `--num_workers 0` the
  interrupted epoch is replayed exactly; with worker processes it draws other random patches). Raising
  `--num_epochs` above a finished run's epochs continues it.
- **One training per bundle.** A second training on the same bundle (another command, or MONAI Label's Train button)
  stops before any work, exit code 2: `ERROR: .../models is in use by another training (pid P on host H, started T,
  command: C); this training stopped before doing anything. Wait for it to finish or stop it (kill P); ...`. The lock,
  `models/train.lock`, is released when a run ends, also on an error. A lock left by a killed run (kill -9, power cut)
  is taken over with a warning, `Taking over the stale training lock ... no longer runs on this host (killed or
  crashed)`, so resuming needs only the same command. A lock held from another host cannot be checked from here and
  is respected: if that machine is gone, delete `models/train.lock`. Two evaluations writing into the same
  `--output_dir` exclude each other the same way (`evaluate.lock`).
- **A NaN or Inf loss** stops the run at once, before the epoch's checkpoint: `ERROR: training stopped: the loss is
  nan at epoch E, iteration I of N (...); non-finite term(s): main DiceCE (nan), deep supervision (nan), encoder KL
  (nan), decoder KL (nan); case(s) in the batch: FILE (its image holds NaN/Inf voxels). Nothing was saved from this
  epoch: .../latest.pt keeps epoch E-1, the last finite state. ...`. Under AMP, optimizer steps that the GradScaler
  skips (overflowing gradients, finite loss) are counted and logged per epoch, not treated as failures.
- **A failed write** (full disk, no permission) stops the run and keeps the previous file: `ERROR: training stopped
  at the end of epoch E: cannot write .../latest.pt: no space left on device (ENOSPC) (it needs about X MB; Y MB free
  there); the previous latest.pt is unchanged. Free space on the disk of ... Then run the same command: it resumes
  from epoch E-1`. The same holds for `model.pt` and `models/model.pt`."""


def _regions_note(spec: BundleSpec) -> str:
    if not spec.regions:
        return ""
    names = ", ".join(f"{k} = labels {'|'.join(map(str, v))}" for k, v in spec.regions.items())
    return (f" The BraTS regions ({names}) are scored too, in `regions_per_case_metrics.csv` and "
            "`regions_summary.csv`.")


def _system(spec: BundleSpec) -> str:
    patch = " x ".join(map(str, spec.patch))
    params = ""
    if spec.paper is not None:
        from ..paper import BACKBONES

        counts = BACKBONES[spec.paper.backbone].paper_params_m
        if counts:
            params = (f"- Parameters (paper): {counts[0]} M for the backbone that ships, {counts[1]} M while training "
                      "with the DSD heads.\n")
    return f"""- Training: batch size 1 volume, {spec.num_samples} random {patch} patches per volume, automatic mixed
  precision on CUDA. One CUDA GPU is the intended setting; several GPUs via `multi_gpu_train.json` (above). CPU runs
  work for small data (on Linux set `MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736` first).
- Inference: sliding window of {patch} voxels, overlap 0.25, on whatever `--device` is; the backbone alone runs.
{params}- Software: the versions pinned in `configs/metadata.json` (`monai_version`, `pytorch_version`, `numpy_version`,
  `required_packages_version`)."""


def _citations(spec: BundleSpec) -> tuple[str, str]:
    cites = citations_for(spec.dataset["name"], spec.network_class)
    bib = "\n\n".join(c.bibtex for c in cites)
    refs = "\n".join(f"{i}. {c.text}" for i, c in enumerate(cites, 1))
    return bib, refs


def bundle_readme(spec: BundleSpec) -> str:
    from .configs import _load_transforms, _random_transforms

    cls = spec.network_class
    args = ", ".join(f"{k}={v}" for k, v in spec.network_def.items() if k != "_target_")
    pre = "\n".join(f"- {line}" for line in readable_transforms(_load_transforms(spec, ["image", "label"], train=True),
                                                                 spec))
    aug = "\n".join(f"- {line}" for line in readable_transforms(_random_transforms(spec), spec))
    classes = ", ".join(f"{i} {c}" for i, c in enumerate(spec.class_names))
    schedule = "StepLR (step = epochs // 6, gamma 0.5)" if spec.step_decay else "a constant learning rate"
    patch = " x ".join(map(str, spec.patch))
    modes = "\n".join(f"  - `{m.name}`: {m.summary} ({m.paper})" for m in MODES.values())
    split = spec.dataset["split"]
    split_text = {"blocks": f"{split['num_folds']} folds of consecutive sorted cases; fold k validates the k-th block "
                            "(`--fold 0..4`)",
                  "holdout": f"sorted cases, the last {split.get('test') or 'few'} held out for testing; the rest "
                             f"shuffled with random.Random({split['seed']}), the last {split.get('validation') or 'few'}"
                             " of them validate (scaled down when a dataset has fewer cases)",
                  "kfold": f"nnU-Net's {split['num_folds']}-fold split (or the dataset's own splits_final.json)"}
    layout = _DATASET_LAYOUTS.get(spec.dataset["name"])
    layout_block = (f"```text\n{layout}\n```" if layout else _LAYOUT_TEXT[spec.dataset["layout"]] + ".")
    bib, refs = _citations(spec)
    plan = ""
    if spec.plan:  # a bundle planned for the user's own data (dsd-new-bundle): its decisions and reasons
        from .docs import _plan_section

        plan = _plan_section(spec)
    differences = ""
    if spec.deviations:
        from .docs import _differences_section

        differences = "\n" + _differences_section(spec)
    swin = ""
    if cls == "SwinUNETR":
        swin = ("\n- TorchScript: MONAI's SwinUNETR cannot be scripted (`torch.jit.script` fails on "
                "`torch.utils.checkpoint`'s keyword arguments), so `models/model.ts` is traced instead and a model zoo "
                "submission lists this bundle in the zoo CI's `exclude_verify_torchscript_list`, as the zoo does for its "
                "own `swin_unetr_btcv_segmentation`.")
    return f"""# {spec.name}

{spec.title} segmentation with MONAI's `{cls}`, trained by Dual Self-Distillation (DSD).

### **Authors**
dsd-bundles contributors (bundle). Method: Soumyanil Banerjee, Ming Dong, Carri Glide-Hurst [1].

### **Tags**
Segmentation, {spec.modality}, {spec.title}, {cls}, Self-Distillation, Deep Supervision

## **Model Description**
DSD attaches small bottleneck heads (1x1x1 convolution to the classes, then learnable transposed convolutions up to the
input size) to the encoder and decoder stages of a U-shaped network. While training, the loss adds deep supervision of
the decoder heads and pixel-wise KL distillation from the deepest encoder and decoder heads into the shallower ones
[1]. The heads exist only during training: `models/model.pt` is the state dict of the stock MONAI backbone, so
inference (`configs/inference.json`) needs no custom code, costs what the backbone costs and loads in MONAI Label.

- Backbone: `monai.networks.nets.{cls}({args})`
- Input: {spec.in_channels} channel(s) of {spec.modality} ({', '.join(spec.channel_names)}); training patches of {patch}
  voxels; whole volumes at inference (sliding window).
- Output: {len(spec.class_names)} channels, softmax then argmax: {classes}; written in the input image's geometry.

## **Data**
Source: {spec.data_source or 'see the dataset provider'}. Terms: `docs/data_license.txt`.

`--dataset_dir` points at the dataset as it is distributed:

{layout_block}

- Split: {split_text[split['kind']]}. `--datalist my.json` (MONAI decathlon format) replaces the derived split.
- The data are checked before training and evaluation (also alone: `dsd-check-data --bundle {spec.name} DATASET_DIR`);
  every problem is listed with the file and the fix. `--check_data false` skips the check.

#### **Preprocessing**
Training and validation (evaluation: the same without the padding; inference: the image lines without the padding):
{pre}

#### **Augmentation**
Training only, {spec.num_samples} patches per volume:
{aug}

## **Training configuration**
- Loss: `DSDLoss(mode=dsd, lambda={spec.lambda_ds:g}, alpha={spec.alpha:g}, beta={spec.beta:g}, T={spec.temperature:g})`:
  DiceCE on the main output, plus lambda x DiceCE on every decoder head, plus alpha x KL(deepest encoder head ||
  shallower ones) and beta x KL(deepest decoder head || shallower ones) at temperature T (times T^2).
  `--dsd_mode` chooses the ablation:
{modes}
- Optimiser: AdamW, learning rate {spec.learning_rate:g}, weight decay {spec.weight_decay:g}, {schedule},
  {spec.epochs} epochs.
- Validation every {spec.val_interval} epochs: sliding window {patch}, overlap 0.25, mean foreground Dice; the best
  backbone is saved as `models/model.pt`.

## **Checkpoints**
{_checkpoints(spec)}

## **System Configuration**
{_system(spec)}

{plan}{performance_section(_performance_paper(spec)).rstrip()}
{differences}
## **Additional Usage Steps**
{_usage(spec)}

## **Limitations**
- Research use only: not approved for clinical use by any regulatory agency.
- The paper's results need its full dataset and schedule; a short run or a few cases only show that the pipeline
  works.{swin}

## **Citation Info**
```bibtex
{bib}
```

## **References**
{refs}

## **License**
Code: Apache-2.0 (`LICENSE`). Data: {(spec.data_license or 'see the dataset provider').rstrip('.')}. See
`docs/data_license.txt`.
"""


def data_license(spec: BundleSpec) -> str:
    """``docs/data_license.txt``: the dataset and its terms, in the model zoo's third-party-license format."""
    terms = "\n".join(textwrap.wrap(spec.data_license or "See the dataset provider.", width=100,
                                    initial_indent="   ", subsequent_indent="   "))
    return ("Third Party Licenses\n"
            "-----------------------------------------------------------------------\n\n"
            "/*********************************************************************/\n"
            f"i. {spec.title}\n"
            f"   {spec.data_source or 'see the dataset provider'}\n\n"
            f"{terms}\n")
