"""Deprecated shim kept for one release: use ``dsd-plot-qualitative`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.qualitative import main

if __name__ == "__main__":
    main()
