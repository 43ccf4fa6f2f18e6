"""The MONAI model zoo's acceptance checks for a bundle, run the way the zoo runs them, offline (``dsd-verify``).

The zoo checks a submitted bundle with ``ci/verify_bundle.py`` (``-m min`` on every pull request, ``-m full`` on its
GPU runners), helped by ``ci/utils.py``, ``ci/bundle_custom_data.py`` (exclude lists) and
``ci/get_bundle_requirements.py`` (what CI pip-installs). Each step here is the zoo's, in the zoo's order, calling the
same MONAI functions with the same arguments:

====================================  ==================================================================================
zoo (ci/verify_bundle.py)             here
====================================  ==================================================================================
verify_bundle_directory               :func:`check_directory`: large files first, as ``ci/utils.download_large_files``
                                      (``ConfigParser`` reads ``large_files.{json,yaml,yml}``, last match wins; each
                                      entry goes to ``monai.apps.utils.download_url`` with ``fuzzy=True``, an empty
                                      ``hash_val``/``hash_type`` dropped); then the necessary files
                                      (``configs/metadata.json``, ``LICENSE``) and the preferred ones
                                      (``models/model.pt``, ``configs/inference.{json,yaml,yml}``)
verify_version_changes                :func:`check_version`: ``version`` and ``changelog`` present, the version in the
                                      changelog, ``NAME_vVERSION`` not yet in the zoo index (``model_info.json``)
verify_metadata_format                :func:`check_metadata`: ``monai.bundle.verify_metadata(meta_file,
                                      filepath=eval/schema.json)``; ``min`` mode stops after it
verify_bundle_properties              :func:`check_properties`: for each ``supported_apps`` entry the zoo runs the
                                      app's ``bundle_properties.py`` from its own tree
verify_data_shape                     :func:`check_net_in_out`: ``monai.bundle.verify_net_in_out(net_id=
                                      "network_def", config_file=configs/inference.json)``
verify_torchscript                    :func:`check_torchscript`: ``monai.bundle.ckpt_export`` (scripting, into
                                      ``models/verify_model.ts``), then ``torch.jit.load(models/model.ts)`` if shipped;
                                      skipped for networks in :data:`EXCLUDE_VERIFY_TORCHSCRIPT`
get_bundle_requirements.py            :func:`check_requirements`: the requirement lines CI installs
====================================  ==================================================================================

Where this must differ offline, and why:

- **Schema.** ``metadata["schema"]`` is a URL; the zoo downloads it (``ci/prepare_schema.py``, or
  ``verify_metadata`` itself when ``eval/schema.json`` is absent). Here ``eval/schema.json`` is pre-seeded with our own
  copy, ``dsd_tools/zoo/meta_schema.json`` (with its sha256, so MONAI checks and never fetches it).
- **Large files.** The zoo downloads each ``url``; ``file://`` URLs work here too (a local release,
  ``dsd-package``), ``https`` ones cannot: such an entry whose file is absent fails with that reason.
- **Index.** The zoo's ``models/model_info.json`` lists its released versions; here ``--index`` names a local one
  (``dsd-package`` writes ``dist/model_info.json``); without it the version check has nothing to compare with.
- **Requirements.** CI pip-installs the lines; here each must parse as an exact pin and be installed, and a version
  other than the installed one is reported (not failed).
- **Properties.** The zoo looks for ``<zoo>/<app>/**/bundle_properties.py``; it has no ``monai-label`` folder, so for
  our ``supported_apps`` nothing runs there either. MONAI Label is checked in ``tests/integration/test_monai_label.py``.
- **Weights.** A source bundle ships none; the zoo would stop at "necessary file models/model.pt is not existing.".
  Here a freshly initialised backbone is saved first (the zoo's own ``_produce_fake_weights``); ``--require_weights
  true`` (a release) fails instead.
- **TorchScript exclusion.** The zoo skips ``verify_torchscript`` by bundle name (``exclude_verify_torchscript_list``,
  e.g. ``swin_unetr_btcv_segmentation``); here by network class, and a zoo pull request adds our bundle's name there.
- **Device.** The zoo uses ``cuda:0`` when there is one; here the CPU.

Stricter than the zoo (ours): every config the bundles ship is present, no version suffix on the folder, the version is
the highest changelog entry, the metadata ``name`` is the folder name and the first input/output are ``image``/``pred``,
``large_files.yml`` entries are well formed (``--require_hash true``: both weights listed with url and hash), and the
TorchScript module's output equals the eager backbone's.

    dsd-verify all                                   # the nine source bundles, full mode, fresh weights
    dsd-verify hippocampus_vnet_dsd --weights run/models/model.pt
    dsd-verify brats_unetr_dsd --cli true --net_override '{"network_def#feature_size": 4, "patch_size": [32, 32, 32]}'
    dsd-verify dist/zoo/NAME --require_hash true --require_weights true --index dist/model_info.json   # a release

The checks run on a temporary copy of the bundle (the zoo writes ``eval/schema.json`` and ``models/verify_model.ts``
into it). ``--net_override`` (JSON ``{config id: value}``) shrinks big networks for CI; a changed ``patch_size``
carries over to the metadata's ``spatial_shape``. ``--cli true`` runs the MONAI steps as ``python -m monai.bundle ...``
subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..cli import run_cli
from ..hashing import file_hash
from ..overrides import bundle_overrides
from ..paths import BUNDLES_DIR, resolve_bundle

SCHEMA = Path(__file__).with_name("meta_schema.json")

# the zoo's lists (ci/verify_bundle.py)
NECESSARY_FILES = ["configs/metadata.json", "LICENSE"]
PREFERRED_FILES = ["models/model.pt", "configs/inference.json"]
# ours: every file our bundles ship
REQUIRED_FILES = ["configs/metadata.json", "configs/inference.json", "configs/train.json", "configs/evaluate.json",
                  "configs/multi_gpu_train.json", "configs/multi_gpu_evaluate.json", "configs/logging.conf",
                  "docs/README.md", "docs/data_license.txt", "LICENSE", "large_files.yml"]
HASH_TYPES = {"md5", "sha1", "sha256", "sha512"}
NET_ID = "network_def"
# networks TorchScript cannot script: the zoo's exclude_verify_torchscript_list holds swin_unetr_btcv_segmentation
EXCLUDE_VERIFY_TORCHSCRIPT = {"SwinUNETR"}
# how we still ship a models/model.ts for them (MONAI Label and the zoo's release load it): traced
TRACE_ONLY = EXCLUDE_VERIFY_TORCHSCRIPT
MODES = ("min", "full")


class BundleError(AssertionError):
    """A bundle fails a model-zoo acceptance check."""


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("+")[0].split("-")[0].split(".")[:3])


def _find_bundle_file(folder: Path, stem: str) -> str | None:
    """``stem.json|yaml|yml`` in ``folder``, the zoo's way (the last suffix found wins)."""
    found = None
    names = set(os.listdir(folder)) if folder.is_dir() else set()
    for suffix in ("json", "yaml", "yml"):
        if f"{stem}.{suffix}" in names:
            found = f"{stem}.{suffix}"
    return found


