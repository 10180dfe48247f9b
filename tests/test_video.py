"""Video in -> video out: frame count, frame rate and audio kept; no overwrite; bad files named."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from fastnst import Stylizer
from fastnst.artifacts import save_exported
from fastnst.errors import FastNSTError
from fastnst.transformer import TransformerNet
from fastnst.video import stylize_video, video_info
from tests.helpers import run_stylize, write_clip

av = pytest.importorskip("av")


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_exported(
        tmp_path / "model.pt", TransformerNet(channels=(8, 16, 32), num_residual=2)
    )


def count_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_video_keeps_frame_count_rate_and_audio(tmp_path, model_file):
    src = write_clip(tmp_path / "clip.mp4", frames=10, rate=12, audio=True)
    dst = tmp_path / "out" / "styled.mp4"
    s = Stylizer.load(model_file, batch_size=4)
    assert stylize_video(s, src, dst, progress=False) == 10
    info = video_info(dst)
    assert count_frames(dst) == 10
    assert info["rate"] == Fraction(12) and (info["width"], info["height"]) == (64, 48)
    assert info["audio"]
    with av.open(str(src)) as a, av.open(str(dst)) as b:  # stylized: frames differ from the input
        fa = next(a.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        assert np.abs(fa - fb).mean() > 5


def test_video_size_option_and_odd_sides(tmp_path, model_file):
    src = write_clip(tmp_path / "clip.mkv", frames=5, size=(64, 48), rate=10)
    dst = tmp_path / "small.mkv"
    stylize_video(Stylizer.load(model_file, size=50), src, dst, progress=False)  # 50x37.5 -> 50x38
    info = video_info(dst)
    assert (info["width"], info["height"]) == (50, 38) and count_frames(dst) == 5


def test_cli_video_and_no_overwrite(tmp_path, model_file, capsys):
    src = write_clip(tmp_path / "clip.mp4", frames=6, rate=8)
    dst = tmp_path / "styled.mp4"
    assert run_stylize(f"model={model_file}", f"input={src}", f"output={dst}", "batch_size=3") == 0
    assert count_frames(dst) == 6 and video_info(dst)["rate"] == Fraction(8)
    dst.write_bytes(b"keep")
    capsys.readouterr()
    assert (
        run_stylize(f"model={model_file}", f"input={src}", f"output={dst}") == 2
    )  # as for images and gatys.py
    assert (
        dst.read_bytes() == b"keep"
        and "already exists; pass overwrite=true" in capsys.readouterr().err
    )
    before = src.read_bytes()
    assert (
        run_stylize(f"model={model_file}", f"input={src}", f"output={src}", "overwrite=true") == 2
    )
    assert src.read_bytes() == before


def test_unreadable_video_names_the_file(tmp_path, model_file):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00 definitely not a video")
    with pytest.raises(FastNSTError, match="broken.mp4"):
        stylize_video(Stylizer.load(model_file), bad, tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.data
def test_fox_video_end_to_end(data_dir, tmp_path, model_file):
    src = data_dir / "video" / "fox.mp4"
    dst = tmp_path / "fox_styled.mp4"
    s = Stylizer.load(model_file, size=64, batch_size=8)
    frames = stylize_video(s, src, dst, progress=False)
    source = video_info(src)
    assert frames == count_frames(dst) == source["frames"]
    assert video_info(dst)["rate"] == source["rate"]
