"""Inference-only forward of an instance-normalized TransformerNet on CPU, with the memory passes
between convolutions fused away.

In the plain forward at 512 px the convolutions take about half the time; the rest is instance
norm (training-mode batch norm: several passes over each map), ReLU, reflection padding (a copy of
every conv input), pixel shuffle (another copy) and the sub-pixel kernels recomputed on every call.
Here each conv output gets its statistics from a matrix-vector product and a norm, then one pass
applies the per-channel affine map (+ ReLU, + the residual add) and writes straight into the
interior of the next conv's padded input (pixel-shuffled on the way after the sub-pixel upsampling
convs); the thin padding borders are then filled by copying slices. Same arithmetic as the plain
forward, up to float rounding (tests/test_fused.py).

Used by `TransformerNet.forward` only when no gradient is needed and `fastconv.fast_path_allowed`
(eager fp32 on CPU, not traced, exported or compiled), for instance norm only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastnst import fastconv

# fall back to the two-pass variance where mean^2 > this x variance (fp32 cancellation ~1e-4)
_CANCELLATION_LIMIT = 1000.0


def _padded_empty(like: torch.Tensor, channels: int, height: int, width: int, pad: int) -> torch.Tensor:
    return like.new_empty(like.shape[0], channels, height + 2 * pad, width + 2 * pad)


def _interior(buf: torch.Tensor, pad: int) -> torch.Tensor:
    return buf[..., pad:buf.shape[-2] - pad, pad:buf.shape[-1] - pad]


def _fill_border(buf: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Fill the `pad`-wide frame of `buf` from its interior, as F.pad(mode=reflect|replicate)."""
    h, w = buf.shape[-2] - 2 * pad, buf.shape[-1] - 2 * pad
    rows = slice(pad, pad + h)
    for i in range(pad):  # columns first (interior rows), then full-width rows: corners come out right
        src_left, src_right = (2 * pad - i, pad + w - 1 - (pad - i)) if mode == "reflect" else (pad, pad + w - 1)
        buf[..., rows, i] = buf[..., rows, src_left]
        buf[..., rows, pad + w + (pad - 1 - i)] = buf[..., rows, src_right]
    for i in range(pad):
        src_top, src_bottom = (2 * pad - i, pad + h - 1 - (pad - i)) if mode == "reflect" else (pad, pad + h - 1)
        buf[..., i, :] = buf[..., src_top, :]
        buf[..., pad + h + (pad - 1 - i), :] = buf[..., src_bottom, :]
    return buf


def _norm_coefficients(x: torch.Tensor, norm: torch.nn.InstanceNorm2d):
    """Per-(sample, channel) scale and shift of instance norm over x (B, C * k, H, W): the k
    consecutive channels of each norm channel (k = 4: the pixel-shuffle phases of one map) are
    pooled."""
    b = x.shape[0]
    frozen = norm.__dict__.get("frozen_statistics")  # tiling.frozen_instance_norm: whole-image stats
    if frozen is not None:
        mean, var = (t.reshape(b, -1).to(x.dtype) for t in frozen)
    else:
        rows = x.reshape(b * norm.num_features, -1)
        n = rows.shape[1]
        # var_mean is ~10x slower than a matrix-vector product and a norm on CPU (both vectorized
        # and threaded); E[x^2] - E[x]^2 is exact enough unless the mean dwarfs the spread
        mean = torch.mv(rows, rows.new_ones(n)) / n
        var = torch.linalg.vector_norm(rows, dim=-1).square_() / n - mean.square()
        if bool((mean.square() > _CANCELLATION_LIMIT * var).any()):
            var, mean = torch.var_mean(rows, dim=-1, correction=0)
        mean, var = mean.view(b, -1), var.view(b, -1)
    scale = torch.rsqrt(var + norm.eps)
    if norm.__dict__.get("style_weights") is not None:  # conditional instance norm: (B, C) per style mix
        weight, bias = norm.style_affine(b)
    else:
        weight, bias = norm.weight, norm.bias
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return scale, shift


