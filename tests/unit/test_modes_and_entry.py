"""The mode table drives heads, loss terms and docs; the bundle entry finds its bundle and ends a user's error
cleanly; the tools' console commands all answer --help."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from monai.bundle import ConfigParser
from support import command
from support.bundles import BUNDLES, ROOT

from dsd_components import DSDLoss, DSDNetwork
from dsd_components.entry import bundle_root, user_error_in
from dsd_components.errors import DatasetIntegrityError, DSDUserError
from dsd_components.knobs import as_bool
from dsd_components.modes import DSD_MODES, MODES, mode_spec
from dsd_components.errors import ConfigValueError
from dsd_tools.bundlegen.configs import STDLIB_BUNDLE_ROOT
from dsd_tools.networks import build_backbone

# Tables 5 and 6, written out here: (deep supervision, encoder KL, decoder KL, teacher)
PAPER_MODES = {
    "basic": (False, False, False, "deepest"), "ds": (True, False, False, "deepest"),
    "sdd": (True, False, True, "deepest"), "sde": (True, True, False, "deepest"), "dsd": (True, True, True, "deepest"),
    "mean_teacher": (True, True, True, "mean"), "reversed_teacher": (True, True, True, "reversed"),
}


def test_mode_table_is_the_papers():
    assert DSD_MODES == tuple(PAPER_MODES)
    assert {m.name: (m.deep_supervision, m.encoder_kl, m.decoder_kl, m.teacher) for m in MODES.values()} == PAPER_MODES


@pytest.mark.parametrize("mode", DSD_MODES)
def test_mode_table_drives_heads_and_loss(mode):
    net = DSDNetwork(build_backbone("hippocampus_nnunet", filters=[4, 8, 8, 16, 16]), mode=mode)
    ds, enc, dec, teacher = PAPER_MODES[mode]
    assert bool(net.encoder_taps) == enc and bool(net.decoder_taps) == (ds or dec)
    loss = DSDLoss(mode)
    assert (loss.use_ds, loss.use_enc, loss.use_dec, loss.teacher) == (ds, enc, dec, teacher)
    assert mode_spec(mode).paper.startswith("Table")


def test_bundle_readmes_list_every_mode():
    for name in BUNDLES:
        text = (ROOT / "bundles" / name / "docs" / "README.md").read_text()
        assert all(f"`{m}`" in text for m in DSD_MODES), name


@pytest.mark.parametrize("kw, match", [({"lambda_ds": -1.0}, "lambda_ds must be >= 0"), ({"alpha": -0.5}, "alpha"),
                                       ({"beta": float("nan")}, "beta"), ({"temperature": 0.0}, "temperature"),
                                       ({"mode": "dsdx"}, "dsd_mode 'dsdx' is unknown: use one of basic")])
def test_loss_rejects_bad_settings_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        DSDLoss(**kw)


@pytest.mark.parametrize("argv, expected", [
    (["x", "run", "--config_file", "bundles/b/configs/train.json"], "bundles/b"),
    (["x", "run", "--config_file=bundles/b/configs/train.json"], "bundles/b"),
    (["x", "run", "--config_file", "['c/b/configs/train.json','c/b/configs/multi_gpu_train.json']"], "c/b"),
    (["x", "run", "--config_file", "configs/train.json"], "."),
    (["x", "run", "--dataset_dir", "d"], None),
])
def test_bundle_root_helper_and_the_stdlib_rule_agree(argv, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    want = str(tmp_path) if expected is None else os.path.abspath(expected)
    assert bundle_root(argv) == want
    monkeypatch.setattr(sys, "argv", argv)
    parser = ConfigParser({"imports": ["$import os", "$import sys"], "bundle_root": STDLIB_BUNDLE_ROOT})
    assert parser.get_parsed_content("bundle_root") == want


def test_user_error_found_behind_monai_wrappers():
    err = DatasetIntegrityError.__new__(DatasetIntegrityError)
    DSDUserError.__init__(err, "x.nii.gz: label file is missing")
    try:
        try:
            raise err
        except DSDUserError as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression") from inner
    except RuntimeError as outer:
        assert user_error_in(outer) is err
    assert user_error_in(RuntimeError("a bug")) is None


def test_installed_hook_prints_one_line_and_exits_2(tmp_path):
    code = ("from dsd_components.entry import install_error_handler\n"
            "from dsd_components.errors import CheckpointError\n"
            "install_error_handler()\n"
            "try:\n"
            "    raise CheckpointError('models/latest.pt: does not fit; pass --resume false')\n"
            "except CheckpointError as e:\n"
            "    raise RuntimeError('Failed to instantiate component') from e\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "ERROR: models/latest.pt: does not fit; pass --resume false\n"
    bug = subprocess.run([sys.executable, "-c", "from dsd_components.entry import install_error_handler\n"
                          "install_error_handler()\nraise KeyError('a bug')"], capture_output=True, text=True)
    assert bug.returncode == 1 and "Traceback" in bug.stderr  # bugs keep their traceback


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("true", True), ("False", False),
                                             ("1", True), ("0", False), ("yes", True), ("NO", False), (1, True),
                                             (0, False), ("on", True), ("off", False)])
def test_as_bool_accepts_what_people_type(value, expected):
    assert as_bool(value, "resume") is expected


@pytest.mark.parametrize("value", ["maybe", "2", "", None, 3])
def test_as_bool_rejects_anything_else_naming_the_knob(value):
    with pytest.raises(ConfigValueError, match="--amp .* is not a yes/no value"):
        as_bool(value, "amp")


COMMANDS = ["dsd-demo", "dsd-make-demo-data", "dsd-check-data", "dsd-prepare-datalist", "dsd-generate", "dsd-verify",
            "dsd-package", "dsd-fetch", "dsd-study", "dsd-bench", "dsd-count-params", "dsd-plot-qualitative",
            "dsd-new-bundle", "dsd-runs"]


def test_pyproject_lists_exactly_these_commands():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(scripts) == sorted(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_console_command_answers_help(name):
    out = subprocess.run([command(name), "--help"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PAGER": "cat", "DSD_BENCH_MALLOC": "default"})
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr  # Fire writes help to stderr when not on a terminal
    assert "NAME" in text and ("FLAGS" in text or "COMMANDS" in text or "POSITIONAL" in text), text[:800]


def test_no_code_edits_sys_path():
    hits = []
    for folder in ("dsd_components", "dsd_tools", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if "sys.path" in line and "edits" not in line and path.name != "test_modes_and_entry.py":
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert hits == []
