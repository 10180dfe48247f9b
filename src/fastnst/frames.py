"""Build an image data set from videos: sample frames (every N seconds or at scene changes),
crop letterbox bars, drop near-duplicates by perceptual hash, and write numbered JPEGs into one
flat folder (the seed's layout: 268.jpg, 269.jpg ...). `scripts/data/extract_frames.py` is the CLI.

Resumable: `<out>/.extract_frames.json` maps (video, timestamp) -> file name. A rerun decodes
again (the choices are deterministic), writes only frames whose file is missing, and numbers
new frames after the highest number already in the folder.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fastnst.atomic import write_json
from fastnst.errors import FastNSTError
from fastnst.images import save_image
from fastnst.preflight import ensure_writable
from fastnst.video import VIDEO_EXTENSIONS, is_video_file

MANIFEST = ".extract_frames.json"
# a new frame is compared with this many most recently kept frames (a scene that comes back
# after a cut is usually a near-duplicate of a recent frame, not of one from minutes ago)
DUP_WINDOW = 32
# the manifest is rewritten after this many new files, so a killed run loses little
SAVE_MANIFEST_EVERY = 25
NUMBERED = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


@dataclass
class ExtractStats:
    videos: int = 0
    read: int = 0  # frames decoded
    sampled: int = 0  # frames chosen by the sampling rule (time or scene change)
    kept: int = 0  # sampled frames that are not near-duplicates
    duplicates: int = 0  # sampled frames dropped as near-duplicates
    written: int = 0  # files written by this run (kept frames whose file was missing)
    files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"read {self.read} frames from {self.videos} video(s): sampled {self.sampled}, kept {self.kept}, "
            f"dropped {self.duplicates} as near-duplicates; wrote {self.written} new file(s)"
        )


# ----------------------------------------------------------------------------- image helpers


def dhash(image: Image.Image, hash_size: int = 8) -> int:
    """Difference hash: hash_size**2 bits, one per horizontal brightness step of a tiny grey
    thumbnail. Near-identical images differ in a few bits (Hamming distance)."""
    grey = np.asarray(
        image.convert("L").resize((hash_size + 1, hash_size), Image.BILINEAR), dtype=np.int16
    )
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def letterbox_box(array: np.ndarray, threshold: float = 24.0) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) without the near-black bars at the borders of an (H, W, 3)
    uint8 frame: border rows/columns whose mean brightness is below `threshold` (0-255). A frame
    that is dark all over (a fade to black) is left whole."""
    grey = array.astype(np.float32).mean(axis=2)
    rows = np.flatnonzero(grey.mean(axis=1) >= threshold)
    cols = np.flatnonzero(grey.mean(axis=0) >= threshold)
    if len(rows) == 0 or len(cols) == 0:
        return 0, 0, array.shape[1], array.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def change_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two grey thumbnails, in [0, 1] (a cut scores high)."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """Longer side at most max_side (never enlarged)."""
    if not max_side or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
    )


# ----------------------------------------------------------------------------- inputs


def find_videos(source: str | os.PathLike) -> list[Path]:
    """A video file, or the video files directly in a folder (sorted). Raises FastNSTError."""
    source = Path(source).expanduser()
    if source.is_dir():
        videos = sorted(
            p
            for p in source.iterdir()
            if p.is_file() and is_video_file(p) and not p.name.startswith(".")
        )
        if not videos:
            raise FastNSTError(
                f"{source}: no video files in this folder ({', '.join(VIDEO_EXTENSIONS)})"
            )
        return videos
    if not source.exists():
        raise FastNSTError(f"{source}: no such video file or folder")
    return [source]


def _open(path: Path):
    import av

    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        raise FastNSTError(f"{path}: not a video file (or a format PyAV cannot decode)") from None
    if not container.streams.video:
        container.close()
        raise FastNSTError(f"{path}: not a video file (no video stream)")
    return container


def sampled_frames(
    path: Path, every: float | None, scenes: bool, scene_threshold: float, stats: ExtractStats
) -> Iterator[tuple[float, Image.Image]]:
    """(timestamp in s, RGB frame) of the frames the sampling rule picks, in decode order.

    every: one frame every `every` seconds (the first at 0). scenes: the first frame and each
    frame whose change from the previous decoded frame exceeds scene_threshold."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_time, previous = 0.0, None
        try:
            for frame in container.decode(stream):
                stats.read += 1
                t = (
                    float(frame.time)
                    if frame.time is not None
                    else stats.read / float(stream.average_rate or 25)
                )
                if scenes:
                    thumb = frame.reformat(width=64, height=36, format="gray").to_ndarray()
                    cut = previous is None or change_score(thumb, previous) > scene_threshold
                    previous = thumb
                    if not cut:
                        continue
                elif t + 1e-6 < next_time:
                    continue
                else:
                    next_time = (np.floor(t / every + 1e-6) + 1) * every
                yield t, frame.to_image()
        except av.error.FFmpegError as e:
            raise FastNSTError(f"{path}: cannot decode video ({e})") from None
    finally:
        container.close()


