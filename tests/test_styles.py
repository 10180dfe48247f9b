"""fastnst.styles, the style registry: every fact about a named painting has one home, and
everything that needs one (the judge, the zoo, the paintings, the download script, the GPU run,
the recipe study) reads it there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fastnst import styles
from fastnst.bundled import bundled_painting, painting_path
from fastnst.config import CONFIG_DIR
from fastnst.judge import painting_size
from tests.helpers import REPO, make_image


def test_every_registered_style_has_its_preset_and_public_domain_ones_their_painting():
    for name, style in styles.STYLES.items():
        assert style.preset_file == CONFIG_DIR / "style" / f"{name}.yaml"
        assert OmegaConf.load(style.preset_file).name == name  # the preset's own name
        assert (bundled_painting(name) is not None) == style.public_domain, name
        assert bool(style.sources) == style.public_domain, name  # downloadable iff public domain


def test_aliases_are_read_from_the_presets_that_name_another_preset():
    found = styles.aliases()
    assert found, "conf/style holds an alias preset (style=<alias> trains the style it names)"
    for alias, name in found.items():
        assert name in styles.STYLES and alias not in styles.STYLES
        assert styles.canonical_name(alias) == name and styles.get_style(alias).name == name
        assert painting_size(alias) == painting_size(name)
        assert bundled_painting(alias) == bundled_painting(name)
    assert styles.canonical_name("my_painting") == "my_painting"
    assert styles.get_style("custom") is None


def test_published_output_names_come_from_the_registry_and_unknown_styles_have_none(tmp_path):
    for name in styles.johnson_styles():
        published = styles.STYLES[name].published
        assert styles.published_output(tmp_path, name) == (
            tmp_path / "reference" / "johnson2016" / f"chicago_{published}.jpg"
        )
    for alias, name in styles.aliases().items():
        assert styles.published_output(tmp_path, alias) == styles.published_output(tmp_path, name)
    assert styles.published_output(tmp_path, "shipwreck_of_the_minotaur") is None
    assert styles.published_output(tmp_path, "custom") is None


def test_judge_sizes_default_for_styles_the_registry_does_not_know():
    assert painting_size("custom") == styles.DEFAULT_JUDGE_SIZE
    assert painting_size("udnie", own_side=100) == 100  # never enlarged past the file's own side


def test_painting_lookup_prefers_the_users_copy_then_the_bundled_one(tmp_path):
    name = styles.public_domain_styles()[0]
    assert painting_path(tmp_path, name) == str(bundled_painting(name))
    mine = make_image(tmp_path / "styles" / f"{name}.jpg", size=(32, 32))
    assert painting_path(tmp_path, name) == str(mine)
    # not public domain: the user's path, so the missing-file error names the file to provide
    assert painting_path(tmp_path, "la_muse") == str(tmp_path / "styles" / "la_muse.jpg")


@pytest.mark.data
def test_the_data_folder_holds_every_published_output_the_registry_names(data_dir):
    for name, style in styles.STYLES.items():
        if style.published:
            assert styles.published_output(data_dir, name).is_file(), name


def test_bench_recipe_has_a_johnson_row_for_every_style_with_a_published_output(tmp_path):
    """The recipe study's table compares its rows with Johnson et al. 2016's published output;
    for the_scream the file is chicago_scream.jpg (the registry's name), not the style's."""
    data = tmp_path / "data"
    make_image(data / "content" / "chicago.jpg", size=(40, 32), seed=1)
    make_image(data / "styles" / "the_scream.jpg", size=(48, 48), seed=2)
    make_image(styles.published_output(data, "the_scream"), size=(40, 32), seed=3)
    env = {**os.environ, "FASTNST_DATA": str(data), "OMP_WAIT_POLICY": "PASSIVE"}
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench" / "bench_recipe.py"),
            "--style",
            "the_scream",
            "--report-only",
            "--variants",
            "base",
            "--photos",
            "chicago",
            "--size",
            "32",
            "--runs-dir",
            str(runs),
            "--warm-from",
            str(tmp_path / "none.pt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(Path(runs / "the_scream" / "recipe.json").read_text())
    assert [r["variant"] for r in rows] == ["photo", "johnson2016"]
