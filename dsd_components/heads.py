"""Bottleneck heads: a 1x1x1 projection to class logits, then learnable upsampling to the input size."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["BottleneckHead", "upsample_steps"]


def upsample_steps(scale: Sequence[int]) -> list[tuple[int, ...]]:
    """Split a per-axis upsampling factor into x2 transposed-conv steps.

    ``(16, 16, 8)`` becomes four steps whose strides are ``(2, 2, 2)`` three times and ``(2, 2, 1)`` once, so
    anisotropic backbones (nnU-Net plans with per-axis strides) are covered too.
    """
    exps = []
    for s in scale:
        e = int(round(math.log2(s))) if s > 0 else -1
        if s < 1 or 2**e != s:
            raise ValueError(f"DSD heads upsample by powers of two per axis; got scale {tuple(scale)}.")
        exps.append(e)
    n = max(exps)
    return [tuple(2 if i < e else 1 for e in exps) for i in range(n)]


@contextlib.contextmanager
def _without_onednn() -> Iterator[None]:
    """Turn oneDNN (mkldnn) convolutions off for the ops inside, and only those."""
    # the switch torch.backends.mkldnn.flags() flips, without also resetting its TF32/precision settings
    previous = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(previous)


class _NativeCPUConv(torch.autograd.Function):
    """A convolution (plain or transposed, no padding, kernel == stride) whose forward *and* backward use PyTorch's
    native CPU kernels.

    Why: for the heads' few output channels (class maps), oneDNN's kernels cost 2-4x the native ones on CPU, mostly
    in the backward (measured in docs/PERFORMANCE.md). Same operator, same result to float rounding; CUDA never
    takes this path.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # type: ignore[override]
                stride: tuple[int, ...], transposed: bool) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.transposed, ctx.has_bias = list(stride), transposed, bias is not None
        zeros, ones = [0] * len(stride), [1] * len(stride)
        with _without_onednn():
            return torch.ops.aten.convolution(x, weight, bias, list(stride), zeros, ones, transposed, zeros, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        zeros, ones = [0] * len(ctx.stride), [1] * len(ctx.stride)
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        bias_sizes = [weight.shape[1] if ctx.transposed else weight.shape[0]] if ctx.has_bias else None
        with _without_onednn():
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad.contiguous(), x, weight, bias_sizes, ctx.stride, zeros, ones, ctx.transposed, zeros, 1, mask)
        return gx, gw, gb, None, None


def head_conv(x: torch.Tensor, layer: nn.modules.conv._ConvNd) -> torch.Tensor:
    """``layer(x)`` for a head's projection or kernel == stride upsampling; on CPU through the native kernels."""
    if x.device.type != "cpu" or not torch.backends.mkldnn.is_available() or x.dtype not in (torch.float32,
                                                                                              torch.float64):
        return layer(x)
    return _NativeCPUConv.apply(x, layer.weight, layer.bias, tuple(layer.stride), layer.transposed)


HEAD_INITS = ("default", "kaiming_normal")


class BottleneckHead(nn.Module):
    """The DSD "bottleneck" head of one tapped stage.

    A 1x1x1 convolution maps the stage's features to class logits, then transposed convolutions upsample them
    by ``scale`` to the input resolution. As in the paper's reference code, one x2 transposed convolution is
    applied repeatedly when every step is the same (``tie_upsampling=True``); this keeps each head at a few
    hundred parameters. A head at full resolution keeps a 1x1x1 transposed convolution so every head is
    ``projection -> learnable upsampling``.

    The temperature softmax of the paper is applied by :class:`dsd_components.loss.DSDLoss`, not here, so the
    head returns logits that can also be supervised with DiceCE.

    ``init="kaiming_normal"`` initialises every weight with ``kaiming_normal_(a=0.01)`` and every bias with 0, as the
    reference nnU-Net does for all its convolutions, heads included (R ``self_distill_nnunet.py``
    ``initialize_weights``, applied after the heads are built); ``"default"`` keeps PyTorch's initialisation, as the
    reference UNETR, Swin UNETR and VNet do.

    Raises:
        ValueError: a ``scale`` of the wrong length, or an unknown ``init``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        scale: Sequence[int] | int,
        tie_upsampling: bool = True,
        init: str = "default",
    ) -> None:
        super().__init__()
        scale_t = tuple(scale) if isinstance(scale, Sequence) else (int(scale),) * spatial_dims
        if len(scale_t) != spatial_dims:
            raise ValueError(f"scale {scale_t} must have {spatial_dims} entries.")
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        deconv = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[spatial_dims]
        self.scale = scale_t
        self.proj = conv(in_channels, out_channels, kernel_size=1, bias=True)
        steps = upsample_steps(scale_t)
        if not steps:  # full resolution: a learnable 1x1x1 map keeps the head shape uniform
            steps = [(1,) * spatial_dims]
        self.num_steps = len(steps)
        tied = tie_upsampling and all(s == steps[0] for s in steps)
        distinct = [steps[0]] if tied else steps
        self.up = nn.ModuleList(deconv(out_channels, out_channels, kernel_size=s, stride=s, bias=True) for s in distinct)
        if init not in HEAD_INITS:
            raise ValueError(f"head init {init!r} is unknown: use one of {', '.join(HEAD_INITS)}")
        if init == "kaiming_normal":
            for m in [self.proj, *self.up]:
                nn.init.kaiming_normal_(m.weight, a=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = head_conv(x, self.proj)
        for i in range(self.num_steps):
            x = head_conv(x, self.up[min(i, len(self.up) - 1)])
        return x
