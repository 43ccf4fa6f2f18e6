"""Model-zoo acceptance checks for our bundles, offline.

The MONAI model zoo runs these checks on a submitted bundle (its ``ci/verify_bundle.py``): required and preferred
files, ``metadata.json`` against the MONAI bundle metadata schema, version and changelog, network input/output
against the metadata (``monai.bundle verify_net_in_out``), TorchScript export of ``models/model.pt``
(``monai.bundle ckpt_export``) and the large-file list. Here the schema is our own copy (``schemas/meta_schema.json``,
never downloaded) and nothing touches the network.

    python scripts/verify_bundle.py all                                  # all nine bundles
    python scripts/verify_bundle.py hippocampus_vnet_dsd --weights models/model.pt
    python scripts/verify_bundle.py brats_unetr_dsd --cli True \\
        --net_override '{"network_def#feature_size": 4, "network_def#hidden_size": 24, "network_def#mlp_dim": 24,
                         "network_def#num_heads": 2, "patch_size": [32, 32, 32]}'
    python scripts/verify_bundle.py dist/unzipped/NAME --require_hash True   # a packaged bundle

The checks run on a temporary copy of the bundle. Without ``models/model.pt`` (the repository does not commit
weights) and without ``--weights``, a freshly initialised stock backbone is saved as ``models/model.pt`` first, as
the zoo does for bundles without weights (``--fresh_weights True`` does so even when trained weights exist).
``--net_override`` (JSON ``{config id: value}``) shrinks big networks for
CI; when it sets ``patch_size`` the metadata's input and output ``spatial_shape`` follow. ``--cli True`` runs the
two MONAI steps as ``python -m monai.bundle ...`` subprocesses instead of calling the same functions in-process.
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

# what the zoo requires (necessary) and prefers; ours are all required
REQUIRED_FILES = ["configs/metadata.json", "configs/inference.json", "configs/train.json", "configs/evaluate.json",
                  "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md", "LICENSE",
                  "large_files.yml"]
HASH_TYPES = {"md5", "sha1", "sha256", "sha512"}
NET_ID = "network_def"
# networks that TorchScript cannot script (as in the zoo's exclude list): exported by tracing instead
TRACE_ONLY = {"SwinUNETR"}


class BundleError(AssertionError):
    """A bundle fails a model-zoo acceptance check."""


def version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("+")[0].split("-")[0].split(".")[:3])


def check_layout(bundle: Path) -> None:
    if not bundle.is_dir():
        raise BundleError(f"{bundle} is not a folder")
    missing = [f for f in REQUIRED_FILES if not (bundle / f).is_file()]
    if missing:
        raise BundleError(f"{bundle.name}: missing {missing}")
    if "_v" in bundle.name.rsplit("_", 1)[-1] or "/" in bundle.name:
        raise BundleError(f"{bundle.name}: a bundle folder carries no version suffix")


def check_metadata(bundle: Path, schema_path: Path = SCHEMA) -> dict:
    """``metadata.json`` against our offline copy of the MONAI metadata schema (jsonschema, draft 7)."""
    import jsonschema

    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    schema = json.loads(Path(schema_path).read_text())
    try:
        jsonschema.validate(meta, schema, cls=jsonschema.Draft7Validator)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise BundleError(f"{bundle.name}: metadata.json at {where}: {e.message}") from None
    if meta.get("name", bundle.name) != bundle.name:
        raise BundleError(f"{bundle.name}: metadata name {meta['name']!r} differs from the folder name")
    fmt = meta["network_data_format"]
    if next(iter(fmt["inputs"])) != "image" or next(iter(fmt["outputs"])) != "pred":
        raise BundleError(f"{bundle.name}: the first input must be 'image' and the first output 'pred'")
    return meta


def check_version(meta: dict, name: str = "bundle") -> None:
    """The current version is a key of ``changelog`` and the highest one (the zoo checks the first)."""
    version, changelog = meta["version"], meta["changelog"]
    if version not in changelog:
        raise BundleError(f"{name}: version {version} is not in changelog {sorted(changelog)}")
    highest = max(changelog, key=version_tuple)
    if version_tuple(version) != version_tuple(highest):
        raise BundleError(f"{name}: version {version} is not the highest changelog entry ({highest})")


def check_large_files(bundle: Path, require_hash: bool = False) -> list[dict]:
    """``large_files.yml`` names ``models/model.pt`` with a hash type; a filled hash must match the file."""
    import yaml

    entries = (yaml.safe_load((bundle / "large_files.yml").read_text()) or {}).get("large_files") or []
    paths = {e.get("path"): e for e in entries}
    if "models/model.pt" not in paths:
        raise BundleError(f"{bundle.name}: large_files.yml does not name models/model.pt")
    for e in entries:
        if {"path", "url", "hash_val", "hash_type"} - set(e):
            raise BundleError(f"{bundle.name}: large_files.yml entry {e} lacks path/url/hash_val/hash_type")
        if e["hash_type"] not in HASH_TYPES:
            raise BundleError(f"{bundle.name}: unknown hash_type {e['hash_type']!r}")
        f = bundle / e["path"]
        if e["hash_val"]:
            if f.is_file() and file_hash(f, e["hash_type"]) != e["hash_val"]:
                raise BundleError(f"{bundle.name}: {e['path']} does not match its {e['hash_type']} in large_files.yml")
        elif require_hash:
            raise BundleError(f"{bundle.name}: large_files.yml has no hash for {e['path']}")
    return entries


def _parser(bundle: Path, over: dict[str, Any]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(bundle), **over})
    return parser


def make_fresh_weights(bundle: Path, over: dict[str, Any]) -> Path:
    """Save a freshly initialised stock backbone as ``models/model.pt`` (the zoo's fake weights)."""
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
    """``monai.bundle verify_net_in_out``: a random input of the metadata's shape gives ``pred``'s channels and dtype."""
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


def check_torchscript(bundle: Path, over: dict[str, Any], cli: bool = False) -> Path:
    """``monai.bundle ckpt_export`` of ``models/model.pt`` to TorchScript; the module loads and matches the backbone."""
    import torch

    parser = _parser(bundle, over)
    cls = parser.get(f"{NET_ID}#_target_").rsplit(".", 1)[-1]
    out = bundle / "models" / "verify_model.ts"  # the zoo's name: never overwrites a shipped model.ts
    kw: dict[str, Any] = {"net_id": NET_ID, "filepath": str(out), "ckpt_file": str(bundle / "models" / "model.pt"),
                          "meta_file": str(bundle / "configs" / "metadata.json"),
                          "config_file": str(bundle / "configs" / "inference.json"), "bundle_root": str(bundle)}
    if cls in TRACE_ONLY:  # the comparison below replaces torch.jit.trace's own (slow) re-trace check
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
    shipped = bundle / "models" / "model.ts"
    if shipped.is_file():
        torch.jit.load(str(shipped), map_location="cpu")
    return out


def verify_one(bundle: str | Path, weights: str | None = None, net_override: str | dict | None = None,
               workdir: str | None = None, cli: bool = False, require_hash: bool = False,
               fresh_weights: bool = False) -> list[str]:
    """Run every check on a temporary copy of ``bundle``; return the names of the passed checks.

    ``fresh_weights`` ignores a trained ``models/model.pt`` (e.g. to check a shrunken network)."""
    src = resolve_bundle(bundle)
    over = bundle_overrides(net_override, "net_override")
    done: list[str] = []
    check_layout(src)
    done.append("layout")
    meta = check_metadata(src)
    done.append("metadata schema")
    check_version(meta, src.name)
    done.append("version/changelog")
    check_large_files(src, require_hash=require_hash)
    done.append("large_files.yml")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("eval", "logs", "*.ts", "latest.pt"))
        if weights:
            (work / "models").mkdir(exist_ok=True)
            shutil.copyfile(weights, work / "models" / "model.pt")
        elif fresh_weights or not (work / "models" / "model.pt").is_file():
            make_fresh_weights(work, over)
            done.append("fresh weights")
        if (src / "models" / "model.ts").is_file():
            shutil.copyfile(src / "models" / "model.ts", work / "models" / "model.ts")
        check_net_in_out(work, over, cli=cli)
        done.append("verify_net_in_out")
        check_torchscript(work, over, cli=cli)
        done.append("ckpt_export")
    return done


