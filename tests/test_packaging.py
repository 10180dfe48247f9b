"""Packaging: the Hydra configs ship inside the package (an installed wheel has no repo around
it), and an installed fastnst puts its default data/ and outputs/ under the current folder."""

from __future__ import annotations

import glob
import os
from importlib.resources import files
from pathlib import Path

import pytest

import fastnst.config
from fastnst.config import CONFIG_DIR, REPO_ROOT
from tests.helpers import compose_config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PACKAGE_DIR = Path(fastnst.config.__file__).resolve().parent
# the primary config of each fastnst-* command (fastnst.cli: config_path, config_name)
PRIMARY = [
    "train.yaml",
    "gatys.yaml",
    "app.yaml",
    "inference/stylize.yaml",
    "inference/export.yaml",
    "inference/evaluate.yaml",
]


def _package_data_files() -> set[Path]:
    """The files pyproject's package-data globs select, expanded as setuptools does
    (glob relative to the package folder, ** recursive)."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["fastnst"]
    return {
        Path(p).resolve()
        for pattern in patterns
        for p in glob.glob(os.path.join(PACKAGE_DIR, pattern), recursive=True)
        if os.path.isfile(p)
    }


def test_configs_live_in_the_package():
    assert CONFIG_DIR.resolve().parent == PACKAGE_DIR
    conf = files("fastnst") / "conf"
    for name in PRIMARY:
        assert conf.joinpath(*name.split("/")).is_file(), f"fastnst/conf/{name} missing"


def test_package_data_covers_every_config_file():
    shipped = _package_data_files()
    on_disk = [
        p for p in CONFIG_DIR.resolve().rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(on_disk) >= 40  # every group of conf/, not an empty folder
    missing = [str(p.relative_to(PACKAGE_DIR)) for p in on_disk if p.resolve() not in shipped]
    assert not missing, f"not in pyproject's [tool.setuptools.package-data]: {missing}"


def test_repo_conf_links_to_the_package_configs():
    # conf/... in the docs, tests and users' commands keep working in a checkout
    assert (REPO_ROOT / "conf").resolve() == CONFIG_DIR.resolve()


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """fastnst as if installed from a wheel (not in a source checkout), run from tmp_path."""
    monkeypatch.setattr(fastnst.config, "IN_CHECKOUT", False)
    monkeypatch.delenv("FASTNST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_installed_defaults_are_under_the_current_folder(installed):
    from fastnst.evaluate import default_cache_dir, default_data_dir

    paths = compose_config("train", "style=wave").paths
    assert Path(paths.output_root) == installed / "outputs"
    assert Path(paths.data_dir) == installed / "data"
    evaluate = compose_config("evaluate", "run=x", config_dir=CONFIG_DIR / "inference")
    assert Path(evaluate.cache_dir).is_relative_to(installed)
    assert Path(evaluate.data_dir) == installed / "data"
    assert default_data_dir() == installed / "data"
    assert default_cache_dir().is_relative_to(installed)


def test_checkout_defaults_stay_in_the_repo(monkeypatch, tmp_path):
    # `python train.py` from anywhere in a checkout keeps writing into the repo's outputs/
    monkeypatch.chdir(tmp_path)
    assert Path(compose_config("train", "style=wave").paths.output_root) == REPO_ROOT / "outputs"
