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

Opt in: call `forward(net, x, style, stats)` instead of `net(x, style, stats=stats)` (the
Stylizer's torch runner and its tiles do). It takes the fused path only where that computes the
same thing (`can_fuse`: no gradient, `fastconv.fast_path_allowed`, i.e. eager fp32 on CPU, not
traced, exported or compiled, instance norm, sides divisible by 4, nothing hooked) and otherwise
calls the net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastnst.accel import fastconv
from fastnst.accel.subpixel import subpixel_kernels
from fastnst.transformer import ConditionalInstanceNorm2d, one_hot

# fall back to the two-pass variance where mean^2 > this x variance (fp32 cancellation ~1e-4)
_CANCELLATION_LIMIT = 1000.0


def _padded_empty(
    like: torch.Tensor, channels: int, height: int, width: int, pad: int
) -> torch.Tensor:
    return like.new_empty(like.shape[0], channels, height + 2 * pad, width + 2 * pad)


def _interior(buf: torch.Tensor, pad: int) -> torch.Tensor:
    return buf[..., pad : buf.shape[-2] - pad, pad : buf.shape[-1] - pad]


def _fill_border(buf: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Fill the `pad`-wide frame of `buf` from its interior, as F.pad(mode=reflect|replicate)."""
    h, w = buf.shape[-2] - 2 * pad, buf.shape[-1] - 2 * pad
    rows = slice(pad, pad + h)
    for i in range(
        pad
    ):  # columns first (interior rows), then full-width rows: corners come out right
        src_left, src_right = (
            (2 * pad - i, pad + w - 1 - (pad - i)) if mode == "reflect" else (pad, pad + w - 1)
        )
        buf[..., rows, i] = buf[..., rows, src_left]
        buf[..., rows, pad + w + (pad - 1 - i)] = buf[..., rows, src_right]
    for i in range(pad):
        src_top, src_bottom = (
            (2 * pad - i, pad + h - 1 - (pad - i)) if mode == "reflect" else (pad, pad + h - 1)
        )
        buf[..., i, :] = buf[..., src_top, :]
        buf[..., pad + h + (pad - 1 - i), :] = buf[..., src_bottom, :]
    return buf


def _norm_coefficients(x: torch.Tensor, norm: torch.nn.InstanceNorm2d, stats=None, style=None):
    """Per-(sample, channel) scale and shift of instance norm over x (B, C * k, H, W): the k
    consecutive channels of each norm channel (k = 4: the pixel-shuffle phases of one map) are
    pooled. `stats`: given (mean, var), each (B, C, 1, 1), instead of x's own (tiling's whole-image
    statistics); `style`: a conditional norm's style weights (N,) or (B, N)."""
    b = x.shape[0]
    if stats is not None:
        mean, var = (t.reshape(b, -1).to(x.dtype) for t in stats)
    else:
        rows = x.reshape(b * norm.num_features, -1)
        n = rows.shape[1]
        # var_mean is several times slower than a matrix-vector product and a norm on CPU (both
        # vectorized and threaded); E[x^2] - E[x]^2 is exact enough unless the mean dwarfs the spread
        mean = torch.mv(rows, rows.new_ones(n)) / n
        var = torch.linalg.vector_norm(rows, dim=-1).square_() / n - mean.square()
        if bool((mean.square() > _CANCELLATION_LIMIT * var).any()):
            var, mean = torch.var_mean(rows, dim=-1, correction=0)
        mean, var = mean.view(b, -1), var.view(b, -1)
    scale = torch.rsqrt(var + norm.eps)
    if isinstance(norm, ConditionalInstanceNorm2d):  # (B, C) for the style mix
        weight, bias = norm.style_affine(b, style)
    else:
        weight, bias = norm.weight, norm.bias
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return scale, shift


def _norm_into(
    x: torch.Tensor,
    norm,
    dest: torch.Tensor,
    relu: bool,
    skip: torch.Tensor | None = None,
    stats=None,
    style=None,
) -> None:
    """dest = [relu](norm(x) [+ skip]) in one elementwise pass (plus the ReLU's), x (B, C, H, W)."""
    scale, shift = _norm_coefficients(x, norm, stats, style)
    scale, shift = scale[..., None, None], shift[..., None, None]
    if skip is None:
        torch.addcmul(shift, x, scale, out=dest)
    else:
        torch.addcmul(skip.add_(shift), x, scale, out=dest)  # the skip input is dead afterwards
    if relu:
        dest.clamp_min_(0)


def _shuffle_norm_into(y: torch.Tensor, norm, dest: torch.Tensor, stats=None, style=None) -> None:
    """dest (B, C, 2h, 2w view) = relu(norm(pixel_shuffle(y))) for y (B, 4C, h, w), in one pass."""
    b, c4, h, w = y.shape
    c = c4 // 4
    scale, shift = _norm_coefficients(y, norm, stats, style)
    phases = y.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, h, i, w, j)
    torch.addcmul(
        shift[..., None, None, None, None],
        phases,
        scale[..., None, None, None, None],
        out=dest.view(b, c, h, 2, w, 2),
    )
    dest.clamp_min_(0)


