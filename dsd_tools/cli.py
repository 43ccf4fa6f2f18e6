"""How every ``dsd-*`` console command starts: Fire for the arguments, yes/no flags that mean what they say, and a
user's error printed on one screen with exit code 2 (a bug keeps its traceback; ``DSD_TRACEBACK=1`` shows it for
any error)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from dsd_components.errors import DSDUserError
from dsd_components.knobs import as_bool

__all__ = ["UsageError", "run_cli", "parse_json_arg", "as_list"]


class UsageError(DSDUserError, ValueError):
    """A command was given arguments it cannot use; the message says which and what to pass."""


# Errors a command reports in one line: ours, and the few the standard library raises for a bad path or value.
USER_ERRORS = (DSDUserError, FileNotFoundError, NotADirectoryError, KeyError, ValueError)


def _bool_params(fn: Callable) -> set[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    return {n for n, p in sig.parameters.items() if str(p.annotation).replace(" ", "") in ("bool", "<class'bool'>")}


def _with_bools(fn: Callable) -> Callable:
    """Fire passes ``--flag false`` as the string ``'false'``: parse every ``bool`` parameter with ``as_bool``."""
    names = _bool_params(fn)
    if not names:
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for n in names & set(kwargs):
            kwargs[n] = as_bool(kwargs[n], n)
        return fn(*args, **kwargs)

    return wrapper


def run_cli(command: Callable | Mapping[str, Callable], argv: list[str] | None = None) -> Any:
    """Run ``command`` (a function, or ``{name: function}`` for sub-commands) as a console command.

    The result is not printed (commands print what they want to say); a user error exits 2 after one line.
    """
    import fire

    target: Any = ({k: _with_bools(v) for k, v in command.items()} if isinstance(command, Mapping)
                   else _with_bools(command))
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:  # Fire's own help flag, also for commands that take **kwargs
        args = [a for a in args if a not in ("--help", "-h")] + ["--", "--help"]
    try:
        return fire.Fire(target, command=args, serialize=lambda result: None)
    except USER_ERRORS as exc:
        if os.environ.get("DSD_TRACEBACK"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"ERROR: {msg}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def parse_json_arg(value: Any, what: str) -> dict[str, Any]:
    """A ``--what '{"k": v}'`` argument (Fire may already have parsed it into a dict) as a dict.

    Raises:
        UsageError: not a JSON object.
    """
    import json

    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    try:
        out = json.loads(value)
    except (TypeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--{what} must be a JSON object, e.g. '{{\"filters\": [4, 8, 8, 16, 16]}}': got {value!r}"
                         ) from exc
    if not isinstance(out, dict):
        raise UsageError(f"--{what} must be a JSON object: got {value!r}")
    return out


def as_list(x: Any) -> list:
    """``"a,b"``, a list/tuple or one value -> a list (None -> [])."""
    if x is None:
        return []
    if isinstance(x, str):
        return [s.strip() for s in x.split(",") if s.strip()]
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]
