"""``dsd-demo``: the whole pipeline on CPU in minutes: demo data -> train -> evaluate -> infer -> figure.

    dsd-demo                                   # hippocampus_nnunet_dsd, 15 epochs: 212 s on 2 CPU cores
    dsd-demo --bundle mmwhs_nnunet_dsd         # 599 s on 2 CPU cores (37 s an epoch)

(Times printed by the demo itself, 2026-12-05, 2-core CPU, nothing else running; README.md quotes them.)

Every step is the real bundle command (``python -m monai.bundle run ...``) that a user runs on real data; the demo only
chooses the synthetic data set and a short schedule. Outputs: ``bundles/<bundle>/models/model.pt`` (the deployable
backbone), ``demo/<bundle>/eval/summary.csv``, ``demo/<bundle>/pred/*_seg.nii.gz`` and ``demo/<bundle>/demo_slice.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dsd_components.data import build_datalist

from .cli import UsageError, run_cli
from .demo_data import make_demo_data
from .malloc import STEADY_MALLOC
from .paper import BACKBONES, PAIRINGS
from .paths import BUNDLES_DIR, config_file_arg, config_files
from .qualitative import plot_qualitative

__all__ = ["demo", "main"]


def _bundle_run(config: Path, cwd: Path, **overrides: object) -> None:
    """``python -m monai.bundle run`` of one bundle config (evaluate.json with the train.json it is layered on)."""
    files = config_file_arg(config_files(config.parent.parent, config.name))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v) if isinstance(v, (list, bool)) else str(v)]
    print("+", " ".join(cmd), flush=True)
    # keep freed activations in the heap: ~13% faster CPU demo (docs/PERFORMANCE.md)
    subprocess.run(cmd, check=True, env={**STEADY_MALLOC, **os.environ}, cwd=cwd)


# Demo data big enough for the demo patch at the bundle's spacing (MMWHS resamples 0.8 mm voxels to 1.5 x 1.5 x 2 mm),
# so no demo volume is padded to many times its size
DEMO_SIZE = {"mmwhs": (64, 64, 40), "brats": (40, 40, 40), "hippocampus": (32, 40, 32)}


def demo_patch(bundle: str) -> int:
    """The demo's patch edge: the paper's 32 for Hippocampus; 32 for the MMWHS and BraTS networks too (their 96^3
    and 128^3 would take an hour per CPU epoch), 64 for Swin UNETR (its deepest stage needs more than one voxel)."""
    return 64 if BACKBONES[PAIRINGS[bundle].backbone].class_name == "SwinUNETR" else 32


def demo(bundle: str = "hippocampus_nnunet_dsd", epochs: int = 15, num_cases: int = 24, out_dir: str = "demo",
         val_interval: int = 5, num_workers: int = 2, num_samples: int = 4, learning_rate: float = 1e-3,
         bundles_dir: str = str(BUNDLES_DIR)) -> str:
    """Run the whole demo for one bundle and return the figure's path.

    The demo keeps the bundle's network and preprocessing and shortens the schedule: fewer epochs, ``num_samples``
    patches per volume instead of the paper's (16 for Hippocampus), and a 32^3 patch (64^3 for Swin UNETR) where the
    paper's is larger, so every bundle's demo fits minutes on a CPU.

    Args:
        bundle: one of the paper bundles under ``bundles_dir``.
        epochs, val_interval, num_workers, num_samples: the bundle knobs the demo overrides.
        learning_rate: 1e-3 for every bundle: the demo's few epochs are a small fraction of the paper's 300, and at
            the paper's 1e-4 (Hippocampus, UNETR) 15 epochs leave a useless figure (measured: test Dice 0.55, not
            0.96).
        num_cases: labelled demo cases to make.
        out_dir: where demo data, evaluation, predictions and the figure go (relative to the working directory).
    """
    t0 = time.time()
    bdir = Path(bundles_dir) / bundle
    if bundle not in PAIRINGS or not bdir.is_dir():
        raise UsageError(f"no paper bundle {bundle!r} under {bundles_dir}; choose one of {', '.join(PAIRINGS)}")
    dataset_key = PAIRINGS[bundle].dataset
    spec = json.loads((bdir / "configs" / "train.json").read_text())["dataset"]
    work = Path(out_dir).resolve()
    data_dir = work / dataset_key
    if not data_dir.exists():
        make_demo_data(dataset_key, str(data_dir), num_cases=num_cases, size=DEMO_SIZE[dataset_key], seed=0)
    run_dir = work / bundle
    patch = [demo_patch(bundle)] * 3
    common = {"dataset_dir": str(data_dir), "num_workers": num_workers, "patch_size": patch}

    _bundle_run(bdir / "configs" / "train.json", work, num_epochs=epochs, val_interval=val_interval, resume=False,
                num_samples=num_samples, learning_rate=learning_rate, **common)
    _bundle_run(bdir / "configs" / "evaluate.json", work, output_dir=str(run_dir / "eval"), **common)

    # infer the labelled test cases, so the figure can show the ground truth beside the prediction
    test = build_datalist(spec, str(data_dir))["testing"]
    in_dir = run_dir / "infer_input"
    in_dir.mkdir(parents=True, exist_ok=True)
    for case in test:
        link = in_dir / Path(case["image"]).name
        if not link.exists():
            link.symlink_to(case["image"])
    _bundle_run(bdir / "configs" / "inference.json", work, dataset_dir=str(in_dir), output_dir=str(run_dir / "pred"),
                patch_size=patch)
    case = test[0]
    name = Path(case["image"]).name
    pred = run_dir / "pred" / name.replace(".nii.gz", "_seg.nii.gz")
    png = plot_qualitative(case["image"], case["label"], preds={"DSD prediction": str(pred)},
                           out=str(run_dir / "demo_slice.png"), dataset=dataset_key)
    print(f"\nDemo finished in {time.time() - t0:.0f} s")
    print(f"  model:      {bdir / 'models' / 'model.pt'}")
    print(f"  metrics:    {run_dir / 'eval' / 'summary.csv'} (per case: per_case_metrics.csv)")
    print(f"  curves:     {run_dir / 'eval' / 'training_curves.png'}")
    print(f"  prediction: {pred}")
    print(f"  figure:     {png}")
    return png


def main() -> None:
    run_cli(demo)
