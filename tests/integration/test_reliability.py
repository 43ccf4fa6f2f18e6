"""Reliability in real use, through the real bundle: training again loses no model, one training per bundle folder, a
NaN loss stops cleanly, a full disk loses nothing, and the curves of an evaluation show only its run.

(The SIGKILL case, a stale lock taken over and the run resumed exactly, is in test_resume.py.)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run
from support.bundles import copy_bundle, tiny_overrides
from support.faults import fail_writes

from dsd_components.entry import user_error_in
from dsd_components.errors import CheckpointError, DSDUserError, RunLockedError
from dsd_tools.demo_data import make_demo_data
from dsd_tools.paths import config_files
from dsd_tools.runs import runs_list, runs_promote

NAME = "hippocampus_nnunet_dsd"
ITERS = 3  # 5 cases -> hippocampus_001..003 train, 004 validation, 005 test; batch 1
TRAIN = {**tiny_overrides(NAME), "num_workers": 0, "val_interval": 1, "num_samples": 1}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return Path(make_demo_data("hippocampus", str(tmp_path_factory.mktemp("runs") / "task"), num_cases=5,
                               size=(20, 20, 20), seed=0))


def _train(bundle: Path, data: Path, **kw) -> None:
    run(config_file=str(bundle / "configs" / "train.json"), logging_file=False, bundle_root=str(bundle),
        dataset_dir=str(data), **{**TRAIN, **kw})


def _evaluate(bundle: Path, data: Path) -> None:
    run(config_file=config_files(bundle, "evaluate.json"), logging_file=False, bundle_root=str(bundle),
        dataset_dir=str(data), eval_split="validation", num_workers=0, **tiny_overrides(NAME))


def _cli(bundle: Path, data: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "train.json"),
           "--dataset_dir", str(data)]
    for k, v in TRAIN.items():
        cmd += [f"--{k}", json.dumps(v).replace(" ", "")]
    return cmd + list(extra)


def _runs(bundle: Path) -> list[Path]:
    root = bundle / "models" / "runs"
    return sorted(root.iterdir(), key=lambda d: json.loads((d / "run.json").read_text())["started_ts"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _user_error(call, kind: type[DSDUserError]) -> str:
    with pytest.raises(Exception) as info:
        call()
    err = user_error_in(info.value)
    assert isinstance(err, kind), f"not a {kind.__name__}: {info.value!r}"
    return str(err)


# ------------------------------------------------------------------------------- training again loses nothing
def test_retraining_keeps_every_model_and_any_can_be_promoted(data, tmp_path, caplog, capsys, one_thread):
    bundle = copy_bundle(NAME, tmp_path)
    published = bundle / "models" / "model.pt"
    caplog.set_level(logging.INFO)
    _train(bundle, data, num_epochs=2)  # "the demo"
    (first,) = _runs(bundle)
    first_sha = _sha(first / "model.pt")
    assert _sha(published) == first_sha
    _train(bundle, data, num_epochs=1)  # a 1-epoch retrain: a new run; the first one is finished, not overwritten
    _train(bundle, data, num_epochs=1)  # and another
    runs = _runs(bundle)
    assert len(runs) == 3 and runs[0] == first
    second, third = runs[1], runs[2]
    # every model is still there, and the log named the one each retrain replaced
    assert _sha(first / "model.pt") == first_sha and torch.load(first / "latest.pt", weights_only=True)["epoch"] == 2
    assert f"replacing the model of run {first.name}, which stays in {first / 'model.pt'}" in caplog.text
    assert f"replacing the model of run {second.name}, which stays in {second / 'model.pt'}" in caplog.text
    assert _sha(published) == _sha(third / "model.pt")

    # issue 15: the evaluation's curves hold only the run whose model it evaluated (1 epoch = 3 iterations)
    caplog.clear()
    _evaluate(bundle, data)
    assert f"training curves of {third / 'logs'} ({ITERS} train_loss, 1 val_mean_dice)" in caplog.text
    assert (third / "eval" / "summary.csv").is_file() and (third / "eval" / "training_curves.png").is_file()

    capsys.readouterr()
    runs_list(str(bundle))
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if re.search(r"\d{8}-\d{6}", line) and "runs in" not in line]
    assert len(rows) == 3 and rows[2].startswith("*") and not rows[0].startswith("*")
    assert [r.lstrip("* ").split()[0] for r in rows] == [d.name for d in runs]
    assert "finished  2/2" in rows[0] and "finished  1/1" in rows[1]

    # promote the first run back: inference, evaluation and MONAI Label load it again; nothing was lost on the way
    runs_promote(str(bundle), first.name)
    assert f"the model it replaced stays in {third / 'model.pt'}" in capsys.readouterr().out
    assert _sha(published) == first_sha
    assert json.loads((bundle / "models" / "model.json").read_text())["run"] == first.name
    caplog.clear()
    _evaluate(bundle, data)
    assert f"training curves of {first / 'logs'} ({2 * ITERS} train_loss, 2 val_mean_dice)" in caplog.text
    assert (first / "eval" / "summary.csv").is_file()


# ------------------------------------------------------------------------------------- one training per bundle
def test_a_second_training_on_the_same_bundle_is_refused_and_the_first_is_unharmed(data, tmp_path):
    bundle = copy_bundle(NAME, tmp_path)
    first = subprocess.Popen(_cli(bundle, data, "--num_epochs", "2"), env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    head = []
    try:
        for line in first.stdout:
            head.append(line)
            if "Epoch: 1/2, Iter: 1/" in line:
                first.send_signal(signal.SIGSTOP)  # hold it mid-training while the others try
                break
        assert first.poll() is None, "".join(head)[-3000:]
        second = subprocess.run(_cli(bundle, data, "--num_epochs", "1"), env=ENV, cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)
        # MONAI Label's Train button: monai.bundle.run in its own process, with its data and no initialize step
        cases = sorted(str(p) for p in (data / "imagesTr").glob("*.nii.gz"))
        pairs = [{"image": c, "label": c.replace("imagesTr", "labelsTr")} for c in cases]
        label_err = _user_error(lambda: run(
            run_id="run", init_id=None, final_id=None, config_file=str(bundle / "configs" / "train.json"),
            logging_file=False, bundle_root=str(bundle), **tiny_overrides(NAME), num_workers=0, num_samples=1,
            **{"train#trainer#max_epochs": 1, "train#dataset#data": pairs[:3], "validate#dataset#data": pairs[3:4]}),
            RunLockedError)
    finally:
        first.send_signal(signal.SIGCONT)
    rest, _ = first.communicate(timeout=400)
    log = "".join(head) + rest
    assert first.returncode == 0, log[-3000:]

    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    (line,) = [x for x in second.stderr.splitlines() if x.startswith("ERROR: ")]  # one line, the whole message
    for msg in (line, label_err):
        for needle in (f"{bundle / 'models'} is in use by another training", f"pid {first.pid}",
                       f"on host {socket.gethostname()}", "started 20", "command: ", "-m monai.bundle run",
                       "train.json --dataset_dir",
                       "stopped before doing anything"):
            assert needle in msg, msg
    assert "Traceback" not in second.stdout + second.stderr

    # the first run never noticed: one run folder, all its epochs, its model published, the lock released
    (only,) = _runs(bundle)
    assert torch.load(only / "latest.pt", weights_only=True)["epoch"] == 2
    assert log.count("Epoch: 2/2, Iter: 3/3") == 1
    assert _sha(bundle / "models" / "model.pt") == _sha(only / "model.pt")
    assert not (bundle / "models" / "train.lock").exists()


# ----------------------------------------------------------------------------------- a NaN loss stops cleanly
def test_a_nan_batch_stops_the_run_and_keeps_the_last_finite_checkpoint(data, tmp_path, one_thread):
    task = Path(shutil.copytree(data, tmp_path / "task"))
    bundle = copy_bundle(NAME, tmp_path)
    _train(bundle, task, num_epochs=1)
    (run_dir,) = _runs(bundle)
    latest = run_dir / "latest.pt"
    latest_sha, model_sha = _sha(latest), _sha(bundle / "models" / "model.pt")
    # a corrupt case that slips through because the data check is off
    case = task / "imagesTr" / "hippocampus_002.nii.gz"
    img = nib.load(str(case))
    arr = np.asarray(img.dataobj, dtype=np.float32)
    arr[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(arr, img.affine), str(case))

    out = subprocess.run(_cli(bundle, task, "--num_epochs", "2", "--check_data", "False"), env=ENV, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stderr.count("ERROR: ") == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout[-3000:]
    msg = out.stderr
    assert re.search(rf"ERROR: training stopped: the loss is nan at epoch 2, iteration [1-3] of {ITERS} "
                     rf"\(iteration [4-6] overall\)", msg), msg
    assert "non-finite term(s): main DiceCE (nan), deep supervision (nan), encoder KL (nan), decoder KL (nan)" in msg
    assert f"case(s) in the batch: {case} (its image holds NaN/Inf voxels)" in msg
    assert f"{latest} keeps epoch 1, the last finite state" in msg and "dsd-check-data" in msg
    # the last finite state is intact and loadable; the model too; the run says why it stopped; the lock is free
    assert _sha(latest) == latest_sha and _sha(bundle / "models" / "model.pt") == model_sha
    ckpt = torch.load(latest, weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["network"].values())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "stopped" and record["stop_reason"] == "non-finite loss at epoch 2"
    assert not (bundle / "models" / "train.lock").exists()


# --------------------------------------------------------------------------------------- a full disk loses nothing
def test_a_full_disk_while_saving_keeps_latest_and_model(data, tmp_path, monkeypatch, one_thread):
    bundle = copy_bundle(NAME, tmp_path)
    _train(bundle, data, num_epochs=1)
    (first,) = _runs(bundle)
    latest, published = first / "latest.pt", bundle / "models" / "model.pt"
    latest_sha = _sha(latest)

    # 1. the disk is full when epoch 2's latest.pt is written
    with monkeypatch.context() as m:
        failed = fail_writes(m, lambda target: target == latest, errno.ENOSPC)
        err = _user_error(lambda: _train(bundle, data, num_epochs=2), CheckpointError)
    assert failed == [latest]
    for needle in (f"training stopped at the end of epoch 2: cannot write {latest}: no space left on device (ENOSPC)",
                   "it needs about", "MB free there", "the previous latest.pt is unchanged",
                   f"run the same command: it resumes from epoch 1 ({latest})"):
        assert needle in err, err
    assert _sha(latest) == latest_sha and torch.load(latest, weights_only=True)["epoch"] == 1
    assert not list(bundle.rglob("*.tmp")) and not (bundle / "models" / "train.lock").exists()
    assert json.loads((first / "run.json").read_text())["status"] == "stopped"
    # ... with space again, the same command resumes that run from epoch 1 and finishes it
    _train(bundle, data, num_epochs=2)
    assert _runs(bundle) == [first] and torch.load(latest, weights_only=True)["epoch"] == 2
    model_sha = _sha(published)

    # 2. the disk is full when a new run publishes its first best model as models/model.pt
    with monkeypatch.context() as m:
        failed = fail_writes(m, lambda target: target == published, errno.ENOSPC)
        err = _user_error(lambda: _train(bundle, data, num_epochs=1, resume=False), CheckpointError)
    assert failed == [published]
    assert f"cannot write {published}: no space left on device (ENOSPC)" in err
    assert "the previous model.pt is unchanged" in err
    assert _sha(published) == model_sha
    assert json.loads((bundle / "models" / "model.json").read_text())["run"] == first.name
    assert not list(bundle.rglob("*.tmp")) and not (bundle / "models" / "train.lock").exists()
