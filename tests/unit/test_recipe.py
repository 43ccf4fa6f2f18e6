"""The nine bundles follow the paper's recipe: every setting, read back from the generated configs through MONAI's own
parser (the transforms instantiated), equals the reference code's value written out here from SPEC.md and the paper
table (dsd_tools.paper) agrees with them, so drift in the table, the writer or a committed config fails."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import (Compose, FgBgToIndicesd, MapLabelValued, Orientationd, RandCropByPosNegLabeld, RandFlipd,
                              RandRotate90d, RandShiftIntensityd, SpatialPadd, Spacingd)
from support.bundles import BUNDLES, ROOT
from support.paper_numbers import MMWHS_RAW, MMWHS_STRAY

from dsd_tools.paper import BACKBONES, DATASETS, PAIRINGS, TRAINING
from dsd_tools.paths import config_files

# The reference code's recipe (SPEC.md "Data" and the R files it cites), independent of dsd_tools.paper:
# patch, patches per volume, pos, neg, pad mode, cached fg/bg indices, flip p, rot90 p, shift p, spacing,
# resample-before-reorient
RECIPE = {
    "mmwhs": (96, 2, 1.0, 0.0, "reflect", False, 0.1, 0.1, 0.5, (1.5, 1.5, 2.0), True),
    "brats": (128, 2, 1.0, 0.0, "constant", False, 0.5, 0.1, 1.0, None, False),
    "hippocampus": (32, 16, 1.0, 0.1, "edge", True, 0.5, 0.1, 1.0, None, False),
}
# epochs, learning rate, step decay (Tables / section 3.1; StepLR(epochs // 6, 0.5))
SCHEDULE = {
    "mmwhs_unetr_dsd": (600, 1e-3, True), "mmwhs_nnunet_dsd": (300, 1e-3, True),
    "brats_unetr_dsd": (325, 1e-4, False), "brats_unetr_light_dsd": (325, 1e-4, False),
    "brats_nnunet_dsd": (300, 1e-3, True), "brats_swinunetr_dsd": (325, 1e-4, False),
    "hippocampus_vnet_dsd": (300, 1e-4, False), "hippocampus_unetr_dsd": (300, 1e-4, False),
    "hippocampus_nnunet_dsd": (300, 1e-4, False),
}


def _parser(name: str, config: str) -> ConfigParser:
    """The config as MONAI reads it: evaluate.json layered on train.json."""
    parser = ConfigParser()
    parser.read_config(config_files(ROOT / "bundles" / name, config))
    parser.update({"bundle_root": str(ROOT / "bundles" / name)})
    return parser


def _dataset(name: str) -> str:
    return PAIRINGS[name].dataset


@pytest.mark.parametrize("name", BUNDLES)
def test_training_transforms_are_the_reference_codes(name):
    ds = _dataset(name)
    patch, samples, pos, neg, pad, cache, flip, rot, shift, spacing, spacing_first = RECIPE[ds]
    facts = DATASETS[ds]
    assert (facts.crop.patch, facts.crop.num_samples, facts.crop.pos, facts.crop.neg, facts.crop.pad_mode,
            facts.crop.cache_fg_bg_indices) == (patch, samples, pos, neg, pad, cache)  # the table says the same
    p = _parser(name, "train.json")
    det = p.get_parsed_content("train#deterministic_transforms")
    crop, *rand = p.get_parsed_content("train#random_transforms")
    assert isinstance(crop, RandCropByPosNegLabeld)
    assert tuple(crop.cropper.spatial_size) == (patch,) * 3 and crop.cropper.num_samples == samples
    assert crop.cropper.pos_ratio == pytest.approx(pos / (pos + neg))
    assert (crop.fg_indices_key is not None) == cache
    flips = [t for t in rand if isinstance(t, RandFlipd)]
    assert [t.prob for t in flips] == [flip] * 3 and sorted(t.flipper.spatial_axis for t in flips) == [0, 1, 2]
    (rot90,) = [t for t in rand if isinstance(t, RandRotate90d)]
    assert rot90.prob == rot and rot90.max_k == 3
    (shift_t,) = [t for t in rand if isinstance(t, RandShiftIntensityd)]
    assert shift_t.prob == shift and shift_t.shifter.offsets == (-0.1, 0.1)
    (padder,) = [t for t in det if isinstance(t, SpatialPadd)]
    assert set(padder.mode) == {pad} and tuple(padder.padder.spatial_size) == (patch,) * 3
    assert any(isinstance(t, FgBgToIndicesd) for t in det) == cache
    kinds = [type(t) for t in det]
    if spacing is None:
        assert Spacingd not in kinds
    else:
        (sp,) = [t for t in det if isinstance(t, Spacingd)]
        assert tuple(sp.spacing_transform.pixdim.tolist()) == spacing
        assert (kinds.index(Spacingd) < kinds.index(Orientationd)) == spacing_first
    # validation and evaluation do not pad (the sliding window does), as the reference code
    val = p.get_parsed_content("validate#preprocessing").transforms
    assert not any(isinstance(t, (SpatialPadd, FgBgToIndicesd)) for t in val)


def test_mmwhs_labels_map_to_classes_and_421_to_background():
    det = _parser("mmwhs_nnunet_dsd", "train.json").get_parsed_content("train#deterministic_transforms")
    (mapper,) = [t for t in det if isinstance(t, MapLabelValued)]
    raw = torch.tensor([[[[0, *MMWHS_RAW, MMWHS_STRAY]]]], dtype=torch.int16)
    out = mapper({"label": raw})["label"]
    assert out.flatten().tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0]


def _raw_mmwhs_case(folder) -> tuple[dict, np.ndarray]:
    """A CT case on disk at the bundle's spacing (1.5 x 1.5 x 2 mm, RAS): its label holds every raw MMWHS value,
    class k (MMWHS_RAW[k - 1]) in k voxels and the stray value in 3, scattered; returns the datalist entry and the
    class map the bundle must train on (written from the raw values, not from the bundle)."""
    shape = (12, 10, 8)
    rng = np.random.default_rng(0)
    raw = np.zeros(shape, np.int16).ravel()
    values = [v for k, v in enumerate(MMWHS_RAW, start=1) for _ in range(k)] + [MMWHS_STRAY] * 3
    where = rng.permutation(raw.size)[: len(values)]
    raw[where] = values
    raw = raw.reshape(shape)
    expected = np.zeros(shape, np.uint8)
    for k, v in enumerate(MMWHS_RAW, start=1):
        expected[raw == v] = k
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    image = rng.integers(-500, 800, shape).astype(np.int16)
    nib.save(nib.Nifti1Image(image, affine), str(folder / "ct_train_1001_image.nii.gz"))
    nib.save(nib.Nifti1Image(raw, affine), str(folder / "ct_train_1001_label.nii.gz"))
    entry = {"image": str(folder / "ct_train_1001_image.nii.gz"), "label": str(folder / "ct_train_1001_label.nii.gz")}
    return entry, expected


@pytest.mark.parametrize("name", [b for b in BUNDLES if _dataset(b) == "mmwhs"])
def test_raw_mmwhs_label_volumes_become_classes_through_the_bundles_preprocessing(name, tmp_path):
    """Every raw value, read from a NIfTI file through the bundle's own transforms (training, validation and
    evaluation), lands on its class voxel for voxel; 421 becomes background."""
    entry, expected = _raw_mmwhs_case(tmp_path)
    chains = {"train.json": ["train#deterministic_transforms", "validate#preprocessing"],
              "evaluate.json": ["validate#preprocessing"]}  # evaluation reads the validation chain
    for config, ids in chains.items():
        p = _parser(name, config)
        p.update({"patch_size": list(expected.shape)})  # no padding: the grid stays the file's
        for cid in ids:
            chain = p.get_parsed_content(cid)
            out = Compose(chain)(dict(entry)) if isinstance(chain, list) else chain(dict(entry))
            label = np.asarray(out["label"])[0]
            assert label.shape == expected.shape, (config, cid)
            assert np.array_equal(label, expected), (config, cid, np.bincount(label.ravel(), minlength=8))
            assert np.bincount(label.ravel(), minlength=8)[1:].tolist() == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("name", BUNDLES)
def test_schedule_loss_seed_and_heads_are_the_papers(name):
    epochs, lr, decay = SCHEDULE[name]
    pf = PAIRINGS[name]
    assert (pf.epochs, pf.learning_rate, pf.step_decay) == (epochs, lr, decay)
    p = _parser(name, "train.json")
    assert p.get_parsed_content("num_epochs") == epochs and p.get_parsed_content("learning_rate") == lr
    assert p.get_parsed_content("weight_decay") == 1e-5 and p.get_parsed_content("seed") == 100
    assert p.get_parsed_content("lr_scheduler#step_size") == (max(1, epochs // 6) if decay else 10**9)
    assert p.get("lr_scheduler#gamma") == 0.5 and p.get("optimizer#_target_") == "torch.optim.AdamW"
    loss = p.get("loss")
    assert [p.get_parsed_content(k) for k in ("dsd_lambda", "dsd_alpha", "dsd_beta", "temperature")] == [1, 1, 1, 3]
    assert loss["mode"] == "@dsd_mode" and p.get("dsd_mode") == "dsd" and p.get("detach_teacher") is False
    nnunet = BACKBONES[pf.backbone].class_name == "DynUNet"
    assert p.get("dsd_network#head_init") == ("kaiming_normal" if nnunet else "default")
    assert p.get("train#dataloader#batch_size") == 1
    assert p.get("validate#inferer#overlap") == TRAINING.sw_overlap == 0.25


@pytest.mark.parametrize("name", BUNDLES)
def test_evaluation_reports_hd95_in_mm_and_in_voxels(name):
    p = _parser(name, "evaluate.json")
    mm = p.get_parsed_content("additional_metrics#mean_hd95#metric_fn")
    vox = p.get_parsed_content("additional_metrics#mean_hd95_vox#metric_fn")
    assert (mm.unit, vox.unit) == ("mm", "voxel")
    for m in (mm, vox):
        assert m.percentile == 95 and m.include_background is False
    (csv_writer,) = [h for h in p.get("handlers") if h["_target_"].endswith("PerClassCSV") and not h.get("prefix")]
    assert csv_writer["metric_names"] == ["mean_dice", "mean_hd95", "mean_hd95_vox"]


def test_nnunet_heads_are_initialised_as_the_reference_code():
    """Kaiming normal (a=0.01), zero bias: the weights' spread is that of kaiming_normal_ with a=0.01."""
    from dsd_components import DSDNetwork
    from dsd_tools.networks import build_backbone

    torch.manual_seed(0)
    net = DSDNetwork(build_backbone("hippocampus_nnunet"), mode="dsd", head_init="kaiming_normal")
    head = net.heads[sorted(net.heads)[-1]]
    w = head.proj.weight
    fan_in = w.shape[1]
    assert torch.count_nonzero(head.proj.bias) == 0
    assert float(w.detach().std()) == pytest.approx((2 / (1 + 0.01**2)) ** 0.5 / fan_in**0.5, rel=0.25)
    default = DSDNetwork(build_backbone("hippocampus_nnunet"), mode="dsd").heads[sorted(net.heads)[-1]]
    assert torch.count_nonzero(default.proj.bias) > 0  # PyTorch's default init draws biases
