"""The whole DSD loss of one step as a single autograd node.

Why: written with stock ops, every DiceCE keeps a softmax, a log-softmax and a one-hot target for backward, and every
KL student its log-softmax: about 20 full-resolution class maps for 9 head outputs, each with its own elementwise
forward and backward passes. Here the forward computes each term's value *and* its gradient with respect to every
head's logits analytically (softmax Jacobians folded in), sums the gradients of all terms that touch a head, and keeps
exactly one gradient map per head for backward (in the head's own precision: float32, or float16/bfloat16 under AMP),
which only scales them by the incoming gradient. Values and
gradients equal MONAI's ``DiceCELoss`` and the composed KL to float rounding (``tests/unit/test_fused_loss.py`` checks
both in float64, for every mode, against the composed loss and against an independent reference).

Gradients (``p = softmax(z)``, one-hot ``g``, ``n`` voxels per batch item, ``B`` items):

* CE, mean over voxels: ``dCE/dz = (p - g) / (B n)``.
* Dice per (item, class) ``1 - (2I + s_nr) / (P + G + s_dr)``, mean over the ``K`` (item, class) pairs:
  ``dL/dp = a g + c`` with ``a = -2 / (K den)``, ``c = num / (K den^2)``, then through the softmax
  ``dL/dz = p (dL/dp - sum_c p dL/dp)``.
* KL(teacher || student) at temperature ``T`` times ``T^2``, mean over voxels:
  ``d/dz_s = T (p_s - p_t) / (B n)``; ``d/dz_t = T p_t (D - sum_c p_t D) / (B n)`` with ``D = log p_t - log p_s``
  (summed over the students of that teacher). For the ``mean`` teacher (the mean of the students' logits) ``D`` is
  the same for every class, so ``d/dz_t`` is exactly zero and is not computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = [
    "DiceCEConfig",
    "FusedPlan",
    "Labels",
    "as_float",
    "dice_ce_value_and_grad",
    "fused_dsd_loss",
    "kl_side_value_and_grads",
    "teacher_index",
]

# DiceCELoss arguments the fused path implements; anything else falls back to MONAI's DiceCELoss.
FUSABLE_DICE_CE_KEYS = {"include_background", "to_onehot_y", "softmax", "lambda_dice", "lambda_ce", "smooth_nr",
                        "smooth_dr", "batch", "reduction"}


@dataclass(frozen=True)
class DiceCEConfig:
    """The DiceCELoss settings the fused path supports (softmax, integer labels, mean reduction)."""

    include_background: bool = True
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    smooth_nr: float = 1e-5
    smooth_dr: float = 1e-5
    batch: bool = False

    @classmethod
    def from_kwargs(cls, kw: dict) -> DiceCEConfig | None:
        """The config for these ``DiceCELoss`` kwargs, or ``None`` when they need MONAI's own implementation."""
        if set(kw) - FUSABLE_DICE_CE_KEYS:
            return None
        if not kw.get("to_onehot_y", False) or not kw.get("softmax", False) or kw.get("reduction", "mean") != "mean":
            return None
        return cls(bool(kw.get("include_background", True)), float(kw.get("lambda_dice", 1.0)),
                   float(kw.get("lambda_ce", 1.0)), float(kw.get("smooth_nr", 1e-5)), float(kw.get("smooth_dr", 1e-5)),
                   bool(kw.get("batch", False)))


@dataclass(frozen=True)
class FusedPlan:
    """Which terms one loss evaluation has, with their weights (0 disables a term)."""

    n_enc: int
    n_dec: int
    lambda_ds: float
    alpha: float
    beta: float
    teacher: str  # "deepest" | "mean" | "reversed"
    temperature: float
    detach_teacher: bool
    dice: DiceCEConfig


class Labels(NamedTuple):
    """Integer labels (B, 1, n) in the index forms every DiceCE of one step shares (computed once per step)."""

    flat: torch.Tensor  # (B n,) index of each voxel's true-class entry in a flattened (B, C, n) map
    key: torch.Tensor  # (B n,) item * C + class, for per-(item, class) sums with bincount
    ground: torch.Tensor  # (B, C) voxel count of each class per item (the Dice's G)

    @classmethod
    def from_target(cls, target: torch.Tensor, num_classes: int) -> Labels:
        b = target.shape[0]
        y = target.reshape(b, -1).long()
        n = y.shape[1]
        key = torch.arange(b, device=y.device).unsqueeze(1) * num_classes + y  # (B, n)
        flat = (key * n + torch.arange(n, device=y.device)).reshape(-1)
        key = key.reshape(-1)
        ground = torch.bincount(key, minlength=b * num_classes).reshape(b, num_classes)
        return cls(flat, key, ground)


