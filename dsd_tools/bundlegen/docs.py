"""A bundle's text files: ``docs/README.md``, ``LICENSE``, ``large_files.yml`` and ``configs/logging.conf``."""

from __future__ import annotations

from dsd_components.modes import MODES

from .configs import _load_transforms, _random_transforms
from .spec import BundleSpec

__all__ = ["bundle_readme", "LICENSE", "LARGE_FILES", "LOGGING_CONF"]

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

_LAYOUT_TEXT = {
    "mmwhs": "the MMWHS CT training folder (`ct_train_1001_image.nii.gz`, `ct_train_1001_label.nii.gz`, ...; also "
             "found under its `ct_train/` subfolder)",
    "msd": "the Medical Segmentation Decathlon task folder (`Task0x_Name/` with `dataset.json`, `imagesTr/`, "
           "`labelsTr/`, `imagesTs/`)",
    "nnunetv2": "the nnU-Net v2 raw dataset folder (`DatasetXXX_Name/` with `dataset.json`, `imagesTr/CASE_0000"
                ".nii.gz` one file per channel, `labelsTr/CASE.nii.gz`)",
}


def _transform_line(t: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in t.items() if k not in ("_target_", "keys"))
    return f"{t['_target_']}({args})"


def _differences_section(spec: BundleSpec) -> str:
    """The bundle's deliberate differences from the paper and its reference code, from the paper table."""
    rows = "\n".join(f"| {d.setting} | {d.paper} | {d.bundle} | {d.why} | {f'`{d.restore}`' if d.restore else '-'} |"
                      for d in spec.deviations)
    return f"""
## Differences from the paper
The defaults follow the paper and its reference code (crop centring, padding, split, label mapping, transform order,
head initialisation, seed); evaluation reports HD95 in mm (the paper's unit) and in voxels (`mean_hd95_vox`, the
reference code's unit). These differences are deliberate:

| setting | paper / reference code | this bundle | why | paper's setting |
|---|---|---|---|---|
{rows}
"""


def _plan_section(spec: BundleSpec) -> str:
    """The planner's decisions (``plan.json``), each with its reason."""
    assert spec.plan is not None
    p, fp = spec.plan["plan"], spec.plan["fingerprint"]
    rows = [("target spacing (mm)", p["target_spacing"]), ("patch size", spec.plan["patch_size_used"]),
            ("patches per step", p["batch_size"]), ("DynUNet strides", p["strides"]),
            ("DynUNet kernels", p["kernel_sizes"]), ("DynUNet filters", p["filters"]),
            ("memory estimate (GiB)", round(p["vram_estimate_gb"], 2)), ("GPU budget (GiB)", spec.plan["gpu_memory_gb"])]
    table = "\n".join(f"| {k} | `{v}` |" for k, v in rows)
    why = "\n".join(f"- **{k}**: {v}" for k, v in spec.plan["why"].items())
    return f"""## Plan (`dsd-new-bundle`, nnU-Net's rules; all of it in `plan.json`)
Fingerprint ({spec.plan['dataset']['cases']} cases, {fp['source']}): median spacing
`{[round(x, 3) for x in fp['median_spacing']]}`, median shape `{fp['median_shape']}`.

| planned | value |
|---|---|
{table}

{why}

"""


