"""What inference takes (a file, a folder, nnU-Net channel files, DICOM series, a datalist), the per-case checks,
the run's report, and the DICOM series writer the tests use (small volumes with real, oblique affines)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import pydicom

from dsd_components import case_checks
from dsd_components.case_checks import _read_problem, check_case, screen_cases
from dsd_components.inference import CasesFailedError, InferenceReport, output_name, root_cause, select_cases
from dsd_components.inputs import InputSelectionError, case_name, find_cases, is_dicom_file, read_datalist_json
from dsd_tools.dicom import CT_IMAGE_STORAGE, readback_affine, write_dicom_series

SHAPE = (16, 16, 12)


def make_affine(spacing=(0.8, 0.9, 2.5), origin=(12.5, -30.0, 7.0), angle=0.2, flip_x=True) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.diag([-1.0 if flip_x else 1.0, 1, 1])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag(spacing)
    a[:3, 3] = origin
    return a


AFF = make_affine()


def vol(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 30, size=shape).astype(np.float32)


def nii(path: Path, data=None, aff=AFF) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(vol() if data is None else data, aff), str(path))
    return path


def names(entries):
    return [e["case"] for e in entries]


@pytest.fixture(scope="module")
def dicom_series(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    root = tmp_path_factory.mktemp("dcm")
    data = np.round(vol(seed=3) * 10 - 1000)
    aff = make_affine(spacing=(0.7, 0.75, 3.0), angle=0.3, flip_x=False)  # oblique, det > 0
    write_dicom_series(data, aff, root / "series")
    return root / "series", data, aff


# ================================================================================= inference_inputs
class TestFindCases:
    def test_single_files(self, tmp_path):
        f = nii(tmp_path / "ct_001.nii.gz")
        assert find_cases(str(f)) == [{"image": str(f), "case": "ct_001"}]
        g = nii(tmp_path / "x.y.nii")
        assert find_cases(g)[0]["case"] == "x.y"
        for name in ("a.nrrd", "b.mha", "c.MHD"):  # not opened here: suffix decides
            (tmp_path / name).write_bytes(b"x")
            assert find_cases(tmp_path / name)[0]["case"] == name.split(".")[0]

    def test_single_bad_files(self, tmp_path, dicom_series):
        with pytest.raises(InputSelectionError, match="single DICOM file.*folder"):
            find_cases(next(dicom_series[0].iterdir()))
        (tmp_path / "notes.txt").write_text("hi")
        with pytest.raises(InputSelectionError, match="not a supported image"):
            find_cases(tmp_path / "notes.txt")
        with pytest.raises(InputSelectionError, match="does not exist"):
            find_cases(tmp_path / "nope")
        with pytest.raises(InputSelectionError, match="no input path"):
            find_cases("")

    def test_empty_folder_names_path_and_what(self, tmp_path):
        (tmp_path / "labels").mkdir()
        nii(tmp_path / "labels" / "a.nii.gz")
        nii(tmp_path / "a_label.nii.gz")
        (tmp_path / "._a.nii.gz").write_bytes(b"\0\5\26\7")
        with pytest.raises(InputSelectionError) as err:
            find_cases(tmp_path)
        msg = str(err.value)
        assert str(tmp_path) in msg and "*.nii.gz" in msg and "DICOM" in msg and "dataset.json" in msg

    def test_folder_skips_labels_hidden_and_subfolders(self, tmp_path):
        for n in ("b.nii.gz", "a.nii", "c_label.nii.gz", "d_seg.nii.gz", "e.nrrd", "f.mha", "g.mhd"):
            nii(tmp_path / n) if "nii" in n else (tmp_path / n).write_bytes(b"x")
        (tmp_path / "g.raw").write_bytes(b"x")
        (tmp_path / "._b.nii.gz").write_bytes(b"\0\5\26\7")
        (tmp_path / ".DS_Store").write_bytes(b"x")
        nii(tmp_path / "labelsTr" / "z.nii.gz")
        nii(tmp_path / "sub" / "y.nii.gz")
        entries = find_cases(tmp_path)
        assert names(entries) == ["a", "b", "e", "f", "g"]
        assert all(os.path.isabs(e["image"]) for e in entries)

    def test_duplicate_case_names(self, tmp_path):
        nii(tmp_path / "a.nii")
        nii(tmp_path / "a.nii.gz")
        with pytest.raises(InputSelectionError, match="duplicate case name.*'a'"):
            find_cases(tmp_path)

    def test_msd_test_list_and_training_fallback(self, tmp_path):
        for n in ("imagesTs/hip_2.nii.gz", "imagesTs/hip_1.nii.gz", "imagesTr/hip_9.nii.gz", "labelsTr/hip_9.nii.gz"):
            nii(tmp_path / n)
        ds = {"name": "Hippocampus", "modality": {"0": "MRI"}, "numTest": 2,
              "test": ["./imagesTs/hip_2.nii.gz", "./imagesTs/hip_1.nii.gz"],
              "training": [{"image": "./imagesTr/hip_9.nii.gz", "label": "./labelsTr/hip_9.nii.gz"}]}
        (tmp_path / "dataset.json").write_text(json.dumps(ds))
        entries = find_cases(tmp_path)
        assert names(entries) == ["hip_1", "hip_2"]
        assert entries[0]["image"] == str(tmp_path / "imagesTs" / "hip_1.nii.gz")
        ds["test"] = []
        (tmp_path / "dataset.json").write_text(json.dumps(ds))
        assert find_cases(tmp_path) == [{"image": str(tmp_path / "imagesTr" / "hip_9.nii.gz"), "case": "hip_9"}]

    def test_images_ts_without_json(self, tmp_path):
        nii(tmp_path / "imagesTs" / "k_0000.nii.gz")
        nii(tmp_path / "imagesTr" / "t_0000.nii.gz")
        assert find_cases(tmp_path, in_channels=1) == [
            {"image": str(tmp_path / "imagesTs" / "k_0000.nii.gz"), "case": "k"}]

    def test_nnunet_channel_files(self, tmp_path):
        for case in ("B", "A"):
            for c in range(2):
                nii(tmp_path / f"{case}_{c:04d}.nii.gz", vol(seed=c))
        entries = find_cases(tmp_path, in_channels=2)
        assert names(entries) == ["A", "B"]
        assert entries[0]["image"] == [str(tmp_path / "A_0000.nii.gz"), str(tmp_path / "A_0001.nii.gz")]
        assert find_cases(tmp_path) == entries  # channel count from the files when in_channels is unknown

    def test_nnunet_missing_channel_names_case_and_file(self, tmp_path):
        for c in range(3):
            nii(tmp_path / f"A_{c:04d}.nii.gz")
        nii(tmp_path / "B_0000.nii.gz")
        nii(tmp_path / "B_0002.nii.gz")
        with pytest.raises(InputSelectionError) as err:
            find_cases(tmp_path, in_channels=3)
        assert "case B: channel 1" in str(err.value) and "B_0001.nii.gz is missing" in str(err.value)

    def test_single_channel_nnunet_and_numbered_cases(self, tmp_path):
        nii(tmp_path / "nn" / "la_003_0000.nii.gz")
        nii(tmp_path / "nn" / "la_007_0000.nii.gz")
        assert find_cases(tmp_path / "nn", in_channels=1) == [
            {"image": str(tmp_path / "nn" / "la_003_0000.nii.gz"), "case": "la_003"},
            {"image": str(tmp_path / "nn" / "la_007_0000.nii.gz"), "case": "la_007"}]
        for i in (1, 4, 5):  # AMOS-style numbering is not a channel index
            nii(tmp_path / "amos" / f"amos_{i:04d}.nii.gz")
        assert names(find_cases(tmp_path / "amos", in_channels=1)) == ["amos_0001", "amos_0004", "amos_0005"]
        assert names(find_cases(tmp_path / "amos")) == ["amos_0001", "amos_0004", "amos_0005"]  # no _0000

    def test_nnunet_raw_dataset(self, tmp_path):
        ds = {"channel_names": {"0": "T1", "1": "FLAIR"}, "labels": {"background": 0, "tumor": 1},
              "numTraining": 1, "file_ending": ".nii.gz"}
        (tmp_path / "dataset.json").write_text(json.dumps(ds))
        for c in range(2):
            nii(tmp_path / "imagesTr" / f"tr_{c:04d}.nii.gz")
        entries = find_cases(tmp_path, in_channels=2)
        assert names(entries) == ["tr"] and len(entries[0]["image"]) == 2
        nii(tmp_path / "imagesTs" / "ts_0000.nii.gz")
        nii(tmp_path / "imagesTs" / "ts_0001.nii.gz")
        (tmp_path / "imagesTs" / "ts_0000.nrrd").write_bytes(b"x")  # other file_ending: ignored
        assert names(find_cases(tmp_path)) == ["ts"]
        nii(tmp_path / "imagesTs" / "ts_0002.nii.gz")
        with pytest.raises(InputSelectionError, match="ts_0002.nii.gz is channel 2 but the model/dataset has 2"):
            find_cases(tmp_path)
        (tmp_path / "imagesTs" / "ts_0002.nii.gz").unlink()
        nii(tmp_path / "imagesTs" / "odd.nii.gz")
        with pytest.raises(InputSelectionError, match="odd.nii.gz: nnU-Net dataset image not named"):
            find_cases(tmp_path)
        (tmp_path / "imagesTs" / "odd.nii.gz").unlink()
        (tmp_path / "imagesTs" / "ts_0001.nii.gz").unlink()
        with pytest.raises(InputSelectionError, match="case ts: channel 1"):
            find_cases(tmp_path)

    def test_nnunet_dataset_without_images(self, tmp_path):
        (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))
        with pytest.raises(InputSelectionError, match="imagesTs/\\*.nii.gz"):
            find_cases(tmp_path)

    def test_dicom_series_and_tree(self, tmp_path, dicom_series):
        series = dicom_series[0]
        assert find_cases(series) == [{"image": str(series), "case": "series"}]
        data, aff = vol((8, 8, 3), seed=1).round(), make_affine()
        paths = write_dicom_series(data, aff, tmp_path / "P1" / "ST1" / "1.2.3.4")
        write_dicom_series(data, aff, tmp_path / "P2" / "S")
        for p in paths:  # DICOM files need no extension
            os.rename(p, p[:-4])
        (tmp_path / "P2" / "DICOMDIR").write_bytes(Path(paths[0][:-4]).read_bytes())
        entries = find_cases(tmp_path)
        assert names(entries) == ["P1_ST1_1.2.3.4", "P2_S"]
        assert entries[0]["image"] == str(tmp_path / "P1" / "ST1" / "1.2.3.4")
        assert is_dicom_file(paths[0][:-4]) and not is_dicom_file(tmp_path / "P2")

    def test_datalist_json(self, tmp_path):
        nii(tmp_path / "d" / "x.nii.gz")
        js = tmp_path / "d" / "list.json"
        js.write_text(json.dumps({"training": [{"image": "x.nii.gz"}],
                                  "testing": ["x.nii.gz", {"image": ["c/a_0000.nii.gz", "/abs/a_0001.nii.gz"]}]}))
        entries = read_datalist_json(js)
        assert entries == [{"image": [str(tmp_path / "d" / "c" / "a_0000.nii.gz"), "/abs/a_0001.nii.gz"], "case": "a"},
                           {"image": str(tmp_path / "d" / "x.nii.gz"), "case": "x"}]
        assert find_cases(js) == entries
        js.write_text(json.dumps({"validation": [], "training": [{"image": "x.nii.gz"}]}))
        assert names(read_datalist_json(js)) == ["x"]

    @pytest.mark.parametrize("content, match", [("{not json", "cannot read the JSON"), ("[]", "expected a JSON object"),
                                                ('{"testing": []}', "no non-empty list"),
                                                ('{"test": [{"label": "a"}]}', "has no \\\"image\\\""),
                                                ('{"test": [{"image": []}]}', "empty image list"),
                                                ('{"test": [3]}', "not a path")])
    def test_datalist_json_errors(self, tmp_path, content, match):
        (tmp_path / "l.json").write_text(content)
        with pytest.raises(InputSelectionError, match=match):
            read_datalist_json(tmp_path / "l.json")

    def test_case_name(self, tmp_path):
        assert case_name("/a/b/CASE_0003.nii.gz") == "CASE_0003"
        assert case_name(["/a/CASE_0000.nii.gz", "/a/CASE_0001.nii.gz"]) == "CASE"
        assert case_name(str(tmp_path) + "/") == tmp_path.name


# ================================================================================= MONAI facts relied on
def test_monai_loads_channel_file_list_as_channels(tmp_path):
    """LoadImaged(list) + EnsureChannelFirstd stacks files as channels; the meta (filename, affine) is the first
    file's; MONAI itself refuses channel files whose affine or shape differ."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    files = [str(nii(tmp_path / f"A_{c:04d}.nii.gz", np.full(SHAPE, c, np.float32))) for c in range(2)]
    out = Compose([LoadImaged("image", image_only=False), EnsureChannelFirstd("image")])({"image": files, "case": "A"})
    img = out["image"]
    assert tuple(img.shape) == (2, *SHAPE) and img.meta["original_channel_dim"] == 0
    assert img.meta["filename_or_obj"] == files[0] and np.allclose(img.affine.numpy(), AFF, atol=1e-5)
    assert float(img[1].mean()) == 1.0 and out["case"] == "A"


