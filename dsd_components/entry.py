"""What a bundle config calls first: where the bundle is, and how a user's error ends the run.

``python -m monai.bundle run --config_file bundles/NAME/configs/train.json`` works from the repository root, from the
bundle folder and from a copy anywhere because ``bundle_root`` is the folder above the ``configs/`` of the config file
given on the command line (:func:`bundle_root`); MONAI Label and the model zoo pass ``--bundle_root`` themselves.

Library code raises :class:`~dsd_components.errors.DSDUserError`; :func:`install_error_handler`, the first step of
every bundle config's ``initialize``, makes such an error end the process with its message on one screen and exit
code 2 instead of a traceback through MONAI's config runner (releasing the bundle's training or evaluation lock
first). Other exceptions (bugs) keep their traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from types import TracebackType

from .errors import DSDUserError, error_in_chain

__all__ = ["bundle_root", "install_error_handler", "report_user_error", "user_error_in"]


def bundle_root(argv: Sequence[str] | None = None) -> str:
    """The bundle folder of the first ``--config_file`` on the command line (``--config_file X`` or ``=X``, also
    MONAI's list form ``"['a.json','b.json']"``), or the working directory when there is none."""
    argv = list(sys.argv if argv is None else argv)
    for i, arg in enumerate(argv):
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        else:
            continue
        first = value.strip("[]'\" ").split(",")[0].strip("'\" ")
        if first:
            return os.path.dirname(os.path.dirname(os.path.abspath(first)))
    return os.getcwd()


def user_error_in(exc: BaseException | None) -> DSDUserError | None:
    """The :class:`DSDUserError` behind ``exc``, if any: MONAI's config parser wraps an exception raised while it
    evaluates an expression or instantiates a component in ``RuntimeError("Failed to evaluate ...")``, so the user's
    error is found along the ``__cause__`` / ``__context__`` chain."""
    return error_in_chain(exc, DSDUserError)


def report_user_error(error: BaseException, stream=None) -> None:
    """Print a user error once, as ``ERROR: <message>``, without a traceback."""
    stream = sys.stderr if stream is None else stream
    print(f"ERROR: {error}", file=stream, flush=True)


def _hook(previous):
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        error = user_error_in(exc)
        if error is None:
            previous(exc_type, exc, tb)
            return
        report_user_error(error)
        runs = sys.modules.get(f"{__package__}.runs")
        if runs is not None:  # os._exit skips atexit: release this process's bundle locks here
            runs.release_held_locks()
        logging.shutdown()
        sys.stdout.flush()
        # An exception reaching the interpreter ends with status 1 and excepthook cannot change that; a user error
        # is status 2 (like a bad command line). Nothing is left to clean up: the error stopped the run before or
        # between steps, and every file the bundle writes is written atomically.
        os._exit(error.exit_code)

    hook.dsd_user_error_hook = True  # type: ignore[attr-defined]
    return hook


class _NoTracebackForUserErrors(logging.Filter):
    """Ignite's engines ("Engine run is terminating due to exception: ...") and MONAI's StatsHandler (with the whole
    traceback) log every exception that ends a run. For a user error (a NaN loss, a full disk) those records are
    dropped: the error hook prints its message once, as the run's last line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]  # ignite logs inside its except block
        return user_error_in(exc) is None


# loggers that report the exception ending a run (ignite names its engines' loggers after their class)
_TRACEBACK_LOGGERS = ("monai.handlers.StatsHandler", "ignite.engine.engine.SupervisedTrainer",
                      "ignite.engine.engine.SupervisedEvaluator")


def install_error_handler() -> bool:
    """Route uncaught :class:`DSDUserError` to a one-screen message and exit code 2 (idempotent; returns True)."""
    if not getattr(sys.excepthook, "dsd_user_error_hook", False):
        sys.excepthook = _hook(sys.excepthook)
    for name in _TRACEBACK_LOGGERS:
        if name in logging.root.manager.loggerDict or name.startswith("ignite."):
            log = logging.getLogger(name)
        else:  # set up as MONAI sets it up on first use (its own stdout handler), so its output is unchanged
            from monai.apps import get_logger

            log = get_logger(name)
        if not any(isinstance(f, _NoTracebackForUserErrors) for f in log.filters):
            log.addFilter(_NoTracebackForUserErrors())
    return True
