"""The DSD ablation modes (paper Tables 5 and 6): one table that decides the network's heads, the loss terms and
the teacher, and that the bundle configs and docs are written from.

Each mode is a :class:`ModeSpec`: whether deep supervision (DiceCE on the decoder heads), encoder KL and decoder KL
are on, and which head teaches (``deepest``: Encoder Z / Decoder 1; ``mean``: the mean of a side's heads, every
head a student; ``reversed``: Encoder 1 / Decoder Z). A network builds only the heads its mode uses
(:attr:`ModeSpec.encoder_heads`, :attr:`ModeSpec.decoder_heads`), so DDP never sees a parameter without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModeSpec", "MODES", "DSD_MODES", "TEACHERS", "mode_spec"]

TEACHERS = ("deepest", "mean", "reversed")


@dataclass(frozen=True)
class ModeSpec:
    """One DSD mode: which loss terms are on and which head teaches each side."""

    name: str
    deep_supervision: bool
    encoder_kl: bool
    decoder_kl: bool
    teacher: str
    summary: str
    paper: str

    @property
    def encoder_heads(self) -> bool:
        """Encoder heads exist only where the encoder KL uses them."""
        return self.encoder_kl

    @property
    def decoder_heads(self) -> bool:
        """Decoder heads serve deep supervision and the decoder KL."""
        return self.deep_supervision or self.decoder_kl


MODES: dict[str, ModeSpec] = {m.name: m for m in (
    ModeSpec("basic", False, False, False, "deepest", "the plain backbone: DiceCE on the main output (baseline)",
             "Table 5 Basic"),
    ModeSpec("ds", True, False, False, "deepest", "+ deep supervision: DiceCE on every decoder head",
             "Table 5 DS"),
    ModeSpec("sdd", True, False, True, "deepest", "+ decoder self-distillation: KL(Decoder 1 || Decoders 2..Z)",
             "Table 5 SDD"),
    ModeSpec("sde", True, True, False, "deepest", "+ encoder self-distillation: KL(Encoder Z || Encoders 1..Z-1)",
             "Table 5 SDE"),
    ModeSpec("dsd", True, True, True, "deepest", "Dual Self-Distillation: deep supervision + encoder and decoder KL",
             "Table 5 DSD"),
    ModeSpec("mean_teacher", True, True, True, "mean", "DSD with the mean of each side's heads as teacher",
             "Table 6 Mean Teacher"),
    ModeSpec("reversed_teacher", True, True, True, "reversed",
             "DSD with Encoder 1 and Decoder Z (the shallowest heads) as teachers", "Table 6 Reversed Teacher"),
)}

DSD_MODES: tuple[str, ...] = tuple(MODES)


def mode_spec(mode: str | ModeSpec) -> ModeSpec:
    """The :class:`ModeSpec` of ``mode``.

    Raises:
        ValueError: ``mode`` is not one of :data:`DSD_MODES` (MONAI's ``look_up_option`` names the choices).
    """
    if isinstance(mode, ModeSpec):
        return mode
    from monai.utils import look_up_option  # imported here: importing MONAI takes seconds, this table does not need it

    try:
        return MODES[look_up_option(str(mode), DSD_MODES)]
    except ValueError as exc:
        raise ValueError(f"dsd_mode {mode!r} is unknown: use one of {', '.join(DSD_MODES)}. {exc}") from None
