"""Faster fp32 convolutions on CPU: NNPACK's Winograd (3x3) and FFT (larger kernels) algorithms.

PyTorch ships NNPACK but only uses it for batches of 16 or more; on AVX2 CPUs without AVX-512
its Winograd F(6x6, 3x3) beats oneDNN's direct convolution 1.4-2.8x on large feature maps
(see `_nnpack_faster` for where), and its FFT path runs the transformer's 9x9 convs up to 10x
faster forward+backward (oneDNN is slow with 3 output channels). `scripts/bench/bench_convs.py`
prints the measured table. Results match `F.conv2d` to ~1e-5 relative (Winograd rounding).

`conv2d` is a drop-in for `F.conv2d` that picks NNPACK where it measured faster and falls back
to `F.conv2d` everywhere else (GPU, half precision, strided convs, small maps, tracing or
exporting, `torch.compile`, or inside `fastconv.disabled()`). Set FASTNST_NNPACK=0 to switch
it off for a whole process.

Opt in: build with `Conv2d` (the VGG does), or `use_nnpack(module)` to route the `nn.Conv2d`s of a
built module (a TransformerNet) through `conv2d` in place, its state_dict unchanged.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache

import torch
import torch.nn as nn
import torch.nn.functional as F

_enabled = os.environ.get("FASTNST_NNPACK", "1") != "0"


@cache
def nnpack_ready() -> bool:
    # _nnpack_available() also initializes NNPACK; calling it before any NNPACK conv is required
    try:
        return bool(torch._nnpack_available())
    except Exception:
        return False


@contextlib.contextmanager
def disabled():
    """Run the block with plain `F.conv2d` (benchmark baselines, A/B checks)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def fast_path_allowed(x: torch.Tensor) -> bool:
    """True where fastnst's CPU-only rewrites may run: eager fp32 on CPU, not being traced,
    exported or compiled (those must see the plain graph)."""
    return (
        _enabled
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.onnx.is_in_onnx_export()
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled("cpu")
    )


def _nnpack_faster(x: torch.Tensor, weight: torch.Tensor, padding: int) -> bool:
    cout, cin, kh, kw = weight.shape
    if kh != kw or x.shape[1] != cin:
        return False
    if kh >= 5:  # FFT path: faster at every size measured
        return True
    out_hw = (x.shape[-2] + 2 * padding - kh + 1) * (x.shape[-1] + 2 * padding - kw + 1)
    # Winograd pays off once the map is large against the kernel transform NNPACK redoes on
    # every call (~C^2): from 42x64 at 256-512 channels, 64x128 at 128, 128x128 at 64 (forward
    # plus input gradient, scripts/bench/bench_convs.py). The RGB ends of the VGG stay with oneDNN.
    return kh == 3 and out_hw * max(cin, cout) > 2**19 and min(cin, cout) >= 16


def _nnpack(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int
) -> torch.Tensor:
    # one image per call: NNPACK's inference algorithm (Winograd/FFT) is the fast one at batch 1
    pad = [padding, padding]
    weight = weight.contiguous()  # the backward pass hands in a flipped, transposed view
    if x.shape[0] == 1:
        return torch._nnpack_spatial_convolution(x, weight, bias, pad, [1, 1])
    return torch.cat(
        [torch._nnpack_spatial_convolution(xi, weight, bias, pad, [1, 1]) for xi in x.split(1)]
    )


class _NNPACKConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _nnpack(x, weight, bias, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        padding = ctx.padding
        k = weight.shape[-1]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # the input gradient of a stride-1 conv is a "full" conv with the flipped, transposed
            # kernel: the same fast path serves the backward pass (VGG losses, Gatys)
            grad_x = conv2d(
                grad_out.contiguous(),
                weight.transpose(0, 1).flip(2, 3),
                None,
                padding=k - 1 - padding,
            )
        if ctx.needs_input_grad[1] or (ctx.has_bias and ctx.needs_input_grad[2]):
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                [weight.shape[0]] if ctx.has_bias else None,
                [1, 1],
                [padding, padding],
                [1, 1],
                False,
                [0, 0],
                1,
                [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]],
            )
        return grad_x, grad_w, grad_b, None


def conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0
) -> torch.Tensor:
    """`F.conv2d(x, weight, bias, stride=1, padding=padding)`, through NNPACK where faster."""
    if (
        fast_path_allowed(x)
        and weight.dtype == torch.float32
        and x.dim() == 4
        and x.is_contiguous()  # a channels_last input stays with oneDNN, which keeps its layout
        and _nnpack_faster(x, weight, padding)
        and nnpack_ready()
    ):
        return _NNPACKConv.apply(x, weight, bias, padding)
    return F.conv2d(x, weight, bias, padding=padding)


def conv_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for an `nn.Conv2d`, through `conv2d` (NNPACK where faster) if it is a plain
    stride-1 zero-padded conv."""
    if (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and conv.padding[0] == conv.padding[1]
    ):
        return conv2d(x, conv.weight, conv.bias, padding=conv.padding[0])
    return conv._conv_forward(x, conv.weight, conv.bias)


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters and state_dict keys) whose stride-1 forward uses `conv2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_forward(self, x)


def use_nnpack(module: nn.Module) -> nn.Module:
    """Make every `nn.Conv2d` in `module` a `Conv2d`, in place: the same module objects,
    parameters and state_dict, their forward through `conv2d`. Returns `module`."""
    for m in module.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = Conv2d
    return module
