"""DSD loss checked against an independent, straightforward computation of the paper's Eq. 1-5."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from support.reference_loss import reference_dsd_loss, reference_kl

from dsd_components import DSDLoss, DSDOutput
from dsd_components.loss import pixelwise_kl

C, Z, SHAPE = 4, 4, (2, 4, 6, 6, 5)


def _out(seed: int = 0) -> tuple[DSDOutput, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda: torch.randn(*SHAPE, generator=g)  # noqa: E731
    out = DSDOutput(r(), tuple(r() for _ in range(Z)), tuple(r() for _ in range(Z)))
    label = torch.randint(0, C, (SHAPE[0], 1, *SHAPE[2:]), generator=g)
    return out, label


def _reference(out, label, mode, lam=1.0, alpha=1.0, beta=1.0, T=3.0):
    return reference_dsd_loss(out.main, out.encoders, out.decoders, label, mode, lam, alpha, beta, T)


@pytest.mark.parametrize("mode", ["basic", "ds", "sdd", "sde", "dsd", "mean_teacher", "reversed_teacher"])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 3.0), (0.5, 0.3, 2.0, 1.5)])
def test_each_mode_matches_reference(mode, weights):
    lam, alpha, beta, T = weights
    out, label = _out()
    ref = _reference(out, label, mode, lam, alpha, beta, T)
    for fused in (True, False):
        ours = DSDLoss(mode, lambda_ds=lam, alpha=alpha, beta=beta, temperature=T, fused=fused)(out, label)
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (fused, float(ours), float(ref))


def test_mean_teacher_passes_no_gradient_through_its_teacher():
    """Why the mean_teacher mode computes no teacher gradient: with t = mean_k(s_k), the students' log-ratios
    sum_k (log p_t - log p_s_k) = sum_k lse(s_k / T) - K lse(t / T) do not depend on the class, so the gradient of
    sum_k KL(p_t || p_s_k) through p_t is exactly zero. Checked here with the reference KL and autograd alone."""
    g = torch.Generator().manual_seed(7)
    heads = [torch.randn(2, C, 4, 3, 5, generator=g, dtype=torch.float64).mul(3).requires_grad_() for _ in range(4)]
    teacher = sum(heads) / len(heads)
    through_teacher = sum(reference_kl(h.detach(), teacher, 2.5) for h in heads)  # students held fixed
    through_teacher.backward()
    assert float(through_teacher.detach()) > 0.1  # a real distillation term ...
    assert max(float(h.grad.abs().max()) for h in heads) < 1e-15  # ... whose teacher path carries nothing
    # the deepest-head teacher of dsd, by contrast, does learn from its students
    t = heads[-1].detach().clone().requires_grad_()
    sum(reference_kl(h.detach(), t, 2.5) for h in heads[:-1]).backward()
    assert float(t.grad.abs().max()) > 1e-4


def test_basic_is_monai_dicece_and_ds_is_dsd_without_kl():
    out, label = _out(1)
    monai_value = DiceCELoss(to_onehot_y=True, softmax=True)(out.main, label)
    assert torch.equal(DSDLoss("basic", fused=False)(out, label), monai_value)  # composed path: MONAI's own op
    assert torch.allclose(DSDLoss("basic")(out, label), monai_value, rtol=1e-6, atol=0)  # fused: float rounding
    assert torch.allclose(DSDLoss("ds")(out, label), DSDLoss("dsd", alpha=0, beta=0)(out, label))
    assert torch.allclose(DSDLoss("dsd")(out.main, label), monai_value, rtol=1e-6, atol=0)


def test_kl_zero_when_student_equals_teacher_and_t2_scaling():
    t = torch.randn(2, C, 5, 5, 5)
    assert float(pixelwise_kl(t.clone(), F.log_softmax(t / 3, 1), 3.0)) == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, C, 5, 5, 5)
    for T in (1.0, 2.0, 4.0):
        raw = (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1).mean()
        assert torch.allclose(pixelwise_kl(s, F.log_softmax(t / T, 1), T), raw * T * T, rtol=1e-5)
    # identical heads on a side: the whole distillation term vanishes
    out, label = _out(2)
    same = DSDOutput(out.main, (out.encoders[0],) * Z, (out.decoders[0],) * Z)
    assert torch.allclose(DSDLoss("dsd")(same, label), DSDLoss("ds")(same, label), atol=1e-6)


def test_gradient_flow_into_teacher_and_detach_option():
    out, label = _out(3)
    heads = [h.clone().requires_grad_() for h in out.decoders]
    DSDLoss("sdd", lambda_ds=0.0)(DSDOutput(out.main, (), tuple(heads)), label).backward()
    assert heads[0].grad is not None and heads[0].grad.abs().sum() > 0  # the reference lets the teacher learn
    heads = [h.clone().requires_grad_() for h in out.decoders]
    DSDLoss("sdd", lambda_ds=0.0, detach_teacher=True)(DSDOutput(out.main, (), tuple(heads)), label).backward()
    assert heads[0].grad is None
    assert heads[1].grad.abs().sum() > 0


def test_clear_errors():
    out, label = _out(5)
    with pytest.raises(ValueError, match="dsd_mode"):
        DSDLoss("dsdd")
    for fused in (True, False):
        with pytest.raises(ValueError, match=">= 2 heads"):
            DSDLoss("dsd", fused=fused)(DSDOutput(out.main, out.encoders[:1], out.decoders), label)
    with pytest.raises(ValueError, match="shape"):
        DSDLoss("dsd")(DSDOutput(out.main, out.encoders, (out.decoders[0][..., :2],) + out.decoders[1:]), label)
    with pytest.raises(ValueError, match="encoder heads"):
        DSDLoss("dsd")(DSDOutput(out.main, (), out.decoders), label)
    with pytest.raises(ValueError, match="temperature"):
        DSDLoss("dsd", temperature=0)


@pytest.mark.parametrize("fused", [True, False])
def test_last_terms_name_each_term_for_tracking(fused):
    """``last_terms`` (what MLflow logs per iteration) holds each enabled term; a plain tensor (the baseline) has one."""
    out, label = _out(3)
    dce = DiceCELoss(include_background=True, to_onehot_y=True, softmax=True)
    base = DSDLoss("basic", fused=fused)
    total = base(out.main, label)
    assert set(base.last_terms) == {"main"} and float(base.last_terms["main"]) == pytest.approx(float(total), rel=1e-5)
    assert float(total) == pytest.approx(float(dce(out.main, label)), rel=1e-5)
    loss = DSDLoss("dsd", lambda_ds=0.5, alpha=0.25, beta=2.0, fused=fused)
    total = loss(out, label)
    t = {k: float(v) for k, v in loss.last_terms.items()}
    assert set(t) == {"main", "ds", "kl_enc", "kl_dec"}
    assert t["ds"] == pytest.approx(float(sum(dce(d, label) for d in out.decoders)), rel=1e-5)
    assert float(total) == pytest.approx(t["main"] + 0.5 * t["ds"] + 0.25 * t["kl_enc"] + 2.0 * t["kl_dec"], rel=1e-5)
    sde = DSDLoss("sde", fused=fused)
    sde(out, label)
    assert set(sde.last_terms) == {"main", "ds", "kl_enc"}


@pytest.mark.parametrize("mode", ["dsd", "reversed_teacher"])
def test_weighted_terms_match_the_reference_gradients(mode):
    """Weights other than 1 (and 2, which scales a gradient by exactly two) reach the gradients of every head, in
    the fused and the composed path; float64, against autograd through the reference."""
    lam, alpha, beta, T = 2.0, 0.5, 2.0, 1.5
    out, label = _out(3)
    leaves = [t.double().requires_grad_() for t in (out.main, *out.encoders, *out.decoders)]
    ref = reference_dsd_loss(leaves[0], leaves[1:1 + Z], leaves[1 + Z:], label, mode, lam, alpha, beta, T)
    expected = torch.autograd.grad(ref, leaves)
    for fused in (True, False):
        mine = [t.detach().clone().requires_grad_() for t in leaves]
        ours = DSDLoss(mode, lambda_ds=lam, alpha=alpha, beta=beta, temperature=T, fused=fused)(
            DSDOutput(mine[0], tuple(mine[1:1 + Z]), tuple(mine[1 + Z:])), label)
        got = torch.autograd.grad(ours, mine)
        for i, (g, e) in enumerate(zip(got, expected)):
            assert torch.allclose(g, e, rtol=1e-7, atol=1e-10), (fused, i, float((g - e).abs().max()))


@pytest.mark.parametrize("fused", [True, False])
def test_two_heads_a_side_are_enough(fused):
    """One teacher and one student per side is the smallest DSD (paper: any U-shaped network)."""
    out, label = _out(4)
    two = DSDOutput(out.main, out.encoders[-2:], out.decoders[:2])
    ref = reference_dsd_loss(two.main, two.encoders, two.decoders, label, "dsd", 1.0, 1.0, 1.0, 3.0)
    assert torch.allclose(DSDLoss("dsd", fused=fused)(two, label), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^Self-distillation on the encoder side needs >= 2 heads, got 1\.$"):
        DSDLoss("dsd", fused=fused)(DSDOutput(out.main, out.encoders[-1:], out.decoders), label)
    with pytest.raises(ValueError, match=r"^Self-distillation on the decoder side needs >= 2 heads, got 1\.$"):
        DSDLoss("dsd", fused=fused)(DSDOutput(out.main, out.encoders, out.decoders[:1]), label)


@pytest.mark.parametrize("fused", [True, False])
def test_feature_l2_term_in_both_paths(fused):
    out, label = _out(4)
    base = DSDLoss("dsd", fused=fused)(out, label)
    loss = DSDLoss("dsd", feature_l2=1e-2, fused=fused)
    with_l2 = loss(out, label)
    enc, dec = out.encoders, out.decoders
    l2_enc, l2_dec = sum(F.mse_loss(s, enc[-1]) for s in enc[:-1]), sum(F.mse_loss(s, dec[0]) for s in dec[1:])
    assert torch.allclose(with_l2 - base, 1e-2 * (l2_enc + l2_dec), rtol=1e-4)
    assert float(loss.last_terms["l2_enc"]) == pytest.approx(float(l2_enc), rel=1e-5)  # named for tracking
    assert float(loss.last_terms["l2_dec"]) == pytest.approx(float(l2_dec), rel=1e-5)


def test_defaults_are_the_papers_and_start_empty():
    """SPEC.md: DSD mode, every weight 1, T = 3, the teacher not detached, no feature L2."""
    loss = DSDLoss()
    assert (loss.mode, loss.lambda_ds, loss.alpha, loss.beta, loss.temperature) == ("dsd", 1.0, 1.0, 1.0, 3.0)
    assert (loss.detach_teacher, loss.feature_l2, loss.last_terms) == (False, 0.0, {})
    assert DSDLoss(temperature=0.5).temperature == 0.5  # any T > 0 is a temperature
    for name in ("lambda_ds", "alpha", "beta", "feature_l2"):
        message = rf"^{name} must be >= 0, got -1 \(a negative weight would reward the term\)\.$"
        with pytest.raises(ValueError, match=message):
            DSDLoss(**{name: -1})


def test_fused_dice_settings_default_to_monais_dicece():
    """Keys the bundle leaves out take MONAI's DiceCELoss defaults (read from its signature, not restated)."""
    import inspect

    from dsd_components.fused_loss import DiceCEConfig

    monai = inspect.signature(DiceCELoss).parameters
    got = DiceCEConfig.from_kwargs({"to_onehot_y": True, "softmax": True})
    assert got == DiceCEConfig(monai["include_background"].default, monai["lambda_dice"].default,
                               monai["lambda_ce"].default, monai["smooth_nr"].default, monai["smooth_dr"].default,
                               monai["batch"].default)
    both = {"to_onehot_y": True, "softmax": True}
    for unsupported in ({"to_onehot_y": True}, {"softmax": True}, {**both, "sigmoid": True},
                        {**both, "reduction": "sum"}):
        assert DiceCEConfig.from_kwargs(unsupported) is None, unsupported


