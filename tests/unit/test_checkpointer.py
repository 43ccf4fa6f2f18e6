"""DSDCheckpointer on its own, with a tiny network and ignite's Engine: a process killed inside atomic_save and a clean
restart, which rank writes, per-rank and per-epoch random streams, the best model and resume.
(The same through real bundles: tests/integration/test_resume.py, test_reliability.py and test_multi_gpu.py.)"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events

from dsd_components.errors import CheckpointError
from dsd_components.export import atomic_save
from dsd_components.handlers import DSDCheckpointer

# A child that starts writing `target` through atomic_save and stops half way, as a process does when it is killed
# inside the save: it prints HALF once 1 MB of the temporary file is on disk, then waits to be killed.
KILLED_INSIDE_SAVE = textwrap.dedent("""
    import builtins, sys, time, torch
    from dsd_components import export

    class HalfWritten:
        def __init__(self, f):
            self.f, self.n = f, 0
        def write(self, data):
            self.n += len(data)
            out = self.f.write(data)
            if self.n > 2**20:
                self.f.flush()
                print("HALF", flush=True)
                time.sleep(600)
            return out
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()

    def slow_open(file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)
        return HalfWritten(f) if "w" in mode else f

    export.open = slow_open
    export.atomic_save({"network": {"w": torch.zeros(2**20)}, "epoch": 2, "iteration": 4}, sys.argv[1])
