"""MONAI Label readiness without installing MONAI Label: the /work/shared/MONAI_LABEL.md checklist on every bundle,
and a simulation of what MONAI Label 0.8.5's `monaibundle` infer task does with inference.json (it adds a string
`image_path` key to the data, overrides bundle_root and device, runs preprocessing + inferer + postprocessing
without SaveImaged) on a bundle that uses Spacingd, checking the label map's geometry."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from support.bundles import BUNDLES, ROOT, copy_bundle, parse, tiny_overrides
from monai.bundle import ConfigParser, run
from monai.transforms import Compose

from dsd_components.entry import user_error_in

MODEL_TYPE_WORDS = ("deepedit", "deepgrow", "detection", "classification")


def _cfg(name: str, config: str) -> dict:
    return json.loads((ROOT / "bundles" / name / "configs" / config).read_text())


@pytest.mark.parametrize("name", BUNDLES)
def test_checklist(name):
    assert "/" not in name and not re.search(r"_v\d", name) and not any(w in name for w in MODEL_TYPE_WORDS)
    meta = _cfg(name, "metadata.json")
    inputs, outputs = meta["network_data_format"]["inputs"], meta["network_data_format"]["outputs"]
    assert next(iter(inputs)) == "image" and len(inputs["image"]["spatial_shape"]) == 3
    assert next(iter(outputs)) == "pred"
    channel_def = outputs["pred"]["channel_def"]
    assert channel_def["0"] == "background" and sorted(map(int, channel_def)) == list(range(len(channel_def)))
    assert meta["description"] and meta["version"] and "monai-label" in meta.get("supported_apps", {})

    inf = _cfg(name, "inference.json")
    # what MONAI Label parses and builds is pure MONAI: no project import lines, no project code in these parts
    assert not any("dsd_components" in i for i in inf["imports"])
    for part in ("network_def", "preprocessing", "inferer", "postprocessing"):
        assert "dsd_components" not in json.dumps(inf[part]) and "scripts." not in json.dumps(inf[part]), part
    assert inf["network_def"]["_target_"].startswith("monai.networks.nets.") and "device" not in inf["network_def"]
    assert "device" in inf and "bundle_root" in inf
    pre = inf["preprocessing"]
    assert pre["_target_"] == "Compose"
    targets = [t["_target_"] for t in pre["transforms"]]
    # MONAI Label + Spacingd: `image_path` is parked under `source_path` first and restored at the end
    assert targets[:2] == ["CopyItemsd", "DeleteItemsd"] and pre["transforms"][1]["keys"] == "image_path"
    assert targets[2:4] == ["LoadImaged", "EnsureChannelFirstd"] and targets[-1] == "EnsureTyped"
    assert not any(t.startswith("Rand") for t in targets)
    assert all(t["keys"] == "image" for t in pre["transforms"][2:]), "inference preprocessing reads the image only"
    assert inf["inferer"]["_target_"] == "SlidingWindowInferer" and inf["inferer"]["roi_size"] == "@patch_size"
    post = [t for t in inf["postprocessing"]["transforms"] if t["_target_"] != "SaveImaged"]
    assert [t["_target_"] for t in post] == ["Activationsd", "Invertd", "AsDiscreted", "CopyItemsd"]
    assert post[3]["names"] == "image_path"
    assert post[0]["softmax"] and post[1]["keys"] == "pred" and post[1]["orig_keys"] == "image"
    assert post[1]["transform"] == "@preprocessing" and post[2]["argmax"] is True
    loader = [h for h in inf["handlers"] if isinstance(h, dict) and h["_target_"] == "CheckpointLoader"][0]
    assert loader["load_path"] == "$@bundle_root + '/models/model.pt'"

    train = _cfg(name, "train.json")
    assert train["train"]["trainer"]["max_epochs"] == "@num_epochs"
    assert train["train"]["trainer"]["train_handlers"] == "@train#handlers"
    assert isinstance(train["train"]["handlers"], list) and "data" in train["train"]["dataset"]
    assert "data" in train["validate"]["dataset"] and {"network", "device", "run"} <= set(train)
    assert train["ckpt_dir"] == "$@bundle_root + '/models'"
    # initialize must not need dataset_dir or a datalist file: the data check is skippable (MONAI Label sets data)
    assert "max_cases=None if dsd_components.knobs.as_bool(@check_data, 'check_data') else 0" in train["check_dataset"]


def _infer_like_monai_label(bundle, image: str, over: dict, drop_first: bool = False) -> dict:
    parser = parse(bundle, "inference.json", device="$torch.device('cpu')", **over)
    # MONAI Label drops SaveImaged from the postprocessing
    parser["postprocessing#transforms"] = [t for t in parser.get("postprocessing#transforms")
                                           if t["_target_"] != "SaveImaged"]
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True), strict=True)
    net.eval()
    pre = parser.get_parsed_content("preprocessing")
    inferer = parser.get_parsed_content("inferer")
    post = parser.get_parsed_content("postprocessing")
    assert post.transforms[1].transform is pre  # Invertd inverts this very Compose
    if drop_first:  # what the bundle would be without the CopyItemsd/DeleteItemsd steps
        pre = Compose(pre.transforms[2:])
        post.transforms[1].transform = pre
    data = pre({"image": image, "image_path": image})  # MONAI Label adds the string `image_path`
    with torch.no_grad():
        data["pred"] = inferer(data["image"][None], net)[0]
    return post(data)


@pytest.fixture(scope="module")
def spacing_bundle(tmp_path_factory):
    """mmwhs_nnunet_dsd uses Spacingd (the known MONAI Label snag), with tiny fresh weights and one demo case."""
    from dsd_tools.demo_data import make_demo_data
    from dsd_tools.overrides import bundle_overrides
    from dsd_tools.zoo.verify import make_fresh_weights

    tmp = tmp_path_factory.mktemp("ml")
    name = "mmwhs_nnunet_dsd"
    bundle = copy_bundle(name, tmp)
    over = tiny_overrides(name)
    make_fresh_weights(bundle, bundle_overrides(over))
    data = make_demo_data("mmwhs", str(tmp / "data"), num_cases=3, seed=0)
    image = sorted(p for p in (tmp / "data").rglob("*image.nii.gz"))[0]
    assert data
    return bundle, str(image), over


def test_monai_label_style_inference_keeps_geometry(spacing_bundle):
    bundle, image, over = spacing_bundle
    assert any(t["_target_"] == "Spacingd" for t in _cfg(bundle.name, "inference.json")["preprocessing"]["transforms"])
    out = _infer_like_monai_label(bundle, image, over)
    pred, src = out["pred"], nib.load(image)
    assert pred.shape == (1, *src.shape[:3])  # a single-channel label map on the input's grid
    assert np.allclose(np.asarray(pred.affine), src.affine, atol=1e-3)
    assert set(torch.unique(pred).int().tolist()) <= set(range(8))
    assert out["image_path"] == image  # MONAI Label's writer picks the output file type from it


def test_training_initialize_works_with_monai_label_data(spacing_bundle, tmp_path):
    """MONAI Label sets train#dataset#data / validate#dataset#data and no dataset_dir: initialize must still pass,
    and it checks the data MONAI Label supplies."""
    from monai.bundle import ConfigWorkflow

    bundle, image, over = spacing_bundle
    images = sorted(str(p) for p in Path(image).parent.glob("*_image.nii.gz"))
    train_case, val_case = ({"image": i, "label": i.replace("_image.nii.gz", "_label.nii.gz")} for i in images[:2])
    wf = ConfigWorkflow(config_file=str(bundle / "configs" / "train.json"), workflow_type="train",
                        logging_file=False, bundle_root=str(bundle), dataset_dir=str(tmp_path / "absent"), **over)
    wf.parser["train#dataset#data"] = [train_case]
    wf.parser["validate#dataset#data"] = [val_case]
    wf.initialize()  # would fail if it tried to derive a split from the absent dataset_dir
    wf.parser["train#dataset#data"] = [{"image": images[0], "label": str(tmp_path / "missing_label.nii.gz")}]
    with pytest.raises(RuntimeError) as info:
        wf.initialize()  # ... and it does check MONAI Label's own lists
    assert "missing_label.nii.gz: label file is missing" in str(user_error_in(info.value))


def test_without_the_parking_steps_monai_label_input_fails(spacing_bundle):
    """Negative control: the `image_path` string breaks Spacingd on monai >= 1.6 unless the bundle drops it."""
    bundle, image, over = spacing_bundle
    with pytest.raises(RuntimeError, match="Spacingd") as info:
        _infer_like_monai_label(bundle, image, over, drop_first=True)
    chain, e = [], info.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    assert any("'str' object has no attribute 'update'" in m for m in chain), chain


def test_monai_label_train_twice_trains_twice_and_keeps_every_model(spacing_bundle, tmp_path):
    """What MONAI Label 0.8.5's BundleTrainTask does on /train: monai.bundle.run with run_id "run", no initialize or
    finalize, its own data, train#trainer#max_epochs, and a CheckpointLoader for models/model.pt put first into
    train#handlers. Pressed twice, it trains twice (a new run folder each time); the weights it started from and the
    first run's model are kept."""
    src, image, over = spacing_bundle
    bundle = tmp_path / src.name
    shutil.copytree(src, bundle)
    shipped = hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    images = sorted(str(p) for p in Path(image).parent.glob("*_image.nii.gz"))
    pairs = [{"image": i, "label": i.replace("_image.nii.gz", "_label.nii.gz")} for i in images]
    config = ConfigParser()
    config.read_config(str(bundle / "configs" / "train.json"))
    handlers = config.get("train#handlers")
    handlers.insert(0, {"_target_": "CheckpointLoader", "load_path": str(bundle / "models" / "model.pt"),
                        "load_dict": {"model": "$@network"}, "strict": False})
    for _ in range(2):
        run(run_id="run", init_id=None, final_id=None, config_file=str(bundle / "configs" / "train.json"),
            meta_file=str(bundle / "configs" / "metadata.json"), logging_file=False, bundle_root=str(bundle),
            device="$torch.device('cpu')", num_workers=0, num_samples=1, **over,
            **{"train#trainer#max_epochs": 1, "train#dataset#data": pairs[:2], "validate#dataset#data": pairs[2:],
               "train#handlers": handlers})
    runs = sorted((bundle / "models" / "runs").iterdir())
    trained = [d for d in runs if not d.name.endswith("-imported")]
    (imported,) = [d for d in runs if d.name.endswith("-imported")]
    assert len(trained) == 2 and all((d / "latest.pt").is_file() and (d / "model.pt").is_file() for d in trained)
    assert hashlib.sha256((imported / "model.pt").read_bytes()).hexdigest() == shipped
    assert json.loads((bundle / "models" / "model.json").read_text())["run"] in {d.name for d in trained}
    assert not (bundle / "models" / "train.lock").exists()  # released at the end of each training
