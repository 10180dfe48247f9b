"""Run a transformer on huge images in overlapping tiles, in bounded memory, without seams.

Two things make tiles visible: instance norm (each tile would normalize with its own
statistics) and the border of each tile (the net sees padding there). The first is removed by
running the net once on a downscaled copy of the whole image, recording every InstanceNorm's
per-channel mean/variance, and handing those statistics to the forward of every tile
(`TransformerNet.forward(x, stats=...)`, or `fastnst.accel.fused.forward` for the fused CPU
forward). The second by overlapping tiles and blending them with feathered (linear ramp) weights.
"""

from __future__ import annotations

import math
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


# -- painting at a stroke scale below 1, tile by tile ------------------------------------------
#
# At stroke scale s < 1 the network runs on the photo enlarged by 1/s and its painting is brought
# back to the photo's size: resize(net(resize(photo, (H/s, W/s))), (H, W)). Built whole, the
# enlarged photo and painting need (1/s)^2 times the photo's memory (16x at s = 0.25) before the
# network's own activations. Both resizes are separable linear maps (bicubic with antialiasing,
# PIL's kernel, as `fastnst.images.resize_tensor`), so each tile of the enlarged photo is made
# from a band of the photo, and each tile's painting, weighted by its share of the feathered
# blend, is reduced straight into the photo-sized result: nothing larger than a tile is ever
# held at the enlarged size.


