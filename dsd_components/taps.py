"""Tap table: which stages of each stock MONAI U-shaped network DSD listens to.

Adding a backbone means adding one :class:`TapSpec` to :data:`TAP_TABLE`. Channels and scales are not written
here: :func:`probe_taps` measures them with one shape-only forward pass on the ``meta`` device.

Conventions (SPEC.md, paper Fig. 1): ``encoders`` go from Encoder 1 (shallowest) to Encoder Z (deepest, the
teacher); ``decoders`` go from Decoder 1 (the stage nearest the output, the teacher) to Decoder Z (the one just
above the bottleneck). A module path ending in ``:in`` taps the module's first *input* instead of its output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from monai.networks import nets
from torch import nn

__all__ = ["TapSpec", "ProbedTap", "TAP_TABLE", "tap_spec_for", "probe_taps", "input_spec"]


@dataclass(frozen=True)
class TapSpec:
    """Where DSD taps one backbone class.

    Attributes:
        encoders: backbone -> module paths of Encoder 1..Z.
        decoders: backbone -> module paths of Decoder 1..Z.
        probe_size: backbone -> a spatial input size the backbone accepts (used only for the shape probe).
        share_heads: default for sharing one head between encoder and decoder taps of the same resolution and
            width (the reference nnU-Net and Swin UNETR do; the reference UNETR and VNet do not).
    """

    encoders: Callable[[nn.Module], list[str]]
    decoders: Callable[[nn.Module], list[str]]
    probe_size: Callable[[nn.Module], tuple[int, ...]]
    share_heads: bool = False


@dataclass(frozen=True)
class ProbedTap:
    """A tap with its measured feature width and downsampling factor relative to the input."""

    path: str
    channels: int
    scale: tuple[int, ...]


def _const(paths: Sequence[str]) -> Callable[[nn.Module], list[str]]:
    return lambda net: list(paths)


def _cube(size: int) -> Callable[[nn.Module], tuple[int, ...]]:
    return lambda net: (size,) * _spatial_dims(net)


def _dynunet_encoders(net: nn.Module) -> list[str]:
    return ["input_block"] + [f"downsamples.{i}" for i in range(len(net.downsamples))]


def _dynunet_decoders(net: nn.Module) -> list[str]:
    # upsamples[0] is the deepest decoder stage; the last one works at full resolution and feeds the output.
    ups = [f"upsamples.{i}" for i in range(len(net.upsamples) - 1)]
    return list(reversed(ups)) + ["bottleneck"]


def _dynunet_probe(net: nn.Module) -> tuple[int, ...]:
    size = [1] * net.spatial_dims
    for s in net.strides:
        s = s if isinstance(s, Sequence) else [s] * net.spatial_dims
        size = [a * b for a, b in zip(size, s)]
    return tuple(max(a, 1) * 2 for a in size)


def _unetr_probe(net: nn.Module) -> tuple[int, ...]:
    return tuple(f * p for f, p in zip(net.feat_size, net.patch_size))


TAP_TABLE: dict[type, TapSpec] = {
    nets.DynUNet: TapSpec(_dynunet_encoders, _dynunet_decoders, _dynunet_probe, share_heads=True),
    nets.UNETR: TapSpec(
        _const(["encoder1", "encoder2", "encoder3", "encoder4"]),
        _const(["decoder3", "decoder4", "decoder5", "decoder5:in"]),
        _unetr_probe,
    ),
    nets.SwinUNETR: TapSpec(
        _const(["encoder1", "encoder2", "encoder3", "encoder4"]),
        _const(["decoder2", "decoder3", "decoder4", "decoder5"]),
        _cube(64),
        share_heads=True,
    ),
    nets.VNet: TapSpec(
        _const(["in_tr", "down_tr32", "down_tr64", "down_tr128"]),
        _const(["up_tr64", "up_tr128", "up_tr256", "down_tr256"]),
        _cube(32),
    ),
    nets.BasicUNet: TapSpec(
        _const(["conv_0", "down_1", "down_2", "down_3"]),
        _const(["upcat_2", "upcat_3", "upcat_4", "down_4"]),
        _cube(32),
    ),
    nets.SegResNet: TapSpec(
        lambda net: [f"down_layers.{i}" for i in range(len(net.down_layers))],
        lambda net: [f"up_layers.{i}" for i in reversed(range(len(net.up_layers) - 1))]
        + [f"down_layers.{len(net.down_layers) - 1}"],
        lambda net: (2 ** len(net.down_layers),) * _spatial_dims(net),
    ),
}


def tap_spec_for(backbone: nn.Module) -> TapSpec:
    """The table entry for ``backbone``'s class (or its nearest listed base class)."""
    for cls in type(backbone).__mro__:
        if cls in TAP_TABLE:
            return TAP_TABLE[cls]
    known = ", ".join(sorted(c.__name__ for c in TAP_TABLE))
    raise KeyError(
        f"No DSD tap table entry for {type(backbone).__name__}. Known backbones: {known}. "
        "Add a TapSpec for it to dsd_components/taps.py:TAP_TABLE."
    )


