"""Errors a user can fix: each message names the file or setting and what to do.

Library code raises these; it never ends the process. Two places turn them into a one-screen message and exit
code 2: the tooling's console commands (``dsd_tools``) and a bundle's own entry
(:func:`dsd_components.entry.install_error_handler`, the first step of every bundle config's ``initialize``).
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["DSDUserError", "DatalistError", "DatasetIntegrityError", "CheckpointError", "ConfigValueError",
           "RunLockedError", "NonFiniteLossError", "RunNotFoundError", "error_in_chain"]


class DSDUserError(Exception):
    """Base class: a problem with the user's data, files or settings, explained in ``str(error)``."""

    exit_code = 2


class DatalistError(DSDUserError, ValueError):
    """A datalist cannot be built; the message names the file or folder and what to do."""


class DatasetIntegrityError(DSDUserError, ValueError):
    """The data check found problems; ``report.errors`` has one line per problem (file, what is wrong, the fix)."""

    def __init__(self, report) -> None:  # report: dsd_components.integrity.IntegrityReport
        self.report = report
        head = getattr(report, "context", "") or f"{len(report.errors)} problem(s) found before running"
        super().__init__(f"{head}:\n" + "\n".join(f"  - {e}" for e in report.errors))


class CheckpointError(DSDUserError, RuntimeError):
    """A checkpoint cannot be read, does not fit the network, or cannot be written."""


class ConfigValueError(DSDUserError, ValueError):
    """A bundle knob has a value it cannot take (e.g. ``--amp maybe``)."""


class RunLockedError(DSDUserError, RuntimeError):
    """Another training (or evaluation) is writing into the same folder; the message names it and the lock file."""


class NonFiniteLossError(DSDUserError, FloatingPointError):
    """The training loss became NaN or Inf: the message names epoch, iteration, the loss terms and the cases."""


class RunNotFoundError(DSDUserError, LookupError):
    """A training run asked for by name does not exist under ``models/runs/``; the message lists the runs."""


_E = TypeVar("_E", bound=BaseException)


def error_in_chain(exc: BaseException | None, kind: type[_E]) -> _E | None:
    """The first exception of type ``kind`` along ``exc``'s ``__cause__`` / ``__context__`` chain (``exc`` itself
    first), or ``None``. Wrappers hide the error that matters: MONAI's config parser raises
    ``RuntimeError("Failed to evaluate ...")`` from a user's error, torch.save a ``RuntimeError`` from an OSError."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
