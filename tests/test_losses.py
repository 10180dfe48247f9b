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


# ---------------------------------------------------------------- PerceptualLoss


def test_all_terms_are_returned_and_zero_for_the_target_image(make_loss, photo):
    loss = make_loss(alpha=2.0, beta=3.0, tv_weight=0.0)
    loss.set_style([photo])
    terms = loss(photo, loss.content_features(photo))
    assert set(terms) == {
        "total",
        "content",
        "style",
        "tv",
        "chroma_tv",
        "content/block2_conv1",
        "style/block1_conv1",
        "style/block1_conv2",
    }
    for name, value in terms.items():
        assert value.dim() == 0 and value.item() == pytest.approx(0.0, abs=1e-10), name


def test_total_is_the_weighted_sum_of_its_terms(make_loss, photo, painting):
    loss = make_loss(alpha=2.0, beta=3.0, tv_weight=0.5)
    loss.set_style([painting])
    image = torch.rand_like(photo, requires_grad=True)
    t = loss(image, loss.content_features(photo))
    assert t["content"] > 0 and t["style"] > 0 and t["tv"] > 0
    assert t["content"] == pytest.approx(t["content/block2_conv1"].item())
    assert t["style"].item() == pytest.approx(
        0.5 * t["style/block1_conv1"].item() + 2.0 * t["style/block1_conv2"].item()
    )
    assert t["tv"].item() == pytest.approx(tv_loss(image).item())
    assert t["total"].item() == pytest.approx(
        2.0 * t["content"].item() + 3.0 * t["style"].item() + 0.5 * t["tv"].item()
    )
    assert t["chroma_tv"].item() == 0  # its weight is 0: not computed
    # only the total carries gradients, and they reach the image, not the VGG
    assert t["total"].requires_grad and not t["style"].requires_grad
    t["total"].backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.vgg.parameters())


