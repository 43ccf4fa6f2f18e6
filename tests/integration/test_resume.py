"""Training killed at any point resumes exactly; checkpoints are atomic and weights_only-safe; runs are reproducible.

The resume test runs the real CLI (`python -m monai.bundle run --config_file <bundle>/configs/train.json ...`) three
times on tiny data: once uninterrupted, once SIGKILLed in the middle of epoch 2, and once more with the same command.
Because DSDCheckpointer reseeds every random source from (seed, epoch) at each epoch start, the resumed run replays
the interrupted epoch and must end with the same weights, optimizer, scheduler and losses as the uninterrupted one.
The killed run leaves its training lock behind: the same command takes it over (the pid is gone) with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from support.bundles import ROOT, copy_bundle, tiny_overrides
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, run

from dsd_tools.demo_data import make_demo_data

from dsd_components.export import atomic_save, load_checkpoint

NAME = "hippocampus_nnunet_dsd"
EPOCHS, ITERS, LR = 3, 3, 1e-4  # 5 cases -> 3 training cases -> 3 iterations per epoch (batch 1)
LOSS_LINE = re.compile(r"Epoch: (\d+)/\d+, Iter: (\d+)/\d+ -- train_loss: ([0-9.]+)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return Path(make_demo_data("hippocampus", str(tmp_path_factory.mktemp("resume") / "task"), num_cases=5,
                               size=(20, 20, 20), seed=0))



def _cli(bundle: Path, data: Path) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "train.json"),
           "--dataset_dir", str(data), "--num_workers", "0", "--num_epochs", str(EPOCHS), "--val_interval", "1",
           "--num_samples", "1", "--lr_step_decay", "true", "--learning_rate", str(LR)]
    for k, v in tiny_overrides(NAME).items():
        cmd += [f"--{k}", str(v).replace(" ", "")]
    return cmd


ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _losses(log: str) -> dict[tuple[int, int], str]:
    return {(int(e), int(i)): v for e, i, v in LOSS_LINE.findall(log)}


def _plain(obj, path="ckpt") -> None:
    """Only tensors, numbers, strings, None and plain containers: nothing that needs unpickling code."""
    if isinstance(obj, (dict, OrderedDict)):
        for k, v in obj.items():
            assert isinstance(k, (str, int)), f"{path}: key {k!r}"
            _plain(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _plain(v, f"{path}[{i}]")
    else:
        assert obj is None or isinstance(obj, (torch.Tensor, bool, int, float, str)), f"{path}: {type(obj)}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _only_run(bundle: Path) -> Path:
    runs = sorted((bundle / "models" / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_sigkill_mid_epoch_then_same_command_resumes_exactly(data, tmp_path, caplog, one_thread):
    # 1. reference: the same command, never interrupted
    ref = copy_bundle(NAME, tmp_path / "ref")
    done = subprocess.run(_cli(ref, data), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ref_losses = _losses(done.stdout)
    assert len(ref_losses) == EPOCHS * ITERS
    ref_run = _only_run(ref)

    # 2. the same command, SIGKILLed once epoch 1 is checkpointed and epoch 2 has done one iteration
    bundle = copy_bundle(NAME, tmp_path / "run")
    lock = bundle / "models" / "train.lock"
    proc = subprocess.Popen(_cli(bundle, data), env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first = []
    try:
        for line in proc.stdout:
            first.append(line)
            if f"Epoch: 2/{EPOCHS}, Iter: 1/{ITERS}" in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    first_log = "".join(first)
    assert proc.returncode == -signal.SIGKILL, first_log[-3000:]
    run_dir = _only_run(bundle)
    latest, model, published = run_dir / "latest.pt", run_dir / "model.pt", bundle / "models" / "model.pt"
    killed = load_checkpoint(latest)
    assert killed["epoch"] == 1 and killed["iteration"] == ITERS  # mid-epoch 2: epoch 1 is the last checkpoint
    assert json.loads(lock.read_text())["pid"] == proc.pid  # a kill -9 releases nothing: the lock stays behind
    first_losses = _losses(first_log)
    assert (2, 1) in first_losses and (2, ITERS) not in first_losses
    # Pretend epoch 1 scored very well: a resumed run that forgot the best score would overwrite model.pt with a
    # worse one at its next validation.
    killed["best_metric"] = 2.0
    atomic_save(killed, latest)
    model_sha = _sha(model)
    assert _sha(published) == model_sha  # models/model.pt is this run's best

    # 3. the same command again: the stale lock is taken over, the run resumed in its own folder
    second = subprocess.run(_cli(bundle, data), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert f"Taking over the stale training lock {lock}: the run that held it (pid {proc.pid}," in log
    assert "no longer runs on this host (killed or crashed)" in log
    assert f"Resumed from {latest}: epoch 1, iteration {ITERS}, best val_mean_dice 2.0000 (epoch 1)" in log
    assert f"Engine run resuming from iteration {ITERS}, epoch 1 until {EPOCHS} epochs" in log
    assert _only_run(bundle) == run_dir and not lock.exists()  # the same run folder; the lock released at the end
    resumed = _losses(second.stdout)
    assert sorted(resumed) == [(e, i) for e in range(2, EPOCHS + 1) for i in range(1, ITERS + 1)]  # epoch 1 not redone
    # the interrupted epoch is replayed exactly and everything matches the uninterrupted run (4 decimals in the log)
    assert {k: v for k, v in first_losses.items()} == {k: ref_losses[k] for k in first_losses}
    assert resumed == {k: v for k, v in ref_losses.items() if k[0] >= 2}

    final, ref_final = load_checkpoint(latest), load_checkpoint(ref_run / "latest.pt")
    assert final["epoch"] == EPOCHS and final["iteration"] == EPOCHS * ITERS
    for key, value in ref_final["network"].items():
        assert torch.equal(final["network"][key], value), key
    # scheduler stepped once per epoch in total (StepLR step 1, gamma 0.5 with lr_step_decay and 3 epochs)
    assert final["lr_scheduler"]["last_epoch"] == EPOCHS == ref_final["lr_scheduler"]["last_epoch"]
    assert final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(LR * 0.5**EPOCHS, rel=1e-9)
    assert final["lr_scheduler"]["_last_lr"] == ref_final["lr_scheduler"]["_last_lr"]
    # AdamW step counts continue from the checkpoint: one step per iteration over the whole run
    steps = {int(s["step"]) for s in final["optimizer"]["state"].values()}
    assert steps == {EPOCHS * ITERS}
    for pid, s in ref_final["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][pid]["exp_avg_sq"], s["exp_avg_sq"])
    # the best score survived the restart: model.pt was not replaced by a worse epoch
    assert final["best_metric"] == 2.0 and final["best_epoch"] == 1
    assert _sha(model) == model_sha == _sha(published) and "New best" not in log
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["epoch"] == EPOCHS and len(record["resumed"]) == 1

    # 4. safe files: weights_only loads, plain content, permissions like torch.save, no temporaries left behind
    for path in (latest, model, published, ref_run / "latest.pt", ref_run / "model.pt"):
        _plain(torch.load(path, map_location="cpu", weights_only=True), path.name)
        assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "latest.pt", "logs", "model.pt", "run.json"]
    assert sorted(p.name for p in (bundle / "models").iterdir()) == ["model.json", "model.pt", "runs"]

    # 5. the finished command once more (or MONAI Label's Train pressed again): a new run in a new folder; the
    #    finished run keeps its checkpoint and best model, and is named when its model is replaced
    latest_sha = _sha(latest)
    caplog.set_level(logging.INFO)
    run(config_file=str(bundle / "configs" / "train.json"), logging_file=False, bundle_root=str(bundle),
        dataset_dir=str(data), num_workers=0, num_epochs=EPOCHS, val_interval=1, num_samples=1, lr_step_decay=True,
        learning_rate=LR, **tiny_overrides(NAME))
    assert f"is a finished run (epoch {EPOCHS} >= num_epochs {EPOCHS}): starting a new run" in caplog.text
    new_run = [d for d in (bundle / "models" / "runs").iterdir() if d != run_dir]
    assert len(new_run) == 1
    assert _sha(latest) == latest_sha and _sha(model) == model_sha  # the finished run is untouched
    assert f"replacing the model of run {run_dir.name}, which stays in {model}" in caplog.text
    assert torch.load(new_run[0] / "latest.pt", weights_only=True)["epoch"] == EPOCHS  # it trained all its epochs
    assert _sha(published) == _sha(new_run[0] / "model.pt")


def _train_losses(data: Path, bundle: Path, seed: int, epochs: int = 2) -> list[float]:
    wf = ConfigWorkflow(config_file=str(bundle / "configs" / "train.json"), logging_file=False,
                        meta_file=str(bundle / "configs" / "metadata.json"), workflow_type="train",
                        bundle_root=str(bundle), dataset_dir=str(data), num_workers=0, num_epochs=epochs,
                        val_interval=1, num_samples=1, seed=seed, resume=False, **tiny_overrides(NAME))
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    wf.run()
    assert len(losses) == epochs * ITERS
    return losses


def test_same_seed_same_losses(data, tmp_path, one_thread):
    """Two CPU trainings with the same seed give bit-identical per-iteration losses; another seed does not."""
    a = _train_losses(data, copy_bundle(NAME, tmp_path / "a"), seed=0)
    b = _train_losses(data, copy_bundle(NAME, tmp_path / "b"), seed=0)
    assert a == b and all(np.isfinite(a))
    assert len(set(a)) > 1  # the losses do change between iterations
    c = _train_losses(data, copy_bundle(NAME, tmp_path / "c"), seed=1, epochs=1)
    assert c != a[:ITERS]


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker folder: code execution
        return (os.mkdir, (str(self.marker),))


def test_pickled_code_is_never_executed(tmp_path):
    """Every loader of checkpoints uses weights_only=True: a malicious file is refused, its payload never runs."""
    from monai.handlers import CheckpointLoader
    from monai.networks.nets import BasicUNet

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"network": {"w": torch.zeros(1)}, "epoch": 1, "iteration": 1, "x": _Evil(marker)}, evil)
    with pytest.raises(RuntimeError, match="weights_only=True"):
        load_checkpoint(evil)
    net = BasicUNet(3, 1, 2, features=(2, 2, 2, 2, 2, 2))
    with pytest.raises(Exception):
        CheckpointLoader(load_path=str(evil), load_dict={"model": net})(None)  # what evaluate/inference use
    assert not marker.exists()


def test_every_torch_load_in_the_repo_is_weights_only():
    calls = []
    for path in [p for d in ("dsd_components", "dsd_tools", "scripts") for p in (ROOT / d).rglob("*.py")]:
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            depth, end = 0, m.end() - 1
            for end in range(m.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.relative_to(ROOT), text[m.start(): end + 1]))
    assert calls, "no torch.load found at all: the scan is broken"
    unsafe = [f"{p}: {c}" for p, c in calls if "weights_only=True" not in c]
    assert not unsafe, unsafe


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_save({"epoch": 1}, path)
    with pytest.raises(Exception):
        atomic_save({"epoch": 2, "bad": lambda: None}, path)  # cannot be pickled: fails mid-write
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
