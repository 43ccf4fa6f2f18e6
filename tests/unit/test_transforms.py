"""Label regions: hand-built BraTS label volumes (MSD values: 1 edema, 2 non-enhancing tumour, 3 enhancing tumour)
with known whole tumour (WT), tumour core (TC) and enhancing tumour (ET), through the transform alone and through
every BraTS bundle's own evaluation post-processing, down to the regions' Dice."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from support.bundles import BUNDLES, ROOT, bundle_dataset, parse

from dsd_components.transforms import LabelRegionsd

# the BraTS regions in MSD Task01 values, written out as rules (SPEC.md): WT = any tumour label, TC = non-enhancing
# + enhancing tumour, ET = enhancing tumour
RULES = {"WT": lambda y: y > 0, "TC": lambda y: (y == 2) | (y == 3), "ET": lambda y: y == 3}
BRATS = [b for b in BUNDLES if bundle_dataset(b) == "brats"]

# ten voxels in a row: the label and a prediction (every value in both)
LABEL = [0, 1, 1, 2, 2, 3, 3, 3, 0, 0]
PRED = [0, 1, 2, 2, 3, 3, 3, 0, 0, 1]
# Dice by counting: WT label {1..7}, pred {1..6, 9}: 2*6/14; TC label {3..7}, pred {2..6}: 2*4/10; ET label {5,6,7},
# pred {4,5,6}: 2*2/6
DICE = {"WT": 12 / 14, "TC": 8 / 10, "ET": 4 / 6}


def _volume(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64).reshape(1, len(values), 1, 1)


def test_regions_are_unions_of_label_values():
    label = torch.randint(0, 4, (1, 6, 5, 4), generator=torch.Generator().manual_seed(0))
    t = LabelRegionsd(["label"], {"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]})
    out = t({"label": label, "image": "untouched"})
    regions = out["label_regions"]
    assert regions.shape == (3, 6, 5, 4) and regions.dtype == torch.float32
    for c, rule in enumerate(RULES.values()):
        assert torch.equal(regions[c], rule(label[0]).float())
    assert out["label"] is label and out["image"] == "untouched"  # the per-label map stays


def test_suffix_keys_and_errors():
    t = LabelRegionsd(["pred", "label"], {"tumour": [1, 2]}, suffix="_r")
    out = t({"pred": _volume(PRED), "label": _volume(LABEL)})
    assert set(out) == {"pred", "label", "pred_r", "label_r"}
    assert out["label_r"].flatten().tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"label: expected a 1-channel label map, got shape \(2, 10, 1, 1\)"):
        t({"pred": _volume(PRED), "label": torch.zeros(2, 10, 1, 1)})
    with pytest.raises(ValueError, match=r"^regions: give at least one \{name: \[label values\]\}$"):
        LabelRegionsd(["label"], {})
    with pytest.raises(KeyError):  # a missing key is an error unless allowed
        LabelRegionsd(["pred", "label"], {"x": [1]})({"label": _volume(LABEL)})
    assert set(LabelRegionsd(["pred", "label"], {"x": [1]}, allow_missing_keys=True)({"label": _volume(LABEL)})) == {
        "label", "label_regions"}


@pytest.mark.parametrize("name", BRATS)
def test_brats_evaluation_scores_the_regions_from_the_labels(name):
    parser = parse(ROOT / "bundles" / name, "evaluate.json")
    post = parser.get_parsed_content("validate#postprocessing")  # evaluate.json replaces the validation one
    assert parser.get_parsed_content("region_names") == list(RULES)
    logits = torch.nn.functional.one_hot(_volume(PRED)[0], 4).permute(3, 0, 1, 2).float() * 5  # argmax = PRED
    out = post({"pred": logits, "label": _volume(LABEL)})
    label = torch.tensor(LABEL)
    for c, (region, rule) in enumerate(RULES.items()):
        assert out["label_regions"][c].flatten().tolist() == rule(label).float().tolist(), region
    p, y = out["pred_regions"].bool(), out["label_regions"].bool()
    dice = (2 * (p & y).sum((1, 2, 3)) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)))).tolist()
    assert dice == pytest.approx(list(DICE.values()))
    # and the bundle's own region Dice metric gives the same numbers
    metric = parser.get_parsed_content("additional_metrics#region_dice")
    engine = Engine(lambda e, b: b)
    metric.attach(engine, "region_dice")
    engine.run([[{"pred_regions": out["pred_regions"], "label_regions": out["label_regions"]}]], max_epochs=1)
    assert engine.state.metric_details["region_dice"][0].tolist() == pytest.approx(list(DICE.values()))
