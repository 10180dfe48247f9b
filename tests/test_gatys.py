"""Gatys per-image optimization: the plain API (stylize_gatys), run_gatys(cfg) and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from kornia.color import rgb_to_ycbcr

import fastnst.config  # noqa: F401  (registers the fastnst_root resolver)
from fastnst.apps.gatys import intermediate_path, run_gatys
from fastnst.artifacts import resolve_device
from fastnst.config import REPO_ROOT
from fastnst.errors import FastNSTError, OutputExistsError
from fastnst.gatys import initial_image, scale_sizes, split_iterations, stylize_gatys
from fastnst.images import load_image
from fastnst.losses import PerceptualLoss

SEED_LAYERS = dict(
    content_layers={"block5_conv2": 1.0},
    style_layers={
        "block1_conv1": 1.0,
        "block2_conv1": 1.0,
        "block3_conv1": 1.0,
        "block4_conv1": 1.0,
        "block5_conv1": 1.0,
    },
)


@pytest.fixture(scope="module")
def vgg_loss():
    """One PerceptualLoss (one VGG load) shared by the API tests; each test sets its style."""
    return PerceptualLoss(**SEED_LAYERS, alpha=1.0, beta=1.0)


@pytest.fixture
def photo(image_factory):
    return load_image(image_factory("photo.png", size=(64, 48), seed=3))


@pytest.fixture
def styled_loss(vgg_loss, synthetic_style):
    vgg_loss.set_style([load_image(synthetic_style)])
    return vgg_loss


@pytest.fixture
def compose_gatys():
    """compose_gatys([overrides]) -> the gatys config as `python gatys.py <overrides>` sees it."""
    from tests.helpers import compose_config

    return lambda overrides: compose_config("gatys", *overrides)


def tiny_run(tmp_path, photo_path, style_path, *extra):
    """Overrides for a fast run: 64 px, style image at 64 px, no progress bar."""
    return [
        f"content={photo_path}",
        f"output={tmp_path / 'out.png'}",
        "style=custom",
        f"style.image={style_path}",
        "style.size=64",
        "size=64",
        "iterations=4",
        "progress=false",
        "device=cpu",
        *extra,
    ]


# ----------------------------------------------------------------------------- the optimization


@pytest.mark.parametrize("optimizer, lr", [("lbfgs", 0.0), ("adam", 0.02)])
def test_lowers_the_total_loss_in_20_iterations(styled_loss, photo, optimizer, lr):
    result = stylize_gatys(photo, styled_loss, iterations=20, optimizer=optimizer, lr=lr, seed=0)
    totals = [row["total"] for row in result.history]
    assert len(totals) == 20  # one loss evaluation per iteration, counted honestly
    assert result.best_loss < 0.7 * totals[0]
    assert result.best_loss == min(totals)
    assert result.image.shape == photo.shape
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


def test_init_variants(photo):
    gen = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    assert torch.equal(initial_image(photo, "content"), photo)

    noise = initial_image(photo, "noise", generator=gen(1))
    other_photo = initial_image(1.0 - photo, "noise", generator=gen(1))
    assert torch.equal(noise, other_photo)  # independent of the photo
    assert not torch.allclose(noise, photo, atol=0.1)
    assert 0.0 <= noise.min() and noise.max() <= 1.0

    mixed = initial_image(photo, "content+noise", noise=0.3, generator=gen(1))
    torch.testing.assert_close(mixed, 0.7 * photo + 0.3 * noise)
    assert torch.equal(mixed, initial_image(photo, "content+noise", noise=0.3, generator=gen(1)))
    assert not torch.equal(
        mixed, initial_image(photo, "content+noise", noise=0.3, generator=gen(2))
    )

    with pytest.raises(FastNSTError, match="init"):
        initial_image(photo, "photo")
    with pytest.raises(FastNSTError, match="noise"):
        initial_image(photo, "content+noise", noise=1.5)


def test_init_reaches_the_optimization(styled_loss, photo):
    from_photo = stylize_gatys(photo, styled_loss, iterations=1, init="content")
    assert from_photo.history[0]["content"] == 0.0  # starts exactly at the photo
    a = stylize_gatys(photo, styled_loss, iterations=2, init="noise", seed=5)
    b = stylize_gatys(photo, styled_loss, iterations=2, init="noise", seed=5)
    assert a.history[0]["content"] > 0.0
    assert [r["total"] for r in a.history] == pytest.approx(
        [r["total"] for r in b.history], rel=1e-5
    )


def test_result_is_the_lowest_loss_image_not_the_last(styled_loss, photo):
    # Adam with a huge step throws the pixels to 0/1: later iterations are worse than the first
    # (fp32: the loss recomputed below in fp32 is then the very loss the run saw)
    result = stylize_gatys(
        photo, styled_loss, iterations=3, optimizer="adam", lr=2.0, precision="32-true"
    )
    totals = [row["total"] for row in result.history]
    assert result.best_iteration != len(totals)
    assert result.best_loss == min(totals) == totals[result.best_iteration - 1]
    with torch.no_grad():
        recomputed = styled_loss(result.image, styled_loss.content_features(photo))["total"]
    assert float(recomputed) == pytest.approx(result.best_loss, rel=1e-4)


def test_multiscale_runs_coarse_to_fine(styled_loss, photo, synthetic_style):
    saved = []
    result = stylize_gatys(
        photo,
        styled_loss,
        iterations=9,
        scales=[0.5, 1.0],
        style_images=[load_image(synthetic_style)],
        save_every=4,
        on_save=lambda it, img: saved.append((it, tuple(img.shape[-2:]))),
    )
    assert result.sizes == [(24, 32), (48, 64)]
    assert result.iterations_per_scale == [6, 3]
    assert [(r["height"], r["width"]) for r in result.history] == [(24, 32)] * 6 + [(48, 64)] * 3
    assert result.best_iteration > 6  # the result comes from the final scale
    assert result.image.shape == photo.shape
    assert saved == [(4, (24, 32)), (8, (48, 64))]


def test_scale_sizes_and_split():
    assert scale_sizes(300, 200, "auto") == [(300, 200)]
    assert scale_sizes(512, 341, "auto") == [(256, 170), (512, 341)]
    assert [max(s) for s in scale_sizes(768, 1024, "auto")] == [256, 512, 1024]
    assert [max(s) for s in scale_sizes(100, 512, [0.25, 256])] == [
        128,
        256,
        512,
    ]  # output always last
    assert scale_sizes(100, 512, None) == scale_sizes(100, 512, [1]) == [(100, 512)]
    with pytest.raises(FastNSTError, match="larger than the output"):
        scale_sizes(100, 512, [1024])
    with pytest.raises(FastNSTError, match="scales"):
        scale_sizes(100, 512, "fine")
    assert split_iterations(300, 1) == [300]
    assert split_iterations(300, 3) == [171, 85, 44] and sum(split_iterations(301, 3)) == 301
    with pytest.raises(FastNSTError, match="iterations"):
        split_iterations(2, 3)


def test_device_option():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(FastNSTError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(FastNSTError, match="CUDA"):
            resolve_device("cuda")


# ----------------------------------------------------------------------------- run_gatys(cfg)


def test_run_writes_best_image_log_and_intermediates(
    tmp_path, image_factory, synthetic_style, compose_gatys
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    cfg = compose_gatys(
        tiny_run(
            tmp_path,
            photo_path,
            synthetic_style,
            "optimizer=adam",
            "lr=2.0",
            "iterations=4",
            "save_every=2",
            "scales=[1]",
        )
    )
    result = run_gatys(cfg)
    out = tmp_path / "out.png"
    assert sorted(p.name for p in tmp_path.glob("out*")) == [
        "out.png",
        "out.png.json",
        "out_iter0002.png",
        "out_iter0004.png",
    ]
    written = load_image(out)
    assert written.shape[-2:] == (48, 64)
    # the written image is the best one (8-bit rounding apart), and the best is not the last
    torch.testing.assert_close(written, result.image.cpu(), atol=1 / 255 + 1e-6, rtol=0)
    assert result.best_iteration < 4
    log = json.loads((tmp_path / "out.png.json").read_text())
    assert log["best_iteration"] == result.best_iteration
    assert len(log["history"]) == 4
    assert set(log["history"][0]) >= {"iteration", "total", "content", "style", "tv", "time_s"}
    assert any(k.startswith("style/block") for k in log["history"][0])  # per-layer terms too
    assert log["settings"]["optimizer"] == "adam" and log["wall_time_s"] > 0

    # refuses to overwrite the output before doing any work, unless overwrite=true
    with pytest.raises(OutputExistsError, match="out.png"):
        run_gatys(cfg)
    cfg.overwrite = True
    cfg.save_every = 0
    cfg.iterations = 2
    assert run_gatys(cfg).history[-1]["iteration"] == 2


def test_existing_intermediate_is_refused_before_work(
    tmp_path, image_factory, synthetic_style, compose_gatys
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    intermediate_path(tmp_path / "out.png", 2).write_bytes(b"keep me")
    cfg = compose_gatys(
        tiny_run(
            tmp_path, photo_path, synthetic_style, "save_every=2", "vgg.weights=/nonexistent.pth"
        )
    )
    with pytest.raises(OutputExistsError, match="out_iter0002.png"):
        run_gatys(cfg)
    assert not (tmp_path / "out.png").exists()


def test_vgg_weights_option_reaches_the_loss(
    tmp_path, image_factory, synthetic_style, compose_gatys
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    cfg = compose_gatys(
        tiny_run(tmp_path, photo_path, synthetic_style, "vgg.weights=/nonexistent/vgg.pth")
    )
    with pytest.raises(FastNSTError, match="/nonexistent/vgg.pth"):
        run_gatys(cfg)


def _chroma(image: torch.Tensor) -> torch.Tensor:
    return rgb_to_ycbcr(image)[:, 1:]


def test_preserve_color_keeps_the_photo_chroma(
    tmp_path, image_factory, synthetic_style, compose_gatys
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    photo = load_image(photo_path)
    errors = {}
    for preserve in (False, True):
        out = tmp_path / f"out_{preserve}.png"
        cfg = compose_gatys(
            tiny_run(
                tmp_path,
                photo_path,
                synthetic_style,
                f"output={out}",
                f"preserve_color={str(preserve).lower()}",
                "iterations=8",
                "scales=[1]",
                "optimizer=adam",
                "lr=0.05",
            )
        )
        run_gatys(cfg)
        errors[preserve] = (_chroma(load_image(out)) - _chroma(photo)).abs().mean().item()
    # (8-bit rounding and the clamp of out-of-gamut colours leave a small residue)
    assert errors[True] < 0.02
    assert errors[False] > 3 * errors[True]


def test_multi_style_weights(tmp_path, image_factory, synthetic_style, compose_gatys):
    """style.images + style.weights reach the loss: weights [1, 0] == the first image alone."""
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    second = image_factory("second.png", size=(64, 64), seed=9)
    common = (
        "iterations=4",
        "scales=[0.5,1]",
        "init=content+noise",
        "noise=0.2",
        "seed=3",
        "optimizer=adam",
        "lr=0.05",
    )
    images = {}
    for name, style_args in {
        "single": [f"style.image={synthetic_style}"],
        "one_zero": [f"style.images=[{synthetic_style},{second}]", "style.weights=[1.0,0.0]"],
        "mixed": [f"style.images=[{synthetic_style},{second}]", "style.weights=[0.7,0.3]"],
    }.items():
        out = tmp_path / f"{name}.png"
        run_gatys(
            compose_gatys(
                tiny_run(
                    tmp_path, photo_path, synthetic_style, f"output={out}", *common, *style_args
                )
            )
        )
        images[name] = load_image(out)
    torch.testing.assert_close(images["one_zero"], images["single"], atol=2 / 255, rtol=0)
    assert (images["mixed"] - images["single"]).abs().mean() > 1 / 255
    log = json.loads((tmp_path / "mixed.png.json").read_text())
    assert log["style_weights"] == [0.7, 0.3] and len(log["style"]) == 2


# ----------------------------------------------------------------------------- the CLI


def _cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"), OMP_NUM_THREADS="2")
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "gatys.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_end_to_end_with_relative_paths(tmp_path, image_factory, synthetic_style):
    image_factory("photo.png", size=(64, 48), seed=3)
    args = [
        "content=photo.png",
        f"style.image={synthetic_style.name}",
        "style.size=64",
        "output=res/out.png",
        "size=48",
        "iterations=3",
        "device=cpu",
    ]
    run = _cli(args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert load_image(tmp_path / "res" / "out.png").shape[-2:] == (36, 48)
    assert (tmp_path / "res" / "out.png.json").is_file()
    assert "total=" in run.stderr  # the progress bar shows the loss terms
    # a gatys run leaves nothing else behind: no outputs/, .hydra/ or log file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "res", "style.png"]

    again = _cli(args, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "Traceback" not in again.stderr
    assert "out.png" in again.stderr and "overwrite=true" in again.stderr


def test_cli_wave_preset_runs_offline_on_the_bundled_painting(tmp_path, image_factory, monkeypatch):
    # a fresh machine: no FASTNST_DATA and an empty data folder; the preset's painting ships inside
    monkeypatch.delenv("FASTNST_DATA", raising=False)
    image_factory("photo.png", size=(64, 48), seed=3)
    (tmp_path / "data").mkdir()
    run = _cli(
        [
            "content=photo.png",
            "style=wave",
            "paths.data_dir=data",
            "style.size=64",
            "output=out.png",
            "size=48",
            "iterations=2",
            "device=cpu",
        ],
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    log = json.loads((tmp_path / "out.png.json").read_text())
    assert log["style"][0].endswith("paintings/wave.jpg")


def test_cli_missing_style_image(tmp_path, image_factory):
    image_factory("photo.png", size=(64, 48), seed=3)
    run = _cli(
        ["content=photo.png", "style.image=no_such_painting.jpg", "output=out.png"], cwd=tmp_path
    )
    assert run.returncode == 2
    assert "no_such_painting.jpg" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out.png").exists()


def test_gatys_entry_makes_openmp_waits_passive_unless_the_user_chose(monkeypatch):
    from fastnst.accel.cpu_tuning import passive_openmp_waits

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    # and the entry point sets it before torch is imported (importing the CLI loads no torch)
    code = "import sys, fastnst.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# ----------------------------------------------------------------------------- inputs checked first


def _refused_before_work(run_entry, tmp_path, photo_path, style_path, *extra):
    """gatys.py with `extra`: (exit code, stderr). vgg.weights names no file, so an error
    raised after the VGG is built (or after optimizing) would name it instead."""
    from fastnst import cli

    return run_entry(
        cli.gatys_main,
        *tiny_run(tmp_path, photo_path, style_path, "vgg.weights=/nonexistent/vgg.pth", *extra),
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("lr=nan", "lr"),
        ("lr=inf", "lr"),
        ("lr=-0.5", "lr"),
        ("lr=0", "lr"),
        ("style.size=0", "style.size"),
        ("style.size=-64", "style.size"),
        ("style.size=100000", "style.size"),
        ("style.size=true", "style.size"),
        ("size=100000", "size"),
        ("iterations=0", "iterations"),
        ("precision=bogus", "precision"),
        ("precision=AUTO", "did you mean auto"),
        ("precision=bf16", "precision"),
    ],
)
def test_bad_values_are_one_line_before_any_work(
    tmp_path, image_factory, synthetic_style, run_entry, override, named
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    code, err = _refused_before_work(run_entry, tmp_path, photo_path, synthetic_style, override)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert named in err and "/nonexistent/vgg.pth" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "style.png"]


def test_a_folder_at_the_loss_log_path_is_refused_before_work(
    tmp_path, image_factory, synthetic_style, run_entry
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    (tmp_path / "out.png.json").mkdir()
    code, err = _refused_before_work(
        run_entry, tmp_path, photo_path, synthetic_style, "overwrite=true"
    )
    assert code == 2 and err.strip().count("\n") == 0
    assert "out.png.json" in err and "folder" in err and "/nonexistent/vgg.pth" not in err
    assert not (tmp_path / "out.png").exists()


def test_a_loss_log_name_too_long_for_the_file_system_is_refused_before_work(
    tmp_path, image_factory, synthetic_style, run_entry
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    # the image name fits (250 bytes); the log's temp file (.<name>.json.<8 hex>.tmp.json) does not
    output = tmp_path / ("o" * 246 + ".png")
    code, err = _refused_before_work(
        run_entry, tmp_path, photo_path, synthetic_style, f"output={output}"
    )
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "loss log cannot be written" in err and "/nonexistent/vgg.pth" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "style.png"]


def test_a_symlinked_loss_log_is_replaced_never_written_through(
    tmp_path, image_factory, synthetic_style, compose_gatys
):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    victim = tmp_path / "victim.json"
    victim.write_text("keep me")
    (tmp_path / "out.png.json").symlink_to(victim)
    cfg = compose_gatys(tiny_run(tmp_path, photo_path, synthetic_style, "iterations=1"))
    with pytest.raises(OutputExistsError, match="out.png.json"):  # a link is an existing file
        run_gatys(cfg)
    cfg.overwrite = True
    run_gatys(cfg)
    log = tmp_path / "out.png.json"
    assert not log.is_symlink() and json.loads(log.read_text())["best_iteration"] == 1
    assert victim.read_text() == "keep me"


def test_lr_and_style_size_reach_the_run(tmp_path, image_factory, synthetic_style, compose_gatys):
    photo_path = image_factory("photo.png", size=(64, 48), seed=3)
    cfg = compose_gatys(
        tiny_run(
            tmp_path,
            photo_path,
            synthetic_style,
            "optimizer=adam",
            "lr=0.05",
            "style.size=null",
            "iterations=1",
            "precision=32-true",
        )
    )
    run_gatys(cfg)
    log = json.loads((tmp_path / "out.png.json").read_text())
    assert log["settings"]["lr"] == 0.05 and log["precision"] == "32-true"
