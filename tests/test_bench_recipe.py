"""scripts/bench/bench_recipe.py: every variant is a valid override set of experiment=zoo, finished
variants are skipped and interrupted ones resumed, the side-by-side picture and the table."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, compose_config

sys.path[:0] = [str(REPO / "scripts" / "bench"), str(REPO / "scripts" / "zoo")]

import bench_recipe  # noqa: E402

SPECS = bench_recipe.variants("starry_night", str(REPO / "src" / "fastnst" / "zoo" / "wave.pt"))


def args_for(tmp_path, **kw):
    return argparse.Namespace(
        **{
            "style": "starry_night",
            "steps": 40,
            "seed": 0,
            "runs_dir": tmp_path,
            "extra": [],
            "threads": 1,
            "precision": "auto",
            "start_from": None,
            **kw,
        }
    )


def composed(tmp_path, name):
    overrides = bench_recipe.overrides_for(args_for(tmp_path), name, SPECS[name], tmp_path / name)
    return compose_config("train", *[o for o in overrides if not o.startswith("hydra.")])


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


def test_finished_variants_are_skipped_and_interrupted_ones_resumed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, **kw: calls.append(command) or 0)
    args = args_for(tmp_path)
    done = tmp_path / "starry_night" / "base"
    done.mkdir(parents=True)
    (done / "model.pt").write_bytes(b"")
    assert "skipped" in bench_recipe.run_variant(args, "base", SPECS["base"]) and not calls
    half = tmp_path / "starry_night" / "beta25" / "checkpoints"
    half.mkdir(parents=True)
    (half / "last.ckpt").write_bytes(b"")
    bench_recipe.run_variant(args, "beta25", SPECS["beta25"])
    assert calls[-1][-1] == f"resume={half.parent}" and "loss.beta=25" in calls[-1]


def test_side_by_side_has_a_row_per_photo_and_a_column_per_variant():
    photos = [torch.rand(1, 3, 24, 32), torch.rand(1, 3, 32, 20)]
    sheet = bench_recipe.side_by_side(
        photos, torch.rand(1, 3, 20, 30), [("a", photos), ("b", photos)]
    )
    assert sheet.shape[-2:] == (14 + 2 * 32, 4 * 32)  # cells as tall and wide as the largest photo
    with_reference = bench_recipe.side_by_side(
        photos, torch.rand(1, 3, 20, 30), [("a", photos)], photos[0]
    )
    assert with_reference.shape[-2:] == (14 + 2 * 32, 4 * 32)


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
    assert "| photo | 0.4900 | 5117 | 0 | 1.000 |" in bench_recipe.format_table(rows, True)
    assert "(no judge)" in bench_recipe.format_table(rows, False)


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
