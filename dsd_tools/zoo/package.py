"""Releases of a trained bundle, the way a model zoo takes them, and a local zoo index (its ``model_info.json``).

    dsd-package NAME                       # bundles/NAME/models/model.pt, scored by evaluate.json into bundles/NAME/eval
    dsd-package NAME --weights run/model.pt --eval_dir run/eval --url_base https://host/dsd --dist /tmp/dist
    dsd-package NAME --force true          # weights never evaluated: packaged without scores
    dsd-fetch NAME --version 0.1.0 --bundle_dir ./downloads   # by name, via the local index
    python -m monai.bundle download --name NAME --url file:///abs/dist/NAME_v0.1.0.zip --bundle_dir ./downloads

One call writes, under ``--dist`` (default ``dist/``):

- ``NAME_vX.Y.Z.zip``: the whole release, top folder ``NAME/``: configs, docs, LICENSE, the trained
  ``models/model.pt`` and its TorchScript ``models/model.ts``, ``large_files.yml`` and the runtime package vendored as
  ``NAME/scripts/dsd_components/`` (the model-zoo place for custom code), so that the unzipped bundle trains,
  evaluates and infers where only the packages named in ``metadata.json`` are installed. It is added to the local
  index ``model_info.json`` (``{"NAME_vX.Y.Z": {"checksum": sha256 of the zip, "source": file:// URL}}``).
- ``zoo/NAME/``: the same bundle without ``models/``: what a model-zoo pull request carries (the zoo limits a file in
  a pull request to 25 MB). Its ``large_files.yml`` names ``models/model.pt`` and ``models/model.ts`` with their
  ``url`` (``--url_base`` + ``/NAME_vX.Y.Z/models/...``), ``hash_val`` (sha256) and ``hash_type``, so the zoo's CI
  downloads and checks them.
- ``large_files/NAME_vX.Y.Z/models/model.{pt,ts}``: the files to host at ``--url_base``. The default ``--url_base`` is
  this folder's ``file://`` URL, so the release verifies offline as it is; for a real release upload the folder to
  the host and pass its URL.

``metadata.json``'s ``eval_metrics`` and the README's performance section come from the bundle's own evaluation of
these very weights: ``summary.csv`` (mean Dice, and HD95 where computed; BraTS regions from
``regions_summary.csv``) with the split, fold and number of cases from ``evaluation.json``, which records the sha256 of
the weights evaluated. Weights without such an evaluation stop the packaging with the command that evaluates them,
unless ``--force true`` (then no scores are shipped). Only the runtime is vendored: the tools (``dsd_tools``) never
ship inside a bundle.

In the packaged configs only, every use of ``dsd_components`` becomes the vendored copy:
``_target_: dsd_components.X`` -> ``scripts.dsd_components.X``, ``$dsd_components.m.f(...)`` ->
``$@dsd_components.m.f(...)``, the ``$import dsd_components...`` lines give way to a top-level ``dsd_components``
item that locates ``scripts.dsd_components``, the ``initialize`` steps move to the front of ``run``, and
``bundle_root`` becomes the standard-library rule of ``inference.json`` (the runtime's helper cannot be found before
the bundle root is known). Why: MONAI evaluates import lines while parsing, and makes the bundle folder importable
only when ``run`` starts (``ConfigWorkflow.run``), so the vendored code is reachable from ``run`` on, wherever the
bundle lies and whatever the working directory. A config layered on ``train.json`` (``evaluate.json``) gets a loader
for the modules of both, as its loader replaces train.json's.

``fetch`` looks a name up in the index, downloads it with MONAI's own ``download_url`` (offline for ``file://``
sources) and checks the checksum before unpacking.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import dsd_components
from dsd_components.export import atomic_copy, atomic_write, write_error

from ..bundlegen.configs import RUNTIME_BUNDLE_ROOT, STDLIB_BUNDLE_ROOT
from ..bundlegen.readme import PERFORMANCE_HEADING, performance_section
from ..cli import UsageError, run_cli
from ..hashing import file_hash
from ..overrides import bundle_overrides
from ..paths import BUNDLES_DIR, LAYERS, REPO_ROOT, config_file_arg
from .verify import export_torchscript

RUNTIME_DIR = Path(dsd_components.__file__).resolve().parent
DIST_DIR = REPO_ROOT / "dist"
PKG = "dsd_components"
VENDORED = f"scripts.{PKG}"
INDEX_NAME = "model_info.json"
LARGE_FILES_DIR = "large_files"  # under dist/: what is hosted at --url_base
ZOO_DIR = "zoo"  # under dist/: the bundles as a model-zoo pull request carries them (no weights)
LARGE_FILES = ("models/model.pt", "models/model.ts")
ZOO_FILE_LIMIT = 25 * 1024 * 1024  # the zoo's limit for one file in a pull request
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


def vendor_config(cfg: dict[str, Any], submodules: list[str], has_imports: bool = True,
                  extra_modules: list[str] | None = None) -> dict[str, Any]:
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
    used = sorted((set(re.findall(rf"{PKG}\.(\w+)", json.dumps(cfg))) | set(extra_modules or ())) & set(submodules))
    out = walk(cfg)
    if out.get("bundle_root") in (RUNTIME_BUNDLE_ROOT, {"_target_": f"{VENDORED}.entry.bundle_root"}):
        out["bundle_root"] = STDLIB_BUNDLE_ROOT
    if "imports" in out:
        out["imports"] = [i for i in out["imports"] if not _IMPORT_LINE.match(i)]
        if "$import pydoc" not in out["imports"]:
            out["imports"].append("$import pydoc")
    if "+imports" in out:  # a layered config's additions to the imports it is read on top of
        out["+imports"] = [i for i in out["+imports"] if not _IMPORT_LINE.match(i)]
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


def default_url_base(dist: str | os.PathLike) -> str:
    """Where the weights are hosted when no ``--url_base`` is given: the local zoo's ``large_files/`` folder."""
    return (Path(dist).resolve() / LARGE_FILES_DIR).as_uri()


