"""style.py: which files a style config means, their weights, and the loss built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fastnst.bundled import bundled_painting
from fastnst.config import CONFIG_DIR
from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.style import build_loss, style_image_paths, style_summary
from fastnst.styles import public_domain_styles

PUBLIC_DOMAIN = tuple(public_domain_styles())  # the style registry's (fastnst.styles)


def style_cfg(**keys):
    base = {
        "name": "custom",
        "image": None,
        "images": None,
        "weights": None,
        "images_dir": None,
        "size": None,
        "beta_scale": 1.0,
    }
    return OmegaConf.create({**base, **keys})


@pytest.fixture
def three_images(image_factory):
    return [image_factory(f"s{i}.png", size=(24, 24), seed=i) for i in range(3)]


# ---------------------------------------------------------------- which files


def test_precedence_images_then_images_dir_then_image(three_images, tmp_path):
    a, b, c = three_images
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x.png").write_bytes(c.read_bytes())
    full = style_cfg(images=[str(a), str(b)], images_dir=str(folder), image=str(c))
    assert style_image_paths(full) == ([a, b], None)
    assert style_image_paths(style_cfg(images_dir=str(folder), image=str(a))) == (
        [folder / "x.png"],
        None,
    )
    assert style_image_paths(style_cfg(image=str(a))) == ([a], None)


def test_weights_are_returned_as_floats(three_images):
    paths, weights = style_image_paths(
        style_cfg(images=[str(p) for p in three_images[:2]], weights=[3, 1])
    )
    assert weights == [3.0, 1.0] and all(isinstance(w, float) for w in weights)


@pytest.mark.parametrize(
    "weights, message",
    [
        ([1.0], "style.weights has 1 entries for 2 style images"),
        ([1.0, 2.0, 3.0], "has 3 entries for 2"),
        ([1.0, -1.0], "non-negative"),
        ([0, 0], "positive sum"),
        (["a", "b"], "list of numbers"),
    ],
)
def test_bad_weights(three_images, weights, message):
    cfg = style_cfg(images=[str(p) for p in three_images[:2]], weights=weights)
    with pytest.raises(FastNSTError, match=message):
        style_image_paths(cfg)


def test_weights_count_checked_against_a_folder_too(three_images):
    folder = three_images[0].parent
    with pytest.raises(FastNSTError, match="2 entries for 3 style images"):
        style_image_paths(style_cfg(images_dir=str(folder), weights=[1, 1]))


def test_missing_style_file_message(tmp_path):
    missing = tmp_path / "styles" / "wave.jpg"
    with pytest.raises(FastNSTError) as info:
        style_image_paths(style_cfg(name="wave", image=str(missing)))
    msg = str(info.value)
    assert str(missing) in msg and "download_styles.py wave" in msg and "style.image=" in msg
    assert "\n" not in msg
    with pytest.raises(FastNSTError) as info:  # a custom style: no preset name to download
        style_image_paths(style_cfg(images=[str(tmp_path / "mine.png")]))
    assert "mine.png" in str(info.value) and "style.image=" in str(info.value)


def preset(name: str, data_dir: Path):
    return OmegaConf.create(
        {
            "paths": {"data_dir": str(data_dir)},
            "style": OmegaConf.load(CONFIG_DIR / "style" / f"{name}.yaml"),
        }
    ).style


@pytest.mark.parametrize("name", ["la_muse", "candy", "mosaic", "feathers", "rain_princess"])
def test_preset_config_points_into_fastnst_data(tmp_path, name):
    # the presets that are not public domain interpolate ${paths.data_dir}: with an empty data
    # folder the error names the exact file the user must provide
    with pytest.raises(FastNSTError, match=f"{tmp_path}/styles/{name}.jpg: style image not found"):
        style_image_paths(preset(name, tmp_path))


@pytest.mark.parametrize("name", PUBLIC_DOMAIN)
def test_public_domain_preset_falls_back_to_the_bundled_painting(tmp_path, name):
    paths, _ = style_image_paths(preset(name, tmp_path))  # an empty data folder
    assert paths == [bundled_painting(name)]
    assert paths[0].parent.name == "paintings" and paths[0].stat().st_size > 50_000


def test_user_painting_wins_over_the_bundled_one(tmp_path, image_factory):
    mine = image_factory("styles/wave.jpg")
    paths, _ = style_image_paths(preset("wave", tmp_path))
    assert paths == [mine]


def test_bundled_paintings_stay_small():
    # the package grows by at most ~3 MB for them
    sizes = [bundled_painting(name).stat().st_size for name in PUBLIC_DOMAIN]
    assert sum(sizes) <= 3_000_000
    assert bundled_painting("la_muse") is None  # not public domain: never bundled


def test_scream_loss_builds_offline_from_the_bundled_painting(tmp_path, monkeypatch):
    # a fresh machine: no FASTNST_DATA, an empty data folder; `style=scream` still trains
    from tests.helpers import compose_config

    monkeypatch.delenv("FASTNST_DATA", raising=False)
    cfg = compose_config("train", "style=scream", f"paths.data_dir={tmp_path}")
    assert cfg.style.image == str(bundled_painting("the_scream"))
    loss = build_loss(LOSS, cfg.style, style_size=32)
    expected = loss.style_grams(load_image(bundled_painting("the_scream"), cfg.style.size))
    assert torch.allclose(loss.style_targets["block1_conv1"], expected["block1_conv1"], atol=1e-6)


@pytest.mark.parametrize(
    "keys, message",
    [
        ({}, "no style image"),
        (
            {"images_dir": "/nonexistent/folder"},
            "/nonexistent/folder: style.images_dir is not a folder",
        ),
    ],
)
def test_no_usable_style(keys, message):
    with pytest.raises(FastNSTError, match=message):
        style_image_paths(style_cfg(**keys))


def test_empty_style_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no paintings here")
    with pytest.raises(FastNSTError, match="holds no images"):
        style_image_paths(style_cfg(images_dir=str(tmp_path)))


@pytest.mark.data
def test_shared_data_has_the_preset_paintings(data_dir):
    for name in PUBLIC_DOMAIN:
        cfg = OmegaConf.create(
            {
                "paths": {"data_dir": str(data_dir)},
                "style": OmegaConf.load(CONFIG_DIR / "style" / f"{name}.yaml"),
            }
        )
        paths, _ = style_image_paths(cfg.style)
        assert paths == [data_dir / "styles" / f"{name}.jpg"]


# ---------------------------------------------------------------- the loss


LOSS = OmegaConf.create(
    {
        "_target_": "fastnst.losses.PerceptualLoss",
        "content_layers": {"block1_conv2": 1.0},
        "style_layers": {"block1_conv1": 1.0},
        "alpha": 1.0,
        "beta": 2.0,
        "tv_weight": 0.0,
    }
)


@pytest.mark.parametrize("beta_scale, beta", [(1.0, 2.0), (3.0, 6.0), (0.0, 0.0), (None, 2.0)])
def test_build_loss_applies_beta_scale(three_images, beta_scale, beta):
    loss = build_loss(LOSS, style_cfg(image=str(three_images[0]), beta_scale=beta_scale))
    assert loss.beta == beta and loss.alpha == 1.0
    assert loss.has_style


def test_build_loss_targets_use_size_and_weights(three_images, image_factory):
    a, b = three_images[:2]
    loss = build_loss(LOSS, style_cfg(images=[str(a), str(b)], weights=[1, 3], size=16))
    ga = loss.style_grams(load_image(a, 16))["block1_conv1"]
    gb = loss.style_grams(load_image(b, 16))["block1_conv1"]
    assert torch.allclose(loss.style_targets["block1_conv1"], 0.25 * ga + 0.75 * gb, atol=1e-6)
    # size null: the caller's size (Gatys passes the output size)
    big = image_factory("big.png", size=(48, 48))
    loss = build_loss(LOSS, style_cfg(image=str(big)), style_size=20)
    expected = loss.style_grams(load_image(big, 20))["block1_conv1"]
    assert torch.allclose(loss.style_targets["block1_conv1"], expected, atol=1e-6)


def test_build_loss_fails_on_a_bad_style_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    with pytest.raises(FastNSTError, match="bad.png: not an image"):
        build_loss(LOSS, style_cfg(image=str(bad)))


def test_style_summary():
    assert style_summary(style_cfg(name="wave")) == "wave"
    assert isinstance(style_summary(style_cfg()), str)


def test_relative_style_path_resolves_from_launch_dir(three_images, monkeypatch):
    monkeypatch.chdir(three_images[0].parent)
    paths, _ = style_image_paths(style_cfg(image=three_images[0].name))
    assert paths == [Path(three_images[0].name)] and paths[0].exists()


@pytest.mark.slow
def test_wheel_ships_the_bundled_paintings(tmp_path):
    # package data: a regular (non-editable) install must carry them too
    import shutil
    import subprocess
    import sys
    import zipfile

    from fastnst.config import REPO_ROOT

    skip = {
        ".git",
        ".venv",
        ".gpu_bundle",
        "outputs",
        "data",
        "build",
    }  # at the top only: not conf/data

    def ignore(folder, names):
        return [n for n in names if n in skip] if Path(folder) == REPO_ROOT else []

    src = tmp_path / "src_copy"  # a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(REPO_ROOT, src, ignore=ignore, symlinks=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("fastnst-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PUBLIC_DOMAIN:
        assert f"fastnst/paintings/{name}.jpg" in names
    assert "fastnst/paintings/README.md" in names
    # and the Hydra configs the fastnst-* commands compose
    for path in CONFIG_DIR.rglob("*.yaml"):
        assert f"fastnst/conf/{path.relative_to(CONFIG_DIR).as_posix()}" in names
