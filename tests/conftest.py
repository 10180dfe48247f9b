"""Shared fixtures. Unit tests are hermetic (synthetic images); tests marked `data` need the
shared data set through FASTNST_DATA and skip only when it is unset."""

from __future__ import annotations

import os
from pathlib import Path

from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()  # as every entry point: before torch loads, its OpenMP reads it only then

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fastnst.artifacts import save_exported  # noqa: E402
from fastnst.transformer import TransformerNet  # noqa: E402
from tests.helpers import compose_config, make_image, run_main, train_tiny  # noqa: E402

# At most 2 threads (or OMP_NUM_THREADS when set), and the same count for the train.py processes
# tests launch: results compared bit-for-bit with an in-process run must use the same kernels.
TEST_THREADS = int(os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1)))
torch.set_num_threads(TEST_THREADS)
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)
# Stylizer(backend=auto) measures the CPU paths on first use and caches the choice in the user's
# cache folder (accel/autotune.py): off for the suite, whose results are compared with the plain
# network; tests/test_autotune.py turns it on with its cache in tmp_path
os.environ.setdefault("FASTNST_AUTOTUNE", "0")


@pytest.fixture
def data_dir() -> Path:
    """The shared data set (styles/, content/, imagenet-mini/, ...). Skips when FASTNST_DATA is unset."""
    value = os.environ.get("FASTNST_DATA")
    if not value:
        pytest.skip("FASTNST_DATA is not set")
    path = Path(value)
    assert path.is_dir(), f"FASTNST_DATA={value} is not a folder"
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
    arr = np.stack([stripes * 230, (1 - stripes) * 60 + 20, stripes * 40 + 100], -1).astype(
        np.uint8
    )
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


@pytest.fixture
def run_entry(monkeypatch, capsys):
    """run_entry(main, *args) -> (exit code, stderr)."""

    def run(main, *args):
        return run_main(main, args, monkeypatch, capsys)[::2]

    return run


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_exported(
        tmp_path / "model.pt", TransformerNet(channels=(8, 16, 32), num_residual=1)
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One 2-step run on synthetic photos, shared by the tests of this module (run dir
    <tmp>/runs/starry_night/folder/johnson_half/now, the layout train.py uses)."""
    root = tmp_path_factory.mktemp("tiny_run")
    return train_tiny(
        root,
        "callbacks.images.every_n_steps=0",
        "trainer.val_check_interval=2",
        run_dir=root / "runs" / "starry_night" / "folder" / "johnson_half" / "now",
    )


@pytest.fixture
def marker(tmp_path) -> Path:
    """A file that code hidden in a hostile model file would create: it must stay absent."""
    return tmp_path / "code_ran"
