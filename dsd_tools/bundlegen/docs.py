"""A bundle's text files: ``docs/README.md``, ``LICENSE``, ``large_files.yml`` and ``configs/logging.conf``."""

from __future__ import annotations

from .spec import BundleSpec

__all__ = ["bundle_readme", "LICENSE", "LARGE_FILES", "LOGGING_CONF"]

LOGGING_CONF = """[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level=INFO
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level=INFO
formatter=fullFormatter
args=(sys.stdout,)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""

LICENSE = """Copyright (c) dsd-bundles contributors

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""

# A source bundle ships no weights. An empty list is what the model zoo's download step (ci/utils.py
# download_large_files: every entry goes through monai.apps.utils.download_url) accepts; `url: ""` entries fail it.
LARGE_FILES = """# Source bundle: the repository ships no weights, so there is nothing to download.
# `dsd-package NAME --url_base URL` writes the release's models/model.pt and models/model.ts here, each with its
# url (where the weights are hosted), hash_val (sha256) and hash_type.
large_files: []
"""


def bundle_readme(spec: BundleSpec) -> str:
    """``docs/README.md`` in the model zoo's template shape (:mod:`dsd_tools.bundlegen.readme`)."""
    from .readme import bundle_readme as _readme

    return _readme(spec)


def _differences_section(spec: BundleSpec) -> str:
    """The bundle's deliberate differences from the paper and its reference code, from the paper table."""
    rows = "\n".join(f"| {d.setting} | {d.paper} | {d.bundle} | {d.why} | {f'`{d.restore}`' if d.restore else '-'} |"
                      for d in spec.deviations)
    return f"""## **Differences from the paper**
The defaults follow the paper and its reference code (crop centring, padding, split, label mapping, transform order,
head initialisation, seed); evaluation reports HD95 in mm (the paper's unit) and in voxels (`mean_hd95_vox`, the
reference code's unit). These differences are deliberate:

| setting | paper / reference code | this bundle | why | paper's setting |
|---|---|---|---|---|
{rows}
"""


def _plan_section(spec: BundleSpec) -> str:
    """The planner's decisions (``plan.json``), each with its reason."""
    assert spec.plan is not None
    p, fp = spec.plan["plan"], spec.plan["fingerprint"]
    rows = [("target spacing (mm)", p["target_spacing"]), ("patch size", spec.plan["patch_size_used"]),
            ("patches per step", p["batch_size"]), ("DynUNet strides", p["strides"]),
            ("DynUNet kernels", p["kernel_sizes"]), ("DynUNet filters", p["filters"]),
            ("memory estimate (GiB)", round(p["vram_estimate_gb"], 2)), ("GPU budget (GiB)", spec.plan["gpu_memory_gb"])]
    table = "\n".join(f"| {k} | `{v}` |" for k, v in rows)
    why = "\n".join(f"- **{k}**: {v}" for k, v in spec.plan["why"].items())
    return f"""## **Plan** (`dsd-new-bundle`, nnU-Net's rules; all of it in `plan.json`)
Fingerprint ({spec.plan['dataset']['cases']} cases, {fp['source']}): median spacing
`{[round(x, 3) for x in fp['median_spacing']]}`, median shape `{fp['median_shape']}`.

| planned | value |
|---|---|
{table}

{why}

"""
