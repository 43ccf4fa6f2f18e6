"""Deprecated shim kept for one release: use ``dsd-demo`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.demo import main

if __name__ == "__main__":
    main()
