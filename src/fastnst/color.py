"""Colour: Rec. 601 luma, opponent channels, and colour preservation (Gatys et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

# Rec. 601 luma weights of R, G, B
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (..., H, W) Rec. 601 luma, in the input's units."""
    r, g, b = rgb.unbind(-3)
    wr, wg, wb = LUMA_WEIGHTS
    return wr * r + wg * g + wb * b


def opponent_channels(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> luminance, red-green, yellow-blue (each in the input's units)."""
    r, g, b = images.unbind(-3)
    return torch.stack([luma(images), (r - g) / 2, (r + g) / 2 - b], dim=-3)


def transfer_luminance(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luminance (Y) of `stylized` with the chroma (Cb, Cr) of `photo`; both (B, 3, H, W) in [0, 1].

    The photo is resized to the stylized image's size if needed.
    """
    if photo.shape[-2:] != stylized.shape[-2:]:
        photo = F.interpolate(photo, size=stylized.shape[-2:], mode="bilinear", align_corners=False)
    y = rgb_to_ycbcr(stylized)[:, :1]
    cbcr = rgb_to_ycbcr(photo.to(stylized.dtype))[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)
