"""An inference run case by case: select what the user pointed at, screen each case, segment the good ones, name
every output by its case, and end with one summary line and an exit status.

Why: the bundles used to glob ``dataset_dir/*.nii*`` and let MONAI's evaluator stop at the first exception, so a
single file path ran nothing (exit 0), one truncated file ended the run in a long traceback, a wrong channel count
in a convolution error naming no file, and a NaN image was segmented as background without a word.

Pieces, wired by every bundle's ``inference.json`` in items MONAI Label never builds (it uses only ``network_def``,
``preprocessing``, ``inferer`` and ``postprocessing``, which stay pure MONAI):

* :func:`select_cases` (``datalist``): :func:`dsd_components.inputs.find_cases` then
  :func:`dsd_components.case_checks.screen_cases`; each bad case is logged in one line and skipped; a selection
  that matches nothing raises :class:`dsd_components.inputs.InputSelectionError` (exit code 2);
* :class:`InferenceReport` (an evaluator handler): renames each prediction after its case (nnU-Net channel files
  ``CASE.nii.gz`` as nnU-Net names them; every other case ``CASE_seg.nii.gz``), names a case that still fails
  mid-run, and in ``finalize`` logs ``wrote N prediction(s) to DIR`` and raises :class:`CasesFailedError`
  (exit code 1) when any case failed, so shell scripts and schedulers see it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from .case_checks import describe_image, screen_cases
from .errors import DSDUserError
from .inputs import CHANNEL_RE, find_cases, split_suffix
from .knobs import as_bool

__all__ = ["select_cases", "InferenceReport", "CasesFailedError", "root_cause", "output_name"]

logger = logging.getLogger(__name__)


class CasesFailedError(DSDUserError):
    """Some cases could not be segmented (the others were written); the message lists them."""

    exit_code = 1


def root_cause(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of the exception that started it all, on one line.

    MONAI wraps transform errors ("applying transform <LoadImaged>") and torch's DataLoader re-raises worker errors
    as "Caught X in DataLoader worker process 0" with the original traceback as text; the useful line is the
    innermost cause, or the first exception line of that embedded traceback.
    """
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).strip()
    if "Original Traceback" in text:
        for line in text.splitlines():
            if line and not line[0].isspace() and ": " in line and not line.startswith(
                    ("Traceback", "Original Traceback", "The above", "During handling", "Caught ")):
                return line.strip()[:limit]
        return text.splitlines()[-1].strip()[:limit]
    first = text.splitlines()[0].strip()[:limit] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class _OneLineEngineErrors(logging.Filter):
    """ignite logs ``str(exception)`` before the handlers run; for a DataLoader worker error that is a whole
    traceback. Keep its first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "terminating due to exception" in msg:
            record.msg, record.args = msg.splitlines()[0], None
        return True


def select_cases(dataset_dir: str, in_channels: int, reader: Any = None, check: Any = True,
                 **limits: Any) -> tuple[list[dict], list[str]]:
    """(cases to segment, one problem line per skipped case) for ``dataset_dir``; each skipped case is logged.

    Raises:
        InputSelectionError: the path selects nothing (or its layout is broken); the message names the path and
            what was looked for.
    """
    cases = find_cases(dataset_dir, in_channels=in_channels)
    if not as_bool(check, "check_cases"):
        logger.info(f"{len(cases)} case(s) selected from {dataset_dir} (not screened: --check_cases false)")
        return cases, []
    good, problems = screen_cases(cases, in_channels, reader=reader, **limits)
    for p in problems:
        logger.warning(f"skipping {p}")
    logger.info(f"{len(cases)} case(s) selected from {dataset_dir}: {len(good)} to segment, {len(problems)} skipped")
    return good, problems


def output_name(image: Any, case: str, postfix: str = "seg", ending: str = ".nii.gz") -> str:
    """A case's prediction file name: ``CASE.nii.gz`` for nnU-Net channel files (as nnU-Net names its outputs),
    else ``CASE_<postfix>.nii.gz`` (so a rerun on the same folder skips it as a label file)."""
    first = image[0] if isinstance(image, (list, tuple)) else str(image)
    m = CHANNEL_RE.match(split_suffix(os.path.basename(str(first)))[0])
    nnunet = isinstance(image, (list, tuple)) or (m is not None and m.group("stem") == case)
    return f"{case}{ending}" if nnunet or not postfix else f"{case}_{postfix}{ending}"


class InferenceReport:
    """Evaluator handler and ``finalize`` step of an inference run (see the module docstring).

    Needs ``SaveImaged(savepath_in_metadict=True)`` in the postprocessing and batch size 1 without shuffling (the
    bundles' inference dataloader). Attach it before ``StatsHandler``: on a mid-run exception it names the case and
    ends the run itself.

    Args:
        output_dir: where the predictions go (for the summary line).
        cases: the selected cases, in loader order (``{"image", "case"}``).
        problems: one line per case skipped by the screening.
        postfix: the ``_seg`` of ``CASE_seg.nii.gz``.
    """

    def __init__(self, output_dir: str, cases: Sequence[dict] = (), problems: Sequence[str] = (),
                 postfix: str = "seg") -> None:
        self.output_dir = str(output_dir)
        self.cases = list(cases)
        self.problems = list(problems)
        self.postfix = postfix
        self._by_case = {c["case"]: c for c in self.cases if isinstance(c, dict) and "case" in c}
        self.written: list[str] = []
        self.done: set[str] = set()

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.exception_raised)
        engine.logger.addFilter(_OneLineEngineErrors())

    def _rename(self, saved: str, case: str | None) -> str:
        """Move MONAI's file (named after the first channel file, the DICOM folder, or cut at a dot) to the case's
        name. Done after every case (batch size 1), so two cases MONAI would give one name never overwrite."""
        entry = self._by_case.get(case) if case else None
        if entry is None:
            return saved
        target = os.path.join(os.path.dirname(saved), output_name(entry["image"], str(case), self.postfix))
        if os.path.abspath(target) != os.path.abspath(saved):
            os.replace(saved, target)
        return target

    def iteration_completed(self, engine: Any) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batches = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch]
        for out, batch in zip(outputs, batches):
            case = batch.get("case") if isinstance(batch, dict) and isinstance(batch.get("case"), str) else None
            pred = out.get("pred") if isinstance(out, dict) else None
            saved = getattr(pred, "meta", {}).get("saved_to") if pred is not None else None
            if saved:
                target = self._rename(str(saved), case)
                self.written.append(target)
                logger.info(f"{case or os.path.basename(target)}: wrote {target}")
            if case is not None:
                self.done.add(case)

    def exception_raised(self, engine: Any, exc: BaseException) -> None:
        """A case failed after screening (e.g. out of memory): name it, summarise, end the run.

        Raises:
            CasesFailedError: always (the evaluator cannot go on after an exception); the user's own interrupts and
                errors pass through unchanged.
        """
        if isinstance(exc, (KeyboardInterrupt, SystemExit, DSDUserError)):
            raise exc
        pending = [c for c in self.cases if c.get("case") not in self.done]
        case = pending[0].get("case", "?") if pending else "unknown case"
        where = describe_image(pending[0]["image"]) if pending else "?"
        self.problems.append(f"[{case}] {where}: the run stopped on this case ({root_cause(exc)}); "
                             f"{max(len(pending) - 1, 0)} later case(s) not attempted: fix or remove it and rerun")
        self.finish()

    def summary(self) -> str:
        """``wrote N prediction(s) to DIR`` and, when cases failed, ``; M case(s) failed: a, b``."""
        head = f"wrote {len(self.written)} prediction(s) to {self.output_dir}"
        if not self.problems:
            return head
        names = [p[1:p.index("]")] if p.startswith("[") and "]" in p else p.split(":")[0] for p in self.problems]
        return head + f"; {len(self.problems)} case(s) failed: {', '.join(names)}"

    def finish(self) -> None:
        """The run's last lines: each failure again (they may have scrolled away), then the summary.

        Raises:
            CasesFailedError: when any case failed (exit code 1); the message is the summary.
        """
        for p in self.problems:
            logger.error(f"failed {p}")
        if self.problems:
            raise CasesFailedError(self.summary())
        logger.info(self.summary())
