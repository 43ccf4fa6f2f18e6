"""The training handlers of the bundles: the checkpointer (exact resume, a backbone-only best model, atomic writes,
run folders) and the finite-loss guard.

MONAI's ``CheckpointSaver`` can keep a key-metric checkpoint (``key_metric_filename``) and save the key metric's
state with it (``key_metric_save_state``), and ``CheckpointLoader`` restores objects. What :class:`DSDCheckpointer`
adds, and why it is one handler rather than that pair:

* every file is written atomically (temporary file, fsync, rename), so a kill or power cut mid-save leaves the old
  file, and a half-written temporary is cleaned up on the next start; a write that fails (full disk, no permission)
  stops the run with the file, the reason and the space it needed, the previous file intact;
* the best model is written as the *backbone only* (the run's ``model.pt``, published as ``models/model.pt``, what
  inference and MONAI Label load), while ``latest.pt`` holds the whole DSD wrapper, optimizer, scheduler, AMP scaler,
  epoch and best score;
* with a :class:`~dsd_components.runs.TrainingRun` every run writes into its own folder under ``models/runs/``, so
  training again never overwrites an earlier run, and the model ``models/model.pt`` held before is named in the log;
* resume is automatic and exact: the same command restarts from the unfinished run's ``latest.pt``, and with ``seed``
  every random number source is reseeded from (seed, rank, epoch) at the start of each epoch, so the interrupted
  epoch is replayed identically (with ``num_workers 0``);
* weights that turned NaN or Inf are never saved as ``latest.pt``;
* a checkpoint that does not fit stops the run before any work, with one message naming the file and the fix
  (:class:`~dsd_components.errors.CheckpointError`).

:class:`FiniteLossGuard` stops a training at the first NaN or Inf loss, before the epoch's checkpoint, naming the
epoch, iteration, loss terms and cases; under AMP it counts the optimizer steps the GradScaler skips.
"""

from __future__ import annotations

import logging
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch import nn

from .errors import CheckpointError, NonFiniteLossError
from .export import atomic_save, backbone_state_dict, load_checkpoint
from .runs import TrainingRun, process_rank

__all__ = ["DSDCheckpointer", "FiniteLossGuard", "epoch_seed"]

