"""evaluate.py: metrics of a trained run on fixed photos, the cached Gatys reference, TensorBoard."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import fastnst.evaluate as evaluate
from fastnst.apps.evaluate import evaluate_cli
from fastnst.cli import INFERENCE_CONFIG_DIR, run_reporting_errors
from fastnst.evaluate import METRICS, evaluate_run, run_labels
from tests.helpers import compose_config


def count_gatys_calls(monkeypatch) -> list:
    calls = []
    real = evaluate.reference_rendering

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "reference_rendering", counting)
    return calls


def test_eval_json_tensorboard_and_cached_gatys_reference(
    tiny_run, photo_folder, tmp_path, monkeypatch
):
    photos = photo_folder(3, size=(48, 40), name="eval_photos")
    calls = count_gatys_calls(monkeypatch)
    options = dict(
        photos=photos,
        num_photos=2,
        size=32,
        gatys_iterations=3,
        cache_dir=tmp_path / "cache",
        backend="torch",
        device="cpu",
    )
    result = evaluate_run(tiny_run, **options)
    assert len(calls) == 2  # the reference: once per photo

    saved = json.loads((tiny_run / "eval.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved["metrics"]) == set(METRICS)
    assert all(math.isfinite(v) for v in saved["metrics"].values()), saved["metrics"]
    m = saved["metrics"]
    assert m["total"] > 0 and m["gatys/total"] > 0 and m["ms_per_image"] > 0
    assert m["total_vs_gatys"] == pytest.approx(m["total"] / m["gatys/total"])
    assert -1 <= m["edge_ssim"] <= 1 and 0 < m["gatys/edge_ssim"] <= 1  # SSIM is in [-1, 1]
    # Gatys starts from the photo and keeps its edges better than a 2-step network
    assert m["gatys/edge_ssim"] > m["edge_ssim"]
    assert (saved["style"], saved["data"], saved["model"]) == (
        "starry_night",
        "folder",
        "johnson_half (IN)",
    )
    assert saved["global_step"] == 2 and len(saved["per_photo"]) == 2
    assert saved["settings"]["photos"] == [str(photos / "000.png"), str(photos / "001.png")]

    # TensorBoard: eval metrics as scalars, which fill the eval/ columns training declared in the
    # hparams view (TensorBoard keeps the first hparams summary of a run)
    acc = EventAccumulator(str(tiny_run), size_guidance={"scalars": 0}).Reload()
    assert "eval/total" in acc.Tags()["scalars"] and "eval/edge_ssim" in acc.Tags()["scalars"]
    assert acc.Scalars("eval/total")[-1].value == pytest.approx(m["total"], rel=1e-5)
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    columns = {info.name.tag for info in experiment.metric_infos}
    assert {"eval/total", "eval/gatys/total", "eval/ms_per_image", "hp/val_loss"} <= columns
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert session.hparams["data"].string_value == "folder"

    # an existing eval.json is kept; re-evaluating reuses the cached reference
    assert evaluate_run(tiny_run, **{**options, "size": 48})["settings"]["size"] == 32
    again = evaluate_run(tiny_run, **options, overwrite=True)
    assert len(calls) == 2, "the Gatys reference was recomputed instead of read from the cache"
    for key in ("gatys/content", "gatys/style", "gatys/total"):
        assert again["metrics"][key] == m[key]
    # the cache key covers the budget, the size and the photos
    cfg = evaluate.load_run_config(tiny_run)
    paths = evaluate.evaluation_photo_paths(photos, 2)
    key = evaluate.gatys_cache_key(cfg, paths, 32, 3)
    assert key == evaluate.gatys_cache_key(cfg, paths, 32, 3)
    assert (
        len(
            {
                key,
                evaluate.gatys_cache_key(cfg, paths, 32, 2),
                evaluate.gatys_cache_key(cfg, paths, 48, 3),
                evaluate.gatys_cache_key(cfg, paths[:1], 32, 3),
            }
        )
        == 4
    )
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    # ... by content, not by place or time: a copy of the photos elsewhere hits, an edited photo misses
    copies = [shutil.copy(p, tmp_path / f"copy_{p.name}") for p in paths]
    assert evaluate.gatys_cache_key(cfg, [Path(c) for c in copies], 32, 3) == key
    Path(copies[0]).write_bytes(Path(copies[0]).read_bytes() + b"\0")
    assert evaluate.gatys_cache_key(cfg, [Path(c) for c in copies], 32, 3) != key


def test_run_labels_name_the_model_by_its_architecture_wherever_the_run_is(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "style": {"name": "wave"},
            "data": {"name": "imagenet_mini"},
            "model": {"channels": [16, 32, 64], "num_residual": 5, "norm": "batch"},
        }
    )
    # the same name in the <style>/<data>/<model>/<date> layout and in a hydra.run.dir= folder
    expected = {"style": "wave", "data": "imagenet_mini", "model": "johnson_half (BN)"}
    assert run_labels(tmp_path / "wave" / "imagenet_mini" / "johnson_half" / "d", cfg) == expected
    assert run_labels(tmp_path / "elsewhere", cfg) == expected
    # no preset with this architecture: its channels and residual blocks
    cfg.model.num_residual = 2
    assert run_labels(tmp_path / "elsewhere", cfg)["model"] == "c16-32-64 r2 (BN)"


def compose_evaluate(*overrides):
    return compose_config("evaluate", *overrides, config_dir=INFERENCE_CONFIG_DIR)


def test_cli_config_evaluates_a_list_of_runs_without_reference(
    tiny_run, photo_folder, tmp_path, capsys
):
    photos = photo_folder(2, size=(40, 40), name="eval_photos")
    run = tmp_path / "run_copy"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval.json", "events.*"))
    cfg = compose_evaluate(
        f"run=[{run},{run}]",
        f"photos={photos}",
        "size=32",
        "gatys_iterations=0",
        "backend=torch",
        "device=cpu",
        f"cache_dir={tmp_path / 'cache'}",
    )
    results = evaluate_cli(cfg)
    assert len(results) == 2 and "gatys/total" not in results[0]["metrics"]
    out = capsys.readouterr().out
    # outside the <style>/<data>/<model>/<date> layout too the model is named by its preset
    assert "starry_night / folder / johnson_half (IN)" in out and "existing eval.json" in out


def test_cli_bad_run_dir_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "not_a_run").mkdir()
    for run in (tmp_path / "missing", tmp_path / "not_a_run"):
        with pytest.raises(SystemExit) as exit_info:
            run_reporting_errors(evaluate_cli, compose_evaluate(f"run={run}"))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(run) in err


def test_more_num_photos_than_photos_says_how_many_are_used(photo_folder, capsys):
    photos = photo_folder(4)
    paths = evaluate.evaluation_photo_paths(photos, 10)
    assert len(paths) == 4
    assert (
        "num_photos=10 but there are only 4 evaluation photos: using all 4"
        in capsys.readouterr().err
    )
    evaluate.evaluation_photo_paths(photos, 4)
    assert capsys.readouterr().err == ""


def test_hparams_are_built_once_and_log_the_effective_beta(style_env):
    from fastnst import metrics
    from fastnst.multistyle import expand_multi_style

    cfg = compose_config("train", "style.beta_scale=2", "loss.beta=3")
    labels = metrics.run_labels("/runs/x", cfg)
    params = metrics.hparams_of(cfg, labels)
    assert params["loss/beta"] == 3 and params["loss/effective_beta"] == 6
    assert params["style"] == "starry_night" and params["optimizer/lr"] == pytest.approx(1e-3)
    assert evaluate.hparams_of is metrics.hparams_of and evaluate.METRICS is metrics.METRICS
    multi = compose_config(
        "train",
        "style=multi",
        "style.names=[starry_night,wave]",
        "style.beta_scale=2",
        "loss.beta=3",
    )
    expand_multi_style(multi)
    multi.style.members[1].beta_scale = 4.0
    params = metrics.hparams_of(multi, metrics.run_labels("/runs/x", multi))
    # loss.beta 3 x each member's beta_scale: starry_night's preset 3.0 x the list's 2; wave's set to 4
    assert (
        params["styles"] == "starry_night,wave"
        and params["loss/effective_beta"] == "starry_night=18,wave=12"
    )
