"""The recipe study of scripts/bench/bench_recipe.py (fastnst.zoo.recipe, fastnst.zoo.scoring):
every variant is a valid override set of experiment=zoo, finished variants are skipped and
interrupted ones resumed, the labelled sheets (fastnst.sheets) and the table."""

from __future__ import annotations

import pytest
import torch

from fastnst.sheets import GAP, LABEL_HEIGHT, contact_sheet, labelled_strip
from fastnst.zoo import recipe
from fastnst.zoo.scoring import recipe_table
from tests.helpers import REPO, compose_config

SPECS = recipe.variants("starry_night", str(REPO / "src" / "fastnst" / "zoo" / "wave.pt"))


def overrides(tmp_path, name, start_from=None):
    return recipe.variant_overrides(
        "starry_night", SPECS[name], 40, 0, "auto", tmp_path, start_from=start_from
    )


def composed(tmp_path, name):
    return compose_config("train", *overrides(tmp_path, name))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_variant_composes_with_the_shared_settings(tmp_path, name, style_env):
    cfg = composed(tmp_path, name)
    assert cfg.seed == 0 and cfg.data.image_size in (128, 256) and cfg.trainer.precision == "auto"
    steps = {"crop256": 10, "steps_half": 20, "steps2x": 80}.get(name, 40)
    assert cfg.trainer.max_steps == steps


def test_the_content_layer_variants_replace_relu2_2(tmp_path, style_env):
    assert dict(composed(tmp_path, "content3_3").loss.content_layers) == {"block3_conv3": 0.033}
    assert dict(composed(tmp_path, "content4_2").loss.content_layers) == {"block4_conv2": 0.0125}


def test_the_peer_row_has_pytorch_examples_settings(tmp_path, style_env):
    cfg = composed(tmp_path, "peer")
    assert dict(cfg.loss.content_layers) == {"block2_conv2": 1.0}
    assert set(cfg.loss.style_layers) == {
        "block1_conv2",
        "block2_conv2",
        "block3_conv3",
        "block4_conv3",
    }
    assert (cfg.loss.alpha, cfg.loss.beta) == (1e5, 1e10) and cfg.system.scheduler is None
    assert cfg.system.optimizer.lr == 1e-3 and cfg.data.batch_size == 4


def test_a_variant_resumes_its_checkpoint_and_keeps_its_own_start(tmp_path):
    run_dir = tmp_path / "starry_night" / "beta25"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    command = recipe.train_command(overrides(tmp_path, "beta25"), run_dir)
    assert command[-1] == f"resume={run_dir}" and "loss.beta=25" in command
    started = overrides(tmp_path, "base", start_from="a.pt")
    assert "init_from=a.pt" in started
    warm = overrides(tmp_path, "warm", start_from="a.pt")  # the warm row keeps its own start
    assert [o for o in warm if o.startswith("init_from=")] == [SPECS["warm"]["overrides"][0]]


def test_sheets_have_a_row_per_photo_and_label_every_panel():
    photos = [torch.rand(1, 3, 24, 32), torch.rand(1, 3, 32, 20)]
    rows = [[("photo", p, 0), ("a", p, 0), ("", None, 7)] for p in photos]
    sheet = contact_sheet(rows, 32)
    assert sheet.height == 2 * (32 + LABEL_HEIGHT + GAP) - GAP
    assert sheet.width == round(32 * 32 / 24) * 2 + 7 + 2 * GAP  # the wider row
    strip = labelled_strip([("photo", photos[0]), ("b", photos[1])], 16)
    assert strip.size == (round(32 * 16 / 24) + GAP + round(20 * 16 / 32), 16 + LABEL_HEIGHT)


def test_table_rows_and_missing_judge():
    rows = [
        {
            "variant": "photo",
            "about": "x",
            "gram": 5117.2,
            "content": 0.0,
            "edge_ssim": 1.0,
            "swd": 0.49,
        }
    ]
    assert "| photo | 0.4900 | 5117 | 0 | 1.000 |" in recipe_table(rows, True)
    assert "(no judge)" in recipe_table(rows, False)


def test_variants_change_one_thing_of_the_recipe_before_the_presets(tmp_path, style_env):
    base, preset = composed(tmp_path, "base"), composed(tmp_path, "preset")
    assert (base.style.size, base.style.beta_scale) == (512, 1.0)  # the study's reference row
    assert (preset.style.size, preset.style.beta_scale) == (
        256,
        3.0,
    )  # conf/style/starry_night.yaml
    style256 = composed(tmp_path, "style256")
    assert (style256.style.size, style256.style.beta_scale) == (256, 1.0)
    assert (
        composed(tmp_path, "beta25").loss.beta == 25
        and composed(tmp_path, "beta25").style.beta_scale == 1.0
    )
