"""DSD loss (paper Eq. 1-5): DiceCE on the main output, deep supervision of decoder heads, and
pixel-wise KL self-distillation on the encoder and decoder sides."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.nn.modules.loss import _Loss

from .fused_loss import DiceCEConfig, FusedPlan, as_float, fused_dsd_loss, teacher_index
from .modes import mode_spec
from .network import DSDOutput

__all__ = ["DSDLoss", "pixelwise_kl"]


def pixelwise_kl(
    student: torch.Tensor,
    teacher_log_prob: torch.Tensor,
    temperature: float,
    teacher_prob: torch.Tensor | None = None,
    teacher_neg_entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) per voxel, summed over classes, mean over batch and voxels, times T^2.

    ``teacher_log_prob`` is ``log_softmax(teacher / T)``; ``teacher_prob`` (its ``exp``) and ``teacher_neg_entropy``
    (``mean(sum_c p_t log p_t)``) may be passed in so a side computes them once for all its students.
    Written as ``mean(sum_c p_t log p_t) - mean(sum_c p_t log p_s)`` with log-probabilities on both sides: exact where
    the teacher's probability underflows to 0 (never ``0 * log 0``), and each student keeps only its own
    ``log_softmax`` for backward (no per-student ``p_t`` or ``log p_t - log p_s`` copies at full resolution).
    """
    p_t = teacher_log_prob.exp() if teacher_prob is None else teacher_prob
    if teacher_neg_entropy is None:
        teacher_neg_entropy = (p_t * teacher_log_prob).sum(dim=1).mean()
    log_s = F.log_softmax(as_float(student) / temperature, dim=1)
    cross = (p_t * log_s).sum(dim=1).mean()
    return (teacher_neg_entropy - cross) * temperature**2


def _l2(teacher: torch.Tensor, students: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(as_float(s), as_float(teacher)) for s in students)


def _check_side(side: str, count: int) -> None:
    if count < 2:
        raise ValueError(f"Self-distillation on the {side}oder side needs >= 2 heads, got {count}.")


