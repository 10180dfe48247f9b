"""The 2x upsample-then-conv of `transformer.UpsampleConv` computed at the low resolution.

reflect_pad(upsample2x(x)) equals upsample2x(replicate_pad(x)), so conv(reflect_pad(upsample2x(x)))
is, for each of the 4 output phases, a 3x3 conv of the small map with the taps summed (Shi et al.
2016's pixel shuffle): the same multiply count, but no 4x-sized intermediates, and the wider
low-resolution conv suits NNPACK's Winograd path. Same result up to float rounding, gradients
included (tests/test_fastconv.py).

Opt in: `use_subpixel(net)` makes the net's `UpsampleConv`s `SubPixelUpsampleConv`s in place
(state_dict unchanged); they take this path where `fastconv.fast_path_allowed` (eager fp32 on CPU,
not traced, exported or compiled) and the upsampling is an exact 2x. The fused forward
(`fused.py`) uses `subpixel_kernels` directly.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.accel import fastconv
from fastnst.transformer import UpsampleConv

# Which original 3x3 taps (columns) land on which low-resolution tap (rows) for output phase 0
# (rows i-1, i, i of the upsampled map) and phase 1 (rows i, i, i+1).
_PHASE_TAPS = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    ]
)

# UpsampleConv -> (weight versions, (kernels, bias)): the inference kernels, recomputed when the
# weights change; kept beside the modules, not in them, and dropped with them
_kernel_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def applies(up: UpsampleConv, x: torch.Tensor, size) -> bool:
    """Whether `up(x, size)` may take the sub-pixel path."""
    return (
        fastconv.fast_path_allowed(x)  # first: never reached while tracing or exporting
        and up.mode == "nearest"  # the phase kernels are nearest upsampling's
        and up.conv[1].kernel_size == (3, 3)
        and tuple(size) == (2 * x.shape[-2], 2 * x.shape[-1])
    )


def subpixel_conv(up: UpsampleConv, x_padded: torch.Tensor) -> torch.Tensor:
    """conv(reflect_pad(upsample2x(x))) of `up`'s conv, before its norm, for a replicate-padded x
    (B, C, h + 2, w + 2): (B, cout, 2h, 2w)."""
    kernels, bias = subpixel_kernels(up)
    return F.pixel_shuffle(fastconv.conv2d(x_padded, kernels, bias), 2)


def subpixel_kernels(up: UpsampleConv) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (4 * cout, cin, 3, 3) phase kernels and bias of `up`'s conv, phase-major per output
    channel; cached while the weights stay the same and no gradient must flow into them (inference)."""
    conv = up.conv[1]
    if torch.is_grad_enabled() and conv.weight.requires_grad:
        return _phase_kernels(conv)
    key = tuple((p.data_ptr(), p._version) for p in (conv.weight, conv.bias) if p is not None)
    cached = _kernel_cache.get(up)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = _kernel_cache[up] = (key, _phase_kernels(conv))
    return cached[1]


def _phase_kernels(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    taps = _PHASE_TAPS.to(conv.weight)
    kernels = torch.einsum("api,ocij,bqj->oabcpq", taps, conv.weight, taps)
    kernels = kernels.reshape(-1, conv.in_channels, 3, 3).contiguous()
    bias = None if conv.bias is None else conv.bias.repeat_interleave(4)
    return kernels, bias


class SubPixelUpsampleConv(UpsampleConv):
    """`UpsampleConv` (same parameters and state_dict) taking the sub-pixel path where it applies."""

    def forward(self, x, size):
        if not applies(self, x, size):
            return super().forward(x, size)
        y = subpixel_conv(self, F.pad(x, (1, 1, 1, 1), mode="replicate"))
        for layer in list(self.conv)[2:]:  # norm, ReLU
            y = layer(y)
        return y


def use_subpixel(module: nn.Module) -> nn.Module:
    """Make every `UpsampleConv` in `module` a `SubPixelUpsampleConv`, in place (the same
    objects, parameters and state_dict). Returns `module`."""
    for m in module.modules():
        if type(m) is UpsampleConv:
            m.__class__ = SubPixelUpsampleConv
    return module
