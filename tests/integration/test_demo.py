"""The README's demo runs end to end (shortest schedule) and leaves its model, metrics, prediction and PNG."""

import csv
import shutil

from support.bundles import ROOT

from dsd_tools.demo import demo


def test_demo_end_to_end(tmp_path):
    bundles = tmp_path / "bundles"
    shutil.copytree(ROOT / "bundles" / "hippocampus_nnunet_dsd", bundles / "hippocampus_nnunet_dsd",
                    ignore=shutil.ignore_patterns("models", "logs", "eval"))
    png = demo(epochs=1, num_cases=8, out_dir=str(tmp_path / "demo"), val_interval=1, num_workers=0, num_samples=1,
               bundles_dir=str(bundles))
    run = tmp_path / "demo" / "hippocampus_nnunet_dsd"
    assert png == str(run / "demo_slice.png") and (run / "demo_slice.png").stat().st_size > 1000
    assert (bundles / "hippocampus_nnunet_dsd" / "models" / "model.pt").is_file()
    assert list((run / "pred").glob("*_seg.nii.gz"))
    with open(run / "eval" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["class"] for r in rows} >= {"anterior", "posterior", "mean"}