# ----------------------------------------------------------------------------- manifest


def _load_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return {"version": 1, "videos": {}}
    try:
        manifest = json.loads(path.read_text())
        assert isinstance(manifest.get("videos"), dict)
        return manifest
    except (ValueError, AssertionError, OSError):
        raise FastNSTError(
            f"{path}: damaged manifest (delete it to start the numbering afresh)"
        ) from None


def _save_manifest(out: Path, manifest: dict) -> None:
    write_json(out / MANIFEST, manifest, indent=1, sort_keys=True)


def _highest_number(out: Path, manifest: dict) -> int:
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := NUMBERED.match(p.name))]
    for frames in manifest["videos"].values():
        numbers += [
            int(NUMBERED.match(name).group(1)) for name in frames.values() if NUMBERED.match(name)
        ]
    return max(numbers, default=0)


# ----------------------------------------------------------------------------- main loop


def extract_frames(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    every: float = 2.0,
    scenes: bool = False,
    scene_threshold: float = 0.15,
    dup_threshold: int = 6,
    max_side: int | None = None,
    crop_bars: bool = True,
    bar_threshold: float = 24.0,
    start: int = 1,
    progress: bool = True,
) -> ExtractStats:
    """Extract frames from the videos of `sources` into the folder `out`; returns the counts.

    every: seconds between sampled frames (ignored with scenes=True). scene_threshold: mean grey
    change in [0, 1] that counts as a cut. dup_threshold: a frame whose dHash (64 bits) is within
    this many bits of a recently kept frame is dropped (-1 keeps everything). max_side: longer side
    of the written frames in px (None = as decoded, after cropping). crop_bars / bar_threshold:
    see `letterbox_box`. start: the first number in an empty folder.
    """
    if not scenes and not (every and every > 0):
        raise FastNSTError(f"--every must be a positive number of seconds, got {every}")
    if not 0 < scene_threshold < 1:
        raise FastNSTError(f"--scene-threshold must be between 0 and 1, got {scene_threshold}")
    if max_side is not None and max_side < 8:
        raise FastNSTError(f"--max-side must be at least 8 px, got {max_side}")
    videos = [v for s in sources for v in find_videos(s)]
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise FastNSTError(f"{out}: output exists and is not a folder")
    ensure_writable(out, "output folder", folder=True)
    for video in videos:  # a non-video fails before anything is written
        _open(video).close()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(out)
    next_number = max(_highest_number(out, manifest) + 1, int(start))
    stats = ExtractStats(videos=len(videos))
    recent: deque[int] = deque(maxlen=DUP_WINDOW)
    unsaved = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="frame", desc="extract", dynamic_ncols=True)
    try:
        for video in videos:
            done = manifest["videos"].setdefault(str(video.resolve()), {})
            last_read = stats.read
            for t, image in sampled_frames(video, every, scenes, scene_threshold, stats):
                if bar is not None:
                    bar.update(stats.read - last_read)
                    last_read = stats.read
                stats.sampled += 1
                if crop_bars:
                    image = image.crop(letterbox_box(np.asarray(image), bar_threshold))
                image = shrink(image, max_side)
                h = dhash(image)
                if bar is not None:
                    bar.set_postfix(kept=stats.kept, dup=stats.duplicates, refresh=False)
                if dup_threshold >= 0 and any(hamming(h, r) <= dup_threshold for r in recent):
                    stats.duplicates += 1
                    continue
                recent.append(h)
                stats.kept += 1
                key = f"{t:.3f}"
                name = done.get(key)
                if name is None:
                    name = f"{next_number}.jpg"
                    next_number += 1
                path = out / name
                if not path.exists():
                    save_image(image, path)
                    done[key] = name  # recorded once written: a failed save leaves no entry
                    stats.written += 1
                    stats.files.append(path)
                    unsaved += 1
                    if unsaved >= SAVE_MANIFEST_EVERY:
                        _save_manifest(out, manifest)
                        unsaved = 0
            if bar is not None:  # the frames decoded after the last sampled one count too
                bar.update(stats.read - last_read)
    finally:
        if any(manifest["videos"].values()):
            _save_manifest(out, manifest)
        elif created and not any(out.iterdir()):
            out.rmdir()  # failed before its first frame: nothing left behind
        if bar is not None:
            bar.close()
    return stats


__all__ = ["extract_frames", "dhash", "hamming", "letterbox_box", "change_score", "find_videos"]
