"""Self-contained bundle packages and a local zoo index (like the model zoo's ``model_info.json``).

    dsd-package NAME                       # dist/NAME_vX.Y.Z.zip from bundles/NAME/models/model.pt
    dsd-package NAME --weights run/model.pt --dist /tmp/dist
    dsd-fetch NAME --version 0.1.0 --bundle_dir ./downloads   # by name, via the local index
    python -m monai.bundle download --name NAME --url file:///abs/dist/NAME_v0.1.0.zip --bundle_dir ./downloads

A package is a zip with top folder ``NAME/``: the bundle's configs, docs and LICENSE, the trained ``models/model.pt``
and its TorchScript ``models/model.ts``, ``large_files.yml`` with their sha256, and the runtime package vendored as
``NAME/scripts/dsd_components/`` (the model-zoo place for custom code), so that the unzipped bundle trains, evaluates
and infers where only the packages named in ``metadata.json`` are installed. Only the runtime is vendored: the tools
(``dsd_tools``) never ship inside a bundle.

In the packaged configs only, every use of ``dsd_components`` becomes the vendored copy:
``_target_: dsd_components.X`` -> ``scripts.dsd_components.X``, ``$dsd_components.m.f(...)`` ->
``$@dsd_components.m.f(...)``, the ``$import dsd_components...`` lines give way to a top-level ``dsd_components``
item that locates ``scripts.dsd_components``, the ``initialize`` steps move to the front of ``run``, and
``bundle_root`` becomes the standard-library rule of ``inference.json`` (the runtime's helper cannot be found before
the bundle root is known). Why: MONAI evaluates import lines while parsing, and makes the bundle folder importable
only when ``run`` starts (``ConfigWorkflow.run``), so the vendored code is reachable from ``run`` on, wherever the
bundle lies and whatever the working directory.

``dist/model_info.json`` maps ``NAME_vX.Y.Z`` to ``{"checksum": sha256 of the zip, "source": file:// URL}``.
``fetch`` looks a name up there, downloads it with MONAI's own ``monai.bundle download --url`` (offline for
``file://`` sources) and checks the checksum.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import dsd_components
from dsd_components.export import atomic_write, write_error

from ..bundlegen.configs import RUNTIME_BUNDLE_ROOT, STDLIB_BUNDLE_ROOT
from ..cli import UsageError, run_cli
from ..hashing import file_hash
from ..overrides import bundle_overrides
from ..paths import BUNDLES_DIR, REPO_ROOT
from .verify import check_torchscript

RUNTIME_DIR = Path(dsd_components.__file__).resolve().parent
DIST_DIR = REPO_ROOT / "dist"
PKG = "dsd_components"
VENDORED = f"scripts.{PKG}"
INDEX_NAME = "model_info.json"
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip and checksum

_IMPORT_LINE = re.compile(rf"^\$\s*import\s+{PKG}(\.\w+)*\s*$")
_EXPR_USE = re.compile(rf"(?<![\w.@'\"]){PKG}(?=\.)")


def sha256(path: str | os.PathLike) -> str:
    return file_hash(path, "sha256")


def _submodules(pkg_dir: Path) -> list[str]:
    return sorted(p.stem for p in pkg_dir.glob("*.py") if p.stem != "__init__")


def loader_expression(submodules: list[str]) -> str:
    """The packaged ``dsd_components`` item: the vendored package and the modules a config names.

    ``pydoc.locate`` imports them (and raises if one fails to import). It runs inside the ``run`` step, after MONAI's
    ``ConfigWorkflow.run`` has put the bundle root on the import path, so ``scripts.dsd_components`` is found
    wherever the bundle lies; the expression avoids the word "import", which MONAI would take for an import
    statement to run while parsing, before the bundle root is known."""
    mods = "".join(f"{m!r}, " for m in submodules)
    return f"$([pydoc.locate('{VENDORED}.' + m) for m in ({mods})], pydoc.locate('{VENDORED}'))[-1]"


def vendor_config(cfg: dict[str, Any], submodules: list[str], has_imports: bool = True) -> dict[str, Any]:
    """Rewrite one config so that it uses ``scripts.dsd_components`` inside the bundle (no-op if it has no use).

    The steps of ``initialize`` move to the front of ``run``: MONAI makes the bundle's ``scripts`` importable only
    when ``run`` starts, and every step that needs the vendored code (the error handler, the data check) must come
    after that."""
    if PKG not in json.dumps(cfg):
        return cfg

    def walk(x: Any, key: str | None = None) -> Any:
        if isinstance(x, dict):
            return {k: walk(v, k) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, str):
            if key == "_target_" and (x == PKG or x.startswith(PKG + ".")):
                return f"scripts.{x}"
            if x.startswith("$") and not _IMPORT_LINE.match(x):
                return _EXPR_USE.sub(f"@{PKG}", x)
        return x

    # the loader imports only the modules this config names (others may need tools a bundle user lacks)
    used = sorted(set(re.findall(rf"{PKG}\.(\w+)", json.dumps(cfg))) & set(submodules))
    out = walk(cfg)
    if out.get("bundle_root") in (RUNTIME_BUNDLE_ROOT, {"_target_": f"{VENDORED}.entry.bundle_root"}):
        out["bundle_root"] = STDLIB_BUNDLE_ROOT
    if "imports" in out:
        out["imports"] = [i for i in out["imports"] if not _IMPORT_LINE.match(i)]
        if "$import pydoc" not in out["imports"]:
            out["imports"].append("$import pydoc")
    if has_imports or "imports" in out:
        out[PKG] = loader_expression(used)
    if isinstance(out.get("run"), list):
        out["run"] = [f"$@{PKG}", *out.get("initialize", []), *out["run"]]
        out["initialize"] = []
    leftover = [s for s in re.findall(rf"[\w.@]*{PKG}[\w.]*", json.dumps(out))
                if not (s.startswith(f"@{PKG}") or s.startswith(VENDORED) or s == PKG)]
    if leftover:
        raise ValueError(f"unvendored references left: {sorted(set(leftover))}")
    return out


def _write_large_files(bundle: Path) -> None:
    lines = ["large_files:"]
    for rel in ("models/model.pt", "models/model.ts"):
        f = bundle / rel
        if f.is_file():
            lines += [f'  - path: "{rel}"', '    url: ""', f'    hash_val: "{sha256(f)}"', '    hash_type: "sha256"']
    (bundle / "large_files.yml").write_text("\n".join(lines) + "\n")


def _export_torchscript(bundle: Path, over: dict[str, Any]) -> None:
    ts = check_torchscript(bundle, over)
    os.replace(ts, bundle / "models" / "model.ts")


def _zip(folder: Path, out: Path) -> None:
    """Write the zip atomically: a failed write (full disk, no permission) keeps the previous zip.

    Raises:
        CheckpointError: ``out`` could not be written; the message names it, the reason and the space needed.
    """
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]

    def write(f: BinaryIO) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                info = zipfile.ZipInfo(str(Path(folder.name) / p.relative_to(folder)), date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, p.read_bytes())

    atomic_write(out, write, size_hint=sum(p.stat().st_size for p in files))


def update_index(dist: str | os.PathLike, name: str, version: str, zip_path: Path) -> Path:
    """Add the package to the local index, atomically (a failed write keeps the previous index).

    Raises:
        CheckpointError: the index could not be written.
    """
    index = Path(dist) / INDEX_NAME
    info = json.loads(index.read_text()) if index.is_file() else {}
    info[f"{name}_v{version}"] = {"checksum": sha256(zip_path), "source": zip_path.resolve().as_uri()}
    text = (json.dumps(dict(sorted(info.items())), indent=4) + "\n").encode()
    atomic_write(index, lambda f: f.write(text), size_hint=len(text))
    return index


def package(name: str, weights: str | None = None, dist: str = str(DIST_DIR),
            net_override: str | dict | None = None, bundles_dir: str = str(BUNDLES_DIR)) -> str:
    """Write ``dist/NAME_vX.Y.Z.zip`` and add it to ``dist/model_info.json``; return the zip's path.

    Args:
        name: a bundle under ``bundles_dir``.
        weights: the model.pt to ship (default: ``bundles/NAME/models/model.pt``, written by training).
        dist: the output folder (zip and index).
        net_override: JSON ``{config id: value}``, only for exporting ``model.ts`` of weights trained with
            overridden network settings.
    """
    src = Path(bundles_dir) / name
    meta = json.loads((src / "configs" / "metadata.json").read_text())
    version = meta["version"]
    weights_path = Path(weights) if weights else src / "models" / "model.pt"
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} does not exist: train the bundle first or pass --weights.")
    over = bundle_overrides(net_override, "net_override")
    try:
        out = _build_package(src, name, version, weights_path, over, Path(dist))
    except OSError as exc:  # building the package in a temporary folder: nothing under dist/ changed yet
        where = exc.filename or tempfile.gettempdir()
        raise write_error(Path(where), exc) from exc
    index = update_index(dist, name, version, out)
    print(f"wrote {out} (sha256 {sha256(out)}); index {index}")
    return str(out)


def _build_package(src: Path, name: str, version: str, weights_path: Path, over: dict[str, Any], dist: Path) -> Path:
    """The bundle assembled in a temporary folder, then zipped (atomically) to ``dist``; returns the zip."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / name
        shutil.copytree(src, bundle, ignore=shutil.ignore_patterns("models", "eval", "logs", "__pycache__", "dist"))
        (bundle / "models").mkdir()
        shutil.copyfile(weights_path, bundle / "models" / "model.pt")
        # vendored project code, the model-zoo way: <bundle>/scripts/ is importable as `scripts`
        shutil.copytree(RUNTIME_DIR, bundle / "scripts" / PKG, ignore=shutil.ignore_patterns("__pycache__"))
        (bundle / "scripts" / "__init__.py").write_text('"""Custom code of this bundle (vendored dsd_components)."""\n')
        subs = _submodules(RUNTIME_DIR)
        for cfg_file in sorted((bundle / "configs").glob("*.json")):
            if cfg_file.name == "metadata.json":
                continue
            cfg = json.loads(cfg_file.read_text())
            new = vendor_config(cfg, subs, has_imports="imports" in cfg)
            cfg_file.write_text(json.dumps(new, indent=4) + "\n")
        _export_torchscript(bundle, over)
        _write_large_files(bundle)
        out = Path(dist) / f"{name}_v{version}.zip"
        _zip(bundle, out)
    return out


