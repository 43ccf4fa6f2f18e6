"""Deprecated shim kept for one release: use ``dsd-check-data`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.datasets import main_check

if __name__ == "__main__":
    main_check()