def large_file_url(url_base: str, name: str, version: str, rel: str) -> str:
    return f"{url_base.rstrip('/')}/{name}_v{version}/{rel}"


def _write_large_files(bundle: Path, url_base: str, name: str, version: str) -> None:
    """``large_files.yml`` of a release: each weight file with its hosted url, sha256 and hash type."""
    lines = ["# The weights of this release: where they are hosted and their sha256 (written by dsd-package).",
             "large_files:"]
    for rel in LARGE_FILES:
        f = bundle / rel
        if f.is_file():
            lines += [f'  - path: "{rel}"', f'    url: "{large_file_url(url_base, name, version, rel)}"',
                      f'    hash_val: "{sha256(f)}"', '    hash_type: "sha256"']
    (bundle / "large_files.yml").write_text("\n".join(lines) + "\n")


def _host_large_files(bundle: Path, dist: Path, name: str, version: str) -> Path:
    """Copy the weights to ``dist/large_files/NAME_vX.Y.Z/`` (what goes to ``--url_base``)."""
    target = dist / LARGE_FILES_DIR / f"{name}_v{version}"
    for rel in LARGE_FILES:
        if (bundle / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_copy(bundle / rel, target / rel)
    return target


def _export_torchscript(bundle: Path, over: dict[str, Any]) -> None:
    export_torchscript(bundle, over, bundle / "models" / "model.ts")


class UnevaluatedWeightsError(UsageError):
    """The weights to package have no evaluation of their own (``evaluation.json`` naming their sha256)."""


def _evaluate_command(name: str, eval_dir: Path, weights: Path) -> str:
    files = config_file_arg([f"bundles/{name}/configs/{c}" for c in LAYERS["evaluate.json"]])
    return (f"python -m monai.bundle run --config_file \"{files}\" --dataset_dir DATA --model_path {weights} "
            f"--output_dir {eval_dir}")


def read_evaluation(eval_dir: str | os.PathLike, weights: str | os.PathLike, name: str = "NAME") -> dict[str, Any]:
    """The evaluation of ``weights`` that ``evaluate.json`` wrote to ``eval_dir``: ``evaluation.json`` (split, fold,
    cases, the sha256 of the weights scored) and the rows of ``summary.csv`` (and ``regions_summary.csv``).

    Raises:
        UnevaluatedWeightsError: no evaluation there, or one of other weights (the message gives the command).
    """
    eval_dir, weights = Path(eval_dir), Path(weights)
    record, summary = eval_dir / "evaluation.json", eval_dir / "summary.csv"
    fix = (f"Evaluate these weights ({_evaluate_command(name, eval_dir, weights)}), point --eval_dir at their "
           "evaluation, or pass --force true to package them without scores.")
    if not record.is_file() or not summary.is_file():
        missing = [str(p) for p in (record, summary) if not p.is_file()]
        raise UnevaluatedWeightsError(f"{weights} was never evaluated: {' and '.join(missing)} missing. {fix}")
    rec = json.loads(record.read_text())
    digest = sha256(weights)
    if rec.get("model_sha256") != digest:
        raise UnevaluatedWeightsError(
            f"{summary} scores other weights ({rec.get('model_path')}, sha256 {str(rec.get('model_sha256'))[:12]}...), "
            f"not {weights} (sha256 {digest[:12]}...). {fix}")

    def rows(path: Path) -> list[dict[str, str]]:
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return list(csv.DictReader(f))

    return {**rec, "summary": rows(summary), "regions": rows(eval_dir / "regions_summary.csv")}


def _number(x: str) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def eval_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """``metadata.json``'s ``eval_metrics``: mean Dice and (where computed) mean HD95 in mm, keyed by the split they
    come from (``testing_mean_dice``, the zoo's ``val_mean_dice`` style), plus the BraTS regions' Dice and HD95."""
    split = evaluation["split"]
    out: dict[str, float] = {}
    for r in evaluation["summary"]:
        v = _number(r["mean"])
        if r["class"] == "mean" and r["metric"] in ("mean_dice", "mean_hd95") and v is not None and int(r["n"]) > 0:
            out[f"{split}_{r['metric']}"] = round(v, 4)
    for r in evaluation["regions"]:
        v = _number(r["mean"])
        if r["class"] != "mean" and v is not None and int(r["n"]) > 0:
            kind = {"region_dice": "dice", "region_hd95": "hd95"}.get(r["metric"], r["metric"])
            out[f"{split}_{kind}_{r['class']}"] = round(v, 4)
    return out


def _table(rows: list[dict[str, str]], dice: str, hd95: str) -> list[str]:
    by: dict[str, dict[str, dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["class"], {})[r["metric"]] = r

    def cell(r: dict[str, str] | None, digits: int) -> str:
        if r is None or _number(r["mean"]) is None:
            return "n/a"
        return f"{float(r['mean']):.{digits}f} ± {float(r['std']):.{digits}f} (n={r['n']})"

    lines = ["| class | Dice | HD95 (mm) |", "| --- | --- | --- |"]
    for cls, m in by.items():
        label = "**mean**" if cls == "mean" else cls
        lines.append(f"| {label} | {cell(m.get(dice), 4)} | {cell(m.get(hd95), 2)} |")
    return lines


def shipped_performance(evaluation: dict[str, Any] | None, weights_sha: str) -> str:
    """The README text of the shipped weights' scores (mean ± std over cases per class)."""
    if evaluation is None:
        return (f"The weights in this package (`models/model.pt`, sha256 `{weights_sha[:16]}...`) were packaged "
                "without an evaluation (`dsd-package --force`): no scores are claimed for them.")
    fold = f"fold {evaluation.get('fold')}, " if evaluation.get("fold") is not None else ""
    lines = [f"Scores of the weights in this package (`models/model.pt`, sha256 `{weights_sha[:16]}...`), from their "
             f"own evaluation with `evaluate.json` on the **{evaluation['split']}** split ({fold}"
             f"{evaluation.get('num_cases')} cases); mean ± std over cases, HD95 in millimetres:", ""]
    lines += _table(evaluation["summary"], "mean_dice", "mean_hd95")
    if evaluation["regions"]:
        lines += ["", "BraTS regions:", ""] + _table(evaluation["regions"], "region_dice", "region_hd95")
    return "\n".join(lines)


def _replace_performance(readme: str, shipped: str) -> str:
    """Swap the README's performance section for the shipped weights' scores, keeping the paper's line."""
    start = readme.index(PERFORMANCE_HEADING)
    end = readme.index("\n## ", start + len(PERFORMANCE_HEADING))
    section = readme[start:end]
    paper = next((p for p in section.split("\n\n") if p.startswith("Paper result")), None)
    new = performance_section(paper or "No published result for this configuration.", shipped=shipped)
    return readme[:start] + new.rstrip("\n") + "\n" + readme[end:]


def _release_metadata(bundle: Path, metrics: dict[str, float]) -> None:
    path = bundle / "configs" / "metadata.json"
    meta = json.loads(path.read_text())
    meta["eval_metrics"] = metrics
    path.write_text(json.dumps(meta, indent=4) + "\n")


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


def _vendor_configs(bundle: Path) -> None:
    """Rewrite every config of ``bundle`` to use the vendored runtime; a config layered on others (``LAYERS``) gets a
    loader for the modules of all the files it is read with, since its loader replaces theirs."""
    subs = _submodules(RUNTIME_DIR)
    raw = {f.name: json.loads(f.read_text()) for f in sorted((bundle / "configs").glob("*.json"))
           if f.name != "metadata.json"}
    for name, cfg in raw.items():
        layered = [raw[b] for b in LAYERS.get(name, (name,)) if b in raw]
        extra = sorted({m for c in layered for m in re.findall(rf"{PKG}\.(\w+)", json.dumps(c))} & set(subs))
        new = vendor_config(cfg, subs, has_imports=("imports" in cfg or "+imports" in cfg), extra_modules=extra)
        (bundle / "configs" / name).write_text(json.dumps(new, indent=4) + "\n")


def package(name: str, weights: str | None = None, dist: str = str(DIST_DIR), url_base: str | None = None,
            eval_dir: str | None = None, force: bool = False, net_override: str | dict | None = None,
            bundles_dir: str = str(BUNDLES_DIR)) -> str:
    """Write the release of ``name`` under ``dist`` (zip, zoo folder, hosted weights) and index it; return the zip.

    Args:
        name: a bundle under ``bundles_dir``.
        weights: the model.pt to ship (default: ``bundles/NAME/models/model.pt``, written by training).
        dist: the output folder (zip, ``zoo/``, ``large_files/``, the index).
        url_base: where the weights will be hosted (default: ``dist/large_files`` as a ``file://`` URL).
        eval_dir: the ``--output_dir`` of the weights' evaluation (default: ``bundles/NAME/eval``).
        force: package weights without an evaluation of their own (no scores are shipped).
        net_override: JSON ``{config id: value}``, only for exporting ``model.ts`` of weights trained with
            overridden network settings.

    Raises:
        FileNotFoundError: no weights.
        UnevaluatedWeightsError: the weights were never evaluated (and ``force`` is off).
    """
    src = Path(bundles_dir) / name
    meta = json.loads((src / "configs" / "metadata.json").read_text())
    version = meta["version"]
    weights_path = Path(weights) if weights else src / "models" / "model.pt"
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} does not exist: train the bundle first or pass --weights.")
    eval_path = Path(eval_dir) if eval_dir else src / "eval"
    try:
        evaluation = read_evaluation(eval_path, weights_path, name)
    except UnevaluatedWeightsError as e:
        if not force:
            raise
        print(f"WARNING: --force: {e.args[0].split('. ')[0]}; packaging without scores.")
        evaluation = None
    over = bundle_overrides(net_override, "net_override")
    dist_path = Path(dist)
    url_base = url_base or default_url_base(dist_path)
    try:
        out, zoo, hosted = _build_package(src, name, version, weights_path, over, dist_path, url_base, evaluation)
    except OSError as exc:  # a failed write names the folder and keeps the previous release files whole
        where = exc.filename or tempfile.gettempdir()
        raise write_error(Path(where), exc) from exc
    big = [str(p) for p in zoo.rglob("*") if p.is_file() and p.stat().st_size > ZOO_FILE_LIMIT]
    if big:
        raise ValueError(f"{zoo}: files over the zoo's 25 MB pull-request limit: {big}")
    index = update_index(dist, name, version, out)
    print(f"wrote {out} (sha256 {sha256(out)}); index {index}")
    print(f"zoo submission {zoo} (large files from {url_base}); host {hosted} there")
    return str(out)


def _build_package(src: Path, name: str, version: str, weights_path: Path, over: dict[str, Any], dist_path: Path,
                   url_base: str, evaluation: dict[str, Any] | None) -> tuple[Path, Path, Path]:
    """The bundle assembled in a temporary folder, then zipped (atomically) to ``dist_path``; also its zoo folder
    and hosted weights. Returns (zip, zoo folder, hosted weights folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / name
        shutil.copytree(src, bundle, ignore=shutil.ignore_patterns("models", "eval", "logs", "__pycache__", "dist"))
        (bundle / "models").mkdir()
        shutil.copyfile(weights_path, bundle / "models" / "model.pt")
        # vendored project code, the model-zoo way: <bundle>/scripts/ is importable as `scripts`
        shutil.copytree(RUNTIME_DIR, bundle / "scripts" / PKG, ignore=shutil.ignore_patterns("__pycache__"))
        (bundle / "scripts" / "__init__.py").write_text('"""Custom code of this bundle (vendored dsd_components)."""\n')
        _vendor_configs(bundle)
        _release_metadata(bundle, eval_metrics(evaluation) if evaluation else {})
        _export_torchscript(bundle, over)  # after the metadata: model.ts embeds the release's metadata
        readme = bundle / "docs" / "README.md"
        readme.write_text(_replace_performance(readme.read_text(),
                                               shipped_performance(evaluation, sha256(bundle / "models" / "model.pt"))))
        _write_large_files(bundle, url_base, name, version)
        hosted = _host_large_files(bundle, dist_path, name, version)
        out = dist_path / f"{name}_v{version}.zip"
        _zip(bundle, out)
        zoo = dist_path / ZOO_DIR / name
        if zoo.exists():
            shutil.rmtree(zoo)
        shutil.copytree(bundle, zoo, ignore=shutil.ignore_patterns("models"))
    return out, zoo, hosted


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
