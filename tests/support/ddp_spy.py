"""``python -m monai.bundle ARGS`` under torchrun, with a record of what each rank did, for test_multi_gpu.py.

Run as ``torchrun ... tests/support/ddp_spy.py run --config_file ...``. Each rank appends tab-separated lines to
``$DSD_SPY_DIR/rank<RANK>.log``:

* ``file <path>`` for every file it creates or puts in place (``os.open`` with ``O_CREAT``: the lock; ``os.replace``:
  every atomic write, the checkpoints, ``models/model.pt``, ``run.json``);
* ``patch <epoch> <iteration> <sha1>`` for every training batch it draws (the sha1 of the image patches' bytes).

Nothing else changes: the bundle runs as it would from the command line.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import sys
from pathlib import Path

LOG = Path(os.environ["DSD_SPY_DIR"]) / f"rank{os.environ.get('RANK', '0')}.log"


def note(*fields: object) -> None:
    with open(LOG, "a") as f:
        f.write("\t".join(str(x) for x in fields) + "\n")


_replace, _open = os.replace, os.open


def replace(src, dst, *args, **kwargs):
    _replace(src, dst, *args, **kwargs)
    note("file", os.path.abspath(dst))


def open_(path, flags, *args, **kwargs):
    fd = _open(path, flags, *args, **kwargs)
    if flags & os.O_CREAT:
        note("file", os.path.abspath(path))
    return fd


def main() -> None:
    os.replace, os.open = replace, open_
    from ignite.engine import Events

    from dsd_components.handlers import DSDCheckpointer

    attach = DSDCheckpointer.attach

    def attach_and_watch(self, engine):
        attach(self, engine)

        @engine.on(Events.ITERATION_STARTED)
        def patches(e):
            batch = e.state.batch
            image = (batch if isinstance(batch, dict) else batch[0])["image"]
            digest = hashlib.sha1(image.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            note("patch", e.state.epoch, e.state.iteration, digest)

    DSDCheckpointer.attach = attach_and_watch
    sys.argv = ["monai.bundle", *sys.argv[1:]]
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