def _cubic_aa(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resize_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D resize `in_size` -> `out_size` of `resize_tensor` (bicubic with antialiasing) as
    (first input index (out,), weights (out, taps)): output i = sum_j weights[i, j] *
    input[first[i] + j]. Weights past the input's end are 0."""
    scale = in_size / out_size
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (torch.arange(out_size, dtype=torch.float64) + 0.5)
    first = (center - support + 0.5).trunc().clamp(min=0).long()
    end = (center + support + 0.5).trunc().clamp(max=in_size).long()
    taps = int(math.ceil(2 * support)) + 2
    index = first[:, None] + torch.arange(taps)[None, :]
    weights = _cubic_aa((index - center[:, None] + 0.5) * inverse)
    weights = torch.where(index < end[:, None], weights, torch.zeros_like(weights))
    weights = weights / weights.sum(1, keepdim=True)
    return first, weights


def _resize_block(
    taps: tuple[torch.Tensor, torch.Tensor], out_lo: int, out_hi: int, in_lo: int, in_hi: int
) -> torch.Tensor:
    """Rows out_lo..out_hi, columns in_lo..in_hi of a resize's (out, in) matrix, dense float32
    (taps outside the columns are dropped: callers pick columns that hold them all, or the
    rows' share of a tile)."""
    first, weights = taps
    first, weights = first[out_lo:out_hi], weights[out_lo:out_hi]
    index = first[:, None] + torch.arange(weights.shape[1])[None, :] - in_lo
    keep = (index >= 0) & (index < in_hi - in_lo) & (weights != 0)
    block = torch.zeros(out_hi - out_lo, in_hi - in_lo, dtype=torch.float64)
    rows = torch.arange(out_hi - out_lo)[:, None].expand_as(index)
    block.index_put_((rows[keep], index[keep]), weights[keep], accumulate=True)
    return block.float()


def _input_band(taps, out_lo: int, out_hi: int, in_size: int) -> tuple[int, int]:
    """The input indices rows out_lo..out_hi of a resize read."""
    first, weights = taps
    used = weights[out_lo:out_hi] != 0
    last = first[out_lo:out_hi] + used.shape[1] - 1 - used.flip(1).int().argmax(1)
    return int(first[out_lo:out_hi].min()), min(in_size, int(last.max()) + 1)


def _rows_reading(taps, in_lo: int, in_hi: int) -> tuple[int, int]:
    """The output rows of a resize that read any input index in in_lo..in_hi."""
    first, weights = taps
    used = weights != 0
    last = first + used.shape[1] - 1 - used.flip(1).int().argmax(1)
    hit = ((first < in_hi) & (last >= in_lo)).nonzero()
    return int(hit.min()), int(hit.max()) + 1


def _normalised_windows(length: int, tile: int, overlap: int):
    """[(start, end, weights)] of the tiles along one axis, the weights divided by their sum
    over all tiles (so the blend of a pixel's tiles sums to exactly 1)."""
    spans = _spans(length, tile, overlap)
    windows = [_window(start, end - start, length, overlap) for start, end in spans]
    total = torch.zeros(length)
    for (start, end), w in zip(spans, windows):
        total[start:end] += w
    return [(start, end, w / total[start:end]) for (start, end), w in zip(spans, windows)]


@torch.no_grad()
def tiled_enlarged_forward(
    net: nn.Module,
    photo: torch.Tensor,
    size: tuple[int, int],
    tile: int,
    overlap: int | None = None,
    stats_side: int = STATS_SIDE,
    style: torch.Tensor | None = None,
    forward: Callable = plain_forward,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """resize(tiled_forward(net, resize(photo, size), tile, ...), photo's size) for a `size`
    larger than the photo (a stroke scale below 1), in memory bounded by the tile: each tile of
    the enlarged photo is resized from its band of the photo, and its painting reduced straight
    into the (B, 3, H, W) float32 result. `prepare`: the runner's move of a tile to its device
    and dtype. Equals the whole-image computation to float rounding, but for the instance-norm
    statistics, measured on the photo resized once to `stats_side` (not twice)."""
    b, _, h, w = photo.shape
    big_h, big_w = size
    prepare = prepare or (lambda x: x)
    photo = photo.float()
    if big_h <= tile and big_w <= tile:
        painted = forward(net, prepare(resize_tensor(photo, size)), style, None).float()
        return resize_tensor(painted.to(photo.device), (h, w))
    overlap = max(8, tile // 4) if overlap is None else overlap
    overlap = min(overlap, tile // 2)
    small = resize_tensor(photo, fit_size(big_h, big_w, min(stats_side, max(big_h, big_w))))
    stats = record_instance_norm_stats(net, prepare(small), stats_side, style)
    del small
    up_y, up_x = resize_taps(h, big_h), resize_taps(w, big_w)
    down_y, down_x = resize_taps(big_h, h), resize_taps(big_w, w)
    columns = []
    for x0, x1, wx in _normalised_windows(big_w, tile, overlap):
        ix0, ix1 = _input_band(up_x, x0, x1, w)
        px0, px1 = _rows_reading(down_x, x0, x1)
        columns.append(
            (
                wx.to(photo.device),
                ix0,
                ix1,
                _resize_block(up_x, x0, x1, ix0, ix1).to(photo.device),
                px0,
                px1,
                _resize_block(down_x, px0, px1, x0, x1).to(photo.device),
            )
        )
    out = torch.zeros(b, 3, h, w, dtype=torch.float32, device=photo.device)
    for y0, y1, wy in _normalised_windows(big_h, tile, overlap):
        iy0, iy1 = _input_band(up_y, y0, y1, h)
        py0, py1 = _rows_reading(down_y, y0, y1)
        enlarge_y = _resize_block(up_y, y0, y1, iy0, iy1).to(photo.device)
        reduce_y = _resize_block(down_y, py0, py1, y0, y1).to(photo.device)
        wy = wy.to(photo.device)
        strip = torch.matmul(enlarge_y, photo[:, :, iy0:iy1])  # (B, C, tile rows, W)
        for wx, ix0, ix1, enlarge_x, px0, px1, reduce_x in columns:
            crop = torch.matmul(strip[..., ix0:ix1], enlarge_x.T).clamp_(0, 1)
            piece = forward(net, prepare(crop), style, stats).float().to(photo.device)
            piece = piece * (wy[:, None] * wx[None, :])
            out[:, :, py0:py1, px0:px1] += torch.matmul(torch.matmul(reduce_y, piece), reduce_x.T)
    return out.clamp_(0, 1)
