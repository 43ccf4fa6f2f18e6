"""Run folders, the bundle lock, publishing and promoting models, failed writes, and the finite-loss guard, each on
its own (the bundle runs that combine them are in tests/integration/test_reliability.py)."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from support.bundles import BUNDLES, ROOT
from support.faults import fail_writes

from dsd_components.errors import CheckpointError, NonFiniteLossError, RunLockedError, RunNotFoundError
from dsd_components.export import atomic_save
from dsd_components.handlers import DSDCheckpointer, FiniteLossGuard
from dsd_components.loss import DSDLoss
from dsd_components.network import DSDOutput
from dsd_components.runs import (FolderLock, TrainingRun, list_runs, promote, published_run_dir,
                                 release_held_locks)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tmp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# ------------------------------------------------------------------------------------------------ failed writes
@pytest.mark.parametrize("err, words", [
    (errno.ENOSPC, ["no space left on device (ENOSPC)", "it needs about 4.0 MB", "free there", "Free space"]),
    (errno.EACCES, ["permission denied (EACCES)", "writable for this user"]),
])
def test_failed_write_keeps_the_previous_file_and_says_why(err, words, tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    atomic_save({"epoch": 1}, path)
    before = _sha(path)
    failed = fail_writes(monkeypatch, lambda target: target.name == "latest.pt", err)
    with pytest.raises(CheckpointError) as info:
        atomic_save({"epoch": 2, "w": torch.zeros(2**20)}, path)  # 4 MiB of float32
    msg = str(info.value)
    assert failed == [path] and msg.startswith(f"cannot write {path}: ")
    assert "the previous latest.pt is unchanged" in msg and info.value.errno == err
    for w in words:
        assert w in msg, msg
    assert _sha(path) == before and torch.load(path, weights_only=True) == {"epoch": 1}
    assert _tmp_files(tmp_path) == []  # the half-written temporary is gone


def test_failed_write_of_a_new_file_says_there_was_none(tmp_path, monkeypatch):
    fail_writes(monkeypatch, lambda target: True, errno.ENOSPC)
    with pytest.raises(CheckpointError, match="no model.pt was there before"):
        atomic_save({"w": torch.zeros(10)}, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_package_zip_and_index_writes_keep_the_previous_files(tmp_path, monkeypatch):
    from dsd_tools.zoo.package import _zip, update_index

    folder = tmp_path / "NAME"
    folder.mkdir()
    (folder / "a.txt").write_text("first")
    out = tmp_path / "dist" / "NAME_v0.1.0.zip"
    _zip(folder, out)
    index = update_index(tmp_path / "dist", "NAME", "0.1.0", out)
    zip_sha, index_text = _sha(out), index.read_text()
    (folder / "a.txt").write_text("second version, never written")
    fail_writes(monkeypatch, lambda target: target.parent == out.parent, errno.ENOSPC, after=10)
    with pytest.raises(CheckpointError, match=f"cannot write {out}: no space left on device"):
        _zip(folder, out)
    with pytest.raises(CheckpointError, match=f"cannot write {index}: no space left"):
        update_index(tmp_path / "dist", "NAME", "0.2.0", out)
    assert _sha(out) == zip_sha and index.read_text() == index_text
    assert _tmp_files(tmp_path) == []


# ------------------------------------------------------------------------------------------------------- lock
def _holder(lock_path: Path, pid: int, host: str | None = None, pid_start: int | None = None) -> None:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-02T03:04:05",
                                     "command": "python -m monai.bundle run --config_file train.json",
                                     "kind": "train", "token": "theirs", "pid_start": pid_start}))


@pytest.fixture()
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _proc_start(pid: int) -> int | None:
    from dsd_components.runs import _pid_start

    return _pid_start(pid)


def test_a_live_holder_is_refused_with_who_and_where(tmp_path, sleeper):
    lock = tmp_path / "models" / "train.lock"
    _holder(lock, sleeper.pid, pid_start=_proc_start(sleeper.pid))
    with pytest.raises(RunLockedError) as info:
        FolderLock(tmp_path / "models")
    msg = str(info.value)
    for needle in (str(tmp_path / "models"), f"pid {sleeper.pid}", f"on host {socket.gethostname()}",
                   "started 2026-01-02T03:04:05", "command: python -m monai.bundle run --config_file train.json",
                   "stopped before doing anything"):
        assert needle in msg, msg
    assert "\n" not in msg
    assert json.loads(lock.read_text())["token"] == "theirs"  # untouched


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "train.lock"
    _holder(lock, dead.pid)
    caplog.set_level(logging.WARNING, logger="dsd_components.runs")
    held = FolderLock(tmp_path)
    assert f"Taking over the stale training lock {lock}" in caplog.text and f"pid {dead.pid}" in caplog.text
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    held.release()
    assert not lock.exists()


def test_a_reused_pid_is_not_the_holder(tmp_path, sleeper, caplog):
    """The pid lives, but it started at another time than the lock's owner: another process got the pid."""
    lock = tmp_path / "train.lock"
    start = _proc_start(sleeper.pid)
    if start is None:
        pytest.skip("no /proc: process start times unknown")
    _holder(lock, sleeper.pid, pid_start=start - 1)
    caplog.set_level(logging.WARNING, logger="dsd_components.runs")
    FolderLock(tmp_path).release()
    assert "Taking over the stale training lock" in caplog.text


