"""Training for temporal stability without optical-flow data.

A video frame is, locally, the previous frame moved a little plus sensor noise. A network whose
output follows such motion (stylize(T(x)) == T(stylize(x))) does not flicker. The loss below
draws a small random similarity transform T per photo (shift, rotation, scale; kornia) plus a
little Gaussian noise and penalises the mean squared difference between the two sides, over the
pixels T maps from inside the crop (ReCoNet, Gao et al. 2018; Gupta et al. 2017, in spirit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TransformRange:
    """Largest transform drawn: shift in px, rotation in degrees, relative scale change, noise
    standard deviation (on [0, 1] pixels). The defaults are a few frames of a slow camera.
    `crop` > 0 adds a second pair: a random window of that fraction of each side, stylized on its
    own against the same window of the stylized whole (`crop_loss`)."""

    shift: float = 4.0
    rotation: float = 1.0
    scale: float = 0.03
    noise: float = 0.02
    crop: float = 0.0

    @classmethod
    def from_config(cls, cfg: dict | None) -> TransformRange:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"shift", "rotation", "scale", "noise", "crop"}
        if unknown:
            raise ValueError(
                f"loss.temporal_transform: unknown key(s) {sorted(unknown)} (shift, rotation, scale, noise, crop)"
            )
        values = {k: float(v) for k, v in cfg.items()}
        if not all(math.isfinite(v) and v >= 0 for v in values.values()):
            raise ValueError(
                f"loss.temporal_transform: values must be finite and >= 0, got {values}"
            )
        if values.get("crop", 0.0) >= 1:
            raise ValueError(
                f"loss.temporal_transform.crop is a fraction of each side below 1 (0 = off), got {values['crop']}"
            )
        return cls(**values)


def random_affine(
    batch: int,
    height: int,
    width: int,
    limits: TransformRange,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, 2, 3) random similarity transforms about the image centre, drawn uniformly within
    `limits` on the CPU generator (so the training data order and init stay untouched)."""

    def uniform(bound: float, shape=(batch,)) -> torch.Tensor:
        return (torch.rand(shape, generator=generator) * 2 - 1) * bound

    center = torch.tensor([[(width - 1) / 2, (height - 1) / 2]]).expand(batch, 2)
    angle = uniform(limits.rotation)
    scale = (1 + uniform(limits.scale)).unsqueeze(1).expand(batch, 2)
    matrix = kornia.geometry.transform.get_rotation_matrix2d(center, angle, scale)
    return matrix + F.pad(uniform(limits.shift, (batch, 2)).unsqueeze(2), (2, 0))


def warp(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply (B, 2, 3) affine matrices (pixel coordinates) to (B, C, H, W) images, bilinear,
    zeros outside."""
    return kornia.geometry.transform.warp_affine(
        images,
        matrix.to(images),
        images.shape[-2:],
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )


def temporal_loss(
    net,
    photos: torch.Tensor,
    stylized: torch.Tensor,
    limits: TransformRange,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared difference between net(T(photos) + noise) and T(stylized), where
    stylized = net(photos), over the pixels T fills from inside the image."""
    b, _, h, w = photos.shape
    matrix = random_affine(b, h, w, limits, generator).to(photos.device)
    moved = warp(photos, matrix)
    if limits.noise:
        noise = torch.randn(photos.shape, generator=generator).to(photos) * limits.noise
        moved = (moved + noise).clamp(0, 1)
    # valid pixels: fully inside after warping a map of ones (bilinear edges count as invalid)
    valid = (warp(torch.ones_like(photos[:, :1]), matrix) > 0.999).to(photos.dtype)
    target = warp(stylized.float(), matrix)
    diff = (net(moved).float() - target).pow(2) * valid
    term = diff.sum() / (valid.sum() * photos.shape[1]).clamp_min(1)
    if limits.crop:
        term = term + crop_loss(net, photos, stylized, limits.crop, generator)
    return term


def crop_loss(
    net,
    photos: torch.Tensor,
    stylized: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared difference between net(window of photos) and the same window of stylized:
    a window's borders lie inside the photo, so anything a network paints along an image's
    border (a flat strip of the painting's sky along the top) is penalised, which the warp's
    mask above leaves alone. One random window (fraction of each side) per batch."""
    _, _, h, w = photos.shape
    ch, cw = max(8, round(h * fraction)), max(8, round(w * fraction))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    window = (..., slice(top, top + ch), slice(left, left + cw))
    return (net(photos[window]).float() - stylized.float()[window]).pow(2).mean()