# ------------------------------------------------------------------------------------------------ ours, first
def check_layout(bundle: Path) -> None:
    """Ours: every config, doc and license file our bundles ship; no version suffix on the folder."""
    if not bundle.is_dir():
        raise BundleError(f"{bundle} is not a folder")
    missing = [f for f in REQUIRED_FILES if not (bundle / f).is_file()]
    if missing:
        raise BundleError(f"{bundle.name}: missing {missing}")
    if "_v" in bundle.name.rsplit("_", 1)[-1] or "/" in bundle.name:
        raise BundleError(f"{bundle.name}: a bundle folder carries no version suffix")


def read_large_files(bundle: Path) -> list[dict[str, Any]]:
    """The entries of the bundle's large-file list, read with MONAI's ``ConfigParser`` as the zoo reads it."""
    from monai.bundle import ConfigParser

    name = _find_bundle_file(bundle, "large_files")
    if name is None:
        return []
    parser = ConfigParser()
    parser.read_config(str(bundle / name))
    entries = parser.get().get("large_files")
    if not isinstance(entries, list):
        raise BundleError(f"{bundle.name}: {name} must hold a `large_files:` list (an empty list when there is "
                          "nothing to download)")
    return [dict(e) for e in entries]


def check_large_files(bundle: Path, require_hash: bool = False) -> list[dict]:
    """Ours: each entry has ``path``, ``url``, ``hash_val``, ``hash_type`` (md5|sha1|sha256|sha512); a filled hash
    matches the file when it is there. ``require_hash`` (a release): ``models/model.pt`` and ``models/model.ts`` are
    listed, each with a url and a hash."""
    entries = read_large_files(bundle)
    paths = {e.get("path"): e for e in entries}
    for e in entries:
        if {"path", "url", "hash_val", "hash_type"} - set(e):
            raise BundleError(f"{bundle.name}: large_files.yml entry {e} lacks path/url/hash_val/hash_type")
        if e["hash_type"] not in HASH_TYPES:
            raise BundleError(f"{bundle.name}: unknown hash_type {e['hash_type']!r} in large_files.yml: use one of "
                              f"{sorted(HASH_TYPES)}")
        f = bundle / e["path"]
        if e["hash_val"]:
            if f.is_file() and file_hash(f, e["hash_type"]) != e["hash_val"]:
                raise BundleError(f"{bundle.name}: {e['path']} does not match its {e['hash_type']} in large_files.yml")
        elif require_hash:
            raise BundleError(f"{bundle.name}: large_files.yml has no hash for {e['path']}: package it with dsd-package")
        if require_hash and not e["url"]:
            raise BundleError(f"{bundle.name}: large_files.yml has no url for {e['path']}: dsd-package --url_base URL")
    if require_hash:
        missing = [p for p in ("models/model.pt", "models/model.ts") if p not in paths]
        if missing:
            raise BundleError(f"{bundle.name}: large_files.yml does not list {missing}: package it with dsd-package")
    return entries


