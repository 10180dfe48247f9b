"""Stroke scale, in one place: how large a network paints, relative to the scale it was made for.

A user asks for a scale (`stroke_scale=`, the web app's slider), a network file may carry its own
(its style preset's, `meta["stroke_scale"]`); the network paints at their product. Both, and the
product, lie in STROKE_SCALE_RANGE. `paint_at_scale` is the operation itself: resize the photo
down by the scale, run the network, bring the painting back to the photo's size and add back the
photo's fine luminance detail the small size lost. Stylizer runs it in Python and export.py
traces the same function into ONNX / TorchScript graphs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from fastnst.color import luma
from fastnst.errors import FastNSTError, as_real_number

# the stroke scales a user may ask for, a network file may carry, and their product may reach
STROKE_SCALE_RANGE = (0.25, 8.0)


def shown(value, limit: int = 60) -> str:
    """repr(value) on one line, at most `limit` characters: for messages naming a bad value
    (a tensor's or a nested structure's repr spans lines and pages)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_stroke_scale(value, *, source: str = "stroke_scale") -> float:
    """`value` as a float in STROKE_SCALE_RANGE, or a one-line FastNSTError naming `source` (e.g.
    "stroke_scale", "style.stroke_scale", "model.pt: meta stroke_scale"). A real number only:
    strings ("2") and booleans are refused, as are nan and infinities."""
    low, high = STROKE_SCALE_RANGE
    number = as_real_number(value)
    if number is None:
        raise FastNSTError(
            f"{source} must be a number between {low:g} and {high:g}, got {shown(value)}"
        )
    if not math.isfinite(number) or not low <= number <= high:
        raise FastNSTError(f"{source} must be between {low:g} and {high:g}, got {shown(value)}")
    return number


def combined_stroke_scale(user, network, *, source: str = "stroke_scale") -> float:
    """The scale the network paints at: the user's times the network's own, each and the product
    in STROKE_SCALE_RANGE (a network carrying 0.25 run at 0.25 would enlarge each side 16x)."""
    user = check_stroke_scale(user, source=source)
    network = check_stroke_scale(network, source="the network's own stroke_scale")
    product = user * network
    low, high = STROKE_SCALE_RANGE
    if not low <= product <= high:
        raise FastNSTError(
            f"{source}={user:g} times the network's own stroke scale {network:g} is {product:g}, "
            f"outside {low:g}..{high:g}; use a stroke_scale between "
            f"{max(low, low / network):g} and {min(high, high / network):g} for this network"
        )
    return product


def network_stroke_scale(meta, *, source: str = "model") -> float:
    """A network file's own stroke scale (meta["stroke_scale"]), checked; 1.0 when absent."""
    value = meta.get("stroke_scale") if isinstance(meta, dict) else None
    if value is None:
        return 1.0
    return check_stroke_scale(value, source=f"{source}: meta stroke_scale")


def check_stroke_scales(value, *, source: str = "stroke_scales") -> dict[str, float]:
    """A multi-style network's own scale per style, {style name: scale}, each checked; a one-line
    FastNSTError naming `source` otherwise (e.g. "model.pt: meta stroke_scales")."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise FastNSTError(
            f"{source} must be a mapping of style names to stroke scales, e.g. {{wave: 1.5}}, "
            f"got {shown(value)}"
        )
    return {k: check_stroke_scale(v, source=f"{source}.{k}") for k, v in value.items()}


def network_stroke_scales(meta, styles: Sequence[str] | None, *, source: str = "model"):
    """A multi-style network file's own stroke scale for each of its `styles`, in their order
    (meta["stroke_scales"], {style: scale}; a style it leaves out paints at the file's
    `stroke_scale`); None when the file sets none. Names must be the network's styles."""
    value = meta.get("stroke_scales") if isinstance(meta, dict) else None
    if value is None:
        return None
    scales = check_stroke_scales(value, source=f"{source}: meta stroke_scales")
    if not styles:
        raise FastNSTError(
            f"{source}: meta stroke_scales gives scales per style, but this network has one style"
        )
    unknown = sorted(set(scales) - set(styles))
    if unknown:
        raise FastNSTError(
            f"{source}: meta stroke_scales names {', '.join(unknown)}, not a style of this "
            f"network ({', '.join(styles)})"
        )
    base = network_stroke_scale(meta, source=source)
    return [scales.get(name, base) for name in styles]


def blended_stroke_scale(scales: Sequence[float], weights) -> float:
    """The scale a multi-style network paints a style or a blend at: the style weights' (summing
    to 1) mean of the styles' own scales (one style: its own)."""
    return float(sum(float(w) * s for w, s in zip(weights, scales)))


def style_stroke_scale(style, *, source: str = "style.stroke_scale") -> float:
    """A style preset's / config's `stroke_scale` (the scale a network trained on it paints at),
    checked; 1.0 when it sets none (or for a style that is not a mapping, e.g. a multi-style
    list, whose members paint at 1). Train calls it before any work, so a bad value never
    reaches a network file's meta."""
    value = style.get("stroke_scale") if hasattr(style, "get") else None
    return 1.0 if value is None else check_stroke_scale(value, source=source)


def scaled_side(side, scale: float):
    """The side a photo's `side` px is painted at for `scale`: side / scale rounded half up
    (at least 1). Works on ints and on traced 0-d tensors alike, so the exported graphs size
    their resize exactly like Stylizer."""
    if isinstance(side, torch.Tensor):
        return torch.clamp(torch.floor(side.float() / scale + 0.5), min=1).long()
    return max(1, math.floor(side / scale + 0.5))


def resize(t: torch.Tensor, size) -> torch.Tensor:
    """Bicubic with antialiasing, clamped to [0, 1] (fastnst.images.resize_tensor, which this
    must equal; the size may be traced tensors)."""
    return F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(
        0, 1
    )


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> the Rec. 601 luma of each pixel, repeated over the 3 channels."""
    return luma(rgb).unsqueeze(1).expand_as(rgb)


def paint_at_scale(
    photo: torch.Tensor, scale: float, forward: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The network (`forward`) painting `photo` (B, 3, H, W) at stroke scale `scale` (combined,
    already checked): for 2.0 the network runs on the photo at half size, the painting is brought
    back to full size, and the band of the photo's detail the half size lost is added back as
    luminance only (edges and texture stay sharp without the photo's colours creeping back).
    Below 1.0 the network runs on an enlarged photo (finer strokes)."""
    if scale == 1.0:
        return forward(photo)
    h, w = photo.shape[-2], photo.shape[-1]
    small = resize(photo, (scaled_side(h, scale), scaled_side(w, scale)))
    painted = resize(forward(small).float().to(photo.device), (h, w))
    if scale > 1.0:
        detail = photo - resize(small, (h, w))
        painted = painted + luminance(detail)
    return painted