def verify(bundle: str = "all", weights: str | None = None, net_override: str | dict | None = None,
           workdir: str | None = None, cli: bool = False, require_hash: bool = False,
           fresh_weights: bool = False) -> None:
    """Run the model zoo's acceptance checks on one bundle (a name under bundles/ or a folder) or ``all``.

    Args:
        bundle: a bundle name, a bundle folder, or ``all``.
        weights: a model.pt to check instead of the bundle's own (default: the bundle's, else fresh weights).
        net_override: JSON ``{config id: value}`` that shrinks the network (and the patch) for a quick check.
        workdir: where the temporary copy is made.
        cli: run ``python -m monai.bundle verify_net_in_out`` / ``ckpt_export`` as subprocesses.
        require_hash: fail when large_files.yml has no hash (a packaged release).
        fresh_weights: ignore a trained model.pt (e.g. to check a shrunken network).
    Exit status 1 when any bundle fails.
    """
    names = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs").is_dir()) if bundle == "all" else [bundle]
    failed = []
    for name in names:
        try:
            done = verify_one(name, weights=weights, net_override=net_override, workdir=workdir, cli=cli,
                              require_hash=require_hash, fresh_weights=fresh_weights)
            print(f"PASS {name}: {', '.join(done)}")
        except BundleError as e:
            print(f"FAIL {name}: {e}")
            failed.append(name)
    if failed:
        raise SystemExit(1)


def main() -> None:
    run_cli(verify)