def dice_ce_value_and_grad(z: torch.Tensor, labels: Labels, cfg: DiceCEConfig,
                           need_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``DiceCELoss(softmax=True, to_onehot_y=True)`` of float logits ``z`` (B, C, n) against ``labels``, and its
    gradient with respect to ``z`` (``None`` when ``need_grad`` is false)."""
    b, c, n = z.shape
    log_p = F.log_softmax(z, dim=1)
    log_p_y = log_p.reshape(-1).take(labels.flat)  # log-probability of the true class, (B n,)
    ce = -log_p_y.sum() / (b * n)
    p = log_p.exp_()  # log_p is not needed any more: reuse its storage
    p_y = log_p_y.exp()
    inter = torch.bincount(labels.key, weights=p_y, minlength=b * c).reshape(b, c).to(z.dtype)
    ground = labels.ground.to(z.dtype)
    pred = p.sum(dim=2)
    if cfg.batch:
        inter, ground, pred = inter.sum(0, keepdim=True), ground.sum(0, keepdim=True), pred.sum(0, keepdim=True)
    first = 0 if cfg.include_background else 1
    num = 2 * inter[:, first:] + cfg.smooth_nr
    den = pred[:, first:] + ground[:, first:] + cfg.smooth_dr
    dice = (1 - num / den).mean()
    value = cfg.lambda_dice * dice + cfg.lambda_ce * ce
    if not need_grad:
        return value, None
    k = num.numel()  # (item, class) pairs averaged by the Dice
    a = torch.zeros_like(inter)  # dL/dp = a * g + cc, per (item, class)
    cc = torch.zeros_like(inter)
    a[:, first:] = -2 * cfg.lambda_dice / (k * den)
    cc[:, first:] = cfg.lambda_dice * num / (k * den * den)
    if cfg.batch:
        a, cc = a.expand(b, c), cc.expand(b, c)
    kce = cfg.lambda_ce / (b * n)
    a_y = a.reshape(-1).take(labels.key)  # (B n,)
    s = (p * cc.unsqueeze(2)).sum(1, keepdim=True) + (a_y * p_y).reshape(b, 1, n)  # sum_c p dL/dp
    grad = p.mul_((cc.unsqueeze(2) + kce) - s)  # p is not needed after this: reuse its storage
    grad.view(-1).index_add_(0, labels.flat, a_y * p_y - kce)
    return value, grad


def kl_side_value_and_grads(
    teacher: torch.Tensor, students: list[torch.Tensor], temperature: float, need_grad: bool = True,
    teacher_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None]]:
    """``sum_k T^2 mean_voxels KL(softmax(t/T) || softmax(s_k/T))`` of float logits (B, C, n), with gradients
    with respect to the teacher (``None`` unless ``need_grad`` and ``teacher_grad``) and to each student.

    The gradients are returned without their common factor ``T / (B n)``: the caller folds it into its own weighting
    (one full-resolution pass less per head).
    """
    b, _, n = teacher.shape
    temp = float(temperature)
    log_t = F.log_softmax(teacher / temp, dim=1)
    p_t = log_t.exp()
    sum_log_s = torch.zeros_like(log_t)
    grads_s: list[torch.Tensor | None] = []
    for s in students:
        log_s = F.log_softmax(s / temp, dim=1)
        sum_log_s += log_s
        grads_s.append(log_s.exp_().sub_(p_t) if need_grad else None)
    kk = len(students)
    d = log_t.mul_(kk).sub_(sum_log_s)  # D = sum_k (log p_t - log p_s_k); log_t's storage is reused
    value = (p_t * d).sum() * (temp * temp / (b * n))
    if not (need_grad and teacher_grad):
        return value, None, grads_s
    grad_t = d.sub_((p_t * d).sum(1, keepdim=True)).mul_(p_t)
    return value, grad_t, grads_s


def teacher_index(teacher: str, side: str, count: int) -> int | None:
    """Which of a side's ``count`` heads teaches: Encoder Z / Decoder 1 (``deepest``), Encoder 1 / Decoder Z
    (``reversed``), or ``None`` for the ``mean`` teacher (the mean of all heads; every head is then a student)."""
    if teacher == "mean":
        return None
    deepest = count - 1 if side == "enc" else 0
    shallowest = 0 if side == "enc" else count - 1
    return deepest if teacher == "deepest" else shallowest


def as_float(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision (AMP) logits; float32/float64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _plain(x: torch.Tensor) -> torch.Tensor:
    """The bare tensor of a MONAI ``MetaTensor`` (no per-op metadata handling inside the loss), else ``x``."""
    return x.as_tensor() if hasattr(x, "as_tensor") else x


class _FusedDSDLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan: FusedPlan, target: torch.Tensor, *logits: torch.Tensor):  # type: ignore[override]
        need = list(ctx.needs_input_grad[2:])  # forward runs with grad mode off; this says what backward needs
        any_grad = any(need)
        shape = logits[0].shape
        b, c = shape[0], shape[1]
        with torch.autocast(logits[0].device.type, enabled=False):
            flat = [as_float(_plain(x.detach())).reshape(b, c, -1) for x in logits]
            labels = Labels.from_target(_plain(target.detach()), c)
            grads: list[torch.Tensor | None] = [None] * len(flat)

            def add(i: int, g: torch.Tensor | None, w: float) -> None:
                if g is None or not need[i] or w == 0:
                    return
                if grads[i] is None:
                    grads[i] = g if w == 1 else g.mul_(w)
                else:
                    grads[i].add_(g, alpha=w)

            main, g_main = dice_ce_value_and_grad(flat[0], labels, plan.dice, any_grad)
            add(0, g_main, 1.0)
            enc_idx = list(range(1, 1 + plan.n_enc))
            dec_idx = list(range(1 + plan.n_enc, 1 + plan.n_enc + plan.n_dec))
            zero = flat[0].new_zeros(())
            ds = zero
            if plan.lambda_ds:
                for i in dec_idx:
                    v, g = dice_ce_value_and_grad(flat[i], labels, plan.dice, any_grad)
                    ds = ds + v
                    add(i, g, plan.lambda_ds)
            kls = []
            for side, idx, w in (("enc", enc_idx, plan.alpha), ("dec", dec_idx, plan.beta)):
                if not w:
                    kls.append(zero)
                    continue
                t = teacher_index(plan.teacher, side, len(idx))
                if t is None:  # mean teacher: every head is a student, the teacher is their mean
                    teacher, students = torch.stack([flat[i] for i in idx]).mean(0), idx
                else:
                    teacher, students = flat[idx[t]], [i for j, i in enumerate(idx) if j != t]
                # The mean teacher passes no gradient: with t = mean_k s_k, sum_k (log p_t - log p_s_k) =
                # sum_k lse(s_k/T) - K lse(t/T) is the same for every class, so d/dt of the side's KL is exactly 0
                # (tests/unit/test_loss.py checks it with autograd); only a head teacher gets a teacher gradient.
                v, g_t, g_s = kl_side_value_and_grads(teacher, [flat[i] for i in students], plan.temperature, any_grad,
                                                      teacher_grad=t is not None and not plan.detach_teacher)
                kls.append(v)
                w = w * plan.temperature / (b * teacher.shape[2])  # the KL gradients' common factor T / (B n)
                for i, g in zip(students, g_s):
                    add(i, g, w)
                if g_t is not None:
                    add(idx[t], g_t, w)
            total = main + plan.lambda_ds * ds + plan.alpha * kls[0] + plan.beta * kls[1]
        ctx.shapes_dtypes = [(x.shape, x.dtype) for x in logits]
        # Half-precision (AMP) heads get their gradients back in half precision anyway; keep them so, but times
        # B*n: unscaled they are ~1/(B n) (1e-7 at 96^3), below float16's range, while B*n*grad is O(1).
        ctx.unscale = float(b * flat[0].shape[2])
        ctx.save_for_backward(*[
            torch.empty(0) if g is None else g if x.dtype in (torch.float32, torch.float64)
            else g.mul_(ctx.unscale).to(x.dtype) for g, x in zip(grads, logits)])
        ctx.has_grad = [g is not None for g in grads]
        terms = torch.stack([main, ds, kls[0], kls[1]]).detach()
        ctx.mark_non_differentiable(terms)
        return total.to(logits[0].dtype if logits[0].dtype == torch.float64 else torch.float32), terms

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_total: torch.Tensor, grad_terms: torch.Tensor):  # type: ignore[override]
        out: list[torch.Tensor | None] = [None, None]
        for g, has, (shape, dtype) in zip(ctx.saved_tensors, ctx.has_grad, ctx.shapes_dtypes):
            if not has:
                out.append(None)
            elif g.dtype in (torch.float32, torch.float64):
                out.append((g * grad_total.to(g.dtype)).to(dtype).reshape(shape))
            else:  # stored as B*n*grad in half precision: undo in float32, hand back in the input's dtype
                out.append((g.float() * (grad_total.float() / ctx.unscale)).to(dtype).reshape(shape))
        return tuple(out)


def fused_dsd_loss(plan: FusedPlan, target: torch.Tensor, main: torch.Tensor, encoders, decoders
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, terms)``: the weighted DSD loss and the detached values of (main DiceCE, sum of deep-supervision
    DiceCEs, encoder KL, decoder KL), in one autograd node."""
    return _FusedDSDLoss.apply(plan, target, main, *encoders, *decoders)