logger = logging.getLogger(__name__)


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else net


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for (seed, rank, epoch): independent streams per epoch and per DDP rank."""
    return int(np.random.SeedSequence([int(seed) % 2**32, int(rank), int(epoch)]).generate_state(1)[0])


class DSDCheckpointer:
    """Resume from ``latest.pt``; keep the best backbone as ``model.pt``; both in the run's folder.

    Args:
        save_dir: where ``latest.pt`` and ``model.pt`` go when no ``run`` is given (a plain folder, no run records).
        network: the trained network (DSD wrapper, possibly DDP-wrapped); only its backbone is written to model.pt.
        optimizer, lr_scheduler: restored on resume.
        validator: the evaluator whose ``key_metric`` (higher is better) selects the best model.
        key_metric: name of the metric in ``validator.state.metrics``.
        resume: load ``latest.pt`` when it exists (with ``run``: the run decided, ``run.resuming``).
        rank: only rank 0 writes files (multi-GPU); every rank resumes. ``None``: this process's rank in the
            initialised process group (0 without one).
        seed: when given, torch / numpy / random and ``transform`` are reseeded from (seed, rank, epoch) at the start
            of every epoch, so an interrupted epoch is replayed identically after resume.
        transform: the training transform chain (a MONAI ``Randomizable`` such as ``Compose``) to reseed.
        run: the :class:`~dsd_components.runs.TrainingRun` (bundle configs: ``@training_run``): files go to its
            folder, each new best is published as ``models/model.pt``, and ``run.json`` records progress.

    The checkpoint is read when the handler is attached, before the trainer runs, so ignite logs
    "Engine run resuming from iteration X, epoch Y" and a checkpoint that does not fit the network stops the run
    with one clear message instead of a traceback.

    Raises:
        ValueError: neither ``save_dir`` nor ``run`` given.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike | None = None,
        network: nn.Module | None = None,
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
        run: TrainingRun | None = None,
    ) -> None:
        if run is not None:
            save_dir, resume = run.dir, run.resuming
        if save_dir is None or network is None:
            raise ValueError("DSDCheckpointer needs a network and a save_dir or a run.")
        self.run = run
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
        self.saved_epoch = 0
        self._resume_epoch: int | None = None
        self._resume_iteration = 0
        self._scaler_state: dict | None = None

    @property
    def rank(self) -> int:
        """Resolved when used: bundles may build handlers before ``initialize`` sets up the process group."""
        return process_rank(self._rank)

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
        if self.run is not None:
            self.run.stop("its latest.pt cannot be resumed")
        raise CheckpointError(
            f"cannot resume from {self.latest_path}: {what} ({type(exc).__name__}: {first}). It was probably written "
            "by a different network or settings (--dsd_mode, network_def, patch_size): pass --resume false to start "
            "a new run (this one stays as it is), or move it away.") from exc

    def _load(self, engine: Engine) -> None:
        try:
            ckpt = load_checkpoint(self.latest_path)
            epoch, iteration = int(ckpt["epoch"]), int(ckpt["iteration"])
        except Exception as exc:  # truncated copy, not a checkpoint, pickled objects
            self._fail("the file is not a readable DSD checkpoint", exc)
        max_epochs = getattr(engine.state, "max_epochs", None)
        if max_epochs is not None and epoch >= max_epochs:
            # a TrainingRun starts a new run folder instead; a plain save_dir has no place to keep this one
            if self.run is not None:
                self.run.stop("finished run chosen for resume")
            raise CheckpointError(
                f"{self.latest_path} is a finished run (epoch {epoch} >= num_epochs {max_epochs}): raise --num_epochs "
                f"above {epoch} to continue it, or train into another folder.")
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
        self.saved_epoch = epoch
        if self.run is not None:
            self.run.saved_epoch = epoch
        # set before Engine.run(): ignite then logs "Engine run resuming from iteration X, epoch Y"
        engine.state.epoch, engine.state.iteration = epoch, iteration
        self.best_metric = float(ckpt.get("best_metric", -math.inf))
        self.best_epoch = int(ckpt.get("best_epoch", -1))
        if self.validator is not None:
            self.validator.state.best_metric = self.best_metric
            self.validator.state.best_metric_epoch = self.best_epoch
        logger.info(
            f"Resumed from {self.latest_path}: epoch {epoch}, iteration {iteration}, best {self.key_metric} "
            f"{self.best_metric:.4f} (epoch {self.best_epoch}). Pass --resume false to start a new run instead."
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

    def _write_failed(self, engine: Engine, exc: CheckpointError) -> CheckpointError:
        """The write error with what it means for the training: where it stopped and where it resumes."""
        epoch = engine.state.epoch
        resume = (f"it resumes from epoch {self.saved_epoch} ({self.latest_path})" if self.saved_epoch
                  else "it trains from the start")
        if self.run is not None:
            self.run.stop(f"a checkpoint write failed in epoch {epoch}")
        err = CheckpointError(f"training stopped at the end of epoch {epoch}: {exc} Then run the same command: "
                              f"{resume}.")
        err.errno = getattr(exc, "errno", None)  # type: ignore[attr-defined]
        return err

    def _save_backbone(self, engine: Engine, value: float | None) -> None:
        """The run's best backbone; with a run, also published as ``models/model.pt``.

        Raises:
            CheckpointError: a write failed (full disk, no permission); the previous files are unchanged.
        """
        epoch = engine.state.epoch
        try:
            atomic_save(backbone_state_dict(_unwrap(self.network).state_dict()), self.model_path)
            where = self.run.publish(self.key_metric, value, epoch) if self.run is not None else ""
        except CheckpointError as exc:
            raise self._write_failed(engine, exc) from exc
        score = f"New best {self.key_metric} {value:.4f} at epoch {epoch}" if value is not None else (
            f"No validation score: the weights after epoch {epoch}")
        logger.info(f"{score}: saved {self.model_path}" + (f", {where}" if where else ""))

    def _check_finite_weights(self, engine: Engine) -> None:
        """Raises:
            NonFiniteLossError: a weight is NaN/Inf (e.g. an overflow with a finite loss): not saved."""
        bad = [n for n, p in _unwrap(self.network).named_parameters() if not bool(torch.isfinite(p).all())]
        if not bad:
            return
        keeps = (f"{self.latest_path} keeps epoch {self.saved_epoch}, the last finite state" if self.saved_epoch
                 else f"no {self.latest_path.name} was written yet")
        if self.run is not None:
            self.run.stop(f"non-finite weights in epoch {engine.state.epoch}")
        raise NonFiniteLossError(
            f"training stopped at the end of epoch {engine.state.epoch}: {len(bad)} weight tensor(s) became NaN/Inf "
            f"(first: {bad[0]}) although every loss was finite (an overflow in the gradients); not saved, {keeps}. "
            "Start a new run with a lower --learning_rate (--resume false).")

    def on_epoch_completed(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if self.rank == 0:
            self._check_finite_weights(engine)
        v = self.validator
        if v is not None and getattr(v.state, "epoch", None) == epoch and self.key_metric in v.state.metrics:
            value = float(v.state.metrics[self.key_metric])
            if value > self.best_metric:
                self.best_metric, self.best_epoch = value, epoch
                if self.rank == 0:
                    self._save_backbone(engine, value)
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
        try:
            atomic_save(state, self.latest_path)
        except CheckpointError as exc:
            raise self._write_failed(engine, exc) from exc
        self.saved_epoch = epoch
        if self.run is not None:
            try:
                self.run.record(epoch=epoch, iteration=engine.state.iteration, key_metric=self.key_metric,
                                best_metric=None if self.best_epoch < 0 else self.best_metric,
                                best_epoch=None if self.best_epoch < 0 else self.best_epoch)
            except CheckpointError as exc:
                raise self._write_failed(engine, exc) from exc

    def on_completed(self, engine: Engine) -> None:
        # A run without any validation (e.g. val_interval > num_epochs) still ships a model.
        if self.rank == 0 and (self.best_epoch < 0 or not self.model_path.exists()):
            self._save_backbone(engine, None)
        if self.run is not None:
            self.run.finish()


# names of DSDLoss.last_terms in messages
TERM_NAMES = {"main": "main DiceCE", "ds": "deep supervision", "kl_enc": "encoder KL", "kl_dec": "decoder KL",
              "l2_enc": "encoder L2", "l2_dec": "decoder L2"}


def _first_output(output: Any) -> Any:
    """MONAI decollates the engine's output into a list of per-item dicts; each carries the batch's loss."""
    if isinstance(output, (list, tuple)) and output:
        return output[0]
    return output


def _scalar(value: Any) -> float | None:
    try:
        return float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
    except (TypeError, ValueError):
        return None


def batch_cases(batch: Any, image_key: str = "image") -> list[tuple[str, bool]]:
    """``[(file the item came from, its image is all finite), ...]`` of a batch (collated or decollated), from the
    image's MetaTensor ``filename_or_obj`` (or the ``<key>_meta_dict`` of older pipelines); each file once."""
    items = batch if isinstance(batch, (list, tuple)) else [batch]
    found: dict[str, bool] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        image = item.get(image_key)
        meta = getattr(image, "meta", None) or item.get(f"{image_key}_meta_dict") or {}
        names = meta.get("filename_or_obj")
        names = names if isinstance(names, (list, tuple)) else [names]
        finite = bool(torch.isfinite(image).all()) if isinstance(image, torch.Tensor) else True
        for name in names:
            if name:
                found[str(name)] = found.get(str(name), True) and finite
    return list(found.items())


class FiniteLossGuard:
    """Stop a training at the first NaN or Inf loss, before the epoch's checkpoint could save poisoned weights.

    Checked after every iteration (``engine.state.output['loss']``): the run stops with
    :class:`~dsd_components.errors.NonFiniteLossError` naming the epoch, the iteration, the loss terms that are not
    finite (from ``loss_function.last_terms``: main DiceCE, deep supervision, encoder KL, decoder KL), the cases in
    the batch (and which of them hold NaN/Inf voxels), and the epoch ``latest.pt`` keeps. ``latest.pt`` is written
    only at the end of an epoch, so it keeps the last finite state.

    Under AMP a skipped optimizer step is not a failure: the GradScaler skips steps whose *gradients* overflow and
    lowers its scale (the loss stays finite). Those steps are counted (scale lower after the step than before it) and
    logged per epoch, and the run's total goes to ``run.json``.

    Args:
        loss_function: the training loss; its ``last_terms`` (DSDLoss) name the terms. Optional.
        run: the :class:`~dsd_components.runs.TrainingRun`: its record says why the run stopped, and its lock is
            released.
        output_key, image_key: where the loss and the image are in the engine's output and batch.
    """

    def __init__(self, loss_function: Any = None, run: TrainingRun | None = None, output_key: str = "loss",
                 image_key: str = "image") -> None:
        self.loss_function = loss_function
        self.run = run
        self.output_key, self.image_key = output_key, image_key
        self.skipped_epoch = 0
        self.skipped_total = 0
        self._scale_before: float | None = None

    def attach(self, engine: Engine) -> None:
        if self.run is not None and self.run.resuming:
            self.skipped_total = int(self.run.get("amp_skipped_steps", 0) or 0)
        engine.add_event_handler(Events.ITERATION_STARTED, self.before_step)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.check)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.report_skipped)

    @staticmethod
    def _scaler(engine: Engine) -> Any:
        scaler = getattr(engine, "scaler", None)
        return scaler if scaler is not None and scaler.is_enabled() else None

    def before_step(self, engine: Engine) -> None:
        scaler = self._scaler(engine)
        self._scale_before = float(scaler.get_scale()) if scaler is not None else None

    def check(self, engine: Engine) -> None:
        """Raises:
            NonFiniteLossError: the loss is NaN or Inf."""
        scaler = self._scaler(engine)
        if scaler is not None and self._scale_before is not None and float(scaler.get_scale()) < self._scale_before:
            self.skipped_epoch += 1
            self.skipped_total += 1
        out = _first_output(engine.state.output)
        value = _scalar(out.get(self.output_key)) if isinstance(out, dict) else _scalar(out)
        if value is None or math.isfinite(value):
            return
        message = self.message(engine, value)
        if self.run is not None:
            self.run.stop(f"non-finite loss at epoch {engine.state.epoch}")
        raise NonFiniteLossError(message)

    def message(self, engine: Engine, value: float) -> str:
        state = engine.state
        length = state.epoch_length or 0
        in_epoch = (state.iteration - 1) % length + 1 if length else state.iteration
        terms = getattr(self.loss_function, "last_terms", None) or {}
        bad_terms = []
        for key, term in terms.items():
            v = _scalar(term)
            if v is not None and not math.isfinite(v):
                bad_terms.append(f"{TERM_NAMES.get(key, key)} ({v})")
        cases = batch_cases(state.batch, self.image_key)
        case_text = ", ".join(name + ("" if finite else " (its image holds NaN/Inf voxels)") for name, finite in cases)
        bad_input = any(not finite for _, finite in cases)
        saved = self.run.saved_epoch if self.run is not None else None
        latest = self.run.latest_path if self.run is not None else "latest.pt"
        keeps = (f"{latest} keeps epoch {saved}, the last finite state" if saved
                 else f"no {Path(str(latest)).name} was written yet (the first epoch)")
        fix = ("Fix or remove the case(s) with NaN/Inf voxels (dsd-check-data lists them) and run the same command to "
               "resume" if bad_input else
               "Check these cases (dsd-check-data), or start a new run with a lower --learning_rate (--resume false)"
               " or --amp false")
        return (f"training stopped: the loss is {value} at epoch {state.epoch}, iteration {in_epoch} of {length} "
                f"(iteration {state.iteration} overall); non-finite term(s): {', '.join(bad_terms) or 'unknown'}; "
                f"case(s) in the batch: {case_text or 'unknown'}. Nothing was saved from this epoch: {keeps}. {fix}.")

    def report_skipped(self, engine: Engine) -> None:
        if self._scaler(engine) is None:
            return
        if self.skipped_epoch:
            scale = float(engine.scaler.get_scale())
            logger.info(f"AMP: the GradScaler skipped {self.skipped_epoch} of {engine.state.epoch_length} optimizer "
                        f"steps in epoch {engine.state.epoch} (inf/NaN gradients; scale now {scale:g}), "
                        f"{self.skipped_total} in this run: expected while the scale settles, not an error.")
        if self.run is not None:
            self.run.record(amp_skipped_steps=self.skipped_total)
        self.skipped_epoch = 0
