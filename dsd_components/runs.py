"""Training runs of a bundle: a folder per run, one training at a time per bundle, and which run's model is published.

Layout (``models`` is the bundle's ``ckpt_dir``)::

    models/model.pt              the published model: what inference, evaluation and MONAI Label load
    models/model.json            which run models/model.pt comes from (run, epoch, score, sha256)
    models/train.lock            while a training runs: its pid, host, start time and command
    models/runs/<YYYYmmdd-HHMMSS>[-<run_name>]/
        run.json                 status, command, host, start, epochs done, best score, AMP skipped steps
        config.json              the merged config it ran with (config files + overrides), before instantiation
        latest.pt                the resume checkpoint (DSD wrapper, optimizer, scheduler, AMP scaler, epoch, best)
        model.pt                 the run's best backbone
        logs/                    this run's TensorBoard events (and nothing else: curves never mix runs)
        eval/                    a copy of evaluate.json's results for this run's model

Why: training again must never lose a trained model. A run writes only into its own folder, and
``models/model.pt`` (a copy of the current run's best) is replaced only after the model it held is known to be kept
in a run folder; a ``models/model.pt`` of unknown origin (trained before run folders existed, shipped in a package,
copied by hand) is first copied into a run folder of its own (``<time>-imported``). Training deletes nothing;
:func:`promote` puts any run's model back as ``models/model.pt``.

Resume: the same command resumes the newest run when its ``latest.pt`` is unfinished (epoch < the trainer's
``max_epochs``); a finished newest run, ``--resume false`` or another ``--run_name`` start a new run folder.

One training per bundle: :class:`FolderLock` (``models/train.lock``, ``eval/evaluate.lock`` for evaluation) is
created with ``O_EXCL`` and holds pid, host, start time and command. A second run stops before any work with
:class:`~dsd_components.errors.RunLockedError`. A lock whose process is gone from this host (kill -9, a crash, a
power cut) is stale: the next run takes it over with a warning, so resuming after a crash needs only the same
command. A lock held from another host cannot be checked from here and is respected: the message says which file to
delete if that machine is gone. (On Windows the owner's pid is not checked either: a leftover lock is deleted by hand.)
Only rank 0 of a multi-process run locks and writes; the other ranks learn the run folder from it.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shlex
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import errors
from .errors import CheckpointError, DSDUserError, RunLockedError, RunNotFoundError
from .export import atomic_copy, atomic_write, write_error
from .knobs import as_bool

__all__ = ["FolderLock", "TrainingRun", "list_runs", "promote", "published_run_dir", "record_evaluation",
           "release_held_locks", "RUNS_DIR"]

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"
PUBLISHED = "model.pt"
PUBLISHED_INFO = "model.json"
RUN_INFO = "run.json"
RUN_CONFIG = "config.json"
EVAL_FILES = ("per_case_metrics.csv", "summary.csv", "regions_per_case_metrics.csv", "regions_summary.csv",
              "training_curves.png")
_WORDS = {"train": "training", "evaluate": "evaluation"}


# ----------------------------------------------------------------------------------------------------- helpers
def process_rank(rank: int | None = None) -> int:
    """``rank`` if given, else this process's rank in the initialised process group, else torchrun's ``RANK``."""
    if rank is not None:
        return int(rank)
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _command() -> str:
    """This process's command line as typed (``python -m monai.bundle run ...``), shortened to one line."""
    argv = list(getattr(sys, "orig_argv", None) or sys.argv)
    text = shlex.join(argv) if argv and argv[-1] else "python (interactive)"
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Raises:
        CheckpointError: the file could not be written (see :func:`~dsd_components.export.atomic_write`)."""
    text = (json.dumps(data, indent=2, default=str) + "\n").encode()
    atomic_write(path, lambda f: f.write(text), size_hint=len(text))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**22), b""):
            h.update(block)
    return h.hexdigest()


def _clean_name(name: Any) -> str:
    if name is None:
        return ""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-.")[:60]


def _stamp(t: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(t))


def _broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank of an initialised process group (``obj`` itself without one)."""
    torch = sys.modules.get("torch")
    if torch is None or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return obj
    if torch.distributed.get_world_size() < 2:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


