"""Shared fixtures. Unit tests are hermetic (synthetic images); tests marked `data` need the
shared data set through FASTNST_DATA and skip only when it is unset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def data_dir() -> Path:
    """The shared data set (styles/, content/, imagenet-mini/, ...). Skips when FASTNST_DATA is unset."""
    value = os.environ.get("FASTNST_DATA")
    if not value:
        pytest.skip("FASTNST_DATA is not set")
    path = Path(value)
    assert path.is_dir(), f"FASTNST_DATA={value} is not a folder"
    return path


def compose_config(config_name: str | None, *overrides: str, config_dir=None, **kwargs):
    """The config `python <entry>.py <overrides>` would see, through Hydra's compose API
    (config_dir: conf/ by default). Hydra's global state is cleared before and after, since the
    tests compose many configs in one process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from fastnst.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir or CONFIG_DIR), version_base="1.3"):
            return compose(config_name, overrides=list(overrides), **kwargs)
    finally:
        GlobalHydra.instance().clear()


def exit_code(fn, cfg) -> int:
    """The exit code of an entry point's plain function under the CLI's error handling."""
    from fastnst.cli import run_reporting_errors

    try:
        run_reporting_errors(fn, cfg)
    except SystemExit as e:
        return int(e.code)
    return 0


def make_image(path: Path, size=(64, 48), seed: int = 0, mode: str = "RGB") -> Path:
    """Write a smooth random colour image (gradients + blobs, so VGG sees structure)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-6, 6, 3)
        channels.append(0.5 + 0.5 * np.sin(a * xx + b * yy + c))
    arr = (np.stack(channels, -1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").convert(mode).save(path)
    return path


@pytest.fixture
def image_factory(tmp_path):
    """image_factory(name, size=(w, h), seed=0, mode="RGB") -> path of a synthetic image in tmp_path."""

    def factory(name="img.png", size=(64, 48), seed=0, mode="RGB"):
        return make_image(tmp_path / name, size=size, seed=seed, mode=mode)

    return factory


@pytest.fixture
def synthetic_style(tmp_path) -> Path:
    """A stripy, high-contrast 'painting' whose Grams differ clearly from a smooth photo."""
    h = w = 64
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = ((xx + yy) // 4) % 2
    arr = np.stack([stripes * 230, (1 - stripes) * 60 + 20, stripes * 40 + 100], -1).astype(np.uint8)
    path = tmp_path / "style.png"
    Image.fromarray(arr, "RGB").save(path)
    return path


@pytest.fixture
def compose_train(tmp_path):
    """compose_train(*overrides) -> the train config composed like `python train.py ...`, with
    run_dir in tmp_path (no Hydra runtime needed)."""

    def factory(*overrides, run_dir=None):
        return compose_config("train", *overrides, f"run_dir={run_dir or tmp_path / 'run'}")

    return factory


@pytest.fixture
def photo_folder(tmp_path):
    """photo_folder(n=8, size=(56, 48)) -> a folder of n synthetic photos."""

    def factory(n=8, size=(56, 48), name="photos"):
        folder = tmp_path / name
        for i in range(n):
            make_image(folder / f"{i:03d}.png", size=size, seed=100 + i)
        return folder

    return factory


@pytest.fixture
def style_env(monkeypatch, tmp_path, synthetic_style):
    """Point FASTNST_DATA's styles at a synthetic painting so presets resolve hermetically."""
    data = tmp_path / "data"
    (data / "styles").mkdir(parents=True)
    import shutil

    for name in ("starry_night", "the_scream"):
        shutil.copy(synthetic_style, data / "styles" / f"{name}.jpg")
    monkeypatch.setenv("FASTNST_DATA", str(data))
    return data
