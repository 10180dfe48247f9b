"""Stumbles from a README walk-through: single tif/gif inputs, (3, H, W) frames in stylize_many,
folder outputs, the Gatys loss log name and size/scales limits, style download hints, webm audio."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastnst.apps.stylize import stylize_cli
from fastnst.artifacts import save_exported
from fastnst.cli import INFERENCE_CONFIG_DIR
from fastnst.errors import FastNSTError
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet
from tests.helpers import compose_config, exit_code, make_image

TINY = {"channels": (8, 16, 32), "num_residual": 1}


@pytest.fixture
def model_file(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_exported(tmp_path / "model.pt", TransformerNet(**TINY).eval())


@pytest.mark.parametrize("ext", [".tif", ".gif"])
def test_single_tif_or_gif_input_is_written_as_png_by_default(ext, tmp_path, model_file):
    src = make_image(tmp_path / f"photo{ext}", size=(32, 24))
    cfg = compose_config(
        "stylize", f"model={model_file}", f"input={src}", config_dir=INFERENCE_CONFIG_DIR
    )
    assert exit_code(stylize_cli, cfg) == 0
    assert (tmp_path / "photo_stylized.png").is_file()


def test_stylize_many_accepts_3d_frames_like_call(model_file):
    s = Stylizer.load(model_file, backend="torch")
    frames = [torch.rand(3, 32, 32) for _ in range(3)] + [torch.rand(1, 3, 32, 32)]
    results = list(s.stylize_many(frames, batch_size=2))
    assert [tuple(r.shape) for r in results] == [(3, 32, 32)] * 3 + [(1, 3, 32, 32)]
    assert torch.allclose(results[0], s(frames[0]), atol=1e-5)


def test_stylize_output_folder_gets_the_default_name_inside(tmp_path, model_file):
    src = make_image(tmp_path / "photo.tif", size=(32, 24))
    cfg = compose_config(
        "stylize",
        f"model={model_file}",
        f"input={src}",
        f"output={tmp_path}/new/",
        config_dir=INFERENCE_CONFIG_DIR,
    )
    assert exit_code(stylize_cli, cfg) == 0
    assert (tmp_path / "new" / "photo_stylized.png").is_file()


def test_gatys_output_folder_is_a_clear_error(tmp_path, capsys):
    from fastnst.apps.gatys import run_gatys

    src = make_image(tmp_path / "photo.png", size=(32, 24))
    for output in (str(tmp_path), f"{tmp_path}/new/"):
        cfg = compose_config("gatys", f"content={src}", f"output={output}", f"style.image={src}")
        assert exit_code(run_gatys, cfg) == 2
        err = capsys.readouterr().err
        assert "is a folder" in err and "extension ''" not in err


@pytest.mark.parametrize("given", ["dir/", "existing"])
def test_export_output_folder_gets_the_default_name_inside(given, tmp_path, model_file):
    from fastnst.apps.export import export_cli

    (tmp_path / "existing").mkdir()
    cfg = compose_config(
        "export",
        f"model={model_file}",
        f"output={tmp_path}/{given}",
        "format=torchscript",
        "check=false",
        config_dir=INFERENCE_CONFIG_DIR,
    )
    assert exit_code(export_cli, cfg) == 0
    folder = tmp_path / given.rstrip("/")
    assert folder.is_dir() and (folder / "model.ts").is_file()


def test_gatys_loss_logs_of_two_formats_do_not_collide(tmp_path):
    from fastnst.apps.gatys import log_path

    assert log_path(tmp_path / "o.jpg") != log_path(tmp_path / "o.webp")
    assert log_path(tmp_path / "o.jpg").name == "o.jpg.json"


@pytest.mark.parametrize(
    "overrides",
    [["scales=[2]"], ["scales=[0.1,1]", "size=40"], ["size=12"], ["size=0"], ["size=-5"]],
)
def test_gatys_too_small_sizes_and_scales_are_one_line_errors(overrides, tmp_path, capsys):
    from fastnst.apps.gatys import run_gatys

    src = make_image(tmp_path / "photo.png", size=(64, 48))
    cfg = compose_config(
        "gatys",
        f"content={src}",
        f"output={tmp_path / 'o.png'}",
        f"style.image={src}",
        "iterations=1",
        "device=cpu",
        "progress=false",
        *overrides,
    )
    assert exit_code(run_gatys, cfg) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and ("px" in err[0])
    if "size=-5" in overrides:
        assert "size must be" in err[0]


def test_missing_style_hint_names_what_download_styles_accepts(tmp_path, monkeypatch):
    from fastnst.style import style_image_paths

    monkeypatch.setenv("FASTNST_DATA", str(tmp_path))
    # a packaging without the bundled paintings (fastnst/paintings/): the user file is then needed
    monkeypatch.setattr("fastnst.bundled.bundled_painting", lambda name: None)
    for preset, hint in (
        ("scream", "download_styles.py the_scream"),
        ("starry_night", "download_styles.py starry_night"),
    ):
        cfg = compose_config("gatys", f"style={preset}")
        with pytest.raises(FastNSTError, match=hint):
            style_image_paths(cfg.style)
    cfg = compose_config("gatys", "style=la_muse")
    with pytest.raises(FastNSTError) as info:
        style_image_paths(cfg.style)
    assert "download_styles" not in str(info.value)


def test_webm_output_says_in_one_line_that_aac_audio_is_dropped(tmp_path, model_file, capsys):
    from fastnst.video import stylize_video, video_info
    from tests.helpers import write_clip

    src = write_clip(tmp_path / "clip.mp4", frames=3, rate=8, audio=True)
    stylize_video(Stylizer.load(model_file), src, tmp_path / "out.webm", progress=False)
    assert not video_info(tmp_path / "out.webm")["audio"]
    notes = [line for line in capsys.readouterr().err.splitlines() if "audio" in line]
    assert len(notes) == 1 and "not kept" in notes[0] and ".webm" in notes[0]


def test_stylize_help_lists_every_option_with_its_current_value():
    """--help is generated from conf/inference/stylize.yaml (fastnst.options_help): every key,
    stroke_scale and batch_size included, with the value an override gives it."""
    import subprocess
    import sys

    from fastnst.config import REPO_ROOT
    from fastnst.options_help import documented_keys

    keys = documented_keys((INFERENCE_CONFIG_DIR / "stylize.yaml").read_text())
    assert {"stroke_scale", "batch_size", "input", "model", "traceback"} <= set(keys)
    assert all(keys.values()), [k for k, v in keys.items() if not v]  # each has its comment
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "stylize.py"), "--help", "batch_size=2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert set(keys) <= listed, set(keys) - listed
    assert "  batch_size [2] " in result.stdout and "  stroke_scale [1.0] " in result.stdout
    assert "$$" not in result.stdout  # the template escape does not leak


def test_files_the_readme_and_a_sweep_write_in_the_repo_are_ignored_by_git():
    import re
    import shutil
    import subprocess

    from fastnst.config import REPO_ROOT

    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (REPO_ROOT / "README.md").read_text()
    written = re.findall(r"\boutput=(\S+)", readme)
    assert written, "the README writes no output= file any more: update this test"
    # gatys.py writes its loss log beside the picture; -m writes outputs/multirun.yaml
    paths = [*written, *(f"{w}.json" for w in written), "outputs/multirun.yaml"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=REPO_ROOT, capture_output=True, text=True
    )
    ignored = set(result.stdout.split())
    assert ignored == set(paths), set(paths) - ignored
