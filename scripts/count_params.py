"""Deprecated shim kept for one release: use ``dsd-count-params`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.params import main

if __name__ == "__main__":
    main()