# -------------------------------------------------------------------------------------------------------- lock
def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _pid_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux): tells a reused pid from the original owner."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, pid_start: int | None = None) -> bool:
    """Whether process ``pid`` (started at ``pid_start`` ticks, when known) still runs on this host."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows: no check without extra packages
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except OSError:
        return True
    fields = _proc_stat(pid)
    if fields:
        if fields[0] == "Z":  # killed, not yet reaped by its parent
            return False
        if pid_start is not None and _pid_start(pid) not in (None, pid_start):
            return False  # the pid now belongs to another process
    return True


_HELD: dict[str, FolderLock] = {}


def release_held_locks() -> None:
    """Release every lock this process holds (at exit, and from the bundle's error hook before it exits)."""
    for lock in list(_HELD.values()):
        lock.release()


atexit.register(release_held_locks)


class FolderLock:
    """An exclusive lock on a bundle's output folder: ``<folder>/<kind>.lock`` (``train`` or ``evaluate``).

    Created with ``O_EXCL`` (atomic on local and NFS file systems) and filled with this process's pid, host, start
    time and command line, which the refusal message shows. A lock whose process no longer runs on this host is
    stale and taken over with a warning; one left by an earlier run in this same process (a run that ended with an
    error inside a notebook or a test) is taken over silently; one held from another host is respected. Released by
    :meth:`release`, at interpreter exit, and by the bundle's error hook. Only rank 0 locks (``rank``).

    Raises:
        RunLockedError: another live process holds the lock (the message names it, and the lock file).
        CheckpointError: the folder is not writable.
    """

    def __init__(self, folder: str | os.PathLike, kind: str = "train", rank: int | None = None,
                 acquire: bool = True) -> None:
        self.folder = Path(folder)
        self.kind = kind
        self.word = _WORDS.get(kind, kind)
        self.path = self.folder / f"{kind}.lock"
        self.token: str | None = None
        self._rank = rank
        if acquire:
            self.acquire()

    @property
    def held(self) -> bool:
        return self.token is not None

    def _read(self) -> dict[str, Any] | None:
        """The holder's record; ``{}`` for a file that stays unreadable (its writer died while writing it); None
        when the file is gone."""
        for _ in range(40):
            try:
                text = self.path.read_text()
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return None
            except OSError:
                text, age = "", 0.0
            try:
                data = json.loads(text)
                if isinstance(data, dict) and "pid" in data:
                    return data
            except ValueError:
                pass
            if age > 5:
                return {}
            time.sleep(0.05)  # being written right now
        return {}

    def _state(self, holder: dict[str, Any]) -> str:
        if not holder:
            return "unreadable"
        if holder.get("host") != socket.gethostname():
            return "remote"
        pid = int(holder.get("pid", -1))
        if pid == os.getpid():
            return "this process"
        return "alive" if pid_alive(pid, holder.get("pid_start")) else "stale"

    def _refusal(self, holder: dict[str, Any], state: str) -> str:
        who = (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}, "
               f"command: {holder.get('command')}")
        if state == "remote":
            fix = (f"This machine cannot tell whether a process on {holder.get('host')} still runs: if it does not "
                   f"(that machine crashed), delete {self.path}.")
        else:
            fix = f"Wait for it to finish or stop it (kill {holder.get('pid')}); a killed run's lock is taken over."
        return (f"{self.folder} is in use by another {self.word} ({who}); this {self.word} stopped before doing "
                f"anything. {fix}")

    def _break(self, holder: dict[str, Any], state: str) -> None:
        """Remove a stale lock, unless another process got there first (one taker at a time)."""
        guard = self.path.with_name(self.path.name + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > 30:  # its taker died: clear the way
                    guard.unlink()
            except FileNotFoundError:
                pass
            time.sleep(0.05)
            return
        os.close(fd)
        try:
            current = self._read()
            if current is None or current.get("token") != holder.get("token"):
                return  # released or taken over meanwhile: try again from the start
            self.path.unlink()
        finally:
            guard.unlink(missing_ok=True)
        if state == "this process":
            logger.info(f"Taking over the {self.word} lock {self.path} left by an earlier run in this process.")
        elif state == "unreadable":
            logger.warning(f"Taking over the {self.word} lock {self.path}: the file was unreadable (its writer died "
                           "while writing it).")
        else:
            logger.warning(
                f"Taking over the stale {self.word} lock {self.path}: the run that held it (pid {holder.get('pid')}, "
                f"started {holder.get('started')}, command: {holder.get('command')}) no longer runs on this host "
                "(killed or crashed).")

    def acquire(self) -> FolderLock:
        if self.held or process_rank(self._rank) != 0:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "command": _command(),
                "kind": self.kind, "token": uuid.uuid4().hex, "pid_start": _pid_start(os.getpid())}
        text = json.dumps(info, indent=2) + "\n"
        for _ in range(200):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if holder is None:
                    continue  # released meanwhile
                state = self._state(holder)
                if state in ("alive", "remote"):
                    raise RunLockedError(self._refusal(holder, state)) from None
                self._break(holder, state)
                continue
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                self.path.unlink(missing_ok=True)
                raise write_error(self.path, exc) from exc
            self.token = info["token"]
            _HELD[str(self.path)] = self
            return self
        raise RunLockedError(f"could not take the {self.word} lock {self.path}: other processes keep taking it; "
                             "try again.")

    def release(self) -> None:
        """Remove the lock file if it is still ours (idempotent)."""
        if not self.held:
            return
        try:
            current = _read_json(self.path)
            if current is not None and current.get("token") == self.token:
                self.path.unlink()
        except OSError:
            pass
        _HELD.pop(str(self.path), None)
        self.token = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ------------------------------------------------------------------------------------------------- run folders
