"""Ignite handlers that MONAI does not provide: crash-safe resume and a backbone-only best model.

MONAI's ``CheckpointSaver`` names files by epoch and forgets the best score when a run restarts, so a resumed run
could overwrite the best model with a worse one. :class:`DSDCheckpointer` keeps one ``latest.pt`` (written
atomically after every epoch, validation included) and restores model, optimizer, scheduler, epoch and best metric
from it when the same command starts again.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn

from .export import atomic_save, backbone_state_dict, load_checkpoint

__all__ = ["DSDCheckpointer"]

logger = logging.getLogger(__name__)


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net


class DSDCheckpointer:
    """Resume from ``<save_dir>/latest.pt``; keep the best backbone in ``<save_dir>/model.pt``.

    Args:
        save_dir: the bundle's ``models`` folder.
        network: the trained network (DSD wrapper, possibly DDP-wrapped); only its backbone is written to model.pt.
        optimizer, lr_scheduler: restored on resume.
        validator: the evaluator whose ``key_metric`` (higher is better) selects the best model.
        key_metric: name of the metric in ``validator.state.metrics``.
        resume: load ``latest.pt`` when it exists.
        rank: only rank 0 writes files (multi-GPU); every rank resumes.
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
        rank: int = 0,
    ) -> None:
        self.save_dir = Path(save_dir)
        self.network, self.optimizer, self.lr_scheduler = network, optimizer, lr_scheduler
        self.validator, self.key_metric = validator, key_metric
        self.resume = resume
        self.model_path = self.save_dir / model_filename
        self.latest_path = self.save_dir / latest_filename
        self.rank = rank
        self.best_metric = -math.inf
        self.best_epoch = -1

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.on_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.on_epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.on_completed)

    # -- resume -------------------------------------------------------------------------------------------------
    def on_started(self, engine: Engine) -> None:
        if not (self.resume and self.latest_path.exists()):
            return
        ckpt = load_checkpoint(self.latest_path)
        _unwrap(self.network).load_state_dict(ckpt["network"], strict=True)
        if self.optimizer is not None and "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.lr_scheduler is not None and "lr_scheduler" in ckpt:
            self.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
        engine.state.epoch = int(ckpt["epoch"])
        engine.state.iteration = int(ckpt["iteration"])
        self.best_metric = float(ckpt.get("best_metric", -math.inf))
        self.best_epoch = int(ckpt.get("best_epoch", -1))
        if self.validator is not None:
            self.validator.state.best_metric = self.best_metric
            self.validator.state.best_metric_epoch = self.best_epoch
        logger.info(
            f"Resumed from {self.latest_path}: epoch {engine.state.epoch}, best {self.key_metric} "
            f"{self.best_metric:.4f} (epoch {self.best_epoch}). Delete it to start from scratch."
        )

    # -- save ---------------------------------------------------------------------------------------------------
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
        state = {
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
        atomic_save(state, self.latest_path)

    def on_completed(self, engine: Engine) -> None:
        # A run without any validation (e.g. val_interval > num_epochs) still ships a model.
        if self.rank == 0 and (self.best_epoch < 0 or not self.model_path.exists()):
            self._save_backbone()
