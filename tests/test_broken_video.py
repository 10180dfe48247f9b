"""Damaged videos: stylize.py keeps the frames it can decode, writes a playable file with exactly
those, names what it could not read in one line and exits 2 (no traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastnst import cli
from fastnst.video import video_info

FRAMES = 30


def make_video(path: Path, frames: int = FRAMES, size=(64, 48), faststart: bool = True) -> Path:
    """A small H.264 .mp4 of moving gradients. faststart puts the index (moov) first, as phones
    and web videos do, so a file cut short still says where its frames are."""
    import av

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).integers(0, 64, (frames, h, w, 1))  # frames of a few KB each
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = (
            10  # a keyframe every 10 frames: decoding recovers after damage
        )
        for i in range(frames):
            arr = (
                np.stack(
                    [(xx * 4 + i * 8) % 256, (yy * 5 + i * 3) % 256, ((xx + yy) * 2) % 256], -1
                )
                + noise[i]
            )
            out.mux(stream.encode(av.VideoFrame.from_ndarray(arr.astype(np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    return path


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage_in_the_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 500] = (
        np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()
    )
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "damage", [cut_in_half, garbage_in_the_middle], ids=["cut_in_half", "garbage_in_the_middle"]
)
def test_damaged_video_keeps_the_decodable_frames_and_exits_2(
    damage, tmp_path, run_entry, model_file
):  # noqa: F811
    src = damage(make_video(tmp_path / "clip.mp4"))
    out = tmp_path / "styled.mp4"
    code, err = run_entry(cli.stylize_main, f"model={model_file}", f"input={src}", f"output={out}")
    lines = [
        line for line in err.splitlines() if line.strip() and "stylize:" not in line
    ]  # not the progress bar
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and src.name in lines[0] and "could not be decoded" in lines[0], lines
    written = int(lines[0].split("wrote the ")[1].split()[0])
    assert 0 < written < FRAMES
    info = video_info(out)  # the output opens, and holds exactly the decoded frames
    assert (info["width"], info["height"]) == (64, 48)
    assert _count_decoded(out) == written
    assert not list(tmp_path.glob(".*partial*"))


def test_video_cut_before_its_index_is_one_line_and_no_output(tmp_path, run_entry, model_file):  # noqa: F811
    src = cut_in_half(make_video(tmp_path / "clip.mp4", faststart=False))  # index at the end: lost
    out = tmp_path / "styled.mp4"
    code, err = run_entry(cli.stylize_main, f"model={model_file}", f"input={src}", f"output={out}")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1 and src.name in lines[0], err
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_intact_video_is_not_reported(tmp_path, run_entry, model_file):  # noqa: F811
    src = make_video(tmp_path / "clip.mp4")
    code, err = run_entry(
        cli.stylize_main, f"model={model_file}", f"input={src}", f"output={tmp_path / 'o.mp4'}"
    )
    assert code == 0, err
    assert _count_decoded(tmp_path / "o.mp4") == FRAMES


def _count_decoded(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