def _run_dirs(models_dir: Path) -> list[Path]:
    """Run folders, oldest first (by the start time in run.json, else the folder's time)."""
    root = Path(models_dir) / RUNS_DIR
    if not root.is_dir():
        return []

    def key(d: Path) -> tuple[float, str]:
        info = _read_json(d / RUN_INFO) or {}
        try:
            return float(info.get("started_ts", d.stat().st_mtime)), d.name
        except (OSError, TypeError, ValueError):
            return 0.0, d.name

    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=key)


def _new_run_dir(models_dir: Path, base: str) -> Path:
    """Raises:
        CheckpointError: the folder cannot be created."""
    root = Path(models_dir) / RUNS_DIR
    name, i = base, 2
    while (root / name).exists():
        name, i = f"{base}-{i}", i + 1
    try:
        (root / name).mkdir(parents=True)
    except OSError as exc:
        raise write_error(root / name, exc) from exc
    return root / name


def _peek_epoch(path: Path) -> int | None:
    """The epoch stored in a checkpoint, read through mmap (the tensors are not loaded); None if unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        epoch = int(ckpt["epoch"])
        del ckpt
        return epoch
    except Exception:
        return None


def _import_run(models_dir: Path, label: str, mtime: float, files: Mapping[str, Path], move: bool) -> Path:
    """A run folder for files from outside run folders (older layouts, a shipped or hand-copied model.pt)."""
    run = _new_run_dir(models_dir, f"{_stamp(mtime)}-{label}")
    for name, src in files.items():
        if move:
            os.replace(src, run / name)
        else:
            atomic_copy(src, run / name)
    _write_json(run / RUN_INFO, {"name": run.name, "status": "imported", "started": _dt.datetime.fromtimestamp(
        mtime).astimezone().isoformat(timespec="seconds"), "started_ts": mtime,
        "note": f"{', '.join(files)} found outside run folders ({label}); kept here"})
    return run


def _unchanged_since_published(info: Mapping[str, Any], pub: Path) -> bool:
    """``models/model.pt`` still is the file ``model.json`` describes (same size and modification time)."""
    try:
        st = pub.stat()
    except OSError:
        return False
    return info.get("size") == st.st_size and info.get("mtime_ns") == st.st_mtime_ns


def _published_run(models_dir: Path) -> str | None:
    """The run whose model ``models/model.pt`` is, by ``model.json`` checked against the file; None if unknown."""
    info = _read_json(models_dir / PUBLISHED_INFO) or {}
    pub = models_dir / PUBLISHED
    run = info.get("run")
    if not run or not pub.is_file() or not (models_dir / RUNS_DIR / str(run)).is_dir():
        return None
    if _unchanged_since_published(info, pub) or sha256_file(pub) == info.get("sha256"):
        return str(run)
    return None


def _keep_published(models_dir: Path) -> str | None:
    """Make sure the model now in ``models/model.pt`` is kept in a run folder; return that run's name.

    A model of unknown origin (no ``model.json``, or a file that differs from what it says) is copied into a new
    ``<time>-imported`` run folder unless a run folder already holds the same bytes.
    """
    pub = Path(models_dir) / PUBLISHED
    if not pub.is_file():
        return None
    run = _published_run(models_dir)
    if run is not None and (models_dir / RUNS_DIR / run / PUBLISHED).is_file():
        return run
    sha, size = sha256_file(pub), pub.stat().st_size
    for d in reversed(_run_dirs(models_dir)):
        f = d / PUBLISHED
        if f.is_file() and f.stat().st_size == size and sha256_file(f) == sha:
            return d.name
    kept = _import_run(models_dir, "imported", pub.stat().st_mtime, {PUBLISHED: pub}, move=False)
    logger.warning(f"{pub} came from no run folder (trained before run folders, shipped in a package or copied by "
                   f"hand): kept a copy in {kept / PUBLISHED} before replacing it.")
    return kept.name


def _write_published_info(models_dir: Path, run: str, sha: str, extra: Mapping[str, Any]) -> None:
    st = (models_dir / PUBLISHED).stat()
    _write_json(models_dir / PUBLISHED_INFO, {"run": run, **extra, "sha256": sha, "size": st.st_size,
                                              "mtime_ns": st.st_mtime_ns, "published": _now()})


def _publish(models_dir: Path, run_dir: Path, extra: Mapping[str, Any]) -> str | None:
    """Copy ``run_dir/model.pt`` to ``models/model.pt`` (atomically) and say so in ``models/model.json``; return the
    run whose model was replaced (kept in its run folder), if another one.

    Raises:
        CheckpointError: a file could not be written; the previous models/model.pt is unchanged.
    """
    models_dir = Path(models_dir)
    previous = _keep_published(models_dir)
    h = hashlib.sha256()
    atomic_copy(run_dir / PUBLISHED, models_dir / PUBLISHED, hasher=h)
    _write_published_info(models_dir, run_dir.name, h.hexdigest(), extra)
    return previous if previous != run_dir.name else None


def _adopt_legacy(models_dir: Path) -> None:
    """Files of the layout before run folders (``models/latest.pt``, ``models/previous_run/``) move into run
    folders, so they are resumed or listed like any run (nothing is dropped)."""
    prev = models_dir / "previous_run"
    legacy = models_dir / "latest.pt"
    files = {n: prev / n for n in ("latest.pt", PUBLISHED) if (prev / n).is_file()}
    if files:
        when = max(f.stat().st_mtime for f in files.values())
        if legacy.is_file():  # the archived run came before the current one, whatever the file times say
            when = min(when, legacy.stat().st_mtime - 1)
        run = _import_run(models_dir, "previous_run", when, files, move=True)
        try:
            prev.rmdir()
        except OSError:
            pass
        logger.warning(f"Moved {prev} (the layout before run folders) into {run}.")
    if legacy.is_file():
        files = {"latest.pt": legacy}
        run = _import_run(models_dir, "imported", legacy.stat().st_mtime, files, move=True)
        pub = models_dir / PUBLISHED
        if pub.is_file() and not (models_dir / PUBLISHED_INFO).is_file():  # that run's best, presumably
            h = hashlib.sha256()
            atomic_copy(pub, run / PUBLISHED, hasher=h)
            _write_published_info(models_dir, run.name, h.hexdigest(), {})
        logger.warning(f"Moved {legacy} (the layout before run folders) into {run}: it is resumed from there.")


def _bundle_config() -> dict[str, Any] | None:
    """The merged config (files + overrides, before instantiation) of the MONAI ``ConfigParser`` that is
    instantiating the caller, found on the call stack; None outside a bundle run.

    MONAI gives a component no handle on its parser, and the command line does not show the overrides MONAI Label
    passes in-process, so this is the one place that knows what the run really ran with (what MONAI's own
    ``save_execute_config`` writes for MLflow)."""
    try:
        from monai.bundle import ConfigParser
    except ImportError:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if isinstance(obj, ConfigParser):
            return obj.get()
        frame = frame.f_back
    return None


class TrainingRun:
    """The run folder a training writes into, chosen (and locked) when a bundle config builds it.

    Args:
        models_dir: the bundle's ``ckpt_dir`` (``models/``).
        max_epochs: the trainer's ``max_epochs``: a newest run with ``latest.pt`` at this epoch or later is finished
            and a new run starts. (``@train#trainer#max_epochs``, which MONAI Label overrides.)
        resume: resume the newest run when it is unfinished; False (or "false" from the command line) always starts
            a new run.
        name: an optional run name, appended to the folder's time stamp (``--run_name``); a run is resumed only by
            a command with its name (or none).
        rank: only rank 0 locks and writes; ``None`` reads the process group / ``RANK``.
        lock: take ``models/train.lock`` (tests of the folder logic alone pass False).

    Attributes: ``dir`` (the run folder), ``resuming`` (its ``latest.pt`` is to be resumed), ``latest_path``,
    ``model_path`` (the run's best backbone), ``log_dir`` (str, for TensorBoard), ``saved_epoch`` (the epoch in
    ``latest.pt``, None before the first).

    Raises:
        RunLockedError: another training holds the bundle's lock.
        CheckpointError: the run folder or its records cannot be written.
    """

    def __init__(self, models_dir: str | os.PathLike, max_epochs: int | None = None, resume: bool = True,
                 name: str | None = None, rank: int | None = None, lock: bool = True) -> None:
        self.models_dir = Path(models_dir)
        self.max_epochs = None if max_epochs is None else int(max_epochs)
        self.name = _clean_name(name)
        self.rank = process_rank(rank)
        self.lock: FolderLock | None = None
        self.saved_epoch: int | None = None
        self._info: dict[str, Any] = {}
        decision: dict[str, Any]
        if self.rank == 0:
            try:
                if lock:
                    self.lock = FolderLock(self.models_dir, "train", rank=0)
                    # a run that fails inside a long-lived process (a notebook) and is dropped releases its lock
                    weakref.finalize(self, self.lock.release)
                folder, resuming = self._choose(as_bool(resume, "resume"))
                decision = {"folder": folder, "resuming": resuming}
            except DSDUserError as exc:
                self._release()
                _broadcast({"error": str(exc), "type": type(exc).__name__})
                raise
            except BaseException:
                self._release()
                raise
        else:
            decision = {}
        decision = _broadcast(decision)
        if "error" in decision:  # rank 0 stopped: stop here too, with its reason
            raise getattr(errors, decision["type"], DSDUserError)(f"rank 0 stopped: {decision['error']}")
        self.dir = self.models_dir / RUNS_DIR / decision["folder"]
        self.resuming = bool(decision["resuming"])
        self.latest_path = self.dir / "latest.pt"
        self.model_path = self.dir / PUBLISHED
        self.log_dir = str(self.dir / "logs")
        if self.rank == 0:
            try:
                self._start()
            except BaseException:
                self._release()
                raise

    # -- choosing the folder ------------------------------------------------------------------------------------
    def _choose(self, resume: bool) -> tuple[str, bool]:
        _adopt_legacy(self.models_dir)
        # the newest run that trained here (a folder holding only an imported model.pt is no training run)
        runs = [d for d in _run_dirs(self.models_dir)
                if (d / "latest.pt").is_file() or (_read_json(d / RUN_INFO) or {}).get("status") != "imported"]
        current = runs[-1] if runs else None
        if current is not None:
            info = _read_json(current / RUN_INFO) or {}
            own_name = info.get("run_name") or ""
            latest = current / "latest.pt"
            if latest.is_file():
                epoch = _peek_epoch(latest)
                unfinished = epoch is None or self.max_epochs is None or epoch < self.max_epochs
                if unfinished and not resume:
                    logger.info(f"--resume false: starting a new run; the unfinished run {current} (epoch {epoch}) "
                                "stays as it is.")
                elif unfinished and self.name and self.name != own_name:
                    logger.warning(f"{current} is unfinished (epoch {epoch}) and stays as it is: --run_name "
                                   f"{self.name} starts a new run (the same command without it resumes that one).")
                elif unfinished:
                    return current.name, True
                elif not resume:  # asked for a new run: nothing to warn about
                    logger.info(f"--resume false: starting a new run; the finished run {current} stays as it is.")
                else:
                    logger.warning(
                        f"{latest} is a finished run (epoch {epoch} >= num_epochs {self.max_epochs}): starting a new "
                        f"run; the finished run stays in {current}. Raise --num_epochs above {epoch} to continue the "
                        "finished run instead.")
            elif (resume and not (current / PUBLISHED).exists() and info.get("status", "running") == "running"
                  and self.name == own_name):
                # killed (or stopped by an error) before its first checkpoint: no weights to keep, so reuse it
                return current.name, False
        base = _stamp() + (f"-{self.name}" if self.name else "")
        return _new_run_dir(self.models_dir, base).name, False

    def _start(self) -> None:
        info = _read_json(self.dir / RUN_INFO) or {}
        if not self.resuming:
            info = {k: v for k, v in info.items() if k in ("started", "started_ts")}
        now = _now()
        info.setdefault("started", now)
        info.setdefault("started_ts", time.time())
        if self.resuming:
            info.setdefault("resumed", []).append(now)
            for key in ("stop_reason", "ended"):  # it runs again
                info.pop(key, None)
        info.update(name=self.dir.name, run_name=self.name or info.get("run_name") or "", status="running",
                    command=_command(), host=socket.gethostname(), pid=os.getpid(), max_epochs=self.max_epochs)
        self._info = info
        self._write_info()
        config = _bundle_config()
        text = json.dumps(config if config is not None else {"command": _command()}, indent=2, default=str) + "\n"
        target = self.dir / RUN_CONFIG
        if target.is_file() and target.read_text() != text:
            target = self.dir / f"config-{_stamp()}.json"  # resumed with other settings: keep both
            logger.info(f"{self.dir.name} resumes with settings that differ from its config.json: saved {target}")
        if not target.is_file():
            data = text.encode()
            atomic_write(target, lambda f: f.write(data), size_hint=len(data))
        what = "resuming" if self.resuming else "new run"
        logger.info(f"Training run {self.dir} ({what}): checkpoints, best model, logs and config are kept there.")

    # -- records ------------------------------------------------------------------------------------------------
    def _write_info(self) -> None:
        _write_json(self.dir / RUN_INFO, self._info)

    def get(self, key: str, default: Any = None) -> Any:
        """A field of this run's ``run.json`` record (as this process knows it)."""
        return self._info.get(key, default)

    def record(self, **fields: Any) -> None:
        """Update ``run.json`` (rank 0)."""
        if self.rank != 0:
            return
        if "epoch" in fields:
            self.saved_epoch = int(fields["epoch"])
        self._info.update(fields)
        self._write_info()

    def publish(self, key_metric: str, value: float | None, epoch: int) -> str:
        """Publish this run's ``model.pt`` as ``models/model.pt``; return a sentence for the log naming the model it
        replaced and where that one is kept.

        Raises:
            CheckpointError: a file could not be written; the previous models/model.pt is unchanged.
        """
        if self.rank != 0:
            return ""
        extra = {"epoch": epoch, key_metric: value} if value is not None else {"epoch": epoch}
        previous = _publish(self.models_dir, self.dir, extra)
        pub = self.models_dir / PUBLISHED
        if previous:
            kept = self.models_dir / RUNS_DIR / previous / PUBLISHED
            return (f"published as {pub}, replacing the model of run {previous}, which stays in {kept} "
                    f"(dsd-runs promote {previous} puts it back)")
        return f"published as {pub}"

    def finish(self, **fields: Any) -> None:
        """The run completed: record it and release the lock.

        Raises:
            CheckpointError: run.json could not be written (the lock is released all the same).
        """
        try:
            if self.rank == 0:
                self._info.update(fields, status="finished", ended=_now())
                self._write_info()
        finally:
            self._release()

    def stop(self, reason: str) -> None:
        """The run stopped on an error: record why (best effort: the disk may be full) and release the lock."""
        if self.rank == 0 and self._info:
            self._info.update(status="stopped", stop_reason=reason, ended=_now())
            try:
                self._write_info()
            except CheckpointError:
                pass
        self._release()

    def close(self) -> None:
        """Release the lock (the bundle's ``finalize``; idempotent)."""
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()


# ---------------------------------------------------------------------------------------- published / listing
def published_run_dir(models_dir: str | os.PathLike) -> str | None:
    """The run folder that ``models/model.pt`` comes from (per ``models/model.json``, checked against the file), or
    None: a model from elsewhere, or from before run folders."""
    run = _published_run(Path(models_dir))
    return None if run is None else str(Path(models_dir) / RUNS_DIR / run)


def record_evaluation(run_dir: str | os.PathLike | None, output_dir: str | os.PathLike,
                      rank: int | None = None) -> str | None:
    """Copy an evaluation's results (CSVs, curves) into ``<run>/eval/`` of the run whose model was evaluated."""
    if run_dir is None or process_rank(rank) != 0:
        return None
    src, dst = Path(output_dir), Path(run_dir) / "eval"
    if src.resolve() == dst.resolve():
        return str(dst)
    copied = [name for name in EVAL_FILES if (src / name).is_file()]
    for name in copied:
        atomic_copy(src / name, dst / name)
    if copied:
        logger.info(f"evaluation of run {Path(run_dir).name} kept in {dst}")
    return str(dst)


def _eval_score(run: Path) -> float | None:
    try:
        with open(run / "eval" / "summary.csv") as f:
            for line in f.read().splitlines()[1:]:
                metric, cls, mean = line.split(",")[:3]
                if metric == "mean_dice" and cls == "mean":
                    return float(mean)
    except (OSError, ValueError):
        return None
    return None


def list_runs(models_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One record per run folder, oldest first: name, status, epochs, best score, evaluation score, whether it is
    the published model, and whether it can be resumed or promoted."""
    models_dir = Path(models_dir)
    pub = _read_json(models_dir / PUBLISHED_INFO) or {}
    lock = _read_json(models_dir / "train.lock")
    live = bool(lock) and lock.get("host") == socket.gethostname() and pid_alive(int(lock.get("pid", -1)),
                                                                                  lock.get("pid_start"))
    runs = _run_dirs(models_dir)
    out = []
    for i, d in enumerate(runs):
        info = _read_json(d / RUN_INFO) or {}
        status = info.get("status", "unknown")
        if status == "running" and not (live and i == len(runs) - 1):
            status = "interrupted"
        if status == "stopped" and info.get("stop_reason"):
            status = f"stopped ({info['stop_reason']})"
        key = info.get("key_metric", "val_mean_dice")
        out.append({
            "run": d.name, "status": status, "started": info.get("started"),
            "epoch": info.get("epoch"), "max_epochs": info.get("max_epochs"),
            "key_metric": key, "best_metric": info.get("best_metric"), "best_epoch": info.get("best_epoch"),
            "eval_mean_dice": _eval_score(d), "published": pub.get("run") == d.name,
            "has_model": (d / PUBLISHED).is_file(), "has_latest": (d / "latest.pt").is_file(), "dir": str(d),
        })
    return out


def _find_run(models_dir: Path, run: str) -> Path:
    """Raises:
        RunNotFoundError: no run folder of that name (or unique prefix); the message lists them."""
    names = [d.name for d in _run_dirs(models_dir)]
    run = str(run).strip().rstrip("/").split("/")[-1]
    matches = [n for n in names if n == run] or [n for n in names if n.startswith(run)]
    if len(matches) == 1:
        return models_dir / RUNS_DIR / matches[0]
    known = ", ".join(names) if names else "none"
    what = "matches several runs" if matches else "is not a run"
    raise RunNotFoundError(f"{run!r} {what} under {models_dir / RUNS_DIR} (runs: {known}); give one run folder name.")


def promote(models_dir: str | os.PathLike, run: str) -> dict[str, Any]:
    """Make run ``run``'s best model ``models/model.pt`` again (atomically). The model it replaces is kept in its run
    folder (or copied into an ``-imported`` one first). Takes the bundle's training lock, so it waits for no one:
    it refuses while a training runs.

    Raises:
        RunLockedError: a training is running on this bundle.
        RunNotFoundError: no such run, or it has no model.pt yet.
        CheckpointError: models/model.pt could not be written; the previous one is unchanged.
    """
    models_dir = Path(models_dir)
    with FolderLock(models_dir, "train", rank=0):
        d = _find_run(models_dir, run)
        if not (d / PUBLISHED).is_file():
            raise RunNotFoundError(f"{d} has no {PUBLISHED} (the run ended before its first validation): nothing to "
                                   "promote.")
        info = _read_json(d / RUN_INFO) or {}
        key = info.get("key_metric", "val_mean_dice")
        extra = {"epoch": info.get("best_epoch"), key: info.get("best_metric"), "promoted": True}
        previous = _publish(models_dir, d, extra)
    msg = f"{models_dir / PUBLISHED} is now the best model of run {d.name}"
    if info.get("best_metric") is not None:
        msg += f" ({key} {float(info['best_metric']):.4f} at epoch {info.get('best_epoch')})"
    if previous:
        msg += f"; the model it replaced stays in {models_dir / RUNS_DIR / previous / PUBLISHED}"
    logger.info(msg)
    return {"run": d.name, "replaced": previous, "message": msg}