class PackageChecksumError(UsageError):
    """A downloaded package does not match the checksum its index promises; nothing was unpacked."""


def fetch(name: str, version: str | None = None, bundle_dir: str = ".", index: str = str(DIST_DIR / INDEX_NAME)) -> str:
    """Get ``name`` (latest version in the index unless given) by its index entry: download, check the sha256,
    then unpack.

    The checksum is verified on the downloaded zip *before* anything is extracted (MONAI's ``download_url`` checks
    the hash), and the bundle is unpacked into a temporary folder beside the target and moved into place only when
    complete, so a tampered or truncated package leaves ``bundle_dir`` exactly as it was.

    Args:
        name: the bundle name in the index.
        version: a version in the index (default: the highest).
        bundle_dir: where the bundle folder is unpacked.
        index: the local zoo index (model_info.json).

    Raises:
        UsageError: the name or version is not in the index.
        PackageChecksumError: the download does not match the index's checksum.
    """
    from monai.apps.utils import HashCheckError, download_url, extractall

    info = json.loads(Path(index).read_text())
    versions = {k.rsplit("_v", 1)[1]: v for k, v in info.items() if k.rsplit("_v", 1)[0] == name}
    if not versions:
        raise UsageError(f"{name} is not in {index}; known: {sorted(info)}")
    if version is None:
        version = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    if version not in versions:
        raise UsageError(f"{name} v{version} is not in {index}; versions: {sorted(versions)}")
    entry = versions[version]
    out = Path(bundle_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.fetch.") as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        try:
            download_url(entry["source"], str(zip_path), hash_val=entry["checksum"], hash_type="sha256",
                         progress=False)
        except HashCheckError:
            got = sha256(zip_path) if zip_path.is_file() else "nothing"
            raise PackageChecksumError(
                f"checksum mismatch for {name} v{version} from {entry['source']}: the index {index} says "
                f"{entry['checksum']}, the download is {got}; nothing was unpacked into {out}. Re-package it or fix "
                "the index entry.") from None
        extractall(str(zip_path), output_dir=str(Path(tmp) / "unpacked"), file_type="zip")
        new = Path(tmp) / "unpacked" / name
        if not (new / "configs").is_dir():
            raise PackageChecksumError(f"{entry['source']} holds no {name}/configs/: not a bundle package")
        target = out / name
        old = Path(tmp) / "previous"
        if target.exists():
            os.replace(target, old)  # the old copy goes away with the temporary folder, after the swap
        os.replace(new, target)
    print(f"{name} v{version} -> {target} (sha256 ok)")
    return str(target)


def main() -> None:
    """``dsd-package NAME``: print the zip written."""
    run_cli(package)


def main_fetch() -> None:
    run_cli(fetch)