""")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def _engine() -> Engine:
    return Engine(lambda e, batch: {"loss": torch.tensor(0.0)})


def _kill_inside_save(target: Path) -> list[str]:
    """Run the child until it is half way through writing ``target``, SIGKILL it; the folder's names then."""
    with subprocess.Popen([sys.executable, "-c", KILLED_INSIDE_SAVE, str(target)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        half = child.stdout.readline().strip() == "HALF"
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=60)
    assert half and child.returncode == -signal.SIGKILL, err[-3000:]
    return sorted(p.name for p in target.parent.iterdir())


@pytest.mark.parametrize("name", ["latest.pt", "model.pt"])
def test_a_kill_inside_atomic_save_keeps_the_old_file_and_a_restart_cleans_up(name, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    old = {"network": _net().state_dict(), "epoch": 1, "iteration": 2, "best_metric": 0.25, "best_epoch": 1}
    atomic_save(old, folder / "latest.pt")
    atomic_save(_net().state_dict(), folder / "model.pt")
    (folder / "notes.tmp").write_text("a user's file")  # not ours: stays
    (folder / ".other.pt.x1.tmp").write_text("another file's temporary")  # not one of the checkpointer's: stays
    before = sorted(p.name for p in folder.iterdir())

    names = _kill_inside_save(folder / name)
    stale = sorted(set(names) - set(before))
    assert len(stale) == 1, names  # the half-written temporary, next to the intact old file
    assert (folder / stale[0]).stat().st_size > 2**20
    assert torch.load(folder / "latest.pt", weights_only=True)["epoch"] == 1

    # another rank starting does not touch rank 0's folder
    DSDCheckpointer(save_dir=folder, network=_net(), rank=1, resume=False).attach(_engine())
    assert sorted(p.name for p in folder.iterdir()) == names
    # the clean restart: the same checkpointer, rank 0, resumes from the old file and removes the temporary
    engine = _engine()
    ckpt = DSDCheckpointer(save_dir=folder, network=_net(), rank=0)
    ckpt.attach(engine)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (engine.state.epoch, engine.state.iteration, ckpt.best_metric, ckpt.best_epoch) == (1, 2, 0.25, 1)


class _Validator:
    """An evaluator stand-in whose score for each epoch is given."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores = scores
        self.state = type("S", (), {"epoch": 0, "metrics": {}})()

    def validate(self, engine: Engine) -> None:
        self.state.epoch = engine.state.epoch
        self.state.metrics = {"val_mean_dice": self.scores[engine.state.epoch]}


def _train(folder: Path, epochs: int, scores: dict[int, float], rank: int = 0, net=None, **kw) -> DSDCheckpointer:
    net = net or _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    validator = _Validator(scores)

    def step(engine, batch):
        opt.zero_grad()
        loss = net(torch.ones(1, 3)).sum()
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    engine = Engine(step)
    engine.state.max_epochs, engine.state.epoch_length = epochs, 2  # what MONAI's trainer sets before handlers attach
    engine.add_event_handler(Events.EPOCH_COMPLETED, validator.validate)  # before the checkpointer, as in bundles
    ckpt = DSDCheckpointer(save_dir=folder, network=net, optimizer=opt, validator=validator, rank=rank, **kw)
    ckpt.attach(engine)
    engine.run([0, 1], max_epochs=epochs)
    return ckpt


def test_rank_0_alone_writes(tmp_path):
    _train(tmp_path / "r1", 2, {1: 0.5, 2: 0.6}, rank=1)
    assert not (tmp_path / "r1").exists() or list((tmp_path / "r1").iterdir()) == []
    _train(tmp_path / "r0", 2, {1: 0.5, 2: 0.6}, rank=0)
    assert sorted(p.name for p in (tmp_path / "r0").iterdir()) == ["latest.pt", "model.pt"]


def test_best_model_and_latest_follow_the_validation_score(tmp_path):
    net = _net()
    ckpt = _train(tmp_path, 3, {1: 0.5, 2: 0.4, 3: 0.7}, net=net)
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (latest["epoch"], latest["iteration"], latest["best_metric"], latest["best_epoch"]) == (3, 6, 0.7, 3)
    assert set(latest) == {"network", "epoch", "iteration", "best_metric", "best_epoch", "optimizer"}
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(model[k], v) for k, v in net.state_dict().items())  # epoch 3's weights
    assert (ckpt.best_metric, ckpt.best_epoch) == (0.7, 3)
    # a worse last epoch keeps the best model of an earlier one
    net2 = _net()
    _train(tmp_path / "b", 2, {1: 0.9, 2: 0.1}, net=net2)
    model = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert not torch.equal(model["weight"], net2.weight.detach())
    latest = torch.load(tmp_path / "b" / "latest.pt", weights_only=True)
    assert (latest["best_metric"], latest["best_epoch"]) == (0.9, 1)


def test_resume_continues_the_epochs_and_the_best_score(tmp_path):
    _train(tmp_path, 2, {1: 0.5, 2: 0.6})
    net = _net()
    ckpt = _train(tmp_path, 3, {3: 0.55}, net=net)  # resumes at epoch 2: only epoch 3 runs
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (latest["epoch"], latest["iteration"], latest["best_metric"], latest["best_epoch"]) == (3, 6, 0.6, 2)
    assert ckpt.saved_epoch == 3
    # a finished run is not resumed silently
    with pytest.raises(CheckpointError, match=r"finished run \(epoch 3 >= num_epochs 3\): raise --num_epochs above 3"):
        _train(tmp_path, 3, {})
    # without resume the same folder trains from the start
    ckpt = _train(tmp_path, 1, {1: 0.1}, resume=False)
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["epoch"] == 1 and ckpt.best_epoch == 1


def test_a_checkpoint_of_another_network_stops_with_the_fix(tmp_path):
    _train(tmp_path, 1, {1: 0.5})
    engine = _engine()
    other = DSDCheckpointer(save_dir=tmp_path, network=torch.nn.Linear(4, 2), rank=0)
    with pytest.raises(CheckpointError, match="its weights do not fit this network.*--resume false"):
        other.attach(engine)
    (tmp_path / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable DSD checkpoint"):
        DSDCheckpointer(save_dir=tmp_path, network=_net(), rank=0).attach(_engine())
    with pytest.raises(ValueError, match="needs a network and a save_dir or a run"):
        DSDCheckpointer(network=_net())


def _draws(seed: int, rank: int, epoch: int) -> tuple:
    """What each random source gives after the checkpointer's reseed at the start of ``epoch`` on ``rank``."""

    class Transform:
        def set_random_state(self, seed):
            self.rng = np.random.RandomState(seed)

    transform = Transform()
    ckpt = DSDCheckpointer(save_dir="unused", network=_net(), rank=rank, seed=seed, transform=transform)
    engine = _engine()
    engine.state.epoch = epoch
    ckpt.on_epoch_started(engine)
    return float(torch.rand(1)), float(np.random.rand()), random.random(), float(transform.rng.rand())


def test_every_rank_and_epoch_draws_its_own_random_numbers():
    """MULTI_GPU.md: the ranks must not draw the same patches; resume: an epoch replays identically."""
    draws = {(r, e): _draws(100, r, e) for r in (0, 1, 2) for e in (1, 2)}
    for source in range(4):  # torch, numpy, random, the transform chain: each differs for every rank and epoch
        values = [d[source] for d in draws.values()]
        assert len(set(values)) == len(values), source
    assert _draws(100, 1, 2) == draws[1, 2]  # the same (seed, rank, epoch) replays
    assert _draws(101, 1, 2) != draws[1, 2]
    unseeded = DSDCheckpointer(save_dir="unused", network=_net(), rank=0)
    state = torch.random.get_rng_state()
    unseeded.on_epoch_started(_engine())  # no seed: no reseed
    assert torch.equal(torch.random.get_rng_state(), state)
