"""DSD wrapper: structure in training, bit-identical backbone in eval, gradients everywhere, strict export."""

from __future__ import annotations

import pytest
import torch
from support.backbones import SMALL

from dsd_components import DSDLoss, DSDNetwork, DSDOutput, backbone_state_dict, export_backbone, export_torchscript
from dsd_components.taps import input_spec


def _input(net, size):
    _, in_ch = input_spec(net)
    return torch.randn(1, in_ch, *size)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_wrapper_contract(name, tmp_path):
    factory, size = SMALL[name]
    torch.manual_seed(0)
    dsd = DSDNetwork(factory(), mode="dsd", probe_size=size)
    x = _input(dsd.backbone, size)

    dsd.train()
    out = dsd(x)
    assert isinstance(out, DSDOutput)
    assert len(out.encoders) == len(dsd.encoder_taps) >= 3
    assert len(out.decoders) == len(dsd.decoder_taps) >= 3
    for h in (*out.encoders, *out.decoders):
        assert h.shape == out.main.shape

    # gradients reach every head and every tapped stage
    label = torch.randint(0, out.main.shape[1], (1, 1, *size))
    DSDLoss("dsd")(out, label).backward()
    for key, head in dsd.heads.items():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters()), key
    for tap in (*dsd.encoder_taps, *dsd.decoder_taps):
        module = dsd.backbone.get_submodule(tap.path.split(":")[0])
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), tap.path

    # eval: exactly the backbone's output, no head runs
    dsd.eval()
    calls = []
    hooks = [h.register_forward_hook(lambda *a: calls.append(1)) for h in dsd.heads.values()]
    with torch.no_grad():
        y_wrapped = dsd(x)
        y_plain = dsd.backbone(x)
    assert isinstance(y_wrapped, torch.Tensor)
    assert torch.equal(y_wrapped, y_plain)
    assert not calls
    for h in hooks:
        h.remove()

    # export: backbone-only tensors, strict load into a fresh stock instance, weights_only round trip
    ckpt = {"network": dsd.state_dict(), "epoch": torch.tensor(3)}
    path = export_backbone(ckpt, tmp_path / "model.pt", network=factory())
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith(("heads.", "backbone.")) for k in state)
    fresh = factory().eval()
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), y_plain)


def test_wrapper_warm_starts_from_deployed_backbone_weights():
    """MONAI Label (and fine-tuning) load the shipped backbone-only model.pt into the training network."""
    factory, size = SMALL["nnunet"]
    trained = DSDNetwork(factory(), probe_size=size)
    deployed = backbone_state_dict(trained.state_dict())
    fresh = DSDNetwork(factory(), probe_size=size)
    heads_before = {k: v.clone() for k, v in fresh.heads.state_dict().items()}
    fresh.load_state_dict(deployed, strict=True)
    for k, v in trained.backbone.state_dict().items():
        assert torch.equal(fresh.backbone.state_dict()[k], v), k
    assert all(torch.equal(fresh.heads.state_dict()[k], v) for k, v in heads_before.items())
    fresh.load_state_dict(trained.state_dict(), strict=True)  # a full wrapper checkpoint still loads as usual
    with pytest.raises(RuntimeError):
        fresh.load_state_dict({"not.a.key": torch.zeros(1)}, strict=True)


def test_ddp_prefix_and_bare_state_dict():
    factory, size = SMALL["nnunet"]
    dsd = DSDNetwork(factory(), probe_size=size)
    ddp_like = {f"module.{k}": v for k, v in dsd.state_dict().items()}
    stripped = backbone_state_dict(ddp_like)
    assert set(stripped) == set(dsd.backbone.state_dict())
    assert backbone_state_dict(stripped).keys() == stripped.keys()  # already backbone-only: unchanged


@pytest.mark.parametrize("name", ["nnunet", "vnet", "segresnet"])
def test_torchscript_export(name, tmp_path):
    factory, size = SMALL[name]
    dsd = DSDNetwork(factory(), probe_size=size)
    path = export_torchscript(factory(), dsd.state_dict(), tmp_path / "model.ts")
    scripted = torch.jit.load(str(path))
    x = _input(dsd.backbone, size)
    dsd.eval()
    with torch.no_grad():
        assert torch.allclose(scripted(x), dsd(x), atol=1e-5)


def test_basic_mode_builds_no_heads_and_ds_only_decoders():
    factory, size = SMALL["nnunet"]
    basic = DSDNetwork(factory(), mode="basic", probe_size=size)
    assert len(basic.heads) == 0
    assert isinstance(basic.train()(torch.randn(1, 1, *size)), torch.Tensor)
    ds = DSDNetwork(factory(), mode="ds", probe_size=size)
    out = ds.train()(torch.randn(1, 1, *size))
    assert out.encoders == () and len(out.decoders) == 4


def test_shared_heads_follow_the_reference_nnunet():
    factory, size = SMALL["nnunet"]
    shared = DSDNetwork(factory(), probe_size=size)
    separate = DSDNetwork(factory(), probe_size=size, share_heads=False)
    # one head per resolution level (5) vs one per tap (8)
    assert len(shared.heads) == 5 and len(separate.heads) == 8


def test_unknown_backbone_and_bad_mode_errors():
    with pytest.raises(KeyError, match="TAP_TABLE"):
        DSDNetwork(torch.nn.Conv3d(1, 2, 1))
    with pytest.raises(ValueError, match="dsd_mode"):
        DSDNetwork(SMALL["nnunet"][0](), mode="dsdd")


def test_wrong_input_size_names_the_tap():
    """BasicUNet pads its skip connections, so it runs on any size: a size its stages do not divide reaches the heads,
    and the head that cannot upsample back to the input is named (UNETR, by contrast, fails in its own patch
    embedding before any head runs)."""
    factory, size = SMALL["basicunet"]
    dsd = DSDNetwork(factory(), probe_size=size).train()
    with pytest.raises(RuntimeError, match=r"DSD head on 'down_3' produced \(32, 32, 32\), expected \(32, 32, 36\): "
                                           r"the input size must be divisible by \(8, 8, 8\)"):
        dsd(torch.randn(1, 1, 32, 32, 36))
    assert isinstance(dsd(torch.randn(1, 1, 32, 32, 32)), DSDOutput)  # a size it divides trains