class _Norms:
    """What each norm of one call normalizes with: its given statistics (or None) and the style."""

    def __init__(self, net, stats, style):
        norms = net.instance_norms()
        if stats is not None and len(stats) != len(norms):
            raise ValueError(f"{len(stats)} statistics for {len(norms)} instance norms")
        self.stats = dict(zip(norms, stats)) if stats is not None else {}
        self.style = style

    def args(self, norm) -> dict:
        return {"stats": self.stats.get(norm), "style": self.style}


def _conv_to_padded(
    layer,
    x: torch.Tensor,
    pad: int,
    mode: str,
    norms: _Norms,
    relu: bool = True,
    skip: torch.Tensor | None = None,
) -> torch.Tensor:
    """ConvLayer (conv + instance norm [+ ReLU]) on padded x, written into a buffer padded by `pad`."""
    y = fastconv.conv_forward(layer[1], x)  # NNPACK where faster, on the padded input
    buf = _padded_empty(y, y.shape[1], y.shape[-2], y.shape[-1], pad)
    _norm_into(y, layer[2], _interior(buf, pad), relu, skip, **norms.args(layer[2]))
    return _fill_border(buf, pad, mode)


def _upsample_to_padded(
    up, x_padded: torch.Tensor, pad: int, mode: str, norms: _Norms
) -> torch.Tensor:
    """UpsampleConv (2x) on a replicate-padded input, via its cached sub-pixel kernels."""
    kernels, bias = subpixel_kernels(up)
    y = fastconv.conv2d(x_padded, kernels, bias)
    c, h, w = y.shape[1] // 4, y.shape[-2], y.shape[-1]
    buf = _padded_empty(y, c, 2 * h, 2 * w, pad)
    _shuffle_norm_into(y, up.conv[2], _interior(buf, pad), **norms.args(up.conv[2]))
    return _fill_border(buf, pad, mode)


def can_fuse(net, x: torch.Tensor) -> bool:
    """Whether `fused_forward` computes net(x): instance norm, no gradient, the CPU fast path,
    sides divisible by 4 (each 2x upsampling must land on its skip's size), and no module of the
    net observed or replaced (forward hooks, e.g. tiling recording instance-norm statistics, or a
    forward swapped on the instance, e.g. torch.compile'd in place)."""
    return (
        net.config["norm"] == "instance"
        and net.upsample_mode == "nearest"  # its upsampling kernels copy 2x2 blocks
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
        m._forward_hooks
        or m._forward_pre_hooks
        or getattr(m.forward, "__func__", None) is not type(m).forward  # replaced on the instance
        for m in net.modules()
    )


def forward(net, x: torch.Tensor, style: torch.Tensor | None = None, stats=None) -> torch.Tensor:
    """`net(x, style, stats=stats)` (see `TransformerNet.forward`), fused where `can_fuse`."""
    if can_fuse(net, x):
        return fused_forward(net, x, style, stats)
    return net(x, style, stats=stats)


@torch.no_grad()
def fused_forward(
    net, x: torch.Tensor, style: torch.Tensor | None = None, stats=None
) -> torch.Tensor:
    """TransformerNet.forward for `can_fuse` inputs."""
    if net.styles and style is None:
        style = one_hot(0, len(net.styles), x)
    norms = _Norms(net, stats, style)
    h = F.pad(x, (4, 4, 4, 4), mode="reflect")
    h = _conv_to_padded(net.down1, h, 1, "reflect", norms)
    h = _conv_to_padded(net.down2, h, 1, "reflect", norms)
    blocks = list(net.residuals)
    # residual blocks read the skip from the interior of the padded buffer their conv reads
    h = _conv_to_padded(net.down3, h, 1, "reflect" if blocks else "replicate", norms)
    for i, block in enumerate(blocks):
        first, second = block.body
        a = _conv_to_padded(first, h, 1, "reflect", norms)
        last = i == len(blocks) - 1
        # the last block feeds the sub-pixel upsampling, which wants replicate padding
        h = _conv_to_padded(
            second,
            a,
            1,
            "replicate" if last else "reflect",
            norms,
            relu=False,
            skip=_interior(h, 1),
        )
    h = _upsample_to_padded(net.up1, h, 1, "replicate", norms)
    h = _upsample_to_padded(net.up2, h, 4, "reflect", norms)
    return torch.sigmoid_(fastconv.conv_forward(net.out[1], h))