def test_a_holder_on_another_host_is_respected(tmp_path):
    lock = tmp_path / "train.lock"
    _holder(lock, 1, host="gpu-node-7")
    with pytest.raises(RunLockedError, match=f"cannot tell whether a process on gpu-node-7 still runs.*delete {lock}"):
        FolderLock(tmp_path)
    assert lock.exists()


def test_leftovers_of_this_process_and_unreadable_locks_are_taken_over(tmp_path):
    _holder(tmp_path / "train.lock", os.getpid())  # an earlier in-process run that ended with an error
    FolderLock(tmp_path).release()
    (tmp_path / "train.lock").write_text("")  # a writer that died between creating and filling the file
    old = time.time() - 60
    os.utime(tmp_path / "train.lock", (old, old))
    FolderLock(tmp_path).release()
    assert not (tmp_path / "train.lock").exists()


def test_release_removes_only_our_own_lock_and_other_ranks_never_lock(tmp_path):
    held = FolderLock(tmp_path / "a", "evaluate")
    assert (tmp_path / "a" / "evaluate.lock").is_file()
    _holder(tmp_path / "a" / "evaluate.lock", 1, host="elsewhere")  # someone replaced it (by hand)
    held.release()
    assert (tmp_path / "a" / "evaluate.lock").is_file()
    FolderLock(tmp_path / "b", rank=1)
    assert not (tmp_path / "b").exists()
    FolderLock(tmp_path / "c")
    release_held_locks()  # what exit (and the bundle's error hook) does
    assert not (tmp_path / "c" / "train.lock").exists()


# ------------------------------------------------------------------------------------------------ run folders
def _fake_latest(run: TrainingRun, epoch: int) -> None:
    atomic_save({"epoch": epoch, "iteration": epoch * 3, "network": {}}, run.latest_path)


def _fake_best(run: TrainingRun, value: float) -> str:
    atomic_save({"w": torch.full((3,), value)}, run.model_path)
    return run.publish("val_mean_dice", value, 1)


def test_resume_picks_the_unfinished_newest_run_else_a_new_one(tmp_path, caplog):
    models = tmp_path / "models"
    a = TrainingRun(models, max_epochs=3)
    assert not a.resuming and a.dir.parent == models / "runs" and (models / "train.lock").is_file()
    _fake_latest(a, 1)
    a.close()
    assert not (models / "train.lock").exists()
    again = TrainingRun(models, max_epochs=3)  # the same command after a kill
    assert again.dir == a.dir and again.resuming
    again.close()
    other = TrainingRun(models, max_epochs=3, name="other")  # another --run_name: a new run, A untouched
    assert other.dir != a.dir and other.dir.name.endswith("-other") and not other.resuming
    other.close()
    b = TrainingRun(models, max_epochs=3, resume=False)  # --resume false: a new run, the unfinished ones stay
    assert b.dir not in (a.dir, other.dir) and not b.resuming
    _fake_latest(b, 3)
    b.close()
    caplog.set_level(logging.WARNING, logger="dsd_components.runs")
    c = TrainingRun(models, max_epochs=3)  # b is finished: train again
    assert c.dir not in (a.dir, b.dir, other.dir) and "is a finished run (epoch 3 >= num_epochs 3)" in caplog.text
    c.close()
    d = TrainingRun(models, max_epochs=3)  # c never wrote a checkpoint (killed in epoch 1): its folder is reused
    assert d.dir == c.dir and not d.resuming
    _fake_latest(d, 3)
    d.close()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="dsd_components.runs")
    e = TrainingRun(models, max_epochs=3, resume=False)  # d finished, a new run asked for: said, not warned
    assert e.dir != d.dir and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"--resume false: starting a new run; the finished run {d.dir} stays as it is." in caplog.text
    e.close()
    assert [r["run"] for r in list_runs(models)] == [a.dir.name, other.dir.name, b.dir.name, c.dir.name, e.dir.name]
    assert {r["status"] for r in list_runs(models)} == {"interrupted"}  # none of them finished through a trainer