# ------------------------------------------------------------------------------------------------ the zoo's steps
def download_large_files(bundle: Path) -> list[str]:
    """``ci/utils.download_large_files``: each entry through ``monai.apps.utils.download_url`` (a file already there
    is only hash-checked). Returns the paths handled.

    Raises:
        BundleError: "Download large files in ... error." with the reason (as the zoo wraps it).
    """
    from monai.apps.utils import download_url

    done = []
    for entry in read_large_files(bundle):
        kw = dict(entry, fuzzy=True)
        for key in ("hash_val", "hash_type"):
            if key in kw and kw[key] == "":
                kw.pop(key)
        rel = kw.pop("path")
        kw["filepath"] = str(bundle / rel)
        url = str(kw.get("url", ""))
        if not Path(kw["filepath"]).is_file() and url.startswith(("http://", "https://")):
            raise BundleError(f"Download large files in {bundle} error: {rel} would come from {url}, which this "
                              "offline check cannot reach; place the file there or use a file:// url")
        try:
            download_url(**kw)
        except Exception as e:
            raise BundleError(f"Download large files in {bundle} error: {rel} from {url!r}: {e}") from e
        done.append(rel)
    return done


def check_directory(bundle: Path, download: bool = True) -> list[str]:
    """``verify_bundle_directory``: large files (unless ``download`` is off: already done), then the necessary and
    preferred files. Returns the large files handled."""
    done = download_large_files(bundle) if download else []
    for f in NECESSARY_FILES:
        if not (bundle / f).exists():
            raise BundleError(f"{bundle.name}: necessary file {f} is not existing.")
    for f in PREFERRED_FILES:
        if f == "configs/inference.json":
            if _find_bundle_file(bundle / "configs", "inference") is None:
                raise BundleError(f"{bundle.name}: inference config file is not existing.")
        elif not (bundle / f).exists():
            raise BundleError(f"{bundle.name}: necessary file {f} is not existing.")
    return done


