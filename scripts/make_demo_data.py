"""Deprecated shim kept for one release: use ``dsd-make-demo-data`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.demo_data import main

if __name__ == "__main__":
    main()
