"""scripts/data/extract_frames.py (fastnst.frames): sampling, near-duplicate removal, letterbox crop,
numbering and resumability, on a tiny generated video."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fastnst.apps.frames import main
from fastnst.frames import MANIFEST, dhash, extract_frames, hamming, letterbox_box

W, H, BAR = 64, 48, 6  # 64 x 48 frames with 6 px black bars at the top and bottom


def scene(kind: int) -> np.ndarray:
    """Three looks a difference hash tells apart: brightening, darkening, vertical stripes."""
    x = np.linspace(0, 1, W)[None, :].repeat(H - 2 * BAR, 0)
    grey = {0: x, 1: 1 - x, 2: ((np.arange(W) // 8) % 2)[None, :].repeat(H - 2 * BAR, 0)}[kind]
    frame = np.zeros((H, W, 3), np.uint8)
    frame[BAR : H - BAR] = (
        np.stack([grey, 0.6 * grey + 0.2, 1 - 0.5 * grey], -1) * 235 + 10
    ).astype(np.uint8)
    return frame


def write_video(path, scenes=(0, 1, 2), seconds_each=1.0, fps=10):
    """Each scene is one identical frame repeated for `seconds_each` (3 s, 30 frames by default)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "12"}
        for kind in scenes:
            for _ in range(round(seconds_each * fps)):
                for packet in stream.encode(
                    av.VideoFrame.from_ndarray(scene(kind), format="rgb24")
                ):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clips" / "episode.mp4")


def test_hash_and_letterbox_helpers():
    frame = scene(0)
    assert letterbox_box(frame) == (0, BAR, W, H - BAR)
    assert letterbox_box(np.zeros((H, W, 3), np.uint8)) == (0, 0, W, H)  # all dark: left whole
    a, b = Image.fromarray(scene(0)), Image.fromarray(scene(1))
    assert hamming(dhash(a), dhash(a.resize((128, 96)))) <= 2
    assert hamming(dhash(a), dhash(b)) > 30


def test_every_n_seconds_drops_duplicates_crops_bars_and_continues_numbering(video, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    Image.new("RGB", (8, 8)).save(out / "268.jpg")  # an earlier frame of the set
    stats = extract_frames([video], out, every=0.5, progress=False)
    # samples at 0, 0.5, ..., 2.5 s: two per scene, the second of each is a duplicate
    assert (stats.read, stats.sampled, stats.kept, stats.duplicates, stats.written) == (
        30,
        6,
        3,
        3,
        3,
    )
    assert sorted(p.name for p in out.glob("*.jpg")) == ["268.jpg", "269.jpg", "270.jpg", "271.jpg"]
    for name in ("269.jpg", "270.jpg", "271.jpg"):
        assert Image.open(out / name).size == (W, H - 2 * BAR)
    stripes = np.asarray(Image.open(out / "271.jpg").convert("L"), dtype=float)
    assert stripes[:, 0:8].mean() + 60 < stripes[:, 8:16].mean()  # the third scene, in order
    assert "268.jpg" not in json.dumps(json.loads((out / MANIFEST).read_text()))


def test_rerun_adds_only_what_is_missing(video, tmp_path):
    out = tmp_path / "frames"
    extract_frames([video], out, every=0.5, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jpg")}
    again = extract_frames([video], out, every=0.5, progress=False)
    assert again.written == 0 and again.kept == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.jpg")} == stamps
    (out / "2.jpg").unlink()
    third = extract_frames([video], out, every=0.5, progress=False)
    assert third.written == 1 and [p.name for p in third.files] == ["2.jpg"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.jpg") if p.name != "2.jpg"} == {
        k: v for k, v in stamps.items() if k != "2.jpg"
    }
    # a denser sampling adds the new frames after the existing numbers
    denser = extract_frames([video], out, every=0.5, dup_threshold=-1, progress=False)
    assert denser.written == 3 and sorted(p.name for p in denser.files) == [
        "4.jpg",
        "5.jpg",
        "6.jpg",
    ]


@pytest.mark.parametrize(
    "options, kept, size",
    [
        ({"dup_threshold": -1}, 6, (W, H - 2 * BAR)),
        ({"crop_bars": False}, 3, (W, H)),
        ({"max_side": 32}, 3, (32, 18)),
        ({"every": 2.0}, 2, (W, H - 2 * BAR)),  # 0 s and 2 s: scenes one and three
    ],
)
def test_options(video, tmp_path, options, kept, size):
    stats = extract_frames([video], tmp_path / "out", progress=False, **{"every": 0.5, **options})
    assert stats.kept == kept
    assert {Image.open(p).size for p in stats.files} == {size}


def test_cli_scene_changes_on_a_folder_of_videos(video, tmp_path, capsys):
    assert main([str(video.parent), "--out", str(tmp_path / "out"), "--scenes", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["1.jpg", "2.jpg", "3.jpg"]
    summary = capsys.readouterr().out.strip()
    assert (
        summary
        == "read 30 frames from 1 video(s): sampled 3, kept 3, dropped 0 as near-duplicates; wrote 3 new file(s)"
    )


def test_cli_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in (tmp_path / "missing.mp4", fake, empty):
        assert main([str(source), "--out", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(source) in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.data
def test_real_video(data_dir, tmp_path, capsys):
    out = tmp_path / "fox"
    args = [str(data_dir / "video" / "fox.mp4"), "--out", str(out)]
    args += ["--every", "2", "--max-side", "128", "--quiet"]
    assert main(args) == 0
    files = sorted(out.glob("*.jpg"))
    assert files and all(max(Image.open(p).size) <= 128 for p in files)
    assert "kept" in capsys.readouterr().out
    assert main(args) == 0  # again: the frames already there are kept, none rewritten
    assert "wrote 0 new file(s)" in capsys.readouterr().out


def test_scene_threshold_option(video, tmp_path):
    # the cuts of the test video change the grey thumbnail by about 0.21 and 0.23
    assert (
        extract_frames(
            [video], tmp_path / "a", scenes=True, scene_threshold=0.22, progress=False
        ).kept
        == 2
    )
    assert (
        extract_frames(
            [video], tmp_path / "b", scenes=True, scene_threshold=0.5, progress=False
        ).kept
        == 1
    )


def test_progress_bar_ends_at_the_number_of_frames_read(video, tmp_path, monkeypatch):
    import tqdm

    bars = []

    class RecordingBar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})
            bars.append(self)

        def update(self, n=1):
            self.counted = getattr(self, "counted", 0) + n

    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    # samples at 0, 0.7, 1.4, 2.1, 2.8 s: frames after the last sample are read too
    stats = extract_frames([video], tmp_path / "frames", every=0.7, progress=True)
    assert stats.read == 30
    assert bars[0].counted == stats.read
