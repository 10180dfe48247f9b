"""Run a transformer on huge images in overlapping tiles, in bounded memory, without seams.

Two things make tiles visible: instance norm (each tile would normalize with its own
statistics) and the border of each tile (the net sees padding there). The first is removed by
running the net once on a downscaled copy of the whole image, recording every InstanceNorm's
per-channel mean/variance, and handing those statistics to the forward of every tile
(`TransformerNet.forward(x, stats=...)`, or `fastnst.accel.fused.forward` for the fused CPU
forward). The second by overlapping tiles and blending them with feathered (linear ramp) weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from fastnst.images import fit_size, resize_tensor

STATS_SIDE = 1024  # longer side of the copy the instance-norm statistics are measured on


def _instance_norms(net: nn.Module) -> list[nn.InstanceNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


@torch.no_grad()
def record_instance_norm_stats(
    net: nn.Module, image: torch.Tensor, side: int = STATS_SIDE, style: torch.Tensor | None = None
):
    """Per-InstanceNorm (mean, var) of shape (B, C, 1, 1), measured on `image` downscaled so its
    longer side is at most `side`. `style`: a multi-style network's style weights."""
    h, w = image.shape[-2:]
    if max(h, w) > side:
        image = resize_tensor(image, fit_size(h, w, side))
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(module, inputs, output):
        x = inputs[0].float()
        stats.append(
            (x.mean(dim=(2, 3), keepdim=True), x.var(dim=(2, 3), unbiased=False, keepdim=True))
        )

    handles = [m.register_forward_hook(hook) for m in _instance_norms(net)]
    try:
        net(image) if style is None else net(image, style)
    finally:
        for handle in handles:
            handle.remove()
    return stats


# The net's total stride: two stride-2 convs. A tile starting at a multiple of it sees the same
# downsampling grid as the whole image; at any other offset every pixel of the tile comes out
# different (a 1000x601 image tiled at 512 differed by 8/255 on average before tiles were aligned).
ALIGN = 4


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of tiles covering [0, length): every start a multiple of ALIGN, neighbours
    sharing at least `overlap` px, every tile `tile` long except the last, which ends at
    `length` and may be up to ALIGN - 1 px longer."""
    last = max(0, length - tile) // ALIGN * ALIGN
    if last == 0:
        return [(0, length)]
    step = (
        tile - overlap - ALIGN
    )  # rounding a start down to ALIGN may cost up to ALIGN - 1 px of overlap
    n = 1 + -(-last // step)  # ceil
    starts = [i * last // (n - 1) // ALIGN * ALIGN for i in range(n)]
    return [(start, start + tile) for start in starts[:-1]] + [(last, length)]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets (see `_spans`)."""
    return [start for start, _ in _spans(length, tile, overlap)]


def _window(start: int, tile: int, total: int, overlap: int) -> torch.Tensor:
    """1-D blend weights of one tile. Towards an edge shared with a neighbour the weight is 0 for
    the outer quarter of the overlap (outputs there see the tile's padding, not the image), then
    ramps linearly to 1 over the middle half; a neighbour's ramp is the exact complement."""
    margin, ramp = overlap // 4, overlap - 2 * (overlap // 4)
    d = torch.arange(tile, dtype=torch.float32)
    # strictly positive ramp values so the weights of neighbours never sum to 0
    rise = ((d - margin + 0.5) / ramp).clamp(0, 1)
    w = torch.ones(tile)
    if start > 0:
        w = torch.minimum(w, rise)
    if start + tile < total:
        w = torch.minimum(w, rise.flip(0))
    return w


def plain_forward(
    net: nn.Module, x: torch.Tensor, style: torch.Tensor | None = None, stats=None
) -> torch.Tensor:
    """`net(x, style, stats=stats)`: the TransformerNet layer by layer."""
    return net(x, style, stats=stats)


@torch.no_grad()
def tiled_forward(
    net: nn.Module,
    image: torch.Tensor,
    tile: int,
    overlap: int | None = None,
    stats_side: int = STATS_SIDE,
    style: torch.Tensor | None = None,
    forward: Callable = plain_forward,
) -> torch.Tensor:
    """`net(image)` (`net(image, style)` with a multi-style network's style weights) computed in
    tiles of `tile` px (overlap defaults to tile // 4). `forward(net, x, style, stats)` runs the
    net on the whole image or on each tile with the whole image's instance-norm statistics:
    `plain_forward`, or `fastnst.accel.fused.forward` (the fused CPU forward where it applies)."""
    b, c, h, w = image.shape
    if h <= tile and w <= tile:
        return forward(net, image, style, None)
    overlap = max(8, tile // 4) if overlap is None else overlap
    overlap = min(overlap, tile // 2)
    stats = record_instance_norm_stats(net, image, stats_side, style)
    out = torch.zeros(b, 3, h, w, dtype=torch.float32, device=image.device)
    weight = torch.zeros(1, 1, h, w, dtype=torch.float32, device=image.device)
    for y0, y1 in _spans(h, tile, overlap):
        wy = _window(y0, y1 - y0, h, overlap).to(image.device)
        for x0, x1 in _spans(w, tile, overlap):
            wx = _window(x0, x1 - x0, w, overlap).to(image.device)
            piece = forward(net, image[:, :, y0:y1, x0:x1], style, stats).float()
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, y0:y1, x0:x1] += piece * mask
            weight[:, :, y0:y1, x0:x1] += mask
    return out.div_(weight)
