"""What a bundle run says on the console at its start and end, so a user sees at once what runs and where it went.

MONAI's own handlers log each iteration (``StatsHandler``) and each validation; nothing says before the first
iteration what is about to run (on a CPU that can take a minute), or at the end which file holds the result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["TrainingAnnouncer"]

logger = logging.getLogger(__name__)


class TrainingAnnouncer:
    """Ignite handler of the trainer: one line when training starts, one when it ends.

    ``training 19 case(s), 15 epoch(s) x 19 iteration(s) of 4 patch(es) 32x32x32; device cpu, AMP off,
    dsd_mode dsd; checkpoints -> models/, TensorBoard -> logs/`` and, at the end,
    ``training finished: best val_mean_dice 0.8137 at epoch 15; backbone -> models/model.pt``.
    """

    def __init__(self, num_samples: int, patch_size: Sequence[int], device: Any, amp: bool, dsd_mode: str,
                 ckpt_dir: str, log_dir: str, validator: Any = None, key_metric: str = "val_mean_dice") -> None:
        self.num_samples = int(num_samples)
        self.patch = "x".join(str(int(p)) for p in patch_size)
        self.device, self.amp, self.dsd_mode = str(device), bool(amp), str(dsd_mode)
        self.ckpt_dir, self.log_dir = str(ckpt_dir), str(log_dir)
        self.validator, self.key_metric = validator, key_metric

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def started(self, engine: Any) -> None:
        loader = engine.data_loader
        cases = len(loader.dataset) if hasattr(loader, "dataset") else "?"
        start = f" from epoch {engine.state.epoch + 1}" if engine.state.epoch else ""
        logger.info(f"training {cases} case(s), {engine.state.max_epochs} epoch(s){start} x {engine.state.epoch_length} "
                    f"iteration(s) of {self.num_samples} patch(es) {self.patch}; device {self.device}, AMP "
                    f"{'on' if self.amp else 'off'}, dsd_mode {self.dsd_mode}; checkpoints -> {self.ckpt_dir}, "
                    f"TensorBoard -> {self.log_dir}")

    def completed(self, engine: Any) -> None:
        state = getattr(self.validator, "state", None)
        best = getattr(state, "best_metric", None)
        if best is not None and best != -1:
            result = f"best {self.key_metric} {best:.4f} at epoch {getattr(state, 'best_metric_epoch', '?')}"
        else:
            result = "no validation ran (the last weights are shipped)"
        logger.info(f"training finished: {result}; backbone -> {self.ckpt_dir}/model.pt")