def bundle_readme(spec: BundleSpec) -> str:
    cls = spec.network_class
    args = ", ".join(f"{k}={v}" for k, v in spec.network_def.items() if k != "_target_")
    pre = "; ".join(_transform_line(t) for t in _load_transforms(spec, ["image", "label"], train=False))
    aug = "; ".join(t["_target_"] for t in _random_transforms(spec))
    classes = ", ".join(f"{i} {c}" for i, c in enumerate(spec.class_names))
    schedule = "StepLR(step = epochs // 6, gamma 0.5)" if spec.step_decay else "constant learning rate"
    layout = spec.dataset["layout"]
    patch = "x".join(map(str, spec.patch))
    regions = ""
    if spec.regions:
        names = ", ".join(f"{k} = {'|'.join(map(str, v))}" for k, v in spec.regions.items())
        regions = (f"\nBesides the per-label scores, the regions {names} are scored too, in "
                   "`regions_per_case_metrics.csv` and `regions_summary.csv`.")
    modes = "\n".join(f"  - `{m.name}`: {m.summary} ({m.paper})" for m in MODES.values())
    plan = _plan_section(spec) if spec.plan else ""
    differences = _differences_section(spec) if spec.deviations else ""
    if spec.paper is not None:
        results = (f"## Expected results (paper)\n{spec.paper.result_text}. These need the full dataset and "
                   "schedule; the demo data only shows that the pipeline works.\n")
    else:
        results = "## Results\nNo weights are shipped yet: train and evaluate, then package (`dsd-package`).\n"
    split = spec.dataset["split"]
    split_text = {"blocks": f"{split['num_folds']} folds of consecutive sorted cases (fold k validates the k-th block)",
                  "holdout": "sorted cases; the last ones are held out for testing, the rest shuffled with "
                             f"random.Random({split['seed']}) and the last of them validate",
                  "kfold": f"nnU-Net's {split['num_folds']}-fold split (or the dataset's own splits_final.json)"}
    return f"""# {spec.name}

{spec.title} segmentation with MONAI `{cls}` trained by **Dual Self-Distillation (DSD)**
(Banerjee et al., IEEE TBME 2025). DSD heads exist only during training; `models/model.pt` is the stock
`{cls}` state dict, so inference needs no custom code and loads in MONAI Label.

## Model
- Backbone: `monai.networks.nets.{cls}({args})`
- Classes ({len(spec.class_names)}): {classes}
- Input: {spec.in_channels} channel(s), {spec.modality} ({', '.join(spec.channel_names)}); patch {patch}

## Data
- Split: {split_text[split['kind']]}.
- `--dataset_dir` points at {_LAYOUT_TEXT[layout]}. `--datalist my.json` (MONAI decathlon format) replaces the
  derived split.
- The data are checked before training and evaluation (`dsd-check-data --bundle {spec.name} DATASET_DIR`);
  every problem is listed with the file and the fix. Set `--check_data false` to skip.

## Preprocessing and training
- Preprocessing: {pre}.
- Augmentation: {aug} ({spec.num_samples} patches per volume).
- Loss: `DSDLoss(mode=dsd, lambda={spec.lambda_ds:g}, alpha={spec.alpha:g}, beta={spec.beta:g}, T={spec.temperature:g})`.
  `--dsd_mode` chooses the ablation:
{modes}
- AdamW, lr {spec.learning_rate:g}, weight decay {spec.weight_decay:g}, {schedule}, {spec.epochs} epochs, batch size 1,
  AMP on CUDA.
- Validation every {spec.val_interval} epochs: sliding window {patch}, overlap 0.25, mean foreground Dice.

## Checkpoints
Every training run writes into its own folder, `models/runs/<YYYYmmdd-HHMMSS>[-<run_name>]/`: `latest.pt` (after
every epoch, written atomically), `model.pt` (the run's best backbone), `config.json` (the merged config it ran with),
`run.json` (status, command, epochs, best score), `logs/` (its TensorBoard events) and, once evaluated, `eval/`.
`models/model.pt`, what inference, evaluation and MONAI Label load, is a copy of the current run's best backbone.
Training deletes nothing. What you see in each case:

- **Training again** (the newest run is finished, or `--resume false`, or another `--run_name NAME`) starts a new run
  folder. When its first best model replaces `models/model.pt`, the log names the model it replaced: `... published
  as models/model.pt, replacing the model of run RUN, which stays in models/runs/RUN/model.pt (dsd-runs promote RUN
  puts it back)`. `dsd-runs list {spec.name}` lists the runs with epochs, best validation Dice and test Dice (`*` marks
  the one in `models/model.pt`); `dsd-runs promote {spec.name} RUN` makes any run's model `models/model.pt` again. A
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
  from epoch E-1`. The same holds for `model.pt` and `models/model.pt`.

## Commands (from the repository root, the bundle folder, or a copy of it)

```bash
python -m monai.bundle run --config_file bundles/{spec.name}/configs/train.json --dataset_dir /data/{spec.dataset['name']}
python -m monai.bundle run --config_file bundles/{spec.name}/configs/evaluate.json --dataset_dir /data/{spec.dataset['name']}
python -m monai.bundle run --config_file bundles/{spec.name}/configs/inference.json --dataset_dir /data/new_cases
dsd-runs list {spec.name}                      # the training runs and their scores; dsd-runs promote {spec.name} RUN
torchrun --nproc_per_node 2 -m monai.bundle run \\
    --config_file "['bundles/{spec.name}/configs/train.json','bundles/{spec.name}/configs/multi_gpu_train.json']" --dataset_dir /data/{spec.dataset['name']}
```

Without `--dataset_dir` the configs read `data/` (training, evaluation) and `inputs/` (inference) inside the bundle
folder. Common overrides: `--fold`, `--num_epochs`, `--val_interval`, `--learning_rate`, `--patch_size`,
`--num_workers`, `--device`, `--amp`, `--output_dir`, `--dsd_mode`, `--dsd_lambda`, `--dsd_alpha`, `--dsd_beta`,
`--temperature`, `--resume`, `--run_name`.

## Inference: what it takes
`--dataset_dir` may be a single image (`.nii.gz`, `.nii`, `.nrrd`, `.mha`), a folder of images, a folder of nnU-Net
channel files (`CASE_0000.nii.gz`, `CASE_0001.nii.gz`, ...: one case each, written as `CASE.nii.gz`), a DICOM series
folder or a folder of series folders, an MSD or nnU-Net dataset folder, or a datalist `.json`. DICOM needs `pydicom`
or `itk-io`, NRRD/MHA `itk-io` (`pip install pydicom itk-io`). Each case is checked first (readable, {spec.in_channels}
channel(s), finite values, plausible size); a bad case is skipped with one line naming the file and the fix, the
others are written to `predictions/` (or `--output_dir`) in the input's geometry, and the run ends with
`wrote N prediction(s) to DIR` and exit code 1 when any case failed (2 when nothing matched). `--check_cases false`
skips the checks.

## Evaluation
`evaluate.json` loads `models/model.pt` into the stock backbone, runs the test split (`--eval_split validation`
for validation) and writes `per_case_metrics.csv` (Dice and HD95 in mm per case and class, foreground only) and
`summary.csv` (mean ± std) to `--output_dir` (default `eval/`), with `training_curves.png`: the loss and validation
Dice of the run `models/model.pt` comes from, and of no other run. A copy of the results is kept in that run's
`eval/` folder (what `dsd-runs list` shows).{regions}

{plan}{results}{differences}
## License
Code: Apache-2.0. Data: {spec.data_license or 'see the dataset provider.'}
"""