def _first_conv(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return m
    raise ValueError(f"{type(net).__name__} has no convolution; cannot infer its input channels.")


def _spatial_dims(net: nn.Module) -> int:
    return {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(_first_conv(net))]


def input_spec(net: nn.Module) -> tuple[int, int]:
    """(spatial_dims, in_channels) of a backbone, read from its first convolution."""
    conv = _first_conv(net)
    return _spatial_dims(net), conv.in_channels


def resolve(net: nn.Module, path: str) -> tuple[nn.Module, bool]:
    """Module at ``path`` (``a.b.0``) and whether the tap reads its input (``:in`` suffix)."""
    name, _, kind = path.partition(":")
    if kind not in ("", "in"):
        raise ValueError(f"Tap path {path!r}: the only suffix allowed is ':in'.")
    try:
        return net.get_submodule(name), kind == "in"
    except AttributeError as e:
        raise KeyError(f"{type(net).__name__} has no submodule {name!r} (tap {path!r}).") from e


@contextmanager
def on_meta(net: nn.Module) -> Iterator[None]:
    """Temporarily swap every parameter and buffer for a ``meta`` tensor of the same shape, then restore them.

    Swapping per module (not by name) keeps modules that appear twice in the tree, such as DynUNet's
    ``skip_layers`` aliases, consistent.
    """
    saved = []
    for mod in net.modules():
        for store in (mod._parameters, mod._buffers):
            for name, t in list(store.items()):
                if t is not None:
                    saved.append((store, name, t))
                    store[name] = t.to("meta")
    try:
        yield
    finally:
        for store, name, t in saved:
            store[name] = t


def probe_taps(backbone: nn.Module, paths: Sequence[str], probe_size: Sequence[int]) -> tuple[list[ProbedTap], int]:
    """Measure each tap's channels and scale, and the backbone's output channels, without real compute.

    Runs the backbone once on ``meta`` tensors (shapes only, no memory, no arithmetic).
    """
    spatial_dims, in_channels = input_spec(backbone)
    captured: dict[str, torch.Size] = {}
    handles = []
    for path in paths:
        module, use_input = resolve(backbone, path)
        if use_input:
            h = module.register_forward_pre_hook(lambda m, args, p=path: captured.__setitem__(p, args[0].shape))
        else:
            h = module.register_forward_hook(lambda m, args, out, p=path: captured.__setitem__(p, out.shape))
        handles.append(h)
    x = torch.empty(1, in_channels, *probe_size, device="meta")
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad(), on_meta(backbone):
            out = backbone(x)
    finally:
        backbone.train(was_training)
        for h in handles:
            h.remove()
    if isinstance(out, (list, tuple)):
        out = out[0]
    taps = []
    for path in paths:
        shape = captured[path]
        scale = []
        for full, feat in zip(probe_size, shape[2:]):
            if feat <= 0 or full % feat:
                raise ValueError(f"Tap {path!r}: feature size {tuple(shape[2:])} does not divide input {tuple(probe_size)}.")
            scale.append(full // feat)
        taps.append(ProbedTap(path, int(shape[1]), tuple(scale)))
    return taps, int(out.shape[1])