def test_inputs_the_loss_accepts_and_the_heads_each_mode_needs():
    """A plain tensor (the baseline network) through MONAI's DiceCE when not fused; a (main, encoders, decoders) tuple
    as a DSDOutput; each mode asks for exactly the heads its terms use (modes from the reference's table)."""
    from support.reference_loss import MODE_TERMS

    out, label = _out(5)
    dce = DiceCELoss(include_background=True, to_onehot_y=True, softmax=True)
    assert float(DSDLoss("basic", fused=False)(out.main, label)) == pytest.approx(float(dce(out.main, label)), rel=1e-6)
    assert torch.equal(DSDLoss("dsd")(tuple(out), label), DSDLoss("dsd")(out, label))
    bad = (out.decoders[0][..., :2],) + out.decoders[1:]
    with pytest.raises(ValueError, match=r"^A decoder head output has shape \(2, 4, 6, 6, 2\), the main output "):
        DSDLoss("dsd")(DSDOutput(out.main, out.encoders, bad), label)
    for mode, (ds, enc_kl, dec_kl, _) in MODE_TERMS.items():
        for lam, beta in ((1.0, 1.0), (0.0, 1.0), (1.0, 0.0)):
            loss = DSDLoss(mode, lambda_ds=lam, beta=beta)
            if (ds and lam) or (dec_kl and beta):
                with pytest.raises(ValueError, match=rf"^dsd_mode='{mode}' needs decoder heads; build DSDNetwork with "
                                                     r"the same mode\.$"):
                    loss(DSDOutput(out.main, out.encoders, ()), label)
            else:
                assert torch.isfinite(loss(DSDOutput(out.main, out.encoders if enc_kl else (), ()), label)), mode
