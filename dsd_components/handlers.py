"""The training checkpointer of the bundles: exact resume, a backbone-only best model, atomic writes.

MONAI's ``CheckpointSaver`` can keep a key-metric checkpoint (``key_metric_filename``) and save the key metric's
state with it (``key_metric_save_state``), and ``CheckpointLoader`` restores objects. What :class:`DSDCheckpointer`
adds, and why it is one handler rather than that pair:

* every file is written atomically (temporary file, fsync, rename), so a kill or power cut mid-save leaves the old
  file, and a half-written temporary is cleaned up on the next start;
* the best model is written as the *backbone only* (``models/model.pt``, what inference and MONAI Label load), while
  ``latest.pt`` holds the whole DSD wrapper, optimizer, scheduler, AMP scaler, epoch and best score;
* resume is automatic and exact: the same command restarts from ``latest.pt``, and with ``seed`` every random number
  source is reseeded from (seed, rank, epoch) at the start of each epoch, so the interrupted epoch is replayed
  identically (with ``num_workers 0``);
* a finished run is archived rather than resumed, so pressing "Train" again trains again;
* a checkpoint that does not fit stops the run before any work, with one message naming the file and the fix
  (:class:`~dsd_components.errors.CheckpointError`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch import nn

from .errors import CheckpointError
from .export import atomic_save, backbone_state_dict, load_checkpoint

__all__ = ["DSDCheckpointer", "epoch_seed"]

logger = logging.getLogger(__name__)


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for (seed, rank, epoch): independent streams per epoch and per DDP rank."""
    return int(np.random.SeedSequence([int(seed) % 2**32, int(rank), int(epoch)]).generate_state(1)[0])


