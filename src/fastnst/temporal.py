"""Training for temporal stability without optical-flow data.

A video frame is, locally, the previous frame moved a little plus sensor noise. A network whose
output follows such motion (stylize(T(x)) == T(stylize(x))) does not flicker. The loss below
draws a small random similarity transform T per photo (shift, rotation, scale; kornia) plus a
little Gaussian noise and penalises the mean squared difference between the two sides, over the
pixels T maps from inside the crop (ReCoNet, Gao et al. 2018; Gupta et al. 2017, in spirit).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TransformRange:
    """Largest transform drawn: shift in px, rotation in degrees, relative scale change, noise
    standard deviation (on [0, 1] pixels). The defaults are a few frames of a slow camera."""

    shift: float = 4.0
    rotation: float = 1.0
    scale: float = 0.03
    noise: float = 0.02

    @classmethod
    def from_config(cls, cfg: dict | None) -> TransformRange:
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"shift", "rotation", "scale", "noise"}
        if unknown:
            raise ValueError(
                f"loss.temporal_transform: unknown key(s) {sorted(unknown)} (shift, rotation, scale, noise)"
            )
        values = {k: float(v) for k, v in cfg.items()}
        if any(v < 0 for v in values.values()):
            raise ValueError(f"loss.temporal_transform: values must be >= 0, got {values}")
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
    return diff.sum() / (valid.sum() * photos.shape[1]).clamp_min(1)
