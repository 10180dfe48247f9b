"""Stable video end to end: temporal=flow in stylize, loss.temporal_weight in training, and a
network trained with the term following synthetic motion (hermetic, CPU)."""

from __future__ import annotations

import pytest
import torch

from fastnst import Stylizer
from fastnst.artifacts import save_exported
from fastnst.flow import warping_error
from fastnst.temporal import TransformRange, temporal_loss
from fastnst.transformer import TransformerNet
from fastnst.video import read_frames, stylize_video, write_video
from tests.helpers import run_stylize, shifted_frames, texture


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_exported(
        tmp_path / "model.pt", TransformerNet(channels=(8, 16, 32), num_residual=2)
    )


@pytest.fixture
def shift_clip(tmp_path):
    return (
        write_video(shifted_frames(6, size=64, step=2), tmp_path / "shift.mp4", rate=30)
        and tmp_path / "shift.mp4"
    )


def _flicker_plain_and_smoothed(stylizer, clip, folder) -> tuple[float, float]:
    """Warping errors of the clip stylized plain and with temporal=flow at strength 0.5 (the
    default); both write every frame."""
    plain, smooth = folder / "plain.mp4", folder / "smooth.mp4"
    assert stylize_video(stylizer, clip, plain, progress=False) == 6
    assert (
        stylize_video(
            stylizer, clip, smooth, progress=False, temporal="flow", temporal_strength=0.5
        )
        == 6
    )
    frames = list(read_frames(clip))
    return warping_error(frames, list(read_frames(plain))), warping_error(
        frames, list(read_frames(smooth))
    )


# Measured on this clip: strength 0.5 leaves ~0.17x the plain warping error (tiled or not); a
# smoother 50x too weak leaves ~0.95x. 0.25x separates the two.


def test_temporal_flow_writes_every_frame_and_lowers_flicker(tmp_path, model_file, shift_clip):
    plain, smooth = _flicker_plain_and_smoothed(
        Stylizer.load(model_file, device="cpu", batch_size=3), shift_clip, tmp_path
    )
    assert smooth < 0.25 * plain, (smooth, plain)


def test_temporal_flow_with_tiles_lowers_flicker_as_much(tmp_path, model_file, shift_clip):
    plain, smooth = _flicker_plain_and_smoothed(
        Stylizer.load(model_file, device="cpu", tile=32, batch_size=2), shift_clip, tmp_path
    )
    assert smooth < 0.25 * plain, (smooth, plain)


def test_cli_temporal_options(tmp_path, model_file, shift_clip, image_factory, capsys):
    out = tmp_path / "cli.mp4"
    assert (
        run_stylize(
            f"model={model_file}",
            f"input={shift_clip}",
            f"output={out}",
            "temporal=flow",
            "temporal_strength=0.3",
            "device=cpu",
        )
        == 0
    )
    assert len(list(read_frames(out))) == 6
    assert (
        run_stylize(
            f"model={model_file}",
            f"input={shift_clip}",
            f"output={tmp_path / 'b.mp4'}",
            "temporal=optical",
        )
        == 2
    )
    assert "temporal must be null (off) or flow" in capsys.readouterr().err
    assert (
        run_stylize(
            f"model={model_file}",
            f"input={shift_clip}",
            f"output={tmp_path / 'c.mp4'}",
            "temporal=flow",
            "temporal_strength=1.5",
        )
        == 2
    )
    assert "temporal_strength must be between 0 and 1" in capsys.readouterr().err
    image = image_factory("photo.png")
    assert run_stylize(f"model={model_file}", f"input={image}", "temporal=flow") == 2
    assert "smooths videos" in capsys.readouterr().err


def test_training_logs_the_temporal_term(compose_train, photo_folder, style_env):
    from fastnst.train import train
    from tests.helpers import scalars, tiny

    cfg = compose_train(*tiny(photo_folder(4), "loss=stable", "loss.temporal_weight=1e4", steps=4))
    run_dir = train(cfg)["run_dir"]
    assert len(scalars(run_dir, "train/temporal")) == 4


