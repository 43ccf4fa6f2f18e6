"""Bundle knobs as people type them on the command line.

``python -m monai.bundle run ... --resume false`` hands the config the *text* ``'false'`` (MONAI's command line is
Python Fire), which Python reads as true. Every boolean knob of a bundle config goes through :func:`as_bool`, so
``true/false/True/False/1/0/yes/no/on/off`` all mean what they say and anything else stops the run with a message
that names the knob.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigValueError

__all__ = ["as_bool", "TRUE_WORDS", "FALSE_WORDS"]

TRUE_WORDS = ("true", "1", "yes", "y", "on")
FALSE_WORDS = ("false", "0", "no", "n", "off")


def as_bool(value: Any, name: str = "value") -> bool:
    """``value`` as a bool: a bool, 0/1, or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case).

    Raises:
        ConfigValueError: anything else, naming the knob (``--name``) and the accepted words.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConfigValueError(f"--{name} {value!r} is not a yes/no value: use true or false "
                           f"(also accepted: {', '.join(TRUE_WORDS[1:] + FALSE_WORDS[1:])})")
