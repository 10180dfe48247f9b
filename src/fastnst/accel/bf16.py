"""bf16 inference forward of an instance-normalized TransformerNet on CPU: the convolutions in
bfloat16 on channels_last maps (oneDNN runs them on AMX / AVX512-BF16 units where the CPU has
them), each instance norm's statistics and affine map computed in fp32, and the output in fp32.

Plain `torch.autocast("cpu", torch.bfloat16)` would also run instance norm and the final sigmoid
in bf16 (and reflection padding in fp32, casting back and forth); here the statistics are fp32
sums of the bf16 maps, the normalized map is rounded to bf16 once (the next conv would round it
anyway), and the last conv's output goes to fp32 before the sigmoid. On the bundled networks this
stays above 40 dB PSNR from the fp32 forward (tests/test_autotune.py).

Slow on CPUs without native bf16 (emulated): `autotune` offers it only where the CPU has
amx_bf16 or avx512_bf16; `precision=bf16` asks for it anywhere.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.accel import fastconv
from fastnst.accel.subpixel import subpixel_kernels
from fastnst.transformer import ConditionalInstanceNorm2d, one_hot, upsample

BF16 = torch.bfloat16
CL = torch.channels_last
# fall back to the two-pass variance where mean^2 > this x variance (as fused.py)
_CANCELLATION_LIMIT = 1000.0

# conv or UpsampleConv -> (weight versions, (bf16 channels_last weight, bf16 bias))
_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def applies(net, x: torch.Tensor) -> bool:
    """Whether `forward` computes (up to bf16 rounding) net(x): instance norm, CPU, no gradient."""
    return (
        net.config["norm"] == "instance" and x.device.type == "cpu" and not torch.is_grad_enabled()
    )


def _cached(module: nn.Module, conv: nn.Conv2d, make):
    key = tuple((p.data_ptr(), p._version) for p in (conv.weight, conv.bias) if p is not None)
    cached = _weights.get(module)
    if cached is None or cached[0] != key:
        weight, bias = make()
        bias = None if bias is None else bias.to(BF16)
        cached = _weights[module] = (key, (weight.to(BF16).contiguous(memory_format=CL), bias))
    return cached[1]


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    weight, bias = _cached(conv, conv, lambda: (conv.weight, conv.bias))
    return F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding)


def _norm(
    y: torch.Tensor, norm, style, relu: bool, skip: torch.Tensor | None = None
) -> torch.Tensor:
    """[relu](norm(y) [+ skip]) for a bf16 (or fp32) map y, its statistics and affine map in fp32,
    written as a bf16 channels_last map."""
    b, n = y.shape[0], y.shape[-2] * y.shape[-1]
    mean = y.mean(dim=(2, 3), dtype=torch.float32)
    var = torch.linalg.vector_norm(y, dim=(2, 3), dtype=torch.float32).square_() / n - mean.square()
    if bool((mean.square() > _CANCELLATION_LIMIT * var).any()):
        var = (y.float() - mean[..., None, None]).square_().mean(dim=(2, 3))
    scale = torch.rsqrt(var + norm.eps)
    if isinstance(norm, ConditionalInstanceNorm2d):
        weight, bias = norm.style_affine(b, style)
    else:
        weight, bias = norm.weight, norm.bias
    if weight is not None:
        scale = scale * weight.float()
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias.float()
    out = torch.empty_like(y, dtype=BF16, memory_format=CL)
    torch.addcmul(
        shift[..., None, None], y, scale[..., None, None], out=out
    )  # fp32 math, one bf16 rounding
    if skip is not None:
        out.add_(skip)
    return out.relu_() if relu else out


def _layer(
    layer: nn.Sequential, x: torch.Tensor, style, skip: torch.Tensor | None = None
) -> torch.Tensor:
    """A ConvLayer (reflection pad, conv, instance norm [, ReLU]) in bf16."""
    pad, conv, norm = layer[0], layer[1], layer[2]
    y = _conv(conv, F.pad(x, pad.padding, mode="reflect"))
    return _norm(y, norm, style, relu=len(layer) > 3, skip=skip)


def _first_layer(layer: nn.Sequential, x: torch.Tensor, style) -> torch.Tensor:
    """The first ConvLayer in fp32 from the fp32 image (NNPACK's FFT where faster): rounding the
    image itself to bf16 cost ~10 dB PSNR on a photo (starry_night, 512 px: 41 instead of 51)."""
    pad, conv, norm = layer[0], layer[1], layer[2]
    y = fastconv.conv_forward(
        conv, F.pad(x.to(torch.float32).contiguous(), pad.padding, mode="reflect")
    )
    return _norm(y, norm, style, relu=len(layer) > 3)


def _upsample(up, x: torch.Tensor, size, style) -> torch.Tensor:
    if (
        up.mode != "nearest"
        or tuple(size) != (2 * x.shape[-2], 2 * x.shape[-1])
        or up.conv[1].kernel_size != (3, 3)
    ):
        return _layer(up.conv, upsample(x, size, up.mode), style)
    # the sub-pixel path (subpixel.py): the 2x upsample-then-conv at the low resolution
    weight, bias = _cached(up, up.conv[1], lambda: subpixel_kernels(up))
    y = F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, bias), 2)
    return _norm(y.contiguous(memory_format=CL), up.conv[2], style, relu=len(up.conv) > 3)


@torch.no_grad()
def forward(net, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """TransformerNet.forward(x, style) with bf16 convolutions; fp32 (B, 3, H, W) out, contiguous."""
    if net.styles and style is None:
        style = one_hot(0, len(net.styles), x)
    h1 = _first_layer(net.down1, x, style)
    h2 = _layer(net.down2, h1, style)
    h = _layer(net.down3, h2, style)
    for block in net.residuals:
        first, second = block.body
        h = _layer(second, _layer(first, h, style), style, skip=h)
    h = _upsample(net.up1, h, h2.shape[-2:], style)
    h = _upsample(net.up2, h, h1.shape[-2:], style)
    y = _conv(net.out[1], F.pad(h, net.out[0].padding, mode="reflect"))
    return y.to(torch.float32, memory_format=torch.contiguous_format).sigmoid_()