def check_version(meta: dict, name: str = "bundle", index: str | os.PathLike | None = None) -> None:
    """``verify_version_changes``: the version is a changelog key and not yet released (``index``, the zoo's
    ``model_info.json``); ours: it is also the highest changelog entry."""
    for key in ("version", "changelog"):
        if key not in meta:
            raise BundleError(f"'{key}' is missing in configs/metadata.json of bundle: {name}.")
    version, changelog = meta["version"], meta["changelog"]
    if version not in changelog:
        raise BundleError(f"{name}: version {version} is not in changelog {sorted(changelog)}")
    highest = max(changelog, key=version_tuple)
    if version_tuple(version) != version_tuple(highest):
        raise BundleError(f"{name}: version {version} is not the highest changelog entry ({highest})")
    if index is not None and Path(index).is_file():
        if f"{name}_v{version}" in json.loads(Path(index).read_text()):
            raise BundleError(f"version number: {version} is already used of bundle: {name}. Please change it "
                              f"(released versions: {index}).")


def check_metadata(bundle: Path, schema_path: Path = SCHEMA) -> dict:
    """``verify_metadata_format``: MONAI's ``verify_metadata`` against the schema at ``eval/schema.json``, pre-seeded
    with ``schema_path`` (never downloaded); then ours: name and first input/output."""
    from monai.bundle import verify_metadata

    target = bundle / "eval" / "schema.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(schema_path, target)
    meta_file = bundle / "configs" / "metadata.json"
    try:
        verify_metadata(meta_file=str(meta_file), filepath=str(target), hash_val=file_hash(target, "sha256"),
                        hash_type="sha256")
    except ValueError as e:
        raise BundleError(f"{bundle.name}: configs/metadata.json: {e}") from None
    meta = json.loads(meta_file.read_text())
    if meta.get("name", bundle.name) != bundle.name:
        raise BundleError(f"{bundle.name}: metadata name {meta['name']!r} differs from the folder name")
    fmt = meta["network_data_format"]
    if next(iter(fmt["inputs"])) != "image" or next(iter(fmt["outputs"])) != "pred":
        raise BundleError(f"{bundle.name}: the first input must be 'image' and the first output 'pred'")
    return meta


def requirement_lines(meta: dict) -> list[str]:
    """``ci/get_bundle_requirements.py``: ``monai==``, ``torch==``, ``numpy==`` and every required (and, for old
    metadata, optional) package as ``name==version``: what the zoo's CI pip-installs before verifying."""
    libs = []
    for key, dist in (("monai_version", "monai"), ("pytorch_version", "torch"), ("numpy_version", "numpy")):
        if key in meta:
            libs.append(f"{dist}=={meta[key]}")
    for key in ("optional_packages_version", "required_packages_version"):
        libs += [f"{n}=={v}" for n, v in (meta.get(key) or {}).items()]
    return libs


