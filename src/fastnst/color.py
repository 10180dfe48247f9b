"""Colour preservation (Gatys et al. 2017, luminance-only transfer): keep the photo's chroma."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb


def transfer_luminance(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luminance (Y) of `stylized` with the chroma (Cb, Cr) of `photo`; both (B, 3, H, W) in [0, 1].

    The photo is resized to the stylized image's size if needed.
    """
    if photo.shape[-2:] != stylized.shape[-2:]:
        photo = F.interpolate(photo, size=stylized.shape[-2:], mode="bilinear", align_corners=False)
    y = rgb_to_ycbcr(stylized)[:, :1]
    cbcr = rgb_to_ycbcr(photo.to(stylized.dtype))[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)
