"""Datalists, splits and demo data: formats on disk, split arithmetic, folds, overrides, errors."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from support import command
from support.bundles import BUNDLES, train_config
from support.paper_numbers import BRATS, HIPPO, MMWHS, MMWHS_RAW, SPECS

from dsd_components.data import (DatasetSpec, SplitSpec, build_datalist, holdout_sizes, list_images, nnunet_kfold,
                                 write_datalist)
from dsd_components.errors import DatalistError
from dsd_tools.demo_data import make_demo_data

TINY = {"mmwhs": (12, 12, 8), "brats": 12, "hippocampus": (10, 12, 10)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One tiny demo data set per dataset, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("demo")
    return {d: Path(make_demo_data(d, str(root / d), num_cases=6, size=TINY[d])) for d in TINY}


def _voxels(path):
    return np.asanyarray(nib.load(str(path)).dataobj)


def _ids(entries):
    return [e["image"] for e in entries]


# ------------------------------------------------------------------------------------------- facts
@pytest.mark.parametrize("name", BUNDLES)
def test_bundles_carry_the_papers_dataset_facts(name):
    """Every bundle's dataset item equals SPEC.md's facts (channels, classes, raw labels, spacing, split)."""
    item = train_config(name)["dataset"]
    expected = SPECS[item["name"]]
    got = DatasetSpec.from_config(item)
    want = DatasetSpec.from_config(expected)
    assert got == want
    assert (got.in_channels, got.num_classes) == {"mmwhs": (1, 8), "brats": (4, 4), "hippocampus": (1, 3)}[got.name]


def test_dataset_spec_errors_name_the_problem():
    with pytest.raises(DatalistError, match="layout 'dicom' is unknown"):
        DatasetSpec.from_config({**HIPPO, "layout": "dicom"})
    with pytest.raises(DatalistError, match="split kind 'random' is unknown"):
        DatasetSpec.from_config({**HIPPO, "split": {"kind": "random"}})
    with pytest.raises(DatalistError, match=r"unknown keys \['channels'\]"):
        DatasetSpec.from_config({**HIPPO, "channels": 1})
    with pytest.raises(DatalistError, match="must be a dict"):
        build_datalist("hippocampus", "/nowhere")


# --------------------------------------------------------------------------------------- demo data
def test_demo_mmwhs_format(demo):
    d = demo["mmwhs"]
    images = sorted(d.glob("ct_train_*_image.nii.gz"))
    assert [p.name for p in images][:2] == ["ct_train_1001_image.nii.gz", "ct_train_1002_image.nii.gz"]
    assert len(images) == 6 and len(list(d.glob("ct_train_*_label.nii.gz"))) == 6
    img, lab = nib.load(str(images[0])), nib.load(str(images[0]).replace("_image", "_label"))
    assert img.shape == lab.shape == (12, 12, 8)
    assert np.issubdtype(lab.get_data_dtype(), np.integer) and img.get_data_dtype() == np.float32
    vals = set(np.unique(_voxels(lab.get_filename())).tolist())
    assert vals <= {0, 205, 420, 500, 550, 600, 820, 850} and len(vals) >= 5  # raw, not mapped
    data = img.get_fdata()
    assert data.min() < -500 and data.max() > 200  # HU-like
    zooms = img.header.get_zooms()
    assert zooms[2] > zooms[0] * 1.5  # anisotropic
    assert not np.allclose(img.affine, np.eye(4)) and img.affine[0, 0] < 0  # LPS-like flip
    np.testing.assert_allclose(img.affine, lab.affine)


@pytest.mark.parametrize("dataset,channels,labels,folder", [
    ("brats", 4, {0, 1, 2, 3}, "Task01_BrainTumour"), ("hippocampus", 1, {0, 1, 2}, "Task04_Hippocampus")])
def test_demo_msd_format(demo, dataset, channels, labels, folder):
    d = demo[dataset]
    meta = json.loads((d / "dataset.json").read_text())
    for key in ("name", "modality", "labels", "numTraining", "numTest", "training", "test"):
        assert key in meta
    assert meta["numTraining"] == len(meta["training"]) == 6 and meta["numTest"] == len(meta["test"]) >= 1
    assert len(meta["modality"]) == channels and set(map(int, meta["labels"])) == labels
    if dataset == "brats":
        assert meta["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    first = meta["training"][0]
    assert first["image"].startswith("./imagesTr/") and first["label"].startswith("./labelsTr/")
    img = nib.load(str(d / first["image"]))
    expected = (12, 12, 12, 4) if channels == 4 else (10, 12, 10)
    assert img.shape == expected  # channels last, as MSD
    assert set(np.unique(_voxels(d / first["label"])).tolist()) == labels
    assert all((d / t).is_file() for t in meta["test"])
    assert not list((d / "imagesTs").glob("*")) == []


def test_demo_deterministic(tmp_path):
    a = make_demo_data("hippocampus", str(tmp_path / "a"), num_cases=3, size=10, seed=1)
    b = make_demo_data("hippocampus", str(tmp_path / "b"), num_cases=3, size=10, seed=1)
    c = make_demo_data("hippocampus", str(tmp_path / "c"), num_cases=3, size=10, seed=2)
    name = "imagesTr/hippocampus_002.nii.gz"
    np.testing.assert_array_equal(_voxels(Path(a) / name), _voxels(Path(b) / name))
    assert not np.array_equal(_voxels(Path(a) / name), _voxels(Path(c) / name))
    with pytest.raises(ValueError, match="unknown dataset"):
        make_demo_data("liver", str(tmp_path / "d"))


def test_demo_classes_are_separable(demo):
    """Each class has its own mean intensity, so a small net can learn it quickly."""
    img = _voxels(demo["mmwhs"] / "ct_train_1001_image.nii.gz")
    lab = _voxels(demo["mmwhs"] / "ct_train_1001_label.nii.gz")
    means = [img[lab == v].mean() for v in MMWHS_RAW if (lab == v).any()]
    assert np.all(np.diff(means) > 20)


# ------------------------------------------------------------------------------------------- MMWHS
def _fake_mmwhs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        for kind in ("image", "label"):
            (folder / f"ct_train_{1001 + i}_{kind}.nii.gz").touch()
    return folder


def test_mmwhs_folds_match_paper(tmp_path):
    d = _fake_mmwhs(tmp_path / "ct_train", 20)  # also found via the parent folder
    all_images = sorted(str(p.resolve()) for p in d.glob("*_image.nii.gz"))
    seen = []
    for fold in range(5):
        dl = build_datalist(MMWHS, str(tmp_path), fold=fold)
        val = _ids(dl["validation"])
        assert [Path(v).name for v in val] == [f"ct_train_{1001 + 4 * fold + i}_image.nii.gz" for i in range(4)]
        assert len(dl["training"]) == 16 and not set(_ids(dl["training"])) & set(val)
        assert sorted(_ids(dl["training"]) + val) == all_images
        assert dl["testing"] == dl["validation"]
        assert all(e["label"].endswith("_label.nii.gz") for e in dl["training"])
        seen += val
    assert sorted(seen) == all_images
    with pytest.raises(ValueError, match=r"0\.\.4"):
        build_datalist(MMWHS, str(tmp_path), fold=5)


def test_mmwhs_small_n_folds(tmp_path):
    d = _fake_mmwhs(tmp_path, 10)
    dl = build_datalist(MMWHS, str(d), fold=4)
    assert [Path(e["image"]).name for e in dl["validation"]] == ["ct_train_1009_image.nii.gz",
                                                                 "ct_train_1010_image.nii.gz"]
    assert len(dl["training"]) == 8
    # 6 cases in folds of ceil(6/5) = 2: folds 0..2 exist, fold 3 would validate nothing
    six = _fake_mmwhs(tmp_path / "six", 6)
    assert [len(build_datalist(MMWHS, str(six), fold=f)["validation"]) for f in range(3)] == [2, 2, 2]
    with pytest.raises(DatalistError, match=r"fold 3 is out of range for 6 mmwhs cases.*--fold 0\.\.2"):
        build_datalist(MMWHS, str(six), fold=3)


def test_mmwhs_missing_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="ct_train_\\*_image.nii.gz.*--dataset_dir"):
        build_datalist(MMWHS, str(tmp_path))
    with pytest.raises(ValueError, match="not a folder"):
        build_datalist(MMWHS, str(tmp_path / "missing"))


# --------------------------------------------------------------------------------------------- MSD
def _fake_msd(folder: Path, prefix: str, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    training = [{"image": f"./imagesTr/{prefix}_{i:03d}.nii.gz", "label": f"./labelsTr/{prefix}_{i:03d}.nii.gz"}
                for i in range(n, 0, -1)]  # unsorted on purpose
    (folder / "dataset.json").write_text(json.dumps({"training": training, "test": []}))
    return folder


def _reference_split(names: list[str], n_test: int, n_val: int) -> tuple[list, list, list]:
    """The reference code's MSD split, written out from its description (SPEC.md): sorted cases, the last n_test
    for testing, the others shuffled with random.Random(0), the last n_val of them for validation."""
    names = sorted(names)
    test, rest = names[-n_test:], names[:-n_test]
    rng = random.Random(0)
    rng.shuffle(rest)
    return rest[:-n_val], rest[-n_val:], test


def test_brats_split_matches_paper(tmp_path):
    d = _fake_msd(tmp_path, "BRATS", 484)
    dl = build_datalist(BRATS, str(d))
    assert [len(dl[k]) for k in ("training", "validation", "testing")] == [388, 72, 24]
    assert [Path(e["image"]).name for e in dl["testing"]] == [f"BRATS_{i:03d}.nii.gz" for i in range(461, 485)]
    names = [str((d / f"imagesTr/BRATS_{i:03d}.nii.gz").resolve()) for i in range(1, 485)]
    train, val, test = _reference_split(names, 24, 72)
    assert _ids(dl["validation"]) == val and _ids(dl["training"]) == train and _ids(dl["testing"]) == test
    assert build_datalist(BRATS, str(d)) == dl  # reproducible
    other = {**BRATS, "split": {**BRATS["split"], "seed": 1}}
    assert build_datalist(other, str(d))["validation"] != dl["validation"]
    with pytest.raises(ValueError, match="--fold 0"):
        build_datalist(BRATS, str(d), fold=1)


def test_hippocampus_split_is_the_reference_codes_shuffled_split(tmp_path):
    """R (data/Hippocampus.py): the first 200 sorted cases shuffled with random.Random(0), the last 30 of them
    validate; the last 60 sorted cases are the test set."""
    d = _fake_msd(tmp_path, "hippocampus", 260)
    dl = build_datalist(HIPPO, str(d))
    assert [len(dl[k]) for k in ("training", "validation", "testing")] == [170, 30, 60]
    names = [str((d / f"imagesTr/hippocampus_{i:03d}.nii.gz").resolve()) for i in range(1, 261)]
    first200 = names[:200]
    random.Random(0).shuffle(first200)
    assert _ids(dl["validation"]) == first200[-30:] and _ids(dl["training"]) == first200[:170]
    assert _ids(dl["testing"]) == names[200:]
    assert _ids(dl["validation"]) != names[170:200]  # not the unshuffled tail


@pytest.mark.parametrize("dataset", ["brats", "hippocampus"])
def test_scaled_splits_never_empty(dataset):
    split = SplitSpec(**SPECS[dataset]["split"])
    for n in range(3, 120):
        sizes = holdout_sizes(split, n)
        assert min(sizes) >= 1 and sum(sizes) == n, (n, sizes)
    assert holdout_sizes(split, split.reference_cases)[1:] == (split.validation, split.test)
    with pytest.raises(ValueError, match=">= 3"):
        holdout_sizes(split, 2)


@pytest.mark.parametrize("dataset", ["mmwhs", "brats", "hippocampus"])
def test_demo_splits_disjoint_and_complete(demo, dataset):
    dl = build_datalist(SPECS[dataset], str(demo[dataset]))
    tr, va, te = (set(_ids(dl[k])) for k in ("training", "validation", "testing"))
    assert tr and va and te and not tr & va and not tr & te
    if dataset == "mmwhs":
        assert te == va
        all_cases = {str(p.resolve()) for p in demo[dataset].glob("*_image.nii.gz")}
    else:
        assert not va & te
        all_cases = {str(p.resolve()) for p in (demo[dataset] / "imagesTr").glob("*.nii.gz")}
    assert tr | va | te == all_cases
    assert all(Path(e["image"]).is_file() and Path(e["label"]).is_file() for k in dl for e in dl[k])
    assert build_datalist(SPECS[dataset], str(demo[dataset])) == dl


def test_malformed_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="dataset.json is not valid JSON"):
        build_datalist(BRATS, str(tmp_path))
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="dataset.json has no 'training' list"):
        build_datalist(HIPPO, str(tmp_path))
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(ValueError, match="no dataset.json in"):
        build_datalist(HIPPO, str(tmp_path))


# -------------------------------------------------------------------------------------- overrides
def test_datalist_override(demo, tmp_path):
    d = demo["hippocampus"]
    spec = {"training": [{"image": "imagesTr/hippocampus_001.nii.gz", "label": "labelsTr/hippocampus_001.nii.gz"}],
            "validation": [{"image": "imagesTr/hippocampus_002.nii.gz", "label": "labelsTr/hippocampus_002.nii.gz"}]}
    path = write_datalist(spec, tmp_path / "sub" / "dl.json")
    dl = build_datalist(HIPPO, str(d), fold=0, datalist=path)
    assert dl["training"][0]["image"] == str((d / "imagesTr/hippocampus_001.nii.gz").resolve())
    assert dl["testing"] == dl["validation"]
    # relative to the JSON's own folder when dataset_dir does not hold the file
    local = write_datalist(spec, d / "local.json")
    dl2 = build_datalist(HIPPO, str(tmp_path), datalist=local)
    assert Path(dl2["validation"][0]["label"]).is_file()
    # "" and "None" mean not given (bundle configs)
    assert build_datalist(HIPPO, str(d), datalist="") == build_datalist(HIPPO, str(d))


def test_datalist_override_folds_and_errors(tmp_path):
    items = [{"image": f"/x/{i}.nii.gz", "label": f"/x/{i}_seg.nii.gz", "fold": i % 3} for i in range(6)]
    path = write_datalist({"training": items}, tmp_path / "folds.json")
    dl = build_datalist(MMWHS, "", fold=2, datalist=path)
    assert _ids(dl["validation"]) == ["/x/2.nii.gz", "/x/5.nii.gz"] and len(dl["training"]) == 4
    with pytest.raises(ValueError, match=r"fold 3 is out of range.*\[0, 1, 2\]"):
        build_datalist(MMWHS, "", fold=3, datalist=path)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json has no 'training' list"):
        build_datalist(MMWHS, "", datalist=str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="nope.json does not exist"):
        build_datalist(MMWHS, "", datalist=str(tmp_path / "nope.json"))


# ------------------------------------------------------------------------------------ list_images
def test_list_images(demo, tmp_path):
    mm = list_images(str(demo["mmwhs"]))
    assert len(mm) == 6 and all(e["image"].endswith("_image.nii.gz") and "label" not in e for e in mm)
    br = list_images(str(demo["brats"]))  # dataset.json test list
    meta = json.loads((demo["brats"] / "dataset.json").read_text())
    assert [Path(e["image"]).name for e in br] == [Path(t).name for t in meta["test"]]
    # no dataset.json: walk the folder, skip labelsTr
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr" / "a.nii.gz").touch()
    (tmp_path / "labelsTr" / "a.nii.gz").touch()
    (tmp_path / "._a.nii.gz").touch()
    assert [Path(e["image"]).name for e in list_images(str(tmp_path))] == ["a.nii.gz"]
    assert list_images(str(tmp_path / "imagesTr" / "a.nii.gz"))[0]["image"].endswith("a.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no \\*.nii.gz"):
        list_images(str(tmp_path / "empty"))


def test_prepare_datalist_cli(demo, tmp_path):
    out = tmp_path / "dl.json"
    res = subprocess.run([command("dsd-prepare-datalist"), str(demo["mmwhs"]), str(out), "--bundle", "mmwhs_nnunet_dsd",
                          "--fold", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "training: 4, validation: 2, testing: 2" in res.stdout  # 6 cases: folds of ceil(6/5) = 2
    assert json.loads(out.read_text()) == build_datalist(MMWHS, str(demo["mmwhs"]), fold=1)
    bad = subprocess.run([command("dsd-prepare-datalist"), str(demo["mmwhs"]), str(out), "--dataset", "liver"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--dataset 'liver'" in bad.stderr


# ------------------------------------------------------------------------------------------- nnU-Net v2
NNUNET = {"name": "own", "layout": "nnunetv2", "channel_names": ["T2", "ADC"], "class_names": ["background", "gland"],
          "split": {"kind": "kfold", "num_folds": 5, "seed": 12345}}
NNUNET_IDS = [f"case_{i:03d}" for i in (2, 5, 7, 11, 12, 13, 20)]
# scikit-learn 1.9.1 KFold(5, shuffle=True, random_state=12345) over the sorted ids (nnU-Net's
# generate_crossval_split), frozen here so the split is checked against sklearn's numbers, not our own code's
NNUNET_VAL = [["case_011", "case_020"], ["case_002", "case_012"], ["case_005"], ["case_013"], ["case_007"]]


def _fake_nnunet(folder: Path, ids=NNUNET_IDS) -> Path:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case in reversed(ids):
        for c in range(2):
            (folder / "imagesTr" / f"{case}_{c:04d}.nii.gz").touch()
        (folder / "labelsTr" / f"{case}.nii.gz").touch()
    (folder / "labelsTr" / "._case_002.nii.gz").touch()  # macOS resource fork: not a case
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2", "1": "ADC"}, "file_ending": ".nii.gz",
                                                      "labels": {"background": 0, "gland": 1}, "numTraining": 7}))
    return folder


def _case(entry):
    return Path(entry["label"]).name[: -len(".nii.gz")]


def test_nnunet_kfold_matches_sklearn_and_reads_both_channels(tmp_path):
    root = _fake_nnunet(tmp_path / "Dataset901_Own")
    for fold, expected in enumerate(NNUNET_VAL):
        dl = build_datalist(NNUNET, str(root), fold=fold)
        assert [_case(e) for e in dl["validation"]] == expected
        assert sorted(_case(e) for e in dl["training"]) == sorted(set(NNUNET_IDS) - set(expected))
        assert [_case(e) for e in dl["testing"]] == expected
    first = build_datalist(NNUNET, str(root))["training"][0]
    assert [Path(p).name for p in first["image"]] == [f"{_case(first)}_0000.nii.gz", f"{_case(first)}_0001.nii.gz"]
    with pytest.raises(DatalistError, match=r"^fold 5 is out of range for own: use --fold 0\.\.4$"):
        build_datalist(NNUNET, str(root), fold=5)
    # another seed, sklearn's folds for it (KFold(5, shuffle=True, random_state=0), frozen)
    seed0 = {**NNUNET, "split": {"kind": "kfold", "num_folds": 5, "seed": 0}}
    assert [[_case(e) for e in build_datalist(seed0, str(root), fold=f)["validation"]] for f in range(5)] == [
        ["case_007", "case_020"], ["case_005", "case_011"], ["case_002"], ["case_013"], ["case_012"]]


def test_nnunet_own_splits_final_json_wins(tmp_path):
    root = _fake_nnunet(tmp_path / "Dataset901_Own")
    own = [{"train": NNUNET_IDS[:5], "val": NNUNET_IDS[5:]}, {"train": NNUNET_IDS[2:], "val": NNUNET_IDS[:2]}]
    (root / "splits_final.json").write_text(json.dumps(own))
    assert [_case(e) for e in build_datalist(NNUNET, str(root), fold=1)["validation"]] == NNUNET_IDS[:2]
    assert [_case(e) for e in build_datalist(NNUNET, str(root), fold=0)["training"]] == NNUNET_IDS[:5]
    with pytest.raises(DatalistError, match=r"fold 2 is out of range .*--fold 0\.\.1"):
        build_datalist(NNUNET, str(root), fold=2)
    (root / "splits_final.json").write_text(json.dumps([{"train": ["case_002", "case_999"], "val": ["case_005"]}]))
    with pytest.raises(DatalistError, match=r"splits_final.json names cases that are not in .*\['case_999'\]"):
        build_datalist(NNUNET, str(root))
    no_val = [{"train": [], "val": []}, {"train": [f"x{i}" for i in range(7)]}]
    (root / "splits_final.json").write_text(json.dumps(no_val))
    with pytest.raises(DatalistError, match=r"not nnU-Net's splits_final.json format .*: fix or delete it$"):
        build_datalist(NNUNET, str(root))  # the second fold has no "val"
    (root / "splits_final.json").write_text(json.dumps({"train": []}))
    with pytest.raises(DatalistError, match=r"not nnU-Net's splits_final.json format .*: fix or delete it$"):
        build_datalist(NNUNET, str(root))
    (root / "splits_final.json").write_text(json.dumps([{"train": [f"x{i}" for i in range(7)], "val": []}]))
    with pytest.raises(DatalistError, match=r"names cases that are not in .*: \['x0', 'x1', 'x2', 'x3', 'x4'\]: fix"):
        build_datalist(NNUNET, str(root))  # the first five unknown names


def test_nnunet_kfold_errors(tmp_path):
    root = _fake_nnunet(tmp_path / "few", NNUNET_IDS[:4])
    with pytest.raises(DatalistError, match=r"4 case\(s\) cannot be split into 5 folds"):
        build_datalist(NNUNET, str(root))
    five = nnunet_kfold(NNUNET_IDS[:5])  # as many cases as folds: one validation case each, nnU-Net's default 5 folds
    assert [len(f["val"]) for f in five] == [1] * 5 and sorted(c for f in five for c in f["val"]) == NNUNET_IDS[:5]
    with pytest.raises(DatalistError, match=r"^case identifiers must be unique for a k-fold split$"):
        nnunet_kfold(["a", "a", "b", "c", "d", "e"])


# ------------------------------------------------------------------------------------- split arithmetic
def _holdout_spec(reference_cases: int, test: int, validation: int) -> SplitSpec:
    return SplitSpec(kind="holdout", reference_cases=reference_cases, test=test, validation=validation)


@pytest.mark.parametrize("n,expected", [
    (484, (388, 72, 24)),  # the paper's BraTS split at full size
    (600, (504, 72, 24)),  # more cases than the paper: the paper's test and validation sizes, the rest trains
    (100, (80, 15, 5)),    # fewer: 24/484*100 = 4.96 -> 5 test, 72/484*100 = 14.9 -> 15 validation
    (10, (8, 1, 1)),       # 0.50 -> 0 and 1.49 -> 1: never an empty split
])
def test_holdout_sizes_scale_the_papers_brats_split(n, expected):
    assert holdout_sizes(_holdout_spec(484, 24, 72), n) == expected


def test_holdout_sizes_caps_keep_a_case_for_each_split():
    # 5/10*3 = 1.5 rounds to 2 test cases, but 3 cases leave room for 1 (one each for training and validation)
    assert holdout_sizes(_holdout_spec(10, 5, 2), 3) == (1, 1, 1)
    # 6/10*3 = 1.8 rounds to 2 validation cases, but after 1 test case only 1 can validate
    assert holdout_sizes(_holdout_spec(10, 2, 6), 3) == (1, 1, 1)
    # no reference size: the given sizes as they are
    assert holdout_sizes(_holdout_spec(0, 2, 3), 10) == (5, 3, 2)
    with pytest.raises(DatalistError, match=r"^2 case\(s\) cannot give non-empty train/validation/test splits"):
        holdout_sizes(_holdout_spec(484, 24, 72), 2)


def test_blocks_need_two_folds_and_two_cases(tmp_path):
    two_folds = {**MMWHS, "split": {"kind": "blocks", "num_folds": 2}}
    d = _fake_mmwhs(tmp_path / "two", 2)
    dl = build_datalist(two_folds, str(d), fold=1)
    assert [Path(e["image"]).name for e in dl["validation"]] == ["ct_train_1002_image.nii.gz"]
    assert len(dl["training"]) == 1
    with pytest.raises(DatalistError, match=r"^num_folds=1: need at least 2 folds for a train/validation split$"):
        build_datalist({**MMWHS, "split": {"kind": "blocks", "num_folds": 1}}, str(d))
    with pytest.raises(DatalistError, match=r"^only 1 case\(s\) in mmwhs: need at least 2 to split$"):
        build_datalist(two_folds, str(_fake_mmwhs(tmp_path / "one", 1)))


def test_build_datalist_errors_name_the_fix(tmp_path):
    with pytest.raises(DatalistError, match=r"^--fold 'abc' is not an integer: use --fold 0$"):
        build_datalist(MMWHS, str(tmp_path), fold="abc")
    with pytest.raises(DatalistError, match=r"^mmwhs: no dataset_dir and no datalist given: pass --dataset_dir$"):
        build_datalist(MMWHS, None)
    with pytest.raises(DatalistError, match=r"missing is not a folder: pass --dataset_dir with the hippocampus data "
                                            r"\(or make demo data with dsd-make-demo-data\)$"):
        build_datalist(HIPPO, str(tmp_path / "missing"))
    root = _fake_msd(tmp_path / "Task04_Hippocampus", "hippocampus", 6)
    with pytest.raises(DatalistError, match=r"^fold 1 is out of range for hippocampus: the paper uses one fixed split, "
                                            r"use --fold 0 \(or pass your own --datalist\)$"):
        build_datalist(HIPPO, str(root), fold=1)
