"""Deprecated shim kept for one release: use ``dsd-package NAME`` and ``dsd-fetch NAME`` (installed by
``pip install -e .``), same arguments."""

import sys

from dsd_tools.zoo.package import main, main_fetch

if __name__ == "__main__":
    if sys.argv[1:2] == ["fetch"]:
        del sys.argv[1]
        main_fetch()
    else:
        if sys.argv[1:2] == ["package"]:
            del sys.argv[1]
        main()