class DSDCheckpointer:
    """Resume from ``<save_dir>/latest.pt``; keep the best backbone in ``<save_dir>/model.pt``.

    Args:
        save_dir: the bundle's ``models`` folder.
        network: the trained network (DSD wrapper, possibly DDP-wrapped); only its backbone is written to model.pt.
        optimizer, lr_scheduler: restored on resume.
        validator: the evaluator whose ``key_metric`` (higher is better) selects the best model.
        key_metric: name of the metric in ``validator.state.metrics``.
        resume: load ``latest.pt`` when it exists.
        rank: only rank 0 writes files (multi-GPU); every rank resumes. ``None``: this process's rank in the
            initialised process group (0 without one).
        seed: when given, torch / numpy / random and ``transform`` are reseeded from (seed, rank, epoch) at the start
            of every epoch, so an interrupted epoch is replayed identically after resume.
        transform: the training transform chain (a MONAI ``Randomizable`` such as ``Compose``) to reseed.

    The checkpoint is read when the handler is attached, before the trainer runs, so ignite logs
    "Engine run resuming from iteration X, epoch Y" and a checkpoint that does not fit the network stops the run
    with one clear message instead of a traceback.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        network: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        lr_scheduler: Any = None,
        validator: Engine | None = None,
        key_metric: str = "val_mean_dice",
        resume: bool = True,
        model_filename: str = "model.pt",
        latest_filename: str = "latest.pt",
        rank: int | None = None,
        seed: int | None = None,
        transform: Any = None,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.network, self.optimizer, self.lr_scheduler = network, optimizer, lr_scheduler
        self.validator, self.key_metric = validator, key_metric
        self.resume = resume
        self.model_path = self.save_dir / model_filename
        self.latest_path = self.save_dir / latest_filename
        self._rank = rank
        self.seed = None if seed is None else int(seed)
        self.transform = transform
        self.best_metric = -math.inf
        self.best_epoch = -1
        self._resume_epoch: int | None = None
        self._resume_iteration = 0
        self._scaler_state: dict | None = None

    @property
    def rank(self) -> int:
        """Resolved when used: bundles may build handlers before ``initialize`` sets up the process group."""
        if self._rank is not None:
            return self._rank
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
        return int(os.environ.get("RANK", 0))  # torchrun's rank, also before the process group exists

    def attach(self, engine: Engine) -> None:
        if self.rank == 0:
            self._remove_stale_tmp()
        if self.resume and self.latest_path.exists():
            self._load(engine)
        engine.add_event_handler(Events.STARTED, self.on_started)
        engine.add_event_handler(Events.EPOCH_STARTED, self.on_epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.on_epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.on_completed)

    # -- resume -------------------------------------------------------------------------------------------------
    def _fail(self, what: str, exc: BaseException) -> None:
        """Raises:
            CheckpointError: naming the file, what is wrong and the fix."""
        first = (str(exc).splitlines() or [""])[0][:300]
        raise CheckpointError(
            f"cannot resume from {self.latest_path}: {what} ({type(exc).__name__}: {first}). It was probably written "
            "by a different network or settings (--dsd_mode, network_def, patch_size): move or delete it to start "
            "from scratch, or pass --resume false.") from exc

    def _archive_finished_run(self, epoch: int, max_epochs: int) -> None:
        """A finished run is not resumed: keep its files in ``previous_run/`` and start a new run.

        Re-running a finished command, or MONAI Label's "Train" button pressed again, then trains anew (MONAI Label
        warm-starts it from ``model.pt``) instead of stopping with nothing to do, and no earlier result is lost.
        """
        archive = self.save_dir / "previous_run"
        if self.rank == 0:
            archive.mkdir(parents=True, exist_ok=True)
            if self.model_path.exists():
                shutil.copy2(self.model_path, archive / self.model_path.name)
            os.replace(self.latest_path, archive / self.latest_path.name)
        logger.warning(
            f"{self.latest_path} is a finished run (epoch {epoch} >= num_epochs {max_epochs}): starting a new run; the "
            f"finished run's checkpoint and best model are kept in {archive}. Raise --num_epochs above {epoch} to "
            "continue the finished run instead."
        )

    def _load(self, engine: Engine) -> None:
        try:
            ckpt = load_checkpoint(self.latest_path)
            epoch, iteration = int(ckpt["epoch"]), int(ckpt["iteration"])
        except Exception as exc:  # truncated copy, not a checkpoint, pickled objects
            self._fail("the file is not a readable DSD checkpoint", exc)
        max_epochs = getattr(engine.state, "max_epochs", None)
        if max_epochs is not None and epoch >= max_epochs:
            self._archive_finished_run(epoch, max_epochs)
            return
        try:
            _unwrap(self.network).load_state_dict(ckpt["network"], strict=True)
        except Exception as exc:
            self._fail("its weights do not fit this network", exc)
        try:
            if self.optimizer is not None and "optimizer" in ckpt:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.lr_scheduler is not None and "lr_scheduler" in ckpt:
                self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        except Exception as exc:
            self._fail("its optimizer or scheduler state does not fit", exc)
        self._scaler_state = ckpt.get("scaler")
        epoch_length = getattr(engine.state, "epoch_length", None)
        if epoch_length and iteration != epoch * epoch_length:
            logger.warning(f"{self.latest_path}: {iteration} iterations in {epoch} epochs but an epoch is now "
                           f"{epoch_length} iterations (the data changed): counting from iteration {epoch * epoch_length}")
            iteration = epoch * epoch_length
        self._resume_epoch, self._resume_iteration = epoch, iteration
        # set before Engine.run(): ignite then logs "Engine run resuming from iteration X, epoch Y"
        engine.state.epoch, engine.state.iteration = epoch, iteration
        self.best_metric = float(ckpt.get("best_metric", -math.inf))
        self.best_epoch = int(ckpt.get("best_epoch", -1))
        if self.validator is not None:
            self.validator.state.best_metric = self.best_metric
            self.validator.state.best_metric_epoch = self.best_epoch
        logger.info(
            f"Resumed from {self.latest_path}: epoch {epoch}, iteration {iteration}, best {self.key_metric} "
            f"{self.best_metric:.4f} (epoch {self.best_epoch}). Delete it (or pass --resume false) to start from scratch."
        )

    def on_started(self, engine: Engine) -> None:
        if self._resume_epoch is None:
            return
        scaler = getattr(engine, "scaler", None)  # MONAI's trainer creates its AMP scaler in run()
        if scaler is not None and self._scaler_state:
            scaler.load_state_dict(self._scaler_state)

    def on_epoch_started(self, engine: Engine) -> None:
        if self.seed is None:
            return
        s = epoch_seed(self.seed, engine.state.epoch, self.rank)
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s)
        if self.transform is not None and hasattr(self.transform, "set_random_state"):
            self.transform.set_random_state(seed=s)

    # -- save ---------------------------------------------------------------------------------------------------
    def _remove_stale_tmp(self) -> None:
        """Half-written temporaries left by a run killed inside atomic_save."""
        if not self.save_dir.is_dir():
            return
        for name in (self.latest_path.name, self.model_path.name):
            for tmp in self.save_dir.glob(f".{name}.*.tmp"):
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def _save_backbone(self) -> None:
        atomic_save(backbone_state_dict(_unwrap(self.network).state_dict()), self.model_path)

    def on_epoch_completed(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        v = self.validator
        if v is not None and getattr(v.state, "epoch", None) == epoch and self.key_metric in v.state.metrics:
            value = float(v.state.metrics[self.key_metric])
            if value > self.best_metric:
                self.best_metric, self.best_epoch = value, epoch
                if self.rank == 0:
                    self._save_backbone()
                    logger.info(f"New best {self.key_metric} {value:.4f} at epoch {epoch}: saved {self.model_path}")
        if self.rank != 0:
            return
        state: dict[str, Any] = {
            "network": _unwrap(self.network).state_dict(),
            "epoch": epoch,
            "iteration": engine.state.iteration,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
        }
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        scaler = getattr(engine, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        atomic_save(state, self.latest_path)

    def on_completed(self, engine: Engine) -> None:
        # A run without any validation (e.g. val_interval > num_epochs) still ships a model.
        if self.rank == 0 and (self.best_epoch < 0 or not self.model_path.exists()):
            self._save_backbone()
