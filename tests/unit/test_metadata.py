"""metadata.json as MONAI 1.6 reads it: every bundle's metadata through MONAI's own ``ConfigParser.read_meta``, with
the package list surviving whole (MONAI maps a deprecated ``optional_packages_version`` onto
``required_packages_version`` and overwrites it, with a warning that fails this suite)."""

from __future__ import annotations

import json

import pytest
from monai.bundle import ConfigParser
from support.bundles import BUNDLES, ROOT

# the runtime's third-party packages (dsd_components + its configs), written here independently of the generator
RUNTIME_PACKAGES = {"nibabel", "pytorch-ignite", "einops", "scipy", "tqdm", "matplotlib", "tensorboard"}


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_round_trips_through_monais_reader(name):
    path = ROOT / "bundles" / name / "configs" / "metadata.json"
    raw = json.loads(path.read_text())
    parser = ConfigParser()
    parser.read_meta(str(path))  # a DeprecationWarning/UserWarning from MONAI here would fail the test
    meta = parser.get("_meta_")
    assert meta == raw
    assert set(parser.get("_meta_#required_packages_version")) == RUNTIME_PACKAGES
    assert "optional_packages_version" not in raw  # MONAI 1.6 reads only required_packages_version
    # what MONAI parses out of it for a workflow (the same reader ckpt_export embeds into model.ts)
    assert parser.get_parsed_content("_meta_#required_packages_version") == raw["required_packages_version"]
    assert parser.get_parsed_content("_meta_#network_data_format#inputs#image#num_channels") >= 1


@pytest.mark.parametrize("name", BUNDLES)
def test_source_bundles_claim_no_scores(name):
    """No weights in the repository, so no eval_metrics; dsd-package fills them from the weights' own evaluation."""
    raw = json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text())
    assert raw["eval_metrics"] == {}
