"""What MONAI's ``--tracking mlflow`` leaves out: a run's DSD and training settings and each DSD loss term.

``python -m monai.bundle run ... --tracking mlflow`` appends MONAI's ``MLFlowHandler`` to the bundle's handler lists;
it logs the total loss, the learning rate and the validation metrics. Runs of an ablation differ in their settings
(``dsd_mode``, loss weights, temperature, ...) and are told apart by their loss terms, so :class:`MLflowRunDetails`
(listed in the bundles' handler lists before MONAI's handler is appended) hands the settings to that handler as
``experiment_param`` (logged as the run's params when the run starts) and logs ``DSDLoss.last_terms`` (``main``,
``ds``, ``kl_enc``, ``kl_dec``) into the same run. Without ``--tracking`` no ``MLFlowHandler`` is attached and it does
nothing, so the runtime never needs mlflow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

__all__ = ["MLflowRunDetails", "mlflow_handlers"]


def mlflow_handlers(engine: Engine) -> list[Any]:
    """The MONAI ``MLFlowHandler`` objects attached to ``engine`` (found by their ``STARTED`` callback).

    Ignite keeps no public list of attached handlers, so the engine's event table is read; a handler is recognised by
    the class of the object its bound ``start`` method belongs to."""
    from monai.handlers import MLFlowHandler

    found: list[Any] = []
    for entry in getattr(engine, "_event_handlers", {}).get(Events.STARTED, []):
        owner = getattr(entry[0], "__self__", None)
        if isinstance(owner, MLFlowHandler) and all(owner is not f for f in found):
            found.append(owner)
    return found


def _scalar(value: Any) -> float:
    return float(value.detach().float().item()) if hasattr(value, "detach") else float(value)


class MLflowRunDetails:
    """Log a run's settings as MLflow params and each DSD loss term as MLflow metrics, into the run that MONAI's
    ``MLFlowHandler`` (``--tracking mlflow``) opens on the same engine.

    Args:
        params: ``{name: value}`` logged once as params (values as strings, as MLflow stores them), e.g. ``dsd_mode``,
            ``dsd_lambda``, ``temperature``, ``patch_size``, ``fold``, ``learning_rate``, ``num_epochs``, ``seed``.
        loss: the trainer's :class:`~dsd_components.loss.DSDLoss` (or anything with a ``last_terms`` dict of
            tensors); each term ``k`` is logged as ``loss_k`` per iteration and ``epoch_loss_k`` (mean) per epoch.
            ``None`` (evaluation) logs params only.
        prefix: metric name prefix of the loss terms.
    """

    def __init__(self, params: Mapping[str, Any], loss: Any = None, prefix: str = "loss_") -> None:
        self.params = {str(k): v for k, v in dict(params).items()}
        self.loss = loss
        self.prefix = prefix
        self._handlers: list[Any] = []
        self._sums: dict[str, float] = {}
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        if self.loss is not None:
            engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)

    def _started(self, engine: Engine) -> None:
        self._handlers = mlflow_handlers(engine)
        params = {k: str(v) for k, v in self.params.items()}
        for h in self._handlers:
            if h.cur_run is None:  # the usual order: MONAI's handler is appended after ours and starts the run next
                h.experiment_param = {**(h.experiment_param or {}), **params}
            else:
                self._log(h, params=params)

    def _reset(self, engine: Engine) -> None:
        self._sums, self._count = {}, 0

    def _iteration(self, engine: Engine) -> None:
        if not self._handlers:
            return
        terms = {k: _scalar(v) for k, v in (getattr(self.loss, "last_terms", None) or {}).items()}
        if not terms:
            return
        for k, v in terms.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        self._log_metrics({f"{self.prefix}{k}": v for k, v in terms.items()}, engine.state.iteration)

    def _epoch(self, engine: Engine) -> None:
        if self._handlers and self._count:
            self._log_metrics({f"epoch_{self.prefix}{k}": s / self._count for k, s in self._sums.items()},
                              engine.state.epoch)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for h in self._handlers:
            if h.cur_run is not None:
                self._log(h, metrics=metrics, step=step)

    @staticmethod
    def _log(handler: Any, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
             step: int = 0) -> None:
        import mlflow

        now = int(time.time() * 1000)
        handler.client.log_batch(
            run_id=handler.cur_run.info.run_id,
            metrics=[mlflow.entities.Metric(k, v, now, step) for k, v in (metrics or {}).items()],
            params=[mlflow.entities.Param(k, v) for k, v in (params or {}).items()], tags=[])