def _norm_into(x: torch.Tensor, norm, dest: torch.Tensor, relu: bool, skip: torch.Tensor | None = None) -> None:
    """dest = [relu](norm(x) [+ skip]) in one elementwise pass (plus the ReLU's), x (B, C, H, W)."""
    scale, shift = _norm_coefficients(x, norm)
    scale, shift = scale[..., None, None], shift[..., None, None]
    if skip is None:
        torch.addcmul(shift, x, scale, out=dest)
    else:
        torch.addcmul(skip.add_(shift), x, scale, out=dest)  # the skip input is dead afterwards
    if relu:
        dest.clamp_min_(0)


def _shuffle_norm_into(y: torch.Tensor, norm, dest: torch.Tensor) -> None:
    """dest (B, C, 2h, 2w view) = relu(norm(pixel_shuffle(y))) for y (B, 4C, h, w), in one pass."""
    b, c4, h, w = y.shape
    c = c4 // 4
    scale, shift = _norm_coefficients(y, norm)
    phases = y.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, h, i, w, j)
    torch.addcmul(shift[..., None, None, None, None], phases, scale[..., None, None, None, None],
                  out=dest.view(b, c, h, 2, w, 2))
    dest.clamp_min_(0)


def _conv_to_padded(layer, x: torch.Tensor, pad: int, mode: str, relu: bool = True,
                    skip: torch.Tensor | None = None) -> torch.Tensor:
    """ConvLayer (conv + instance norm [+ ReLU]) on padded x, written into a buffer padded by `pad`."""
    y = layer[1](x)  # the layer's fastconv.Conv2d (NNPACK where faster) on the padded input
    buf = _padded_empty(y, y.shape[1], y.shape[-2], y.shape[-1], pad)
    _norm_into(y, layer[2], _interior(buf, pad), relu, skip)
    return _fill_border(buf, pad, mode)


def _upsample_to_padded(up, x_padded: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """UpsampleConv (2x) on a replicate-padded input, via its cached sub-pixel kernels."""
    kernels, bias = up.subpixel_kernels()
    y = fastconv.conv2d(x_padded, kernels, bias)
    c, h, w = y.shape[1] // 4, y.shape[-2], y.shape[-1]
    buf = _padded_empty(y, c, 2 * h, 2 * w, pad)
    _shuffle_norm_into(y, up.conv[2], _interior(buf, pad))
    return _fill_border(buf, pad, mode)


def can_fuse(net, x: torch.Tensor) -> bool:
    """Whether `fused_forward` computes net(x): instance norm, no gradient, the CPU fast path,
    sides divisible by 4 (each 2x upsampling must land on its skip's size), and no module of the
    net observed or patched (hooks, e.g. tiling recording instance-norm statistics), except for
    the frozen statistics of tiling, which the fused forward applies itself."""
    return (
        net.config["norm"] == "instance"
        and not torch.is_grad_enabled()
        and fastconv.fast_path_allowed(x)
        and x.shape[-2] % 4 == 0
        and x.shape[-1] % 4 == 0
        and min(x.shape[-2:]) >= 8
        and not _hooked(net)
    )


def _hooked(net) -> bool:
    from torch.nn.modules import module as nn_module

    if nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks:
        return True
    return any(
        m._forward_hooks or m._forward_pre_hooks
        or ("forward" in m.__dict__ and "frozen_statistics" not in m.__dict__)  # patched, not by tiling
        for m in net.modules()
    )


@torch.no_grad()
def fused_forward(net, x: torch.Tensor) -> torch.Tensor:
    """TransformerNet.forward for `can_fuse` inputs."""
    h = F.pad(x, (4, 4, 4, 4), mode="reflect")
    h = _conv_to_padded(net.down1, h, 1, "reflect")
    h = _conv_to_padded(net.down2, h, 1, "reflect")
    blocks = list(net.residuals)
    # residual blocks read the skip from the interior of the padded buffer their conv reads
    h = _conv_to_padded(net.down3, h, 1, "reflect" if blocks else "replicate")
    for i, block in enumerate(blocks):
        first, second = block.body
        a = _conv_to_padded(first, h, 1, "reflect")
        last = i == len(blocks) - 1
        # the last block feeds the sub-pixel upsampling, which wants replicate padding
        h = _conv_to_padded(second, a, 1, "replicate" if last else "reflect", relu=False,
                            skip=_interior(h, 1))
    h = _upsample_to_padded(net.up1, h, 1, "replicate")
    h = _upsample_to_padded(net.up2, h, 4, "reflect")
    return torch.sigmoid_(net.out[1](h))