def test_publishing_keeps_the_replaced_model_and_promote_brings_it_back(tmp_path, caplog):
    models = tmp_path / "models"
    models.mkdir()
    shipped = models / "model.pt"  # e.g. from a package: no run folder knows it
    torch.save({"w": torch.zeros(3)}, shipped)
    shipped_sha = _sha(shipped)
    caplog.set_level(logging.WARNING, logger="dsd_components.runs")
    a = TrainingRun(models, max_epochs=1)
    where = _fake_best(a, 0.5)
    imported = [d for d in (models / "runs").iterdir() if d.name.endswith("-imported")]
    assert len(imported) == 1 and _sha(imported[0] / "model.pt") == shipped_sha
    assert f"replacing the model of run {imported[0].name}" in where and "came from no run folder" in caplog.text
    a.finish()
    b = TrainingRun(models, max_epochs=1)
    where = _fake_best(b, 0.7)
    assert f"replacing the model of run {a.dir.name}, which stays in {a.model_path}" in where
    assert _sha(models / "model.pt") == _sha(b.model_path) and published_run_dir(models) == str(b.dir)
    b.finish()
    done = promote(models, a.dir.name)
    assert done["run"] == a.dir.name and done["replaced"] == b.dir.name
    assert _sha(models / "model.pt") == _sha(a.model_path) and published_run_dir(models) == str(a.dir)
    assert _sha(b.model_path) != _sha(a.model_path)  # b's model is still there
    rows = {r["run"]: r for r in list_runs(models)}
    assert rows[a.dir.name]["published"] and not rows[b.dir.name]["published"]
    with pytest.raises(RunNotFoundError, match="is not a run under"):
        promote(models, "19990101")
    with pytest.raises(RunNotFoundError, match="matches several runs"):
        promote(models, a.dir.name[:4])  # the year: every run
    torch.save({"w": torch.ones(3)}, models / "model.pt")  # copied over by hand: no longer a's
    assert published_run_dir(models) is None


def test_promote_waits_for_no_training(tmp_path, sleeper):
    models = tmp_path / "models"
    a = TrainingRun(models, max_epochs=1)
    _fake_best(a, 0.5)
    a.finish()
    _holder(models / "train.lock", sleeper.pid, pid_start=_proc_start(sleeper.pid))
    with pytest.raises(RunLockedError, match=f"pid {sleeper.pid}"):
        promote(models, a.dir.name)


def test_files_of_the_layout_before_run_folders_become_runs(tmp_path):
    models = tmp_path / "models"
    (models / "previous_run").mkdir(parents=True)
    torch.save({"epoch": 5, "iteration": 15, "network": {}}, models / "previous_run" / "latest.pt")
    torch.save({"w": torch.zeros(2)}, models / "previous_run" / "model.pt")
    torch.save({"epoch": 1, "iteration": 3, "network": {}}, models / "latest.pt")  # unfinished
    torch.save({"w": torch.ones(2)}, models / "model.pt")
    legacy_sha = _sha(models / "latest.pt")
    run = TrainingRun(models, max_epochs=3)
    assert run.resuming and run.dir.name.endswith("-imported") and _sha(run.latest_path) == legacy_sha
    assert not (models / "latest.pt").exists() and not (models / "previous_run").exists()
    previous = [d for d in (models / "runs").iterdir() if d.name.endswith("-previous_run")]
    assert len(previous) == 1 and sorted(p.name for p in previous[0].iterdir()) == ["latest.pt", "model.pt", "run.json"]
    assert published_run_dir(models) == str(run.dir)  # models/model.pt is counted as the imported run's
    run.close()


# ------------------------------------------------------------------------------------------------ finite loss
def _engine_with(batch, output, epoch=2, iteration=5, epoch_length=3):
    state = SimpleNamespace(batch=batch, output=output, epoch=epoch, iteration=iteration, epoch_length=epoch_length)
    return SimpleNamespace(state=state, scaler=None)


def _item(name: str, finite: bool = True) -> dict:
    img = torch.zeros(1, 4, 4, 4)
    if not finite:
        img[0, 1, 2, 3] = float("nan")
    return {"image": MetaTensor(img, meta={"filename_or_obj": name}), "label": torch.zeros(1, 4, 4, 4)}


