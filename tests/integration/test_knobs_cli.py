"""Every boolean knob obeys what people type on the real command line (``--resume false``, ``--amp 0``, ...):
MONAI's CLI hands the text over, and each knob reaches its consumer as a real bool; anything else stops the run with
one line naming the knob."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.bundles import copy_bundle, tiny_overrides

from dsd_tools.demo_data import make_demo_data

NAME = "hippocampus_nnunet_dsd"
# knob -> the effective value its consumer sees, printed by an overridden `run`
CONSUMERS = {
    "amp": "@train#trainer.amp",
    "resume": "@training_run.resuming",
    "lr_step_decay": "@lr_scheduler#step_size < 10**9",  # the argument (a resumed scheduler keeps its state)
    "detach_teacher": "@loss.detach_teacher",
    "check_data": "@check_dataset.checked > 0",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bundle with one finished 1-epoch run: asked for 2 epochs, that run is unfinished, so --resume decides."""
    tmp = tmp_path_factory.mktemp("knobs")
    data = make_demo_data("hippocampus", str(tmp / "data"), num_cases=4, size=(20, 20, 20), seed=0)
    bundle = copy_bundle(NAME, tmp)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "train.json"),
           "--dataset_dir", data, "--num_workers", "0", "--num_epochs", "1", "--num_samples", "1"]
    for k, v in tiny_overrides(NAME).items():
        cmd += [f"--{k}", str(v).replace(" ", "")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    return bundle, data


@pytest.fixture()
def setup(trained, tmp_path):
    bundle, data = trained
    return Path(shutil.copytree(bundle, tmp_path / bundle.name)), data


def _run(setup, **knobs) -> subprocess.CompletedProcess:
    bundle, data = setup
    show = ", ".join(f"bool({v})" for v in CONSUMERS.values())
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "train.json"),
           "--dataset_dir", data, "--num_workers", "0", "--num_epochs", "2",
           "--run", f"[\"$print('KNOBS', {show})\"]"]
    for k, v in {**tiny_overrides(NAME), **knobs}.items():
        cmd += [f"--{k}", str(v).replace(" ", "")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=bundle.parent,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


# every accepted word is unit-tested on as_bool (tests/unit/test_modes_and_entry.py); here each knob goes through
# the real command line, once with a word for false and once with a word for true
@pytest.mark.parametrize("word, expected", [("false", False), ("yes", True)])
def test_every_boolean_knob_obeys_the_words_people_type(setup, word, expected):
    res = _run(setup, **{k: word for k in CONSUMERS})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("KNOBS ")][-1]
    assert dict(zip(CONSUMERS, line.split()[1:])) == {k: str(expected) for k in CONSUMERS}


@pytest.mark.parametrize("knob", ["resume"])
def test_anything_else_stops_the_run_naming_the_knob(setup, knob):
    res = _run(setup, **{knob: "maybe"})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"ERROR: --{knob} 'maybe' is not a yes/no value: use true or false (also accepted: 1, yes, y, on, 0, no, n, "
        "off)")
