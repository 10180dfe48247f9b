"""losses.py: Gram, content/style/TV terms and PerceptualLoss (targets cached once)."""

from __future__ import annotations

import pytest
import torch

from fastnst.images import load_image
from fastnst.losses import (
    PerceptualLoss,
    chroma_tv_loss,
    content_loss,
    gram_matrix,
    style_loss,
    tv_loss,
)
from fastnst.vgg import VGG19Features

CONTENT = {"block2_conv1": 1.0}
STYLE = {"block1_conv1": 0.5, "block1_conv2": 2.0}


@pytest.fixture(scope="module")
def shallow_vgg() -> VGG19Features:
    return VGG19Features(["block1_conv1", "block1_conv2", "block2_conv1"])


@pytest.fixture
def make_loss(shallow_vgg):
    def factory(**kwargs):
        kwargs = {"content_layers": CONTENT, "style_layers": STYLE, "vgg": shallow_vgg, **kwargs}
        return PerceptualLoss(**kwargs)

    return factory


@pytest.fixture
def photo(image_factory) -> torch.Tensor:
    return load_image(image_factory("photo.png", size=(32, 24), seed=1))


@pytest.fixture
def painting(synthetic_style) -> torch.Tensor:
    return load_image(synthetic_style, size=32)


# ---------------------------------------------------------------- the terms


def test_gram_matrix_by_hand():
    # C=2, H=W=2: channel 0 = [1, 2, 3, 4], channel 1 = [0, 1, 0, 1]
    f = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]]).view(1, 2, 2, 2)
    expected = torch.tensor([[30.0, 6.0], [6.0, 2.0]]) / (2 * 2 * 2)
    g = gram_matrix(f)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g[0], expected)
    batch = gram_matrix(torch.cat([f, 2 * f]))  # one Gram per image
    assert torch.allclose(batch[1], 4 * expected)


def test_gram_stays_float32_under_autocast():
    f = torch.rand(2, 8, 6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f)
    assert g.dtype == torch.float32
    assert torch.allclose(g, gram_matrix(f), atol=1e-6)  # no bf16 rounding crept in


def test_content_loss_is_mse_and_broadcasts_a_single_target():
    a, b = torch.rand(2, 4, 3, 3), torch.rand(1, 4, 3, 3)
    assert torch.allclose(content_loss(a, b), ((a - b) ** 2).mean())
    assert content_loss(a, a) == 0


def test_style_loss_is_mse_between_grams():
    g, t = torch.rand(3, 4, 4), torch.rand(1, 4, 4)
    assert torch.allclose(style_loss(g, t), ((g - t) ** 2).mean())
    assert style_loss(t, t.half()) < 1e-6  # a half-precision target still compares in fp32


def test_tv_loss_by_hand():
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).expand(1, 3, 2, 2)  # horizontal steps of 1
    assert tv_loss(x).item() == pytest.approx(1.0)
    assert tv_loss(x.transpose(-1, -2)).item() == pytest.approx(1.0)
    assert tv_loss(torch.full((1, 3, 5, 5), 0.3)).item() == 0


def _grating(colour: tuple[float, float, float]) -> torch.Tensor:
    """(1, 3, 16, 16) grey 0.5 plus a 2 px stripe pattern along `colour` (an RGB direction)."""
    stripes = (torch.arange(16) % 2).float().view(1, 1, 1, 16) - 0.5
    return (0.5 + 0.2 * stripes * torch.tensor(colour).view(1, 3, 1, 1)).expand(1, 3, 16, 16)


def test_chroma_tv_sees_colour_detail_and_not_luminance_detail():
    grey_stripes = _grating((1.0, 1.0, 1.0))  # a luminance grating: painted strokes
    fringes = _grating((1.0, -1.0, 0.0))  # a red-green grating of the same amplitude
    assert chroma_tv_loss(grey_stripes).item() == pytest.approx(0.0, abs=1e-7)
    assert tv_loss(grey_stripes).item() > 0
    assert chroma_tv_loss(fringes).item() > 0.05


def test_chroma_tv_weight_adds_its_term_and_its_gradient_flattens_colour_only(make_loss, photo):
    loss = make_loss(alpha=0.0, beta=0.0, chroma_tv_weight=2.0)
    loss.set_style([photo])
    for colour, painted in (((1.0, -1.0, 0.0), True), ((1.0, 1.0, 1.0), False)):
        image = _grating(colour).clone().requires_grad_(True)
        t = loss(image, loss.content_features(image.detach()))
        assert t["chroma_tv"].item() == pytest.approx(chroma_tv_loss(image).item())
        assert t["total"].item() == pytest.approx(2.0 * t["chroma_tv"].item())
        t["total"].backward()
        if not painted:  # grey stripes (strokes in luminance): nothing to pay, nothing to move
            assert image.grad.abs().max().item() == 0
            continue
        with torch.no_grad():  # a small step down the gradient: less colour detail
            stepped = image - 1e-3 * image.grad / image.grad.abs().max()
        assert chroma_tv_loss(stepped) < chroma_tv_loss(image.detach())