def test_guard_names_the_term_the_iteration_and_the_cases():
    loss = DSDLoss("dsd")
    torch.manual_seed(0)
    shape = (1, 3, 8, 8, 8)
    main = torch.randn(shape)
    enc = [torch.randn(shape) for _ in range(3)]
    enc[1][0, 0, 0, 0, 0] = float("inf")  # only the encoder side goes wrong
    dec = [torch.randn(shape) for _ in range(3)]
    target = torch.randint(0, 3, (1, 1, 8, 8, 8))
    value = loss(DSDOutput(main, enc, dec), target)
    assert not math.isfinite(float(value))
    assert math.isfinite(float(loss.last_terms["main"])) and not math.isfinite(float(loss.last_terms["kl_enc"]))
    run = SimpleNamespace(saved_epoch=1, latest_path=Path("/b/models/runs/R/latest.pt"), stop=lambda reason: None)
    guard = FiniteLossGuard(loss, run=run)
    batch = [_item("/data/case_007.nii.gz"), _item("/data/case_007.nii.gz"), _item("/data/case_009.nii.gz", False)]
    engine = _engine_with(batch, [{"loss": value.detach()}] * 3)
    with pytest.raises(NonFiniteLossError) as info:
        guard.check(engine)
    msg = str(info.value)
    assert "at epoch 2, iteration 2 of 3 (iteration 5 overall)" in msg
    assert "non-finite term(s): encoder KL (" in msg and "main DiceCE" not in msg and "decoder KL" not in msg
    assert "case(s) in the batch: /data/case_007.nii.gz, /data/case_009.nii.gz (its image holds NaN/Inf voxels)" in msg
    assert "/b/models/runs/R/latest.pt keeps epoch 1, the last finite state" in msg and "\n" not in msg
    guard.check(_engine_with(batch, [{"loss": torch.tensor(0.5)}]))  # a finite loss passes


def test_guard_counts_amp_skipped_steps_without_stopping(caplog):
    """A real (CPU) GradScaler: a step whose gradients overflow is skipped and the scale halves; counted, logged."""
    w = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)

    def step(engine, x):
        opt.zero_grad()
        loss = (w * x).sum()  # finite, but 1e36 * 2**16 overflows float32 in the scaled gradients
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return {"loss": loss.detach()}

    engine = Engine(step)
    engine.scaler = scaler
    guard = FiniteLossGuard()
    guard.attach(engine)
    caplog.set_level(logging.INFO, logger="dsd_components.handlers")
    engine.run([torch.ones(4), torch.full((4,), 1e36), torch.ones(4), torch.full((4,), 1e36)], max_epochs=1)
    assert guard.skipped_total == 2 and torch.isfinite(w).all()
    assert "the GradScaler skipped 2 of 4 optimizer steps in epoch 1" in caplog.text


def test_weights_that_turned_nan_are_never_saved(tmp_path):
    net = torch.nn.Linear(2, 2)
    ckpt = DSDCheckpointer(save_dir=tmp_path, network=net, rank=0)
    atomic_save({"epoch": 1}, ckpt.latest_path)
    ckpt.saved_epoch = 1
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    engine = SimpleNamespace(state=SimpleNamespace(epoch=2, iteration=6), scaler=None)
    with pytest.raises(NonFiniteLossError, match=f"became NaN/Inf .*weight.*{ckpt.latest_path} keeps epoch 1"):
        ckpt.on_epoch_completed(engine)
    assert torch.load(ckpt.latest_path, weights_only=True) == {"epoch": 1}


# ------------------------------------------------------------------------------------------------------- docs
@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_docs_say_what_a_user_sees(name):
    """The "Checkpoints" section quotes the messages the code prints (the integration tests check those against
    real runs), so the docs and the program say the same thing."""
    text = (ROOT / "bundles" / name / "docs" / "README.md").read_text()
    section = text.split("\n## **Checkpoints**\n", 1)[1].split("\n## ", 1)[0]
    for phrase in ("models/runs/<YYYYmmdd-HHMMSS>[-<run_name>]/", "replacing the model of run RUN, which stays in",
                   f"dsd-runs list {name}", f"dsd-runs promote {name} RUN", "is in use by another training",
                   "this training stopped before doing anything", "Taking over the stale training lock",
                   "delete `models/train.lock`", "training stopped: the loss is", "non-finite term(s): main DiceCE",
                   "the last finite state", "GradScaler", "no space left on device (ENOSPC)",
                   "the previous latest.pt is unchanged", "Then run the same command: it resumes"):
        assert phrase in " ".join(section.split()), phrase
