"""Model-zoo acceptance, offline: every bundle passes the checks the MONAI model zoo runs on a submitted bundle
(scripts/verify_bundle.py), with tiny network overrides so CI stays fast."""

from __future__ import annotations

import copy
import json
import subprocess

import jsonschema
import pytest
from support import command
from support.bundles import BUNDLES, ROOT, tiny_overrides

from dsd_tools.zoo import verify as verify_bundle

SCHEMA = json.loads(verify_bundle.SCHEMA.read_text())


def _meta(name: str) -> dict:
    return json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text())


def test_schema_is_a_valid_draft7_schema_and_offline():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert "$ref" not in json.dumps(SCHEMA).replace('"$ref": "#/', "")  # no remote references to fetch


@pytest.mark.parametrize("field", ["version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                                   "required_packages_version", "task", "description", "authors", "copyright",
                                   "network_data_format"])
def test_schema_requires_each_spec_field(field):
    meta = _meta(BUNDLES[0])
    jsonschema.validate(meta, SCHEMA)
    del meta[field]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(meta, SCHEMA)


@pytest.mark.parametrize("io, key, bad", [("inputs", "image", {"num_channels": 0}), ("outputs", "pred", {"dtype": "float"}),
                                          ("outputs", "pred", {"channel_def": {"zero": "background"}}),
                                          ("inputs", "image", {"is_patch_data": "yes"})])
def test_schema_rejects_bad_tensor_formats(io, key, bad):
    meta = copy.deepcopy(_meta(BUNDLES[0]))
    meta["network_data_format"][io][key].update(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(meta, SCHEMA)


def test_version_must_be_in_changelog_and_highest():
    meta = _meta(BUNDLES[0])
    verify_bundle.check_version(meta)
    with pytest.raises(verify_bundle.BundleError, match="not in changelog"):
        verify_bundle.check_version({**meta, "version": "9.9.9"})
    with pytest.raises(verify_bundle.BundleError, match="highest"):
        verify_bundle.check_version({**meta, "changelog": {**meta["changelog"], "0.10.0": "later"}})


def test_large_files_hash_is_checked(tmp_path):
    import shutil

    bundle = tmp_path / BUNDLES[0]
    shutil.copytree(ROOT / "bundles" / BUNDLES[0], bundle)
    verify_bundle.check_large_files(bundle)  # the source tree: named, hash type set, no weights yet
    with pytest.raises(verify_bundle.BundleError, match="no hash"):
        verify_bundle.check_large_files(bundle, require_hash=True)
    (bundle / "models").mkdir(exist_ok=True)
    (bundle / "models" / "model.pt").write_bytes(b"weights")
    text = (bundle / "large_files.yml").read_text().replace('hash_val: ""', 'hash_val: "abc"', 1)
    (bundle / "large_files.yml").write_text(text)
    with pytest.raises(verify_bundle.BundleError, match="does not match"):
        verify_bundle.check_large_files(bundle)


CLI_BUNDLE = "hippocampus_nnunet_dsd"  # checked through the real CLI below, the others in-process


def _tiny(name: str) -> dict:
    over = tiny_overrides(name)
    if "VNet" in (ROOT / "bundles" / name / "configs" / "inference.json").read_text():
        over["patch_size"] = [16, 16, 16]  # VNet has no width knob; its smallest input keeps CI fast
    return over


@pytest.mark.parametrize("name", [b for b in BUNDLES if b != CLI_BUNDLE])
def test_bundle_passes_zoo_checks(name):
    """Layout, metadata schema, version, large_files.yml, verify_net_in_out and ckpt_export (TorchScript of the
    backbone from models/model.pt, checked against the eager backbone), in-process with tiny networks."""
    done = verify_bundle.verify_one(name, net_override=_tiny(name), fresh_weights=True)
    assert done[-2:] == ["verify_net_in_out", "ckpt_export"]


def test_cli_runs_monai_bundle_commands(tmp_path):
    """The script's CLI with the real `python -m monai.bundle verify_net_in_out` / `ckpt_export` subprocesses."""
    name = CLI_BUNDLE
    proc = subprocess.run([command("dsd-verify"), name, "--cli", "true",
                           "--net_override", json.dumps(tiny_overrides(name)), "--workdir", str(tmp_path),
                           "--fresh_weights", "true"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"PASS {name}" in proc.stdout and "ckpt_export" in proc.stdout
