"""Deprecated shim kept for one release: use ``dsd-generate`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.bundlegen.cli import main

if __name__ == "__main__":
    main()
