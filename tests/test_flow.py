"""Optical flow, the temporal warping error and temporal=flow smoothing on synthetic motion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastnst.flow import FlowEstimator, TemporalSmoother, to_gray, warp_by_flow, warping_error
from fastnst.video import read_frames, write_video
from tests.helpers import shifted_frames, texture


def test_flow_finds_a_whole_pixel_shift_and_warps_back():
    a, b = shifted_frames(2, size=96, step=3)
    back, mask = FlowEstimator().backward_with_mask(to_gray(a), to_gray(b))
    inner = back[..., 8:-8, 8:-8]
    # frame b at x shows frame a at x + 3: the flow back points 3 px right
    assert inner[:, 0].median().item() == pytest.approx(3.0, abs=0.25)
    assert inner[:, 1].median().item() == pytest.approx(0.0, abs=0.25)
    assert mask.mean() > 0.8
    assert mask[..., :, -2:].sum() == 0  # the right edge comes from outside frame a: unreliable
    warped = warp_by_flow(a, back)
    assert ((warped - b).abs() * mask)[..., 8:-8, 8:-8].mean() < 0.01


def test_warping_error_is_zero_for_the_identity_on_shifted_frames():
    frames = shifted_frames(5, size=96, step=2)
    assert warping_error(frames, frames) < 2e-4


def test_warping_error_grows_with_flicker():
    frames = shifted_frames(5, size=96, step=2)
    g = torch.Generator().manual_seed(0)
    flicker = [(f + 0.1 * torch.randn(f.shape, generator=g)).clamp(0, 1) for f in frames]
    steady = warping_error(frames, frames)
    noisy = warping_error(frames, flicker)
    assert noisy > 0.02 and noisy > 50 * steady


def test_warping_error_compares_at_the_output_size():
    frames = shifted_frames(4, size=96, step=2)
    small = [F.interpolate(f, size=(48, 48), mode="bilinear", antialias=True) for f in frames]
    assert warping_error(frames, small) < 1e-3


def test_smoother_strength_zero_changes_nothing_and_one_freezes_a_still_scene():
    frames = [texture(64, 64)] * 3
    outputs = [
        torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    off = TemporalSmoother(0.0)
    assert all(torch.equal(off(f, o), o) for f, o in zip(frames, outputs))
    frozen = TemporalSmoother(1.0)
    results = [frozen(f, o) for f, o in zip(frames, outputs)]
    assert torch.allclose(results[2], outputs[0], atol=1e-4)


def test_smoothing_lowers_the_warping_error_of_a_flickering_stylization():
    frames = shifted_frames(6, size=96, step=2)
    g = torch.Generator().manual_seed(0)
    flicker = [(f + 0.1 * torch.randn(f.shape, generator=g)).clamp(0, 1) for f in frames]
    smoother = TemporalSmoother(0.6)
    smoothed = [smoother(f, o) for f, o in zip(frames, flicker)]
    assert warping_error(frames, smoothed) < 0.6 * warping_error(frames, flicker)


def test_write_and_read_video_round_trip(tmp_path):
    frames = shifted_frames(4, size=32, step=1)
    path = tmp_path / "clip.mp4"
    assert write_video(frames, path, rate=30) == 4
    back = list(read_frames(path))
    assert len(back) == 4 and back[0].shape == (1, 3, 32, 32)
    assert (back[1] - frames[1]).abs().mean() < 0.06  # yuv420p halves the colour resolution
    assert len(list(read_frames(path, limit=2))) == 2


def test_video_metrics_cli(tmp_path, capsys):
    from fastnst.video_metrics import main

    frames = shifted_frames(5, size=96, step=2)
    clip = tmp_path / "clip.mp4"
    write_video(frames, clip, rate=30)
    # the identity "stylization" of a video of exact shifts: ~no warping error, no content loss
    assert main(["--input", str(clip), "--output", str(clip), "--json", "--loss-frames", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (
        result["frames"] == 5
        and result["warping_error"] < 1e-3
        and result["content"] == pytest.approx(0, abs=1e-6)
    )
    assert "style" not in result
    assert main(["--input", str(clip), "--output", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: video not found" in capsys.readouterr().err
    assert main(["--input", str(clip), "--output", str(clip), "--frames", "1"]) == 2


def test_video_metrics_scores_style_from_a_painting(tmp_path, capsys, synthetic_style):
    from fastnst.video_metrics import main

    clip = tmp_path / "clip.mp4"
    write_video(shifted_frames(3, size=64, step=2), clip, rate=30)
    assert (
        main(
            [
                "--input",
                str(clip),
                "--output",
                str(clip),
                "--style",
                str(synthetic_style),
                "--loss-frames",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "warping error:" in out and "style loss:" in out and "content loss:" in out


def test_gray_conversion_matches_luminance():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert np.all(to_gray(rgb) == round(0.299 * 255))