def check_requirements(meta: dict, name: str = "bundle") -> list[str]:
    """Ours, offline: every requirement line is an exact pin of an installed distribution. Returns notes for versions
    other than the installed ones (CI would install the pinned ones)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    notes = []
    for line in requirement_lines(meta):
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise BundleError(f"{name}: metadata gives the requirement {line!r}, which pip cannot read: {e}") from None
        pinned = str(req.specifier).removeprefix("==")
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            raise BundleError(f"{name}: metadata requires {line}, which is not installed here") from None
        if installed.split("+")[0] != pinned:
            notes.append(f"{req.name} {pinned} pinned, {installed} installed")
    return notes


def check_properties(meta: dict) -> list[str]:
    """``verify_bundle_properties``: the apps whose property checks the zoo would run (none exists in its tree for
    the apps our bundles name; see the module docstring)."""
    return sorted(meta.get("supported_apps") or {})


def _parser(bundle: Path, over: dict[str, Any]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), **over})
    return parser


def network_class(bundle: Path, over: dict[str, Any] | None = None) -> str:
    return str(_parser(bundle, over or {}).get(f"{NET_ID}#_target_")).rsplit(".", 1)[-1]


def make_fresh_weights(bundle: Path, over: dict[str, Any]) -> Path:
    """Save a freshly initialised stock backbone as ``models/model.pt`` (the zoo's ``_produce_fake_weights``)."""
    import torch

    net = _parser(bundle, over).get_parsed_content(NET_ID)
    out = bundle / "models" / "model.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    return out


def _cli_args(over: dict[str, Any]) -> list[str]:
    args = []
    for k, v in over.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    return args


def _run_cli(cmd: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": ""}  # the stock backbone needs no project code
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise BundleError(f"{' '.join(cmd[:4])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def check_net_in_out(bundle: Path, over: dict[str, Any], cli: bool = False) -> None:
    """``verify_data_shape``: ``monai.bundle verify_net_in_out``: a random input of the metadata's shape gives
    ``pred``'s channels and dtype."""
    kw = {"net_id": NET_ID, "meta_file": str(bundle / "configs" / "metadata.json"),
          "config_file": str(bundle / "configs" / "inference.json"), "bundle_root": str(bundle), "device": "cpu"}
    if cli:
        _run_cli([sys.executable, "-m", "monai.bundle", "verify_net_in_out", NET_ID, "--meta_file", kw["meta_file"],
                  "--config_file", kw["config_file"], "--bundle_root", kw["bundle_root"], "--device", "cpu",
                  *_cli_args(over)])
        return
    from monai.bundle import verify_net_in_out

    try:
        verify_net_in_out(**kw, **over)
    except Exception as e:
        raise BundleError(f"{bundle.name}: verify_net_in_out failed: {e}") from e


def export_torchscript(bundle: Path, over: dict[str, Any], out: Path, cli: bool = False) -> Path:
    """``monai.bundle ckpt_export`` of ``models/model.pt`` to ``out`` (scripted; traced for :data:`TRACE_ONLY`
    networks), checked against the eager backbone (ours)."""
    import torch

    parser = _parser(bundle, over)
    kw: dict[str, Any] = {"net_id": NET_ID, "filepath": str(out), "ckpt_file": str(bundle / "models" / "model.pt"),
                          "meta_file": str(bundle / "configs" / "metadata.json"),
                          "config_file": str(bundle / "configs" / "inference.json"), "bundle_root": str(bundle)}
    if network_class(bundle, over) in TRACE_ONLY:  # the comparison below replaces torch.jit.trace's own re-trace check
        kw.update(use_trace=True, converter_kwargs={"check_trace": False})
    if cli:
        flags = [x for k, v in kw.items() if k != "net_id" for x in (f"--{k}", str(v))]
        _run_cli([sys.executable, "-m", "monai.bundle", "ckpt_export", NET_ID, *flags, *_cli_args(over)])
    else:
        from monai.bundle import ckpt_export

        try:
            ckpt_export(**kw, **over)
        except Exception as e:
            raise BundleError(f"{bundle.name}: ckpt_export failed: {e}") from e
    ts = torch.jit.load(str(out), map_location="cpu").eval()
    net = parser.get_parsed_content(NET_ID)
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True), strict=True)
    net.eval()
    shape = parser.get("_meta_#network_data_format#inputs#image#spatial_shape")
    channels = parser.get("_meta_#network_data_format#inputs#image#num_channels")
    x = torch.rand(1, channels, *shape)
    with torch.no_grad():
        if not torch.allclose(ts(x), net(x), atol=1e-4):
            raise BundleError(f"{bundle.name}: the TorchScript module disagrees with the backbone")
    return out


def check_torchscript(bundle: Path, over: dict[str, Any], cli: bool = False) -> str:
    """``verify_torchscript``: export ``models/model.pt`` by scripting into ``models/verify_model.ts`` (the zoo's
    name: a shipped model.ts is never overwritten), then load a shipped ``models/model.ts``. Networks in
    :data:`EXCLUDE_VERIFY_TORCHSCRIPT` are skipped, as the zoo skips the bundles on its exclude list. Returns what was
    done."""
    import torch

    cls = network_class(bundle, over)
    if cls in EXCLUDE_VERIFY_TORCHSCRIPT:
        print(f"bundle: {bundle.name} does not support torchscript ({cls}), skip verifying.")
        return f"torchscript skipped ({cls})"
    export_torchscript(bundle, over, bundle / "models" / "verify_model.ts", cli=cli)
    shipped = bundle / "models" / "model.ts"
    if shipped.is_file():
        torch.jit.load(str(shipped), map_location="cpu")
    return "ckpt_export"


def verify_one(bundle: str | Path, weights: str | None = None, net_override: str | dict | None = None,
               workdir: str | None = None, cli: bool = False, require_hash: bool = False,
               fresh_weights: bool = False, mode: str = "full", require_weights: bool = False,
               index: str | None = None) -> list[str]:
    """Run every check on a temporary copy of ``bundle``; return the names of the passed checks.

    Raises:
        BundleError: the first check that fails (the message names the file and the fix).
        ValueError: an unknown ``mode``.
    """
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    src = resolve_bundle(bundle)
    over = bundle_overrides(net_override, "net_override")
    done: list[str] = []
    check_layout(src)
    check_large_files(src, require_hash=require_hash)
    done.append("layout, large_files.yml")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("eval", "logs", "verify_model.ts", "latest.pt",
                                                                 "previous_run", "__pycache__"))
        if weights:
            (work / "models").mkdir(exist_ok=True)
            shutil.copyfile(weights, work / "models" / "model.pt")
        downloaded = download_large_files(work)
        if downloaded:
            done.append(f"large files ({', '.join(downloaded)})")
        if fresh_weights or not (work / "models" / "model.pt").is_file():
            if require_weights:
                raise BundleError(f"{src.name}: necessary file models/model.pt is not existing.")
            make_fresh_weights(work, over)
            done.append("fresh weights")
        check_directory(work, download=False)
        done.append("directory")
        meta = json.loads((work / "configs" / "metadata.json").read_text())
        check_version(meta, src.name, index=index)
        done.append("version/changelog")
        check_metadata(work)
        done.append("metadata schema")
        for note in check_requirements(meta, src.name):
            print(f"note {src.name}: {note}")
        done.append("requirements")
        if mode == "min":
            return done
        check_properties(meta)
        done.append("properties")
        check_net_in_out(work, over, cli=cli)
        done.append("verify_net_in_out")
        done.append(check_torchscript(work, over, cli=cli))
    return done


