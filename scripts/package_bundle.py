"""Self-contained bundle packages and a local zoo index (like the model zoo's ``model_info.json``).

    python scripts/package_bundle.py NAME                       # dist/NAME_vX.Y.Z.zip from bundles/NAME/models/model.pt
    python scripts/package_bundle.py NAME --weights run/model.pt --dist /tmp/dist
    python scripts/package_bundle.py fetch NAME --version 0.1.0 --bundle_dir ./downloads   # by name, via the index
    python -m monai.bundle download --name NAME --url file:///abs/dist/NAME_v0.1.0.zip --bundle_dir ./downloads

A package is a zip with top folder ``NAME/``: the bundle's configs, docs and LICENSE, the trained ``models/model.pt``
and its TorchScript ``models/model.ts``, ``large_files.yml`` with their sha256, and the project code vendored as
``NAME/scripts/dsd_components/`` (the model-zoo place for custom code), so that the unzipped bundle trains, evaluates
and infers where only the packages named in ``metadata.json`` are installed.

In the packaged configs only, every use of ``dsd_components`` becomes the vendored copy:
``_target_: dsd_components.X`` -> ``scripts.dsd_components.X``, ``$dsd_components.m.f(...)`` ->
``$@dsd_components.m.f(...)`` and the ``$import dsd_components...`` lines give way to a top-level
``dsd_components`` item that puts the bundle root on ``sys.path`` and imports ``scripts.dsd_components``. (A plain
``$import scripts.dsd_components`` is not enough: MONAI evaluates import lines before anything else, and adds the
bundle root to ``sys.path`` only in ``run``, after ``initialize`` has checked the data, so the import silently fails
whenever the working directory is not the bundle root.)

``dist/model_info.json`` maps ``NAME_vX.Y.Z`` to ``{"checksum": sha256 of the zip, "source": file:// URL}``.
``fetch`` looks a name up there, downloads it with MONAI's own ``monai.bundle download --url`` (offline for
``file://`` sources) and checks the checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import fire

ROOT = Path(__file__).resolve().parents[1]
PKG = "dsd_components"
VENDORED = f"scripts.{PKG}"
INDEX_NAME = "model_info.json"
ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip and checksum

_IMPORT_LINE = re.compile(rf"^\$\s*import\s+{PKG}(\.\w+)*\s*$")
_EXPR_USE = re.compile(rf"(?<![\w.@'\"]){PKG}(?=\.)")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _submodules(pkg_dir: Path) -> list[str]:
    return sorted(p.stem for p in pkg_dir.glob("*.py") if p.stem != "__init__")


def loader_expression(submodules: list[str]) -> str:
    """The packaged ``dsd_components`` item: bundle root on sys.path, then the vendored package and its modules.

    ``pydoc.locate`` imports them (and raises if one fails to import); the expression must not contain the word
    "import", or MONAI takes it for an import statement and parses it before resolving the references."""
    mods = "".join(f"{m!r}, " for m in submodules)
    return (
        "$(sys.path.insert(1, @bundle_root) if @bundle_root not in sys.path else None, "
        f"[pydoc.locate('{VENDORED}.' + m) for m in ({mods})], pydoc.locate('{VENDORED}'))[-1]"
    )


def vendor_config(cfg: dict[str, Any], submodules: list[str], has_imports: bool = True) -> dict[str, Any]:
    """Rewrite one config so that it uses ``scripts.dsd_components`` inside the bundle (no-op if it has no use)."""
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
    if "imports" in out:
        out["imports"] = [i for i in out["imports"] if not _IMPORT_LINE.match(i)]
        if "$import pydoc" not in out["imports"]:
            out["imports"].append("$import pydoc")
    if has_imports or "imports" in out:
        out[PKG] = loader_expression(used)
    if isinstance(out.get("initialize"), list) and f"$@{PKG}" not in out["initialize"]:
        out["initialize"] = [f"$@{PKG}"] + out["initialize"]
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
    sys.path.insert(0, str(ROOT / "scripts"))
    import verify_bundle

    ts = verify_bundle.check_torchscript(bundle, verify_bundle._overrides(over))
    os.replace(ts, bundle / "models" / "model.ts")


def _zip(folder: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                info = zipfile.ZipInfo(str(Path(folder.name) / p.relative_to(folder)), date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, p.read_bytes())
    os.replace(tmp, out)


def update_index(dist: str | os.PathLike, name: str, version: str, zip_path: Path) -> Path:
    index = Path(dist) / INDEX_NAME
    info = json.loads(index.read_text()) if index.is_file() else {}
    info[f"{name}_v{version}"] = {"checksum": sha256(zip_path), "source": zip_path.resolve().as_uri()}
    index.write_text(json.dumps(dict(sorted(info.items())), indent=4) + "\n")
    return index


def package(name: str, weights: str | None = None, dist: str = str(ROOT / "dist"),
            net_override: str | dict | None = None, bundles_dir: str = str(ROOT / "bundles")) -> str:
    """Write ``dist/NAME_vX.Y.Z.zip`` and add it to ``dist/model_info.json``; return the zip's path.

    ``weights`` defaults to ``bundles/NAME/models/model.pt`` (written by training). ``net_override`` (JSON
    ``{config id: value}``) is only for exporting ``model.ts`` of weights trained with overridden network settings.
    """
    src = Path(bundles_dir) / name
    meta = json.loads((src / "configs" / "metadata.json").read_text())
    version = meta["version"]
    weights_path = Path(weights) if weights else src / "models" / "model.pt"
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} does not exist: train the bundle first or pass --weights.")
    over = json.loads(net_override) if isinstance(net_override, str) else dict(net_override or {})
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / name
        shutil.copytree(src, bundle, ignore=shutil.ignore_patterns("models", "eval", "logs", "__pycache__", "dist"))
        (bundle / "models").mkdir()
        shutil.copyfile(weights_path, bundle / "models" / "model.pt")
        # vendored project code, the model-zoo way: <bundle>/scripts/ is importable as `scripts`
        shutil.copytree(ROOT / PKG, bundle / "scripts" / PKG, ignore=shutil.ignore_patterns("__pycache__"))
        (bundle / "scripts" / "__init__.py").write_text('"""Custom code of this bundle (vendored dsd_components)."""\n')
        subs = _submodules(ROOT / PKG)
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
    index = update_index(dist, name, version, out)
    print(f"wrote {out} (sha256 {sha256(out)}); index {index}")
    return str(out)


def fetch(name: str, version: str | None = None, bundle_dir: str = ".", index: str = str(ROOT / "dist" / INDEX_NAME)) -> str:
    """Download ``name`` (latest version in the index unless given) with ``monai.bundle download`` and check it."""
    from monai.bundle import download

    info = json.loads(Path(index).read_text())
    versions = {k.rsplit("_v", 1)[1]: v for k, v in info.items() if k.rsplit("_v", 1)[0] == name}
    if not versions:
        raise KeyError(f"{name} is not in {index}; known: {sorted(info)}")
    if version is None:
        version = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    if version not in versions:
        raise KeyError(f"{name} v{version} is not in {index}; versions: {sorted(versions)}")
    entry = versions[version]
    out = Path(bundle_dir)
    out.mkdir(parents=True, exist_ok=True)
    download(name=name, url=entry["source"], bundle_dir=str(out), progress=False)
    got = sha256(out / f"{name}.zip")
    if got != entry["checksum"]:
        shutil.rmtree(out / name, ignore_errors=True)
        raise ValueError(f"checksum mismatch for {name} v{version}: index {entry['checksum']}, downloaded {got}")
    print(f"{name} v{version} -> {out / name} (sha256 ok)")
    return str(out / name)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("fetch", "package"):
        fire.Fire({"fetch": fetch, "package": package})
    else:
        fire.Fire(package)
