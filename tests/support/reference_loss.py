"""The DSD loss (paper Eq. 1-5, Tables 5 and 6) written out with stock torch/MONAI ops, independently of
``dsd_components`` (no teacher helper, no mode table, no fused code is imported): the oracle of test_loss.py and
test_fused_loss.py. Autograd through it gives the reference gradients.

Heads run Encoder 1 (shallowest) .. Encoder Z (deepest) and Decoder 1 (nearest the output) .. Decoder Z (paper
Fig. 1). Teachers, from the paper: ``dsd`` and the other Table 5 modes: Encoder Z teaches Encoders 1..Z-1, Decoder 1
teaches Decoders 2..Z; ``mean_teacher``: the mean of a side's logits teaches every head of that side;
``reversed_teacher``: Encoder 1 and Decoder Z teach.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

# mode -> (deep supervision, encoder KL, decoder KL, teacher), written from the paper's Tables 5 and 6
MODE_TERMS = {
    "basic": (False, False, False, None),
    "ds": (True, False, False, None),
    "sdd": (True, False, True, "deepest"),
    "sde": (True, True, False, "deepest"),
    "dsd": (True, True, True, "deepest"),
    "mean_teacher": (True, True, True, "mean"),
    "reversed_teacher": (True, True, True, "reversed"),
}


def reference_kl(student: torch.Tensor, teacher: torch.Tensor, T: float) -> torch.Tensor:
    """torch's own KLDivLoss on (log-student, teacher-probabilities) as the reference implementation does: summed
    over classes, mean over batch and voxels, times T^2."""
    kl = torch.nn.KLDivLoss(reduction="none")(F.log_softmax(student / T, 1), F.softmax(teacher / T, 1))
    return kl.sum(1).mean() * T * T


# position of the teaching head in Encoder 1..Z / Decoder 1..Z
TEACHER_AT = {("deepest", "enc"): -1, ("deepest", "dec"): 0, ("reversed", "enc"): 0, ("reversed", "dec"): -1}


def _side(heads: list[torch.Tensor], teacher: str, side: str, detach: bool, T: float) -> torch.Tensor:
    if teacher == "mean":
        t = sum(heads) / len(heads)
        students = list(heads)
    else:
        pick = TEACHER_AT[teacher, side] % len(heads)
        t = heads[pick]
        students = [h for i, h in enumerate(heads) if i != pick]
    t = t.detach() if detach else t
    return sum(reference_kl(s, t, T) for s in students)


def reference_dsd_loss(main: torch.Tensor, encoders, decoders, label: torch.Tensor, mode: str, lam: float = 1.0,
                       alpha: float = 1.0, beta: float = 1.0, T: float = 3.0, detach_teacher: bool = False,
                       dice_ce_kwargs: dict | None = None) -> torch.Tensor:
    """The total DSD loss of one step."""
    kw = {"include_background": True, "to_onehot_y": True, "softmax": True, **(dice_ce_kwargs or {})}
    dce = DiceCELoss(**kw)
    ds, enc_kl, dec_kl, teacher = MODE_TERMS[mode]
    total = dce(main, label)
    if ds:
        total = total + lam * sum(dce(d, label) for d in decoders)
    if enc_kl:
        total = total + alpha * _side(list(encoders), teacher, "enc", detach_teacher, T)
    if dec_kl:
        total = total + beta * _side(list(decoders), teacher, "dec", detach_teacher, T)
    return total
