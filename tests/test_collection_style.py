"""Collection styles (style=anime, style.images_dir=...): the target is the mean of the per-image
Gram targets, with optional seeded random crops, in Gatys mode and in training."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fastnst.config import CONFIG_DIR
from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.style import build_loss, mean_style_grams, style_image_paths
from fastnst.train import build_system
from tests.helpers import compose_config, make_image

LOSS = OmegaConf.load(CONFIG_DIR / "loss" / "seed.yaml")


def style_cfg(**keys):
    base = {
        "name": "custom",
        "image": None,
        "images": None,
        "weights": None,
        "images_dir": None,
        "size": 32,
        "beta_scale": 1.0,
    }
    return OmegaConf.create({**base, **keys})


@pytest.fixture
def frames(tmp_path):
    """A folder of three frames of different sizes and looks."""
    folder = tmp_path / "frames"
    for i, size in enumerate([(48, 27), (40, 40), (64, 36)]):
        make_image(folder / f"{268 + i}.jpg", size=size, seed=20 + i)
    return folder


def per_image_mean(loss, paths, size):
    grams = [loss.style_grams(load_image(p, size)) for p in paths]
    return {name: sum(g[name] for g in grams) / len(grams) for name in grams[0]}


def assert_targets_equal(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7)


def test_target_is_the_mean_of_per_image_targets_and_crops_are_seeded(frames):
    loss = build_loss(LOSS, style_cfg(images_dir=str(frames)))
    paths, _ = style_image_paths(style_cfg(images_dir=str(frames)))
    assert len(paths) == 3
    assert_targets_equal(loss.style_targets, per_image_mean(loss, paths, 32))

    cropped = mean_style_grams(loss, paths, None, 32, crops=2)
    assert_targets_equal(cropped, mean_style_grams(loss, paths, None, 32, crops=2))  # seeded
    assert not torch.allclose(cropped["block1_conv1"], loss.style_targets["block1_conv1"])
    # one crop of a square image at its own size is the whole image
    square = [frames / "269.jpg"]
    assert_targets_equal(
        mean_style_grams(loss, square, None, 40, crops=1), mean_style_grams(loss, square, None, 40)
    )
    # weights still weigh images
    weighted = mean_style_grams(loss, paths[:2], [3.0, 1.0], 32)
    single = [loss.style_grams(load_image(p, 32)) for p in paths[:2]]
    torch.testing.assert_close(
        weighted["block2_conv1"],
        0.75 * single[0]["block2_conv1"] + 0.25 * single[1]["block2_conv1"],
    )


@pytest.mark.parametrize("crops", [-1, 1.5, "two"])
def test_bad_crops_value_is_a_user_error(frames, crops):
    with pytest.raises(FastNSTError, match="style.crops"):
        build_loss(
            LOSS, style_cfg(images_dir=str(frames), crops=crops), vgg_weights="/nonexistent/vgg.pth"
        )


def test_collection_is_not_held_in_memory(frames, monkeypatch):
    """Images are loaded one at a time: no more than one decoded style image alive at once."""
    import weakref

    import fastnst.style as style

    alive = []
    real = style.load_image

    def tracking(*args, **kwargs):
        image = real(*args, **kwargs)
        assert sum(ref() is not None for ref in alive) <= 1, (
            "earlier style images are still referenced"
        )
        alive.append(weakref.ref(image))
        return image

    monkeypatch.setattr(style, "load_image", tracking)
    build_loss(LOSS, style_cfg(images_dir=str(frames)))
    assert len(alive) == 3


@pytest.fixture
def anime_env(style_env, frames):
    """FASTNST_DATA with anime-standin/ holding the frames (what style=anime points at)."""
    (style_env / "anime-standin").symlink_to(frames, target_is_directory=True)
    return style_env


def test_gatys_mode_with_style_anime(anime_env, image_factory, tmp_path):
    from fastnst.apps.gatys import run_gatys

    photo = image_factory("photo.png", size=(40, 32), seed=3)
    cfg = compose_config(
        "gatys",
        "style=anime",
        "style.size=32",
        "style.crops=1",
        f"content={photo}",
        f"output={tmp_path / 'out.png'}",
        "size=32",
        "iterations=2",
        "scales=[1]",
        "progress=false",
        "device=cpu",
    )
    assert cfg.style.images_dir == str(anime_env / "anime-standin")
    result = run_gatys(cfg)
    assert (tmp_path / "out.png").exists() and result.best_iteration >= 1


def test_training_system_with_style_anime(anime_env, compose_train, photo_folder, frames):
    from tests.helpers import tiny

    cfg = compose_train(*tiny(photo_folder(4)), "style=anime", "style.size=32")
    assert cfg.style.name == "anime" and cfg.style.crops == 0
    system = build_system(cfg)
    loss = system.perceptual
    assert_targets_equal(loss.style_targets, per_image_mean(loss, sorted(frames.iterdir()), 32))