def test_temporal_weight_zero_keeps_the_plain_loss(compose_train, photo_folder, style_env):
    from fastnst.train import train
    from tests.helpers import scalars, tiny

    cfg = compose_train(*tiny(photo_folder(4), "loss=stable", "loss.temporal_weight=0", steps=2))
    run_dir = train(cfg)["run_dir"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert "train/temporal" not in EventAccumulator(str(run_dir)).Reload().Tags()["scalars"]
    assert scalars(run_dir, "train/loss")


def test_negative_temporal_weight_is_a_user_error(compose_train, photo_folder, style_env, capsys):
    from fastnst.train import train
    from tests.helpers import exit_code, tiny

    cfg = compose_train(*tiny(photo_folder(4), "loss.temporal_weight=-1", steps=1))
    assert exit_code(train, cfg) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("loss.temporal_weight must be >= 0 (0 = off), got -1.0") and "\n" not in err


def _train_net(temporal_weight: float, photos: torch.Tensor, steps: int = 40) -> TransformerNet:
    """A tiny network taught a fixed, textured 'style' (a per-pixel colour map plus a pattern
    that sticks to the image grid, i.e. flicker-prone), with or without the stability term."""
    torch.manual_seed(0)
    net = TransformerNet(channels=(4, 8, 16), num_residual=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    grid_pattern = texture(
        photos.shape[-2], photos.shape[-1], seed=9
    )  # fixed to the frame, not the scene
    generator = torch.Generator().manual_seed(1)
    limits = TransformRange(shift=3, rotation=1, scale=0.03, noise=0.02)
    for _ in range(steps):
        out = net(photos)
        loss = (out - (0.5 * photos.flip(1) + 0.5 * grid_pattern)).pow(2).mean()
        if temporal_weight:
            loss = loss + temporal_weight * temporal_loss(net, photos, out, limits, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def test_a_network_trained_with_the_term_follows_a_shift():
    photos = torch.cat([texture(32, 32, seed=s) for s in range(2)])
    plain, stable = _train_net(0.0, photos), _train_net(4.0, photos)
    frames = shifted_frames(4, size=48, step=3, seed=5)
    with torch.no_grad():
        plain_error = warping_error(frames, [plain(f) for f in frames])
        stable_error = warping_error(frames, [stable(f) for f in frames])
    assert stable_error < 0.5 * plain_error, (stable_error, plain_error)


def test_training_logs_the_warping_error_on_a_fixed_clip(
    compose_train, photo_folder, style_env, tmp_path
):
    from fastnst.train import train
    from fastnst.video import write_video
    from tests.helpers import scalars, shifted_frames, tiny

    clip = tmp_path / "clip.mp4"
    write_video(shifted_frames(5, size=48, step=2), clip)
    cfg = compose_train(
        *tiny(
            photo_folder(4),
            f"callbacks.warping_error.clip={clip}",
            "callbacks.warping_error.frames=4",
            "callbacks.warping_error.size=48",
            "trainer.val_check_interval=2",
            steps=4,
        )
    )
    run_dir = train(cfg)["run_dir"]
    logged = scalars(run_dir, "val/warping_error")
    assert len(logged) == 2 and all(v > 0 for v in logged.values())


def test_a_missing_warping_error_clip_is_one_line_before_training(
    compose_train, photo_folder, style_env, tmp_path, capsys
):
    from fastnst.train import train
    from tests.helpers import exit_code, tiny

    cfg = compose_train(
        *tiny(photo_folder(4), f"callbacks.warping_error.clip={tmp_path / 'none.mp4'}", steps=2),
        run_dir=tmp_path / "run",
    )
    assert exit_code(train, cfg) == 2
    assert "none.mp4: callbacks.warping_error.clip: video not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started, no run directory left behind


def test_a_one_frame_warping_error_clip_is_one_line_before_training(
    compose_train, photo_folder, style_env, tmp_path, capsys
):
    from fastnst.train import train
    from fastnst.video import write_video
    from tests.helpers import exit_code, shifted_frames, tiny

    clip = tmp_path / "still.mp4"
    write_video(shifted_frames(1, size=48), clip)
    cfg = compose_train(
        *tiny(photo_folder(4), f"callbacks.warping_error.clip={clip}", steps=2),
        run_dir=tmp_path / "run",
    )
    assert exit_code(train, cfg) == 2
    assert (
        "still.mp4: callbacks.warping_error.clip: the warping error needs at least two frames"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()
