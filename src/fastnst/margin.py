"""Painting with a mirrored margin: the photo is mirrored outward by a margin on every side, the
network paints the larger picture, and the margin is cut away again.

Why: a network can learn to paint something tied to the picture's border rather than to what is
there (the_scream's networks paint a flat orange band under the top edge of every picture, even
of a plain grey one; the border is the only place a convolutional network can tell where it is).
With a margin it paints that band into the mirrored margin, which is cut off.

A network file's meta `margin` is in the network's own pixels (from its style preset's `margin`;
0 or absent: none); at stroke scale s it is ceil(margin x s) photo pixels. The mirror is built
from index arithmetic (not F.pad's reflect, which needs a margin below the side), so it works on
any size and traces into ONNX and TorchScript with dynamic height and width."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from fastnst.errors import FastNSTError
from fastnst.stroke import shown

# wider than any border effect of these networks (the_scream's band is ~45 network px)
MAX_MARGIN = 256


def check_margin(value, *, source: str = "margin") -> int:
    """`value` as a whole number of pixels in 0..MAX_MARGIN, else a one-line FastNSTError."""
    whole = isinstance(value, int | float) and not isinstance(value, bool)
    if not (whole and math.isfinite(value) and value == int(value) and 0 <= value <= MAX_MARGIN):
        raise FastNSTError(
            f"{source} must be a whole number of pixels from 0 to {MAX_MARGIN}, got {shown(value)}"
        )
    return int(value)


def network_margin(meta: Mapping, *, source: str = "model") -> int:
    """The margin (network pixels) a network file's meta asks for; 0 when it names none."""
    value = meta.get("margin")
    return 0 if value is None else check_margin(value, source=f"{source}: meta margin")


def preset_margin(style: Mapping | None) -> int:
    """A style preset's `margin` (style.margin; 0 when it sets none or there is no style)."""
    value = None if style is None else style.get("margin")
    return 0 if value is None else check_margin(value, source="style.margin")


def photo_margin(margin: int, scale: float) -> int:
    """The margin in photo pixels of a network painting at stroke scale `scale`."""
    return math.ceil(margin * scale) if margin else 0


def _mirror_index(n, margin: int, device: torch.device) -> torch.Tensor:
    """Source index of each position -margin .. n+margin-1 of a side of n pixels mirrored at its
    ends (edge pixel not repeated, as F.pad's reflect); beyond a second mirror, the edge pixel."""
    i = torch.arange(n + 2 * margin, device=device) - margin
    last = n - 1
    return (last - (last - i.abs()).abs()).clamp(0, last)


def mirror_pad(x: torch.Tensor, margin: int) -> torch.Tensor:
    """(..., H, W) -> (..., H + 2 margin, W + 2 margin), the picture mirrored at its edges."""
    h, w = x.shape[-2], x.shape[-1]
    rows = _mirror_index(h, margin, x.device)
    cols = _mirror_index(w, margin, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def paint_with_margin(
    photo: torch.Tensor, margin: int, paint: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """`paint` (photo -> picture of the same size) run on `photo` mirrored outward by `margin`
    photo pixels, the margin cut from the result."""
    if margin <= 0:
        return paint(photo)
    painted = paint(mirror_pad(photo, margin))
    return painted[..., margin:-margin, margin:-margin]
