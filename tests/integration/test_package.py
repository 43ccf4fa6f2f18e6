"""A packaged bundle is self-contained: unzipped anywhere, it trains and infers with none of the repository on the path,
and a user gets it by name from the local zoo index with MONAI's own `monai.bundle download`."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run
from support.bundles import ROOT, tiny_overrides

from dsd_tools.zoo import package as package_bundle
from dsd_tools.zoo import verify as verify_bundle
from dsd_tools.demo_data import make_demo_data
from dsd_tools.overrides import bundle_overrides
from dsd_tools.paths import config_file_arg, config_files

NAME = "hippocampus_nnunet_dsd"
# import name -> distribution name, for the packages a bundle may use
DIST_NAMES = {"torch": "torch", "monai": "monai", "numpy": "numpy", "ignite": "pytorch-ignite", "nibabel": "nibabel",
              "scipy": "scipy", "matplotlib": "matplotlib", "tensorboard": "tensorboard", "tqdm": "tqdm",
              "einops": "einops", "yaml": "pyyaml"}


# imports reached only under `--tracking mlflow`: MONAI's MLFlowHandler, which that option attaches, needs mlflow
# itself, and without it tracking.py never imports it (MLflow is optional: README, not required_packages_version)
ONLY_WITH_TRACKING = {("tracking.py", "mlflow")}


# torch's own import-time notices (torch.distributed.optim scripts a few functions when ignite imports it): not ours
TORCH_IMPORT_NOTICES = ("torch/jit/_script.py",)


def assert_no_deprecation(output: str) -> None:
    """No deprecation notice (Python's, MONAI's "deprecated name/argument", SQLAlchemy's) in a run printed with every
    warning shown (PYTHONWARNINGS=default), except torch's own import-time ones."""
    lines = output.splitlines()
    bad = [line for i, line in enumerate(lines)
           if ("Deprecat" in line or "FutureWarning" in line or "deprecated" in line.lower())
           and not any(n in line for n in TORCH_IMPORT_NOTICES)]
    assert not bad, "\n".join(bad)


def _env(tmp: Path) -> dict[str, str]:
    """A subprocess environment without the repository: `import dsd_components` must fail there, even where the
    project is pip-installed in editable mode (CI), so a blocker package shadows it on PYTHONPATH."""
    blocker = tmp / "blocker" / "dsd_components"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('the packaged bundle must not import the project package')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(blocker.parent), OMP_NUM_THREADS="2", PYTHONWARNINGS="default")
    assert str(ROOT) not in env["PYTHONPATH"]
    return env


def _overrides_cli(over: dict) -> list[str]:
    return [x for k, v in over.items() for x in (f"--{k}", json.dumps(v))]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """Package NAME with freshly initialised tiny weights, evaluated by its own evaluate.json on demo data, into a
    private dist/ with its index (weights hosted at the default file:// url_base)."""
    tmp = tmp_path_factory.mktemp("pkg")
    over = tiny_overrides(NAME)
    bundle = tmp / "src" / NAME
    shutil.copytree(ROOT / "bundles" / NAME, bundle, ignore=shutil.ignore_patterns("models", "eval", "logs"))
    weights = verify_bundle.make_fresh_weights(bundle, bundle_overrides(over))
    data = make_demo_data("hippocampus", str(tmp / "data"), num_cases=6, size=(24, 24, 24), seed=0)
    run(config_file=config_files(bundle, "evaluate.json"), meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=False, bundle_root=str(bundle), dataset_dir=data, num_workers=0, **over)
    assert (bundle / "eval" / "evaluation.json").is_file()
    zip_path = Path(package_bundle.package(NAME, weights=str(weights), dist=str(tmp / "dist"), net_override=over,
                                           bundles_dir=str(tmp / "src")))
    return tmp, zip_path, over


def _summary_means(path: Path) -> dict[tuple[str, str], float]:
    with open(path) as f:
        return {(r["metric"], r["class"]): float(r["mean"]) for r in csv.DictReader(f)}


