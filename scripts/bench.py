"""Deprecated shim kept for one release: use ``dsd-bench`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.bench import main

if __name__ == "__main__":
    main()
