"""Small things a new user trips over: misspelt bundled styles, bundled names in export.py, the
scripts' --overwrite flag, the Gatys API reproducing gatys.py, one TensorBoard group per style,
an existing single output, error prefixes, what a failed run leaves behind, --help."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import cli
from fastnst.errors import FastNSTError
from tests.helpers import assert_user_error, compose_config, run_main, tiny

REPO = Path(__file__).resolve().parents[1]


def _script(name: str):
    """The main of scripts/<group>/<name>.py (its logic lives in fastnst.apps.<name>)."""
    return importlib.import_module(f"fastnst.apps.{name}").main


_run = run_main  # (exit code, stdout, stderr)


# -- bundled styles by name --------------------------------------------------------------------


def test_stylize_suggests_the_bundled_style_a_typo_meant(run_entry, image_factory):
    code, err = run_entry(cli.stylize_main, "style=the_screem", f"input={image_factory('p.png')}")
    assert_user_error(code, err, "did you mean 'the_scream'?")
    assert "train.py" not in err  # not "train a style called the_screem"


def test_stylizer_load_of_a_misspelt_style_is_an_unknown_style():
    from fastnst.stylize import Stylizer

    with pytest.raises(
        FastNSTError, match=r"unknown style 'the_screem' \(did you mean 'the_scream'\?\)"
    ):
        Stylizer.load("the_screem")


def test_export_takes_a_bundled_name_writes_here_and_warns_nothing(
    run_entry, tmp_path, monkeypatch, recwarn
):
    monkeypatch.chdir(tmp_path)
    code, err = run_entry(cli.export_main, "model=the_scream", "format=torchscript")
    assert code == 0, err
    assert (tmp_path / "the_scream.ts").is_file()  # in the current folder, not inside the package
    jit_warnings = [w for w in recwarn if "torch.jit" in str(w.message)]
    assert not jit_warnings, [str(w.message) for w in jit_warnings]


# -- outputs that exist --------------------------------------------------------------------------


def test_stylize_refuses_an_existing_single_output_like_gatys(
    run_entry, model_file, image_factory, tmp_path
):
    out = tmp_path / "out.png"
    out.write_bytes(b"a finished result")
    code, err = run_entry(
        cli.stylize_main, f"model={model_file}", f"input={image_factory('p.png')}", f"output={out}"
    )
    assert_user_error(code, err, "pass overwrite=true")
    assert out.read_bytes() == b"a finished result"


@pytest.mark.parametrize(
    "script, args",
    [
        ("make_pan_clip", ["{photo}", "--out", "{out}"]),
        ("style_blend", ["--model", "the_scream", "--photo", "{photo}", "--out", "{out}"]),
    ],
)
def test_scripts_name_their_real_overwrite_flag(script, args, image_factory, tmp_path, capsys):
    out = tmp_path / ("out.mp4" if script == "make_pan_clip" else "out.jpg")
    out.write_bytes(b"kept")
    code = _script(script)([a.format(photo=image_factory("p.png"), out=out) for a in args])
    err = capsys.readouterr().err
    assert_user_error(code, err, "pass --overwrite to replace it")
    assert "overwrite=true" not in err
    assert out.read_bytes() == b"kept"


# -- the Python API says what it does ----------------------------------------------------------------


def test_a_stylizer_with_size_resizes_tensors_too():
    from fastnst.stylize import Stylizer

    stylizer = Stylizer.load("the_scream", size=32)
    assert stylizer(torch.rand(1, 3, 64, 48)).shape == (1, 3, 32, 24)
    assert stylizer(torch.rand(3, 64, 48)).shape == (3, 32, 24)
    assert "size=" in Stylizer.__call__.__doc__ and "resized" in Stylizer.__call__.__doc__


def test_the_gatys_api_example_reproduces_gatys_py(run_entry, image_factory, tmp_path):
    """docs: PerceptualLoss.preset("seed") + stylize_gatys's defaults = `python gatys.py`
    (init noise included: both default to seed 0)."""
    from fastnst.bundled import bundled_painting
    from fastnst.gatys import stylize_gatys
    from fastnst.images import load_image, save_image
    from fastnst.losses import PerceptualLoss

    photo, out = image_factory("photo.png", size=(48, 40)), tmp_path / "cli.png"
    code, err = run_entry(
        cli.gatys_main,
        f"content={photo}",
        f"output={out}",
        "size=48",
        "style.size=48",
        "iterations=3",
        "init=content+noise",
        "progress=false",
    )
    assert code == 0, err

    painting = load_image(bundled_painting("starry_night"), 48)  # conf/style: style.size
    loss = PerceptualLoss.preset("seed")  # gatys.py's default loss=seed
    loss.set_style([painting])
    result = stylize_gatys(
        load_image(photo, 48), loss, iterations=3, init="content+noise", style_images=[painting]
    )
    api = save_image(result.image, tmp_path / "api.png")
    cli_pixels, api_pixels = (np.asarray(Image.open(p), dtype=np.int16) for p in (out, api))
    assert np.abs(cli_pixels - api_pixels).max() <= 1


def test_a_bare_perceptual_loss_is_not_the_preset():
    from omegaconf import OmegaConf

    from fastnst.config import CONFIG_DIR
    from fastnst.losses import PerceptualLoss

    preset, bare = PerceptualLoss.preset("seed"), PerceptualLoss()
    seed = OmegaConf.load(CONFIG_DIR / "loss" / "seed.yaml")
    assert preset.beta == seed.beta and preset.style_weights == dict(seed.style_layers)
    assert preset.content_weights == dict(seed.content_layers)
    assert (bare.beta, bare.style_weights) != (preset.beta, preset.style_weights)
    with pytest.raises(FastNSTError, match="unknown loss preset 'sead'.*seed"):
        PerceptualLoss.preset("sead")


# -- names and messages ------------------------------------------------------------------------------


def test_scream_and_the_scream_train_into_one_group():
    assert compose_config("train", "style=scream").style.name == "the_scream"
    assert compose_config("gatys", "style=scream").style.name == "the_scream"


def test_video_metrics_errors_have_the_fastnst_prefix(tmp_path, capsys):
    from fastnst.video_metrics import main

    code = main(
        ["--input", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "missing.mp4")]
    )
    err = capsys.readouterr().err
    assert_user_error(code, err, "missing.mp4")
    assert err.startswith("fastnst: error: ")


# -- what a failure leaves behind ----------------------------------------------------------------------


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_failed_extract_frames_leaves_no_manifest(out_exists, tmp_path, monkeypatch):
    import fastnst.frames
    from fastnst.errors import ImageError
    from fastnst.video import write_video

    video = tmp_path / "clip.mp4"
    write_video((torch.rand(1, 3, 32, 32) for _ in range(4)), video, rate=2)
    out = tmp_path / "frames"
    if out_exists:
        out.mkdir()

    def failing_save(image, path, **kwargs):
        raise ImageError(f"{path}: cannot write (no space left on device)")

    monkeypatch.setattr(fastnst.frames, "save_image", failing_save)
    with pytest.raises(ImageError):
        fastnst.frames.extract_frames([video], out, every=0.5, progress=False)
    assert out.exists() == out_exists
    assert not (out / fastnst.frames.MANIFEST).exists()


def test_a_failed_train_names_no_run_directory(synthetic_style, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no_photos"
    empty.mkdir()
    runs = tmp_path / "runs"
    code, out, err = _run(
        cli.train_main,
        tiny(empty, f"style.image={synthetic_style}", f"paths.output_root={runs}"),
        monkeypatch,
        capsys,
    )
    assert code == 2, err
    assert "run directory" not in out + err
    assert not runs.exists() or not any(runs.iterdir())


# -- --help --------------------------------------------------------------------------------------------

HELP = {
    "train": cli.train_main,
    "stylize": cli.stylize_main,
    "gatys": cli.gatys_main,
    "export": cli.export_main,
    "evaluate": cli.evaluate_main,
    "app": cli.app_main,
}


@pytest.mark.parametrize("entry", HELP)
def test_help_is_a_short_usage_not_a_config_dump(entry, monkeypatch, capsys):
    code, out, err = _run(HELP[entry], ["--help"], monkeypatch, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{entry}: ") and lines[1].startswith(f"usage: python {entry}.py"), (
        lines[:2]
    )
    # stylize's help lists every key it takes (generated from its config, so it cannot drift)
    header, limit = (
        ("options, written key=value", 90) if entry == "stylize" else ("main options", 40)
    )
    assert header in out and f"python {entry}.py --cfg job" in out
    assert len(lines) <= limit and "== Config ==" not in out and "hydra:" not in out
    if entry == "gatys":
        styles = next(line for line in lines if line.strip().startswith("style:"))
        assert "starry_night" in styles and "multi" not in styles.split(": ")[1].split(", ")
    if entry == "train":
        assert "inference" not in out and "  model: johnson" in out