def test_release_carries_its_weights_scores_and_urls(packaged):
    """metadata.json's eval_metrics and the README's table are the weights' own evaluation (split named); the zoo
    folder carries no weights, and its large_files.yml points at the hosted copies with their sha256."""
    tmp, zip_path, _ = packaged
    with zipfile.ZipFile(zip_path) as z:
        meta = json.loads(z.read(f"{NAME}/configs/metadata.json"))
        readme = z.read(f"{NAME}/docs/README.md").decode()
        large = z.read(f"{NAME}/large_files.yml").decode()
        z.extractall(tmp / "unzipped_again")
    # reproducible: zipping the release's files again (unpacked now, so with today's file dates) gives the same bytes
    package_bundle._zip(tmp / "unzipped_again" / NAME, tmp / "again.zip")
    assert (tmp / "again.zip").read_bytes() == zip_path.read_bytes()
    means = _summary_means(tmp / "src" / NAME / "eval" / "summary.csv")
    assert meta["eval_metrics"] == {"testing_mean_dice": round(means[("mean_dice", "mean")], 4),
                                    "testing_mean_hd95": round(means[("mean_hd95", "mean")], 4)}
    perf = readme[readme.index("## **Performance**"):readme.index("## **Additional Usage Steps**")]
    n = json.loads((tmp / "src" / NAME / "eval" / "evaluation.json").read_text())["num_cases"]
    assert n >= 1 and f"on the **testing** split (fold 0, {n} cases)" in perf
    assert f"| anterior | {means[('mean_dice', 'anterior')]:.4f} ± " in perf and "| **mean** |" in perf
    assert "For reference: paper result, Table 3" in perf and "No weights are shipped" not in perf
    version = meta["version"]
    hosted = tmp / "dist" / "large_files" / f"{NAME}_v{version}" / "models"
    for rel in ("model.pt", "model.ts"):
        url = (hosted / rel).resolve().as_uri()
        assert f'url: "{url}"' in large and f'hash_val: "{package_bundle.sha256(hosted / rel)}"' in large
    # ckpt_export embedded the metadata as MONAI read it: the whole package list survived
    from monai.data import load_net_with_metadata

    _, embedded, _ = load_net_with_metadata(str(hosted / "model.ts"))
    assert embedded["required_packages_version"] == meta["required_packages_version"]
    assert embedded["eval_metrics"] == meta["eval_metrics"]
    assert set(embedded["required_packages_version"]) >= {"nibabel", "pytorch-ignite", "tensorboard"}
    zoo = tmp / "dist" / "zoo" / NAME
    assert not (zoo / "models").exists() and (zoo / "large_files.yml").read_text() == large
    assert (zoo / "scripts" / "dsd_components" / "tracking.py").is_file()


def test_zoo_submission_passes_the_zoo_steps_with_file_urls(packaged, tmp_path, capsys):
    """The zoo folder verified the zoo's way: large files fetched from their file:// urls and hash-checked, required
    weights, metadata through MONAI's verify_metadata, net in/out, TorchScript."""
    tmp, _, over = packaged
    done = verify_bundle.verify_one(tmp / "dist" / "zoo" / NAME, net_override=over, require_hash=True,
                                    require_weights=True, workdir=str(tmp_path))
    assert done[1] == "large files (models/model.pt, models/model.ts)" and "fresh weights" not in done
    assert done[-2:] == ["verify_net_in_out", "ckpt_export"]
    # a released version is in the index: the zoo's version check refuses to re-release it
    with pytest.raises(verify_bundle.BundleError, match="already used"):
        verify_bundle.verify_one(tmp / "dist" / "zoo" / NAME, net_override=over, mode="min",
                                 index=str(tmp / "dist" / "model_info.json"), workdir=str(tmp_path))


