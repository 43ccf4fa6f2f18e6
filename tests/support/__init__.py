"""Helpers shared by the tests (on the import path through pytest's ``pythonpath = ["tests"]``)."""

import sys
from pathlib import Path


def command(name: str) -> str:
    """The installed console command ``name`` of this environment (beside the running interpreter)."""
    return str(Path(sys.executable).with_name(name))
