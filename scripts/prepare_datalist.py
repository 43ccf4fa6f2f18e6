"""Deprecated shim kept for one release: use ``dsd-prepare-datalist`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.datasets import main_prepare

if __name__ == "__main__":
    main_prepare()