def test_unevaluated_weights_stop_packaging_unless_forced(packaged, tmp_path):
    tmp, _, over = packaged
    src = tmp / "src"
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 for k, v in torch.load(src / NAME / "models" / "model.pt", weights_only=True).items()}, other)
    with pytest.raises(package_bundle.UnevaluatedWeightsError, match="scores other weights") as info:
        package_bundle.package(NAME, weights=str(other), dist=str(tmp_path / "dist"), net_override=over,
                               bundles_dir=str(src))
    assert "--force true" in str(info.value) and "evaluate.json" in str(info.value)
    with pytest.raises(package_bundle.UnevaluatedWeightsError, match="was never evaluated"):
        package_bundle.package(NAME, weights=str(other), eval_dir=str(tmp_path / "none"), dist=str(tmp_path / "dist"),
                               net_override=over, bundles_dir=str(src))
    assert not (tmp_path / "dist").exists()  # nothing written
    zip_path = package_bundle.package(NAME, weights=str(other), force=True, dist=str(tmp_path / "dist"),
                                      net_override=over, bundles_dir=str(src), url_base="https://example.org/dsd")
    with zipfile.ZipFile(zip_path) as z:
        assert json.loads(z.read(f"{NAME}/configs/metadata.json"))["eval_metrics"] == {}
        assert "packaged without an evaluation" in z.read(f"{NAME}/docs/README.md").decode()
        assert f'url: "https://example.org/dsd/{NAME}_v0.1.0/models/model.pt"' in z.read(f"{NAME}/large_files.yml").decode()


def test_vendored_code_needs_only_metadata_packages():
    """Every third-party import that a bundle can reach in dsd_components is a package named in metadata.json:
    module-level imports of every module, and all imports of the modules that the configs and the package name."""
    meta = json.loads((ROOT / "bundles" / NAME / "configs" / "metadata.json").read_text())
    allowed = {"torch", "monai", "numpy", *meta["required_packages_version"]}
    configs = "".join(p.read_text() for p in (ROOT / "bundles").glob("*/configs/*.json"))
    import dsd_components

    reached = set(re.findall(r"dsd_components\.(\w+)", configs)) | set(dsd_components._EXPORTS.values())
    for py in (ROOT / "dsd_components").glob("*.py"):
        tree = ast.parse(py.read_text())
        for node in (ast.walk(tree) if py.stem in reached | {"__init__"} else tree.body):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for m in mods:
                top = m.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                if (py.name, top) in ONLY_WITH_TRACKING:
                    continue
                assert DIST_NAMES.get(top) in allowed, f"{py.name} imports {top}, not in metadata.json"


