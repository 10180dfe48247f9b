"""The temporal-stability training term (fastnst.temporal): hermetic, synthetic images."""

from __future__ import annotations

import pytest
import torch

from fastnst.temporal import TransformRange, random_affine, temporal_loss, warp
from fastnst.transformer import TransformerNet


def test_identity_network_has_zero_loss_without_noise():
    photos = torch.rand(2, 3, 32, 32)
    limits = TransformRange(shift=3, rotation=2, scale=0.05, noise=0)
    loss = temporal_loss(
        torch.nn.Identity(), photos, photos, limits, torch.Generator().manual_seed(0)
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


def test_noise_alone_costs_its_variance_for_the_identity():
    photos = torch.full((4, 3, 48, 48), 0.5)
    limits = TransformRange(shift=0, rotation=0, scale=0, noise=0.05)
    loss = temporal_loss(
        torch.nn.Identity(), photos, photos, limits, torch.Generator().manual_seed(0)
    )
    assert loss.item() == pytest.approx(0.05**2, rel=0.1)


def test_random_affine_stays_within_limits_and_is_seeded():
    limits = TransformRange(shift=4, rotation=0, scale=0)
    a = random_affine(16, 32, 32, limits, torch.Generator().manual_seed(1))
    b = random_affine(16, 32, 32, limits, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.allclose(a[:, :, :2], torch.eye(2).expand(16, 2, 2), atol=1e-6)
    assert a[:, :, 2].abs().max() <= 4 and a[:, :, 2].abs().max() > 1


def test_warp_by_whole_pixels_shifts_the_image():
    image = torch.rand(1, 3, 16, 16)
    matrix = torch.tensor([[[1.0, 0, 2], [0, 1, 1]]])  # 2 px right, 1 px down
    moved = warp(image, matrix)
    assert torch.allclose(moved[..., 1:, 2:], image[..., :-1, :-2], atol=1e-5)


def test_gradient_reaches_the_network_and_lowers_the_term():
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1)
    photos = torch.rand(2, 3, 32, 32)
    limits = TransformRange(noise=0.02)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(15):
        loss = temporal_loss(net, photos, net(photos), limits, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert sum(losses[-3:]) < sum(losses[:3])


def test_bad_transform_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        TransformRange.from_config({"shfit": 3})
    with pytest.raises(ValueError, match=">= 0"):
        TransformRange.from_config({"noise": -1})
    for bad in ("nan", "inf"):  # a crop of nan would fail deep inside the first training step
        with pytest.raises(ValueError, match="finite and >= 0"):
            TransformRange.from_config({"crop": float(bad)})


def test_the_crop_term_penalises_a_strip_painted_along_the_top():
    """A network that paints a flat band along the image's top edge is invisible to the warp
    (its mask drops the border) but not to a window whose top lies inside the photo."""

    def strip(x):
        y = x.clone()
        y[..., :6, :] = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
        return y

    photos = torch.rand(2, 3, 40, 48)
    warp_only = TransformRange(shift=2, rotation=0, scale=0, noise=0)
    with_crop = TransformRange(shift=2, rotation=0, scale=0, noise=0, crop=0.6)

    def mean_term(net, limits):
        g = torch.Generator().manual_seed(0)
        return sum(float(temporal_loss(net, photos, net(photos), limits, g)) for _ in range(8)) / 8

    assert mean_term(lambda x: x, with_crop) < 1e-8  # an equivariant network pays nothing
    assert mean_term(strip, with_crop) > 5 * mean_term(strip, warp_only)


def test_crop_must_be_a_fraction_below_one():
    with pytest.raises(ValueError, match="crop is a fraction"):
        TransformRange.from_config({"crop": 1.5})
    assert TransformRange.from_config({"crop": 0.75}).crop == 0.75