def test_style_term_matches_its_definition(make_loss, photo, painting):
    loss = make_loss()
    loss.set_style([painting])
    feats = loss.vgg(photo)
    t = loss(photo, loss.content_features(photo))
    for name in STYLE:
        expected = ((gram_matrix(feats[name]) - gram_matrix(loss.vgg(painting)[name])) ** 2).mean()
        assert t[f"style/{name}"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_weighted_style_targets_are_the_weighted_mean_of_grams(make_loss, photo, painting):
    loss = make_loss()
    loss.set_style([photo, painting], weights=[3.0, 1.0])  # different sizes are fine
    ga, gb = loss.style_grams(photo), loss.style_grams(painting)
    for name in STYLE:
        assert torch.allclose(
            loss.style_targets[name], 0.75 * ga[name] + 0.25 * gb[name], atol=1e-6
        )
    loss.set_style([photo, painting])  # default: equal weights
    assert torch.allclose(
        loss.style_targets["block1_conv1"], (ga["block1_conv1"] + gb["block1_conv1"]) / 2
    )


@pytest.mark.parametrize("weights", [[1.0], [1.0, -0.5], [0.0, 0.0]])
def test_bad_style_weights(make_loss, photo, weights):
    with pytest.raises(ValueError, match="weight"):
        make_loss().set_style([photo, photo], weights)


def test_forward_before_set_style_raises(make_loss, photo):
    loss = make_loss()
    assert not loss.has_style
    with pytest.raises(RuntimeError, match="set_style"):
        loss(photo, loss.content_features(photo))
    loss.set_style([photo])
    assert loss.has_style


def test_set_style_targets_directly(make_loss, photo, painting):
    loss = make_loss()
    grams = make_loss().style_grams(painting)
    loss.set_style_targets(grams)
    other = make_loss()
    other.set_style([painting])
    a, b = loss(photo, loss.content_features(photo)), other(photo, other.content_features(photo))
    assert a["style"].item() == pytest.approx(b["style"].item())
    with pytest.raises(ValueError, match="block1_conv2"):
        loss.set_style_targets({"block1_conv1": grams["block1_conv1"]})


def test_targets_follow_to_but_stay_float32(make_loss, photo):
    loss = make_loss(
        vgg=VGG19Features(["block1_conv1", "block1_conv2", "block2_conv1"])
    )  # not the shared one
    loss.set_style([photo])
    before = loss.style_targets["block1_conv1"].clone()
    loss.half()  # e.g. Lightning's "16-true": Grams would underflow in fp16
    assert loss.style_targets["block1_conv1"].dtype == torch.float32
    assert torch.equal(loss.style_targets["block1_conv1"], before)
    loss.to("meta")  # no GPU here: the meta device shows that targets move with the module
    assert {t.device.type for t in loss.style_targets.values()} == {"meta"}
    assert next(loss.vgg.parameters()).device.type == "meta"


def test_targets_are_not_in_the_state_dict(make_loss, photo):
    loss = make_loss()
    loss.set_style([photo])
    assert all(k.startswith("vgg.convs.") for k in loss.state_dict())


def test_layer_arguments(photo, shallow_vgg):
    loss = PerceptualLoss(
        content_layers="block1_conv2", style_layers=["block1_conv1"], vgg=shallow_vgg
    )
    assert loss.content_weights == {"block1_conv2": 1.0} and loss.style_weights == {
        "block1_conv1": 1.0
    }
    with pytest.raises(ValueError, match="block3_conv1"):
        PerceptualLoss(content_layers=["block3_conv1"], style_layers=STYLE, vgg=shallow_vgg)


def test_builds_its_own_vgg_with_exactly_the_needed_layers():
    loss = PerceptualLoss(content_layers=["block1_conv2"], style_layers={"block1_conv1": 1.0})
    assert set(loss.vgg.layers) == {"block1_conv1", "block1_conv2"}
    assert list(loss.vgg.convs) == ["block1_conv1", "block1_conv2"]


def test_batch_of_images_against_one_content_target(make_loss, photo):
    loss = make_loss()
    loss.set_style([photo])
    batch = torch.cat([photo, photo])
    t = loss(batch, loss.content_features(photo))
    assert t["total"].item() == pytest.approx(0.0, abs=1e-5)  # batched convs round differently
    assert (
        loss(torch.cat([photo, torch.rand_like(photo)]), loss.content_features(photo))["content"]
        > 1
    )


def test_pooling_reaches_the_vgg_it_builds_and_presets_keep_max_pooling():
    avg = PerceptualLoss(
        content_layers=["block2_conv1"], style_layers={"block1_conv1": 1.0}, pooling="avg"
    )
    assert avg.vgg.pooling == "avg"
    assert PerceptualLoss(["block2_conv1"], {"block1_conv1": 1.0}).vgg.pooling == "max"
    assert PerceptualLoss.preset("johnson").vgg.pooling == "max"
    assert PerceptualLoss.preset("johnson", pooling="avg").vgg.pooling == "avg"


@pytest.mark.data
@pytest.mark.parametrize("style", ["udnie", "starry_night"])
def test_johnson_avg_keeps_the_balance_of_johnsons_terms(data_dir, style):
    """Average pools shrink the deeper terms; johnson_avg's layer weights scale them back, so
    each weighted term stays near johnson.yaml's (max-pool) value for a photo vs a painting."""
    photo = load_image(data_dir / "content" / "chicago.jpg", 128)
    painting = load_image(data_dir / "styles" / f"{style}.jpg", 128)
    terms = {}
    for name in ("johnson", "johnson_avg"):
        loss = PerceptualLoss.preset(name)
        loss.set_style([painting])
        t = loss(photo, loss.content_features(photo))
        terms[name] = {
            layer: w * float(t[f"style/{layer}"]) for layer, w in loss.style_weights.items()
        }
    assert PerceptualLoss.preset("johnson_avg").vgg.pooling == "avg"
    for layer, weighted in terms["johnson"].items():
        assert weighted / 3 < terms["johnson_avg"][layer] < weighted * 3, layer


@pytest.mark.parametrize("key", ["alpha", "beta", "tv_weight", "chroma_tv_weight"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_non_finite_or_negative_weight_is_one_line_naming_it(make_loss, key, value):
    from fastnst.errors import FastNSTError

    with pytest.raises(FastNSTError, match=rf"^loss\.{key} must be a finite number >= 0"):
        make_loss(**{key: value})