def test_unzipped_bundle_trains_and_infers_without_the_repo(packaged):
    tmp, zip_path, over = packaged
    work = tmp / "elsewhere"
    work.mkdir()
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(work / "bundles_here")
    bundle = work / "bundles_here" / NAME
    env = _env(tmp)
    cwd = tmp / "cwd"
    cwd.mkdir()
    probe = subprocess.run([sys.executable, "-c", "import dsd_components"], env=env, cwd=cwd, capture_output=True, text=True)
    assert probe.returncode != 0 and "ImportError" in probe.stderr

    data = make_demo_data("hippocampus", str(tmp / "data"), num_cases=5, seed=0)
    cfg = lambda c: str(bundle / "configs" / c)  # noqa: E731
    common = ["--meta_file", cfg("metadata.json"), "--logging_file", cfg("logging.conf"), *_overrides_cli(over)]
    run = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    train = subprocess.run([*run, cfg("train.json"), *common, "--dataset_dir", data, "--num_epochs", "1",
                            "--val_interval", "1", "--num_samples", "1", "--num_workers", "0", "--cache_rate", "0"],
                           env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert_no_deprecation(train.stdout + train.stderr)
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("backbone.") or "head" in k for k in state)
    (run_dir,) = [d for d in (bundle / "models" / "runs").iterdir() if not d.name.endswith("-imported")]
    assert any((run_dir / "logs").glob("events.out.tfevents.*")), "TensorBoard logs in the run's logs/"
    # the shipped model.pt was kept in a run folder of its own before training replaced it
    (shipped,) = (bundle / "models" / "runs").glob("*-imported/model.pt")
    assert torch.load(shipped, weights_only=True).keys() == state.keys()

    # evaluation with the vendored metrics, and the PNG of the training curves from the run's logs/
    eval_dir = tmp / "eval_out"
    ev = subprocess.run([*run, config_file_arg(config_files(bundle, "evaluate.json")), *common, "--dataset_dir", data, "--eval_split", "validation",
                         "--num_workers", "0", "--output_dir", str(eval_dir)],
                        env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    assert_no_deprecation(ev.stdout + ev.stderr)
    assert (eval_dir / "per_case_metrics.csv").is_file()
    assert (eval_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "eval" / "summary.csv").read_text() == (eval_dir / "summary.csv").read_text()  # run's record

    images = sorted((Path(data) / "imagesTs").glob("*.nii.gz"))[:1]
    in_dir = tmp / "infer_in"
    in_dir.mkdir()
    for p in images:
        os.symlink(p, in_dir / p.name)
    out_dir = tmp / "infer_out"
    infer = subprocess.run([*run, cfg("inference.json"), *common, "--dataset_dir", str(in_dir),
                            "--output_dir", str(out_dir)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert infer.returncode == 0, infer.stdout[-3000:] + infer.stderr[-3000:]
    assert_no_deprecation(infer.stdout + infer.stderr)
    for p in images:
        seg = nib.load(out_dir / p.name.replace(".nii.gz", "_seg.nii.gz"))
        assert seg.shape[:3] == nib.load(p).shape[:3]
        assert set(np.unique(np.asarray(seg.dataobj)).astype(int)) <= {0, 1, 2}


def test_download_by_name_offline(packaged, tmp_path):
    tmp, zip_path, _ = packaged
    index = tmp / "dist" / "model_info.json"
    # the helper: look up the name in the index, MONAI's download, checksum
    got = Path(package_bundle.fetch(NAME, bundle_dir=str(tmp_path / "a"), index=str(index)))
    assert (got / "models" / "model.pt").is_file() and (got / "configs" / "inference.json").is_file()
    # MONAI's own CLI with the index's source URL, no network
    source = json.loads(index.read_text())[zip_path.name[:-4]]["source"]
    cli = subprocess.run([sys.executable, "-m", "monai.bundle", "download", "--name", NAME, "--url", source,
                          "--bundle_dir", str(tmp_path / "b"), "--progress", "False"],
                         capture_output=True, text=True, env=_env(tmp), cwd=tmp_path, timeout=120)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert (tmp_path / "b" / NAME / "models" / "model.ts").is_file()
    # fetching again replaces the unpacked bundle as a whole
    (got / "stale.txt").write_text("from an earlier fetch")
    assert Path(package_bundle.fetch(NAME, bundle_dir=str(tmp_path / "a"), index=str(index))) == got
    assert not (got / "stale.txt").exists() and (got / "models" / "model.pt").is_file()


def test_tampered_package_is_refused_before_anything_is_unpacked(packaged, tmp_path):
    """A package whose bytes changed after it was indexed: fetch refuses it and the target folder stays as it was."""
    tmp, zip_path, _ = packaged
    tampered = tmp_path / zip_path.name
    data = bytearray(zip_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the compressed weights
    tampered.write_bytes(bytes(data))
    index = json.loads((tmp / "dist" / "model_info.json").read_text())
    index[zip_path.name[:-4]]["source"] = tampered.resolve().as_uri()  # the checksum stays the packaged one
    (tmp_path / "index.json").write_text(json.dumps(index))
    target = tmp_path / "downloads"
    (target / NAME / "models").mkdir(parents=True)
    (target / NAME / "models" / "model.pt").write_bytes(b"the model the user had")
    before = sorted((p.relative_to(target), p.read_bytes()) for p in target.rglob("*") if p.is_file())
    with pytest.raises(package_bundle.PackageChecksumError, match="checksum mismatch.*nothing was unpacked"):
        package_bundle.fetch(NAME, bundle_dir=str(target), index=str(tmp_path / "index.json"))
    after = sorted((p.relative_to(target), p.read_bytes()) for p in target.rglob("*") if p.is_file())
    assert after == before and sorted(p.name for p in target.iterdir()) == [NAME]  # no temporary left behind
