"""Deprecated shim kept for one release: use ``dsd-study`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.study.cli import main

if __name__ == "__main__":
    main()
