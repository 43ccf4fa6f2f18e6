"""The fused DSD loss (one autograd node, analytic gradients) against the loss composed from MONAI's DiceCELoss."""

from __future__ import annotations

import itertools

import pytest
import torch
from monai.data import MetaTensor
from monai.losses import DiceCELoss
from support.reference_loss import reference_dsd_loss

from dsd_components import DSDLoss, DSDOutput
from dsd_components.fused_loss import DiceCEConfig
from dsd_components.modes import DSD_MODES

B, C, SPATIAL = 2, 4, (5, 6, 3)


def _inputs(seed: int = 0, dtype=torch.float64) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(B, C, *SPATIAL, generator=g, dtype=torch.float64).mul(3).to(dtype) for _ in range(9)]
    label = torch.randint(0, C, (B, 1, *SPATIAL), generator=g).double()
    label[1] = 0  # one item holds background only: classes absent from an item must be handled
    return logits, label


def _run(loss: DSDLoss, logits: list[torch.Tensor], label: torch.Tensor, scale: float = 1.0):
    xs = [x.detach().clone().requires_grad_() for x in logits]
    value = loss(DSDOutput(xs[0], tuple(xs[1:5]), tuple(xs[5:9])), label)
    (value * scale).backward()
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in xs]
    return value.detach(), grads, {k: float(v) for k, v in loss.last_terms.items()}


DICE_VARIANTS = [{}, {"include_background": False}, {"batch": True, "lambda_ce": 0.5, "lambda_dice": 2.0},
                 {"smooth_nr": 0.0, "smooth_dr": 1e-3}]


@pytest.mark.parametrize("mode", DSD_MODES)
def test_fused_equals_composed_values_terms_and_gradients(mode):
    logits, label = _inputs()
    for kw, detach in itertools.product(DICE_VARIANTS, (False, True)):
        args = {"alpha": 0.7, "beta": 1.3, "lambda_ds": 0.9, "temperature": 2.5, "detach_teacher": detach,
                "dice_ce_kwargs": kw}
        fused, composed = DSDLoss(mode, **args), DSDLoss(mode, fused=False, **args)
        assert fused.fused_dice is not None and composed.fused_dice is None
        v1, g1, t1 = _run(fused, logits, label)
        v2, g2, t2 = _run(composed, logits, label)
        assert torch.allclose(v1, v2, rtol=1e-12, atol=1e-12), (kw, detach, float(v1), float(v2))
        assert t1.keys() == t2.keys() and all(abs(t1[k] - t2[k]) < 1e-10 for k in t1), (t1, t2)
        for a, b in zip(g1, g2):
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-13), (kw, detach, float((a - b).abs().max()))
        if mode != "basic":
            assert any(float(g.abs().max()) > 0 for g in g1[1:]), "heads must receive gradients"


@pytest.mark.parametrize("mode", DSD_MODES)
def test_fused_equals_the_independent_reference_values_and_gradients(mode):
    """The composed path shares the fused path's teacher choice (``teacher_index``), so agreeing with it proves
    nothing about which head teaches: the oracle here is the paper's loss written out in tests/support, with
    autograd's gradients, in float64."""
    logits, label = _inputs()
    for kw, detach in itertools.product(DICE_VARIANTS, (False, True)):
        args = {"alpha": 0.7, "beta": 1.3, "lambda_ds": 0.9, "temperature": 2.5}
        v1, g1, _ = _run(DSDLoss(mode, detach_teacher=detach, dice_ce_kwargs=kw, **args), logits, label)
        xs = [x.detach().clone().requires_grad_() for x in logits]
        ref = reference_dsd_loss(xs[0], xs[1:5], xs[5:9], label, mode, args["lambda_ds"], args["alpha"],
                                 args["beta"], args["temperature"], detach_teacher=detach, dice_ce_kwargs=kw)
        ref.backward()
        assert torch.allclose(v1, ref.detach(), rtol=1e-12, atol=1e-12), (kw, detach, float(v1), float(ref))
        for i, (a, x) in enumerate(zip(g1, xs)):
            b = x.grad if x.grad is not None else torch.zeros_like(x)
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-13), (kw, detach, i, float((a - b).abs().max()))


def test_basic_fused_is_monai_dicece_with_gradients_and_scaled_backward():
    logits, label = _inputs()
    x1 = logits[0].clone().requires_grad_()
    (DSDLoss("basic")(x1, label) * 3.0).backward()  # GradScaler-style scaling of the incoming gradient
    x2 = logits[0].clone().requires_grad_()
    (DiceCELoss(to_onehot_y=True, softmax=True)(x2, label) * 3.0).backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-10, atol=1e-14)