def verify(bundle: str = "all", weights: str | None = None, net_override: str | dict | None = None,
           workdir: str | None = None, cli: bool = False, require_hash: bool = False,
           fresh_weights: bool = False, mode: str = "full", require_weights: bool = False,
           index: str | None = None) -> None:
    """Run the model zoo's acceptance checks on one bundle (a name under bundles/ or a folder) or ``all``.

    Args:
        bundle: a bundle name, a bundle folder, or ``all``.
        weights: a model.pt to check instead of the bundle's own (default: the bundle's, else fresh weights).
        net_override: JSON ``{config id: value}`` that shrinks the network (and the patch) for a quick check.
        workdir: where the temporary copy is made.
        cli: run ``python -m monai.bundle verify_net_in_out`` / ``ckpt_export`` as subprocesses.
        require_hash: large_files.yml must list both weights with url and hash (a release).
        fresh_weights: ignore a trained model.pt (e.g. to check a shrunken network).
        mode: ``full`` (the zoo's GPU runners) or ``min`` (every pull request: directory, version, metadata).
        require_weights: fail without models/model.pt, as the zoo does, instead of making fresh weights.
        index: a released-versions index (model_info.json) the version must not be in yet.
    Exit status 1 when any bundle fails.
    """
    names = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs").is_dir()) if bundle == "all" else [bundle]
    failed = []
    for name in names:
        try:
            done = verify_one(name, weights=weights, net_override=net_override, workdir=workdir, cli=cli,
                              require_hash=require_hash, fresh_weights=fresh_weights, mode=mode,
                              require_weights=require_weights, index=index)
            print(f"PASS {name}: {', '.join(done)}")
        except BundleError as e:
            print(f"FAIL {name}: {e}")
            failed.append(name)
    if failed:
        raise SystemExit(1)


def main() -> None:
    run_cli(verify)
