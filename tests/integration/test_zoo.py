"""Model-zoo acceptance, offline: every bundle passes the checks the MONAI model zoo's ci/verify_bundle.py runs on a
submitted bundle, step by step the zoo's way (dsd-verify), with tiny network overrides so CI stays fast."""

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
    assert verify_bundle.check_large_files(bundle) == []  # the source tree: no weights, nothing to download
    with pytest.raises(verify_bundle.BundleError, match="does not list"):
        verify_bundle.check_large_files(bundle, require_hash=True)
    (bundle / "models").mkdir(exist_ok=True)
    (bundle / "models" / "model.pt").write_bytes(b"weights")
    (bundle / "large_files.yml").write_text('large_files:\n  - path: "models/model.pt"\n    url: ""\n'
                                            '    hash_val: "abc"\n    hash_type: "sha256"\n')
    with pytest.raises(verify_bundle.BundleError, match="does not match"):
        verify_bundle.check_large_files(bundle)


def _large_files(bundle, url: str, hash_val: str) -> None:
    (bundle / "large_files.yml").write_text(f'large_files:\n  - path: "models/model.pt"\n    url: "{url}"\n'
                                            f'    hash_val: "{hash_val}"\n    hash_type: "sha256"\n')


def test_download_step_behaves_like_the_zoos(tmp_path):
    """ci/utils.download_large_files: every entry through MONAI's download_url; an empty url fails (what the source
    bundles used to ship), a file:// url is fetched and hash-checked, a wrong hash fails, an empty list passes."""
    import hashlib

    host = tmp_path / "host" / "model.pt"
    host.parent.mkdir()
    host.write_bytes(b"the weights")
    digest = hashlib.sha256(b"the weights").hexdigest()
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "large_files.yml").write_text("large_files: []\n")
    assert verify_bundle.download_large_files(bundle) == []
    _large_files(bundle, "", "")
    with pytest.raises(verify_bundle.BundleError, match="Download large files in .* error"):
        verify_bundle.download_large_files(bundle)
    _large_files(bundle, host.as_uri(), "0" * 64)
    with pytest.raises(verify_bundle.BundleError, match="Download large files"):
        verify_bundle.download_large_files(bundle)
    assert not (bundle / "models" / "model.pt").exists()
    _large_files(bundle, host.as_uri(), digest)
    assert verify_bundle.download_large_files(bundle) == ["models/model.pt"]
    assert (bundle / "models" / "model.pt").read_bytes() == b"the weights"
    _large_files(bundle, "https://example.org/model.pt", digest)  # present: only its hash is checked, as MONAI does
    assert verify_bundle.download_large_files(bundle) == ["models/model.pt"]
    (bundle / "models" / "model.pt").unlink()
    with pytest.raises(verify_bundle.BundleError, match="offline check cannot reach"):
        verify_bundle.download_large_files(bundle)


def test_metadata_goes_through_monais_verify_metadata(tmp_path):
    import shutil

    bundle = tmp_path / BUNDLES[0]
    shutil.copytree(ROOT / "bundles" / BUNDLES[0], bundle)
    verify_bundle.check_metadata(bundle)
    assert json.loads((bundle / "eval" / "schema.json").read_text()) == SCHEMA  # pre-seeded, never downloaded
    meta = _meta(BUNDLES[0])
    del meta["required_packages_version"]
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(verify_bundle.BundleError, match="'required_packages_version' is a required property"):
        verify_bundle.check_metadata(bundle)


def test_requirements_are_the_lines_zoo_ci_installs():
    meta = _meta(BUNDLES[0])
    lines = verify_bundle.requirement_lines(meta)
    assert lines[:3] == [f"monai=={meta['monai_version']}", f"torch=={meta['pytorch_version']}",
                         f"numpy=={meta['numpy_version']}"]
    assert {line.split("==")[0] for line in lines[3:]} == {"nibabel", "pytorch-ignite", "einops", "scipy", "tqdm",
                                                         "matplotlib", "tensorboard"}
    verify_bundle.check_requirements(meta)
    with pytest.raises(verify_bundle.BundleError, match="pip cannot read"):
        verify_bundle.check_requirements({**meta, "required_packages_version": {"nibabel": ">=5 or so"}})
    with pytest.raises(verify_bundle.BundleError, match="not installed"):
        verify_bundle.check_requirements({**meta, "required_packages_version": {"no-such-dist-xyz": "1.0"}})


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
    # SwinUNETR cannot be scripted: skipped, as the zoo skips its own swin_unetr_btcv_segmentation
    last = "torchscript skipped (SwinUNETR)" if "swinunetr" in name else "ckpt_export"
    assert done[-2:] == ["verify_net_in_out", last]
    assert done[:4] == ["layout, large_files.yml", "fresh weights", "directory", "version/changelog"]


def test_cli_runs_monai_bundle_commands(tmp_path):
    """The script's CLI with the real `python -m monai.bundle verify_net_in_out` / `ckpt_export` subprocesses."""
    name = CLI_BUNDLE
    proc = subprocess.run([command("dsd-verify"), name, "--cli", "true",
                           "--net_override", json.dumps(tiny_overrides(name)), "--workdir", str(tmp_path),
                           "--fresh_weights", "true"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"PASS {name}" in proc.stdout and "ckpt_export" in proc.stdout