def test_unsupported_dicece_settings_fall_back_to_monai():
    logits, label = _inputs()
    for kw in ({"weight": torch.tensor([1.0, 2.0, 1.0, 1.0], dtype=torch.float64)}, {"label_smoothing": 0.1},
               {"squared_pred": True}, {"jaccard": True}):
        loss = DSDLoss("dsd", dice_ce_kwargs=kw)
        assert loss.fused_dice is None, kw
        value, grads, _ = _run(loss, logits, label)
        assert torch.isfinite(value) and all(torch.isfinite(g).all() for g in grads)
    assert DiceCEConfig.from_kwargs({"to_onehot_y": True, "softmax": False}) is None
    assert DiceCEConfig.from_kwargs({"to_onehot_y": True, "softmax": True, "reduction": "sum"}) is None


def test_one_hot_targets_take_the_composed_path():
    logits, label = _inputs()
    onehot = torch.nn.functional.one_hot(label[:, 0].long(), C).movedim(-1, 1).double()
    loss = DSDLoss("dsd", dice_ce_kwargs={"to_onehot_y": False})
    assert loss.fused_dice is None
    v_onehot = _run(loss, logits, onehot)[0]
    v_index = _run(DSDLoss("dsd"), logits, label)[0]
    assert torch.allclose(v_onehot, v_index, rtol=1e-10)


def test_no_grad_metatensor_and_half_precision_inputs():
    logits, label = _inputs()
    loss = DSDLoss("dsd")
    out = DSDOutput(logits[0], tuple(logits[1:5]), tuple(logits[5:9]))
    with torch.no_grad():
        v_nograd = loss(out, label)
    v_meta = loss(DSDOutput(*[MetaTensor(x) for x in logits[:1]], tuple(MetaTensor(x) for x in logits[1:5]),
                            tuple(MetaTensor(x) for x in logits[5:9])), MetaTensor(label))
    ref = _run(DSDLoss("dsd", fused=False), logits, label)
    assert torch.allclose(v_nograd, ref[0]) and torch.allclose(torch.as_tensor(v_meta), ref[0])
    for dtype in (torch.float16, torch.bfloat16):  # AMP head outputs: computed in float32, gradients in input dtype
        half = [x.to(dtype) for x in logits]
        v, grads, _ = _run(loss, half, label)
        assert v.dtype == torch.float32 and all(g.dtype == dtype for g in grads)
        assert torch.allclose(v.double(), ref[0], rtol=2e-2)
        for g, r in zip(grads, ref[1]):
            assert torch.allclose(g.double(), r, rtol=5e-2, atol=2e-2 * float(r.abs().max()) + 1e-6)


def _saved_bytes(loss: DSDLoss, logits: list[torch.Tensor], label: torch.Tensor) -> int:
    xs = [x.detach().clone().requires_grad_() for x in logits]
    seen: dict[int, int] = {}
    inputs = {x.untyped_storage().data_ptr() for x in xs}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in inputs:
            seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss(DSDOutput(xs[0], tuple(xs[1:5]), tuple(xs[5:9])), label)
    return sum(seen.values())


def test_fused_loss_keeps_one_gradient_map_per_head_for_backward():
    logits, label = _inputs(dtype=torch.float32)
    one_map = logits[0].numel() * 4
    fused = _saved_bytes(DSDLoss("dsd"), logits, label)
    composed = _saved_bytes(DSDLoss("dsd", fused=False), logits, label)
    assert fused == 9 * one_map  # main + 4 encoder + 4 decoder heads, one float32 map each
    assert composed > 2 * fused
    assert _saved_bytes(DSDLoss("ds"), logits, label) == 5 * one_map  # encoder heads unused in ds
    # a detached encoder teacher gets no gradient at all; the decoder teacher still has its deep supervision
    assert _saved_bytes(DSDLoss("dsd", detach_teacher=True), logits, label) == 8 * one_map


def test_half_precision_heads_keep_half_size_gradients_without_underflow():
    g = torch.Generator().manual_seed(3)
    shape = (2, C, 48, 48, 48)  # 1 / (B n) = 4.5e-6: deep in float16 subnormals if it were stored unscaled
    logits = [torch.randn(*shape, generator=g) for _ in range(9)]
    label = torch.randint(0, C, (2, 1, *shape[2:]), generator=g)
    half = [x.half() for x in logits]
    assert _saved_bytes(DSDLoss("dsd"), half, label) == 9 * logits[0].numel() * 2  # float16, one map per head
    scale = 65536.0  # what GradScaler multiplies the loss by
    _, ref, _ = _run(DSDLoss("dsd"), [x.double() for x in half], label.double(), scale=scale)
    _, got, _ = _run(DSDLoss("dsd"), half, label, scale=scale)
    for a, b in zip(got, ref):
        assert a.dtype == torch.float16 and torch.isfinite(a).all()
        rel = float((a.double() - b).norm() / b.norm())
        assert rel < 5e-3, rel
