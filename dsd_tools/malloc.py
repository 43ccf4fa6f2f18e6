"""A steady glibc allocator for CPU training and benchmarks.

glibc returns every large freed block to the OS (munmap / heap trim), so each training step page-faults its
activations in again: on CPU that made the same backbone step vary 1.3-2.6 s run to run (docs/PERFORMANCE.md).
With these two variables set the heap keeps freed blocks; results are unchanged. The CUDA caching allocator
behaves so anyway.
"""

from __future__ import annotations

import os
import sys

__all__ = ["STEADY_MALLOC", "steady_malloc_reexec"]

STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def steady_malloc_reexec(module: str, opt_out_env: str) -> None:
    """Re-run this process as ``python -m module ARGS`` with :data:`STEADY_MALLOC` set (glibc reads them only at
    start-up); a no-op off Linux, when they are set already, or when ``opt_out_env`` is ``default``."""
    if (sys.platform.startswith("linux") and os.environ.get(opt_out_env) != "default"
            and any(os.environ.get(k) != v for k, v in STEADY_MALLOC.items())):
        os.execve(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]], {**os.environ, **STEADY_MALLOC})