# ================================================================================= case_checks
class TestCheckCase:
    def test_good_single_and_channels(self, tmp_path):
        f = nii(tmp_path / "ok.nii.gz")
        assert check_case({"image": str(f)}, 1) is None
        files = [str(nii(tmp_path / f"A_{c:04d}.nii.gz")) for c in range(2)]
        assert check_case({"image": files}, 2) is None
        four = nii(tmp_path / "four.nii.gz", np.stack([vol(), vol()], -1))
        assert check_case({"image": str(four)}, 2) is None

    def test_unreadable(self, tmp_path):
        f = nii(tmp_path / "big.nii.gz", vol((40, 40, 30)))
        raw = f.read_bytes()
        f.write_bytes(raw[: int(len(raw) * 0.6)])
        msg = check_case({"image": str(f)}, 1)
        assert msg.startswith(f"{f}: cannot be read (EOFError") and "corrupt or truncated" in msg
        assert "\n" not in msg
        (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
        assert "cannot be read" in check_case({"image": str(tmp_path / "junk.nii.gz")}, 1)
        assert "file is missing" in check_case({"image": str(tmp_path / "gone.nii.gz")}, 1)
        assert "gone_0001.nii.gz: file is missing" in check_case(
            {"image": [str(f), str(tmp_path / "gone_0001.nii.gz")]}, 2)

    def test_no_reader_message(self, tmp_path, monkeypatch):
        msg = _read_problem(RuntimeError("LoadImage cannot find a suitable reader for file: x.nrrd.\n ..."))
        assert "pip install itk" in msg
        import itk
        import monai.data.image_reader as ir

        img = itk.image_from_array(vol((4, 5, 6)))
        itk.imwrite(img, str(tmp_path / "v.nrrd"))
        assert check_case({"image": str(tmp_path / "v.nrrd")}, 1) is None
        monkeypatch.setattr(ir, "has_itk", False)  # as if itk were not installed: PydicomReader takes the file
        monkeypatch.setattr(case_checks, "_LOADERS", {})
        msg = check_case({"image": str(tmp_path / "v.nrrd")}, 1)
        assert "non-DICOM file to PydicomReader" in msg and "pip install itk" in msg

    def test_channel_count(self, tmp_path):
        two = nii(tmp_path / "two.nii.gz", np.stack([vol(), vol()], -1))
        msg = check_case({"image": str(two)}, 1)
        assert msg.startswith(str(two)) and "has 2 channel(s), the model expects 1" in msg
        one = nii(tmp_path / "one.nii.gz")
        assert "has 1 channel(s), the model expects 4: give all 4 channels" in check_case({"image": str(one)}, 4)
        assert "CASE_0003" in check_case({"image": str(one)}, 4)

    def test_channel_files_disagree(self, tmp_path):
        a = str(nii(tmp_path / "A_0000.nii.gz"))
        b = str(nii(tmp_path / "A_0001.nii.gz", aff=make_affine(origin=(0, 0, 0))))
        c = str(nii(tmp_path / "B_0001.nii.gz", vol((16, 16, 10))))
        assert "channel files differ in affine" in check_case({"image": [a, b]}, 2)
        assert "channel files differ in shape" in check_case({"image": [a, c]}, 2)

    def test_non_finite(self, tmp_path):
        v = vol()
        v[0, 0, :5] = np.nan
        v[1, 1, 1] = np.inf
        msg = check_case({"image": str(nii(tmp_path / "n.nii.gz", v))}, 1)
        assert "has 6 non-finite voxel(s) (NaN/Inf) of 3072" in msg

    def test_sizes(self, tmp_path):
        flat = nii(tmp_path / "flat.nii.gz", vol((16, 16, 1)))
        assert "implausible size (16, 16, 1)" in check_case({"image": str(flat)}, 1)
        assert "implausible size" in check_case({"image": str(nii(tmp_path / "s.nii.gz"))}, 1, max_voxels=1000)
        assert "implausible size" in check_case({"image": str(nii(tmp_path / "s.nii.gz"))}, 1, max_dim=12)
        img2d = nii(tmp_path / "slice.nii.gz", vol((16, 16)))
        assert "is 2D after EnsureChannelFirst" in check_case({"image": str(img2d)}, 1)

    def test_dicom(self, tmp_path, dicom_series):
        assert check_case({"image": str(dicom_series[0])}, 1) is None
        assert check_case({"image": str(dicom_series[0])}, 1, reader="PydicomReader") is None
        mixed = tmp_path / "mixed"
        write_dicom_series(vol((8, 8, 2), seed=1).round(), AFF, mixed)
        for i, p in enumerate(write_dicom_series(vol((8, 8, 2), seed=2).round(), AFF, tmp_path / "other")):
            os.rename(p, mixed / f"other{i}.dcm")
        assert "holds 2 DICOM series" in check_case({"image": str(mixed)}, 1)

    def test_screen_cases(self, tmp_path):
        good = {"image": str(nii(tmp_path / "g.nii.gz")), "case": "g"}
        bad = {"image": str(tmp_path / "missing.nii.gz"), "case": "m"}
        ok, problems = screen_cases([bad, good], 1)
        assert ok == [good] and len(problems) == 1 and problems[0].startswith("[m] ")


# ================================================================================= dicom_writer
class TestDicomWriter:
    @pytest.mark.parametrize("reader", ["PydicomReader", "ITKReader"])
    @pytest.mark.parametrize("flip_x", [False, True])
    def test_roundtrip(self, tmp_path, reader, flip_x):
        from monai.transforms import LoadImage

        data = np.round(vol((10, 9, 6), seed=5) * 10 - 1000)
        aff = make_affine(spacing=(0.7, 0.8, 2.0), angle=0.4, flip_x=flip_x)  # flip_x: det < 0 (LAS-like)
        write_dicom_series(data, aff, tmp_path)
        img = LoadImage(reader=reader, image_only=True)(str(tmp_path))
        expected, flipped = readback_affine(aff, data.shape[2], "pydicom" if reader == "PydicomReader" else "itk")
        assert flipped == (reader == "ITKReader" and flip_x)
        assert img.meta["space"] == "RAS"  # MONAI converts DICOM's LPS to RAS (affine_lps_to_ras=True)
        np.testing.assert_array_equal(img.numpy(), data[..., ::-1] if flipped else data)
        np.testing.assert_allclose(img.affine.numpy(), expected, atol=1e-4)

    def test_tags(self, tmp_path):
        data = vol((6, 5, 3)).round()
        paths = write_dicom_series(data, AFF, tmp_path)
        dss = [pydicom.dcmread(p) for p in paths]
        assert {d.SeriesInstanceUID for d in dss}.__len__() == 1 and len({d.SOPInstanceUID for d in dss}) == 3
        d = dss[1]
        assert d.SOPClassUID == CT_IMAGE_STORAGE == d.file_meta.MediaStorageSOPClassUID
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID and d.file_meta.TransferSyntaxUID
        assert (d.Rows, d.Columns) == (5, 6) and d.InstanceNumber == 2
        lps = np.diag([-1.0, -1, 1, 1]) @ AFF
        np.testing.assert_allclose([float(x) for x in d.ImagePositionPatient], lps[:3, 2] + lps[:3, 3], atol=1e-4)
        np.testing.assert_allclose([float(x) for x in d.PixelSpacing], [0.9, 0.8], atol=1e-6)
        assert float(d.SliceThickness) == pytest.approx(2.5)
        hu = d.pixel_array.astype(float) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        np.testing.assert_allclose(hu, data[:, :, 1].T)

    def test_non_integer_values_use_slope(self, tmp_path):
        from monai.transforms import LoadImage

        data = vol((6, 5, 3)) / 7.0
        write_dicom_series(data, AFF, tmp_path)
        img = LoadImage(reader="PydicomReader", image_only=True)(str(tmp_path))
        assert np.abs(img.numpy() - data).max() <= (data.max() - np.floor(min(data.min(), 0))) / 65535

    @pytest.mark.parametrize("volume, aff, match", [(np.zeros((4, 4)), AFF, "3D"),
                                                    (np.full((4, 4, 2), np.nan), AFF, "NaN"),
                                                    (np.zeros((4, 4, 2)), np.array([[1, 0.5, 0, 0], [0, 1, 0, 0],
                                                                                    [0, 0, 1, 0], [0, 0, 0, 1.0]]),
                                                     "orthogonal"),
                                                    (np.array([0, 1e6]).reshape(1, 1, 2), AFF, None)])
    def test_rejects(self, tmp_path, volume, aff, match):
        if match is None:  # a huge range is representable with a slope: no error
            write_dicom_series(volume, aff, tmp_path)
            return
        with pytest.raises(ValueError, match=match):
            write_dicom_series(volume, aff, tmp_path)


# ================================================================================= inference_report
class TestReport:
    def test_output_names(self, tmp_path):
        assert output_name(str(tmp_path / "ct.1.nii.gz"), "ct.1") == "ct.1_seg.nii.gz"
        assert output_name([str(tmp_path / "A_0000.nii.gz"), str(tmp_path / "A_0001.nii.gz")], "A") == "A.nii.gz"
        assert output_name(str(tmp_path / "la_3_0000.nii.gz"), "la_3") == "la_3.nii.gz"  # one-channel nnU-Net
        assert output_name(str(tmp_path / "amos_0001.nii.gz"), "amos_0001") == "amos_0001_seg.nii.gz"
        assert output_name(str(tmp_path / "1.2.840.5"), "P1_1.2.840.5") == "P1_1.2.840.5_seg.nii.gz"

    def test_finish_and_summary(self, caplog):
        rep = InferenceReport("/out", problems=["[a] /x/a.nii.gz: cannot be read: fix"])
        rep.written = ["/out/b_seg.nii.gz"]
        with caplog.at_level(logging.INFO, logger="dsd_components.inference"), \
                pytest.raises(CasesFailedError) as err:
            rep.finish()
        assert err.value.exit_code == 1 and str(err.value) == "wrote 1 prediction(s) to /out; 1 case(s) failed: a"
        assert caplog.messages == ["failed [a] /x/a.nii.gz: cannot be read: fix"]
        ok = InferenceReport("/out")
        ok.finish()
        assert ok.summary() == "wrote 0 prediction(s) to /out"

    def test_select_cases(self, tmp_path):
        with pytest.raises(InputSelectionError, match="no input images found") as err:
            select_cases(str(tmp_path), 1)
        assert err.value.exit_code == 2
        nii(tmp_path / "a.nii.gz")
        bad = nii(tmp_path / "b.nii.gz", np.full(SHAPE, np.nan, np.float32))
        good, problems = select_cases(str(tmp_path), 1)
        assert names(good) == ["a"] and problems[0].startswith(f"[b] {bad}: has 3072 non-finite")
        assert len(select_cases(str(tmp_path), 1, check="false")[0]) == 2

    def test_mid_run_exception_names_case(self, caplog):
        from ignite.engine import Engine

        cases = [{"image": "/d/a.nii.gz", "case": "a"}, {"image": "/d/b.nii.gz", "case": "b"},
                 {"image": "/d/c.nii.gz", "case": "c"}]

        def step(engine, batch):
            if batch["case"] == "b":
                raise RuntimeError("applying transform <LoadImaged>") from EOFError("Compressed file ended")
            return {"pred": None}

        engine = Engine(step)
        rep = InferenceReport("/out", cases=cases)
        rep.attach(engine)
        with caplog.at_level(logging.INFO), pytest.raises(CasesFailedError) as err:
            engine.run(cases, max_epochs=1)
        assert err.value.exit_code == 1 and "1 case(s) failed: b" in str(err.value)
        assert rep.problems == ["[b] /d/b.nii.gz: the run stopped on this case (EOFError: Compressed file ended); "
                                "1 later case(s) not attempted: fix or remove it and rerun"]

    def test_root_cause_of_worker_error(self):
        text = ("Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                '  File "x.py", line 1, in f\n    raise EOFError("boom")\nEOFError: Compressed file ended\n'
                "The above exception was the direct cause of the following exception:\n"
                "RuntimeError: applying transform <LoadImaged>")
        assert root_cause(RuntimeError(text)) == "EOFError: Compressed file ended"
