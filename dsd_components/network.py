"""DSD wrapper: a stock MONAI backbone plus bottleneck heads on its tapped stages (training only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .heads import BottleneckHead
from .modes import DSD_MODES, mode_spec
from .taps import ProbedTap, probe_taps, resolve, tap_spec_for

__all__ = ["DSDOutput", "DSDNetwork", "heads_needed", "DSD_MODES", "ddp_needs_unused_parameters"]


class DSDOutput(NamedTuple):
    """What the DSD network returns in training mode.

    ``encoders`` run from Encoder 1 (shallowest) to Encoder Z (deepest: the default encoder teacher);
    ``decoders`` from Decoder 1 (nearest the output: the default decoder teacher) to Decoder Z. Every head
    output is a logit map of the same shape as ``main``. A side whose heads are not needed is an empty tuple.
    """

    main: torch.Tensor
    encoders: tuple[torch.Tensor, ...]
    decoders: tuple[torch.Tensor, ...]


def heads_needed(mode: str) -> tuple[bool, bool]:
    """(encoder heads, decoder heads) that a loss mode uses (:mod:`dsd_components.modes`), so DDP never sees
    parameters without gradients.

    Raises:
        ValueError: unknown ``mode``.
    """
    spec = mode_spec(mode)
    return spec.encoder_heads, spec.decoder_heads


class DSDNetwork(nn.Module):
    """Attach Dual Self-Distillation heads to any U-shaped backbone listed in the tap table.

    In ``train()`` mode the forward returns :class:`DSDOutput`; in ``eval()`` mode it returns exactly
    ``backbone(x)`` and runs no head, so validation and sliding-window inference cost what the backbone costs.
    The backbone is stored as ``self.backbone``: its state dict is the deployable model
    (see :mod:`dsd_components.export`).

    Args:
        backbone: a stock MONAI network instance (``DynUNet``, ``UNETR``, ``SwinUNETR``, ``VNet``, ``BasicUNet``,
            ``SegResNet``, ...).
        mode: DSD loss mode (:data:`dsd_components.modes.MODES`); decides which heads exist (``basic`` builds none:
            the plain backbone).
        encoder_taps / decoder_taps: override the table's module paths (Encoder 1..Z / Decoder 1..Z).
        share_heads: share one head between taps of equal width and scale; ``None`` takes the table's default.
        tie_upsampling: reuse one x2 transposed conv per head, as the reference implementation does.
        probe_size: spatial size for the shape probe; ``None`` takes the table's default.
        head_init: ``default`` (PyTorch's) or ``kaiming_normal`` (a=0.01, zero bias: the reference nnU-Net's).
    """

    def __init__(
        self,
        backbone: nn.Module,
        mode: str = "dsd",
        encoder_taps: Sequence[str] | None = None,
        decoder_taps: Sequence[str] | None = None,
        share_heads: bool | None = None,
        tie_upsampling: bool = True,
        probe_size: Sequence[int] | None = None,
        head_init: str = "default",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        use_enc, use_dec = heads_needed(mode)
        self.mode = mode_spec(mode).name
        spec = tap_spec_for(backbone) if (encoder_taps is None or decoder_taps is None or probe_size is None) else None
        enc_paths = list(encoder_taps) if encoder_taps is not None else spec.encoders(backbone)
        dec_paths = list(decoder_taps) if decoder_taps is not None else spec.decoders(backbone)
        enc_paths, dec_paths = (enc_paths if use_enc else []), (dec_paths if use_dec else [])
        share = spec.share_heads if share_heads is None and spec is not None else bool(share_heads)
        size = tuple(probe_size) if probe_size is not None else spec.probe_size(backbone)
        probed, out_channels = probe_taps(backbone, list(dict.fromkeys(enc_paths + dec_paths)), size)
        by_path = {t.path: t for t in probed}
        self.encoder_taps: list[ProbedTap] = [by_path[p] for p in enc_paths]
        self.decoder_taps: list[ProbedTap] = [by_path[p] for p in dec_paths]
        self.out_channels = out_channels

        spatial_dims = len(size)
        self.heads = nn.ModuleDict()
        self._head_of: dict[str, str] = {}  # "enc0"/"dec3" -> key in self.heads
        for side, taps in (("enc", self.encoder_taps), ("dec", self.decoder_taps)):
            for i, tap in enumerate(taps):
                key = f"c{tap.channels}_s{'x'.join(map(str, tap.scale))}" if share else f"{side}{i + 1}"
                if key not in self.heads:
                    self.heads[key] = BottleneckHead(spatial_dims, tap.channels, out_channels, tap.scale, tie_upsampling,
                                                     init=head_init)
                self._head_of[f"{side}{i}"] = key

        self._capture = False
        self._features: dict[str, torch.Tensor] = {}
        for path in dict.fromkeys(enc_paths + dec_paths):
            module, use_input = resolve(backbone, path)
            if use_input:
                module.register_forward_pre_hook(self._make_pre_hook(path))
            else:
                module.register_forward_hook(self._make_hook(path))

    def _make_hook(self, path: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if self._capture:
                self._features[path] = output

        return hook

    def _make_pre_hook(self, path: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if self._capture:
                self._features[path] = args[0]

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor | DSDOutput:
        if not self.training or not self.heads:
            return self.backbone(x)
        main, features = self.backbone_with_features(x)
        encoders, decoders = self.run_heads(features, main.shape[2:])
        return DSDOutput(main, encoders, decoders)

    def backbone_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The backbone's output and the tapped stages' features (module path -> tensor), from one backbone pass."""
        self._features.clear()
        self._capture = True
        try:
            main = self.backbone(x)
        finally:
            self._capture = False
        features, self._features = self._features, {}
        return main, features

    def run_heads(self, features: dict[str, torch.Tensor], size: Sequence[int]
                  ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(encoder head outputs, decoder head outputs) of captured ``features``, each checked to be ``size``."""
        size = tuple(size)

        def run(side: str, taps: list[ProbedTap]) -> tuple[torch.Tensor, ...]:
            outs = []
            for i, tap in enumerate(taps):
                y = self.heads[self._head_of[f"{side}{i}"]](features[tap.path])
                if tuple(y.shape[2:]) != size:
                    raise RuntimeError(
                        f"DSD head on {tap.path!r} produced {tuple(y.shape[2:])}, expected {size}: the input "
                        f"size must be divisible by {tap.scale} (use a patch size the backbone divides)."
                    )
                outs.append(y)
            return tuple(outs)

        return run("enc", self.encoder_taps), run("dec", self.decoder_taps)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Load a wrapper checkpoint, or warm-start from a deployed backbone-only state dict (``models/model.pt``).

        A state dict without ``backbone.``/``heads.`` keys is the shipped backbone: it goes into ``self.backbone`` and
        the heads keep their initialisation. This is how MONAI Label fine-tunes a bundle (it loads ``model.pt`` into
        the training ``network``) and how a DSD run starts from released weights.
        """
        keys = list(state_dict)
        if keys and not any(k.startswith(("backbone.", "heads.")) for k in keys):
            return self.backbone.load_state_dict(state_dict, strict=strict, assign=assign)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def num_parameters(self) -> dict[str, int]:
        """Trainable parameters of the backbone alone and of the whole DSD network."""
        count = lambda ps: sum(p.numel() for p in ps if p.requires_grad)  # noqa: E731
        return {"backbone": count(self.backbone.parameters()), "dsd": count(self.parameters())}


def ddp_needs_unused_parameters(backbone: nn.Module) -> bool:
    """Whether DDP must look for parameters without gradients.

    DSD builds only the heads its mode uses, so the heads never need it; MONAI >= 1.3's ViT blocks (UNETR) carry an
    unused ``norm_cross_attn`` LayerNorm, which does.
    """
    return any("norm_cross_attn" in name for name, _ in backbone.named_parameters())
