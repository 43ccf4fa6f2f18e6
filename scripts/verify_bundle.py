"""Deprecated shim kept for one release: use ``dsd-verify`` (installed by ``pip install -e .``), same arguments."""

from dsd_tools.zoo.verify import main

if __name__ == "__main__":
    main()