class DSDLoss(_Loss):
    """One loss for every DSD ablation.

    ``total = DiceCE(main) + lambda_ds * sum_d DiceCE(dec_d) + alpha * sum_e KL(enc teacher || enc_e)
    + beta * sum_d KL(dec teacher || dec_d) [+ feature_l2 * sum MSE(student, teacher)]``

    Modes: ``basic`` (DiceCE on the main output only: MONAI ``DiceCELoss``, to float rounding), ``ds`` (+ deep
    supervision), ``sdd`` (+ decoder KL), ``sde`` (+ encoder KL), ``dsd`` (both), ``mean_teacher`` (teacher = mean
    of that side's head logits, every head a student), ``reversed_teacher`` (Encoder 1 teaches Encoders 2..Z;
    Decoder Z teaches Decoders 1..Z-1). ``alpha``/``beta`` act only where the mode enables that side, so ``dsd`` with
    ``alpha=beta=0`` equals ``ds``.

    A plain tensor input (validation, or the backbone alone) gets the main DiceCE.

    Args:
        mode: one of :data:`dsd_components.modes.DSD_MODES`; its :class:`~dsd_components.modes.ModeSpec` says
            which terms are on and which head teaches.
        lambda_ds, alpha, beta: weights (>= 0) of deep supervision, encoder KL and decoder KL (paper: 1, 1, 1).
        temperature: softmax temperature T of the KL terms (paper: 3).
        detach_teacher: stop gradients into the teacher head (the reference code lets them flow).
        feature_l2: weight of an L2 (MSE) term between student and teacher head logits, the paper's dropped
            ablation (reference weight 1e-4); 0 disables it.
        dice_ce_kwargs: overrides for :class:`monai.losses.DiceCELoss` (defaults: softmax, one-hot labels,
            background included, lambda_dice = lambda_ce = 1).
        fused: compute all DiceCE and KL terms in one autograd node (:mod:`dsd_components.fused_loss`): same values
            and gradients, less time and one saved map per head instead of about three. Used whenever the DiceCE
            settings allow it (softmax, integer labels with one channel, mean reduction, no class weights or label
            smoothing); otherwise, or with ``fused=False``, the terms are composed from MONAI's ``DiceCELoss``.

    Shapes: ``main`` and every head ``(B, C, *spatial)`` logits; ``target`` ``(B, 1, *spatial)`` class indices.

    Raises:
        ValueError: unknown ``mode``, a negative weight, or ``temperature <= 0``.
    """

    def __init__(
        self,
        mode: str = "dsd",
        lambda_ds: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        temperature: float = 3.0,
        detach_teacher: bool = False,
        feature_l2: float = 0.0,
        dice_ce_kwargs: dict | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        spec = mode_spec(mode)
        for name, value in (("lambda_ds", lambda_ds), ("alpha", alpha), ("beta", beta), ("feature_l2", feature_l2)):
            if not float(value) >= 0:  # also rejects NaN
                raise ValueError(f"{name} must be >= 0, got {value} (a negative weight would reward the term).")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.mode = spec.name
        self.use_ds, self.use_enc, self.use_dec, self.teacher = (spec.deep_supervision, spec.encoder_kl,
                                                                 spec.decoder_kl, spec.teacher)
        self.lambda_ds, self.alpha, self.beta = float(lambda_ds), float(alpha), float(beta)
        self.temperature = float(temperature)
        self.detach_teacher = detach_teacher
        self.feature_l2 = float(feature_l2)
        kw = {"include_background": True, "to_onehot_y": True, "softmax": True, "lambda_dice": 1.0, "lambda_ce": 1.0}
        kw.update(dice_ce_kwargs or {})
        self.dice_ce = DiceCELoss(**kw)
        self.fused_dice = DiceCEConfig.from_kwargs(kw) if fused else None
        self.last_terms: dict[str, torch.Tensor] = {}

    def _teacher_and_students(self, heads: Sequence[torch.Tensor], side: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The side's teacher logits (detached with ``detach_teacher``) and its students."""
        _check_side(side, len(heads))
        t = teacher_index(self.teacher, side, len(heads))
        if t is None:
            teacher, students = torch.stack(list(heads)).mean(0), list(heads)
        else:
            teacher, students = heads[t], [h for i, h in enumerate(heads) if i != t]
        return (teacher.detach() if self.detach_teacher else teacher), students

    def feature_l2_term(self, heads: Sequence[torch.Tensor], side: str) -> torch.Tensor:
        """Sum of MSE(student, teacher) logits of one side (the paper's dropped L2 ablation)."""
        return _l2(*self._teacher_and_students(heads, side))

    def distillation(self, heads: Sequence[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of KL terms, sum of L2 terms) of one side."""
        teacher, students = self._teacher_and_students(heads, side)
        t_log = F.log_softmax(as_float(teacher) / self.temperature, dim=1)
        t_prob = t_log.exp()  # once per side, shared by every student (memory: one full-resolution map per side)
        t_neg_ent = (t_prob * t_log).sum(dim=1).mean()
        kl = sum(pixelwise_kl(s, t_log, self.temperature, t_prob, t_neg_ent) for s in students)
        l2 = _l2(teacher, students) if self.feature_l2 else teacher.new_zeros(())
        return kl, l2

    def _can_fuse(self, main: torch.Tensor, target: torch.Tensor) -> bool:
        return (self.fused_dice is not None and main.shape[1] > 1 and target.shape[1] == 1
                and target.shape[0] == main.shape[0] and target.shape[2:] == main.shape[2:])

    def _plan(self, n_enc: int, n_dec: int) -> FusedPlan:
        return FusedPlan(
            n_enc=n_enc, n_dec=n_dec,
            lambda_ds=self.lambda_ds if self.use_ds and n_dec else 0.0,
            alpha=self.alpha if self.use_enc and n_enc else 0.0,
            beta=self.beta if self.use_dec and n_dec else 0.0,
            teacher=self.teacher, temperature=self.temperature, detach_teacher=self.detach_teacher,
            dice=self.fused_dice,  # type: ignore[arg-type]
        )

    def forward(self, output: DSDOutput | torch.Tensor | Sequence, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, torch.Tensor):
            if self._can_fuse(output, target):
                main = fused_dsd_loss(self._plan(0, 0), target, output, (), ())[0]
            else:
                main = self.dice_ce(output, target)
            self.last_terms = {"main": main.detach()}  # the baseline logs its one term like every mode
            return main
        if not isinstance(output, DSDOutput):
            output = DSDOutput(*output)
        main, enc, dec = output
        for name, h in [("encoder", x) for x in enc] + [("decoder", x) for x in dec]:
            if h.shape != main.shape:
                raise ValueError(f"A {name} head output has shape {tuple(h.shape)}, the main output {tuple(main.shape)}.")
        need_enc = self.use_enc and (self.alpha or self.feature_l2)
        need_dec = (self.use_ds and self.lambda_ds) or (self.use_dec and (self.beta or self.feature_l2))
        if need_enc and not enc:
            raise ValueError(f"dsd_mode={self.mode!r} needs encoder heads; build DSDNetwork with the same mode.")
        if need_dec and not dec:
            raise ValueError(f"dsd_mode={self.mode!r} needs decoder heads; build DSDNetwork with the same mode.")

        if self._can_fuse(main, target):
            return self._forward_fused(main, enc, dec, target)
        main_loss = self.dice_ce(main, target)
        total = main_loss
        terms = {"main": main_loss.detach()}
        if self.use_ds and self.lambda_ds:
            ds = sum(self.dice_ce(h, target) for h in dec)
            total = total + self.lambda_ds * ds
            terms["ds"] = ds.detach()
        for side, heads, weight, used in (("enc", enc, self.alpha, self.use_enc), ("dec", dec, self.beta, self.use_dec)):
            if not used or not (weight or self.feature_l2):
                continue
            kl, l2 = self.distillation(heads, side)
            total = total + weight * kl + self.feature_l2 * l2
            terms[f"kl_{side}"] = kl.detach()
            if self.feature_l2:
                terms[f"l2_{side}"] = l2.detach()
        self.last_terms = terms  # detached tensors, for logging each term without a device sync here
        return total

    def _forward_fused(self, main: torch.Tensor, enc: Sequence[torch.Tensor], dec: Sequence[torch.Tensor],
                       target: torch.Tensor) -> torch.Tensor:
        use_enc = self.use_enc and bool(self.alpha)
        use_dec = (self.use_ds and bool(self.lambda_ds)) or (self.use_dec and bool(self.beta))
        enc_used, dec_used = (tuple(enc) if use_enc else ()), (tuple(dec) if use_dec else ())
        plan = self._plan(len(enc_used), len(dec_used))
        for side, weight, count in (("enc", plan.alpha, plan.n_enc), ("dec", plan.beta, plan.n_dec)):
            if weight:
                _check_side(side, count)
        total, values = fused_dsd_loss(plan, target, main, enc_used, dec_used)
        terms = {"main": values[0]}
        if self.use_ds and self.lambda_ds:
            terms["ds"] = values[1]
        if self.use_enc and self.alpha:
            terms["kl_enc"] = values[2]
        if self.use_dec and self.beta:
            terms["kl_dec"] = values[3]
        if self.feature_l2:  # the dropped L2 ablation: rare, composed from stock ops on top of the fused terms
            for side, heads, used in (("enc", enc, self.use_enc), ("dec", dec, self.use_dec)):
                if used:
                    l2 = self.feature_l2_term(heads, side)
                    total = total + self.feature_l2 * l2
                    terms[f"l2_{side}"] = l2.detach()
        self.last_terms = terms
        return total
