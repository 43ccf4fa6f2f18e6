"""Bottleneck heads: upsampling plans, and the CPU native-kernel path equal to the plain modules."""

from __future__ import annotations

import pytest
import torch

from dsd_components.heads import BottleneckHead, head_conv, upsample_steps


def test_upsample_steps_cover_anisotropic_scales_and_reject_non_powers_of_two():
    assert upsample_steps((16, 16, 8)) == [(2, 2, 2)] * 3 + [(2, 2, 1)]
    assert upsample_steps((1, 1, 1)) == []
    with pytest.raises(ValueError, match="powers of two"):
        upsample_steps((3, 2, 2))


def _plain_forward(head: BottleneckHead, x: torch.Tensor) -> torch.Tensor:
    y = head.proj(x)  # the modules' own forward (oneDNN where PyTorch picks it)
    for i in range(head.num_steps):
        y = head.up[min(i, len(head.up) - 1)](y)
    return y


@pytest.mark.parametrize(("in_ch", "classes", "scale", "size"), [
    (64, 3, 16, (2, 2, 2)), (16, 8, 1, (8, 8, 8)), (32, 4, (4, 4, 2), (4, 4, 4)), (8, 2, 2, (3, 5, 4)),
])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_head_native_cpu_path_equals_the_modules_forward_and_gradients(in_ch, classes, scale, size, dtype):
    torch.manual_seed(0)
    head = BottleneckHead(3, in_ch, classes, scale).to(dtype)
    x = torch.randn(2, in_ch, *size, dtype=dtype, requires_grad=True)
    out = head(x)
    up = head.scale
    assert out.shape == (2, classes, *(s * u for s, u in zip(size, up)))
    g = torch.randn_like(out)
    params = [x, *head.parameters()]
    ours = torch.autograd.grad(out, params, g)
    ref_out = _plain_forward(head, x)
    ref = torch.autograd.grad(ref_out, params, g)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(out, ref_out, atol=tol, rtol=tol)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, atol=tol * float(b.abs().max() + 1), rtol=tol)


def test_head_conv_falls_back_to_the_module_for_half_precision_and_without_grad():
    layer = torch.nn.ConvTranspose3d(4, 4, 2, 2).to(torch.bfloat16)
    x = torch.randn(1, 4, 3, 3, 3, dtype=torch.bfloat16)
    assert torch.equal(head_conv(x, layer), layer(x))
    conv = torch.nn.Conv3d(4, 2, 1)
    x32 = torch.randn(1, 4, 3, 3, 3)
    with torch.no_grad():
        assert torch.allclose(head_conv(x32, conv), conv(x32), atol=1e-6)


def test_native_path_restores_the_global_onednn_switch_even_on_error():
    before = torch.backends.mkldnn.enabled
    head = BottleneckHead(3, 8, 3, 4)
    head(torch.randn(1, 8, 2, 2, 2, requires_grad=True)).sum().backward()
    assert torch.backends.mkldnn.enabled == before
    with pytest.raises(RuntimeError):
        head(torch.randn(1, 5, 2, 2, 2))  # wrong channel count fails inside the switched-off region
    assert torch.backends.mkldnn.enabled == before
