"""Stylize a video file frame by frame with PyAV: same frame count and rate, audio copied.

Frames are decoded in order, stylized `batch_size` at a time, and encoded as H.264 (VP9 for
.webm) at the input's average frame rate with consecutive timestamps (variable-rate input
becomes constant-rate). yuv420p needs even sides, so an odd last row/column is cropped.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import torch

from fastnst.atomic import atomic_path
from fastnst.errors import FastNSTError, check_in_range, refuse_to_overwrite
from fastnst.images import fit_size

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi")
VIDEO_CODECS = {".webm": "libvpx-vp9"}  # everything else: libx264
DEFAULT_CODEC = "libx264"


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open_input(path: Path):
    import av

    try:
        # a mangled title or tag must not make a playable video unreadable
        container = av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise FastNSTError(f"{path}: cannot open video ({e})") from None
    if not container.streams.video:
        container.close()
        raise FastNSTError(f"{path}: no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not (
        stream.codec_context.width and stream.codec_context.height
    ):
        container.close()  # a damaged header: no decoder, or frames of no size
        raise FastNSTError(f"{path}: damaged video (unknown codec or frame size)")
    return container


def video_info(path: str | os.PathLike) -> dict:
    """{"frames", "rate" (Fraction), "width", "height", "audio" (bool)} of a video file."""
    path = Path(path)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        return {
            "frames": stream.frames,
            "rate": stream.average_rate or stream.guessed_rate,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "audio": bool(container.streams.audio),
        }


def _frame_to_tensor(frame) -> torch.Tensor:
    array = frame.to_ndarray(format="rgb24")
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _tensor_to_frame(t: torch.Tensor):
    import av

    h, w = t.shape[-2:]
    t = t[..., : h - h % 2, : w - w % 2]
    array = t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()
    return av.VideoFrame.from_ndarray(array, format="rgb24")


TEMPORAL_MODES = (None, "flow")


def check_temporal(temporal, strength) -> tuple[str | None, float]:
    """Validated (temporal, temporal_strength): temporal null/none/off or flow, strength 0..1."""
    mode = None if temporal in (None, False, "", "none", "null", "off") else str(temporal)
    if mode not in TEMPORAL_MODES:
        raise FastNSTError(f"temporal must be null (off) or flow, got {temporal!r}")
    return mode, check_in_range("temporal_strength", strength)


def stylize_video(
    stylizer,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    overwrite: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    temporal: str | None = None,
    temporal_strength: float = 0.5,
) -> int:
    """Stylize `src` into `dst` (written atomically); returns the number of frames written.

    temporal="flow": each output frame is blended with the previous output warped by the input
    frames' optical flow where it is reliable (fastnst.flow.TemporalSmoother), `temporal_strength`
    0..1; the network still runs `batch_size` frames at a time."""
    import av
    from tqdm import tqdm

    temporal, temporal_strength = check_temporal(temporal, temporal_strength)
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise FastNSTError(f"{dst}: a video output needs one of {', '.join(VIDEO_EXTENSIONS)}")
    refuse_to_overwrite(dst, overwrite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    inp = _open_input(src)
    with (
        contextlib.closing(inp),
        atomic_path(dst, tag="partial") as tmp,
    ):  # the video appears only once complete
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = Fraction(vin.average_rate or vin.guessed_rate or 25)
        _check_frame_size(
            src,
            *fit_size(vin.codec_context.height, vin.codec_context.width, stylizer.size),
            stylizer.size,
        )
        with (
            av.open(str(tmp), "w") as out,
            tqdm(
                total=vin.frames or None, unit="frame", desc="stylize", disable=not progress
            ) as bar,
        ):
            # streams must all exist before the first packet is muxed; the net keeps the size
            h, w = fit_size(vin.codec_context.height, vin.codec_context.width, stylizer.size)
            vout = out.add_stream(VIDEO_CODECS.get(dst.suffix.lower(), DEFAULT_CODEC), rate=rate)
            vout.width, vout.height, vout.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            vout.time_base = 1 / rate
            aout = _audio_stream(out, ain, src, dst)
            count = 0
            problems: list[str] = []  # what could not be read: the frames that could are kept

            def frames() -> Iterator[torch.Tensor]:
                packets = inp.demux(*(s for s in (vin, ain) if s is not None))
                while True:
                    try:
                        packet = next(packets)
                    except StopIteration:
                        break
                    except (av.error.FFmpegError, OSError, ValueError) as e:  # a damaged container
                        problems.append(f"stopped reading at a damaged part ({_one_line(e)})")
                        break
                    if packet.stream is ain:
                        if aout is not None and packet.dts is not None:
                            packet.stream = aout
                            out.mux(packet)
                        continue
                    try:
                        decoded = packet.decode()
                    except (av.error.FFmpegError, ValueError) as e:  # damaged frame data: skip it
                        problems.append(f"undecodable data skipped ({_one_line(e)})")
                        continue
                    for frame in decoded:
                        yield _frame_to_tensor(frame)
                try:  # the frames still in the decoder (demux's last, empty packet flushes it
                    # on an intact file; then there is nothing left: EOFError)
                    yield from (_frame_to_tensor(f) for f in vin.codec_context.decode(None))
                except av.error.EOFError:
                    pass
                except (av.error.FFmpegError, ValueError) as e:
                    problems.append(f"undecodable data at the end ({_one_line(e)})")

            smoother, pending = None, deque()  # the input frames whose stylization is not back yet
            if temporal == "flow":
                from fastnst.flow import TemporalSmoother

                smoother = TemporalSmoother(temporal_strength)

            def remembered(stream: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
                for photo in stream:
                    pending.append(photo)
                    yield photo

            source = remembered(frames()) if smoother else frames()
            for result in stylizer.stylize_many(source, batch_size=batch_size):
                if smoother is not None:
                    result = smoother(pending.popleft(), result)
                frame = _tensor_to_frame(result)
                frame.pts, frame.time_base = count, 1 / rate
                out.mux(vout.encode(frame))
                count += 1
                bar.update(1)
            if count == 0:
                reason = f" ({problems[0]})" if problems else ""
                raise FastNSTError(f"{src}: no decodable video frames{reason}")
            out.mux(vout.encode(None))
    expected = vin.frames
    if problems or (expected and count < expected):
        # the decodable frames are written (the output plays); the loss is still an error
        lost = (
            f"{expected - count} of {expected} frames"
            if expected and count < expected
            else "some frames"
        )
        raise FastNSTError(
            f"{src}: damaged video, {lost} could not be decoded"
            f"{f' ({problems[0]})' if problems else ''}; wrote the {count} decoded frames to {dst}"
        )
    return count


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _check_frame_size(src: Path, h: int, w: int, size) -> None:
    """H.264/VP9 in yuv420p need at least 2x2 px (odd rows/columns are cropped)."""
    if h < 2 or w < 2:
        at = f" at size={size}" if size else ""
        raise FastNSTError(
            f"{src}: frames of {w}x{h} px{at} are too small for a video (at least 2x2 px; raise size)"
        )


# audio codecs a WebM file may hold; the muxer accepts others (aac) and silently drops them
WEBM_AUDIO = ("opus", "vorbis")


def _audio_stream(out, ain, src: Path, dst: Path):
    """Copy the audio stream as is (no re-encode); None with a note if the container refuses."""
    if ain is None:
        return None
    if dst.suffix.lower() == ".webm" and ain.codec_context.name not in WEBM_AUDIO:
        print(
            f"fastnst: {src}: audio not kept: its {ain.codec_context.name} audio cannot go into .webm "
            "(Opus/Vorbis only); write .mp4 or .mkv to keep it",
            file=sys.stderr,
        )
        return None
    try:
        return out.add_stream_from_template(ain)
    except Exception as e:  # e.g. a codec the output container cannot hold
        print(f"fastnst: {src}: audio not kept ({e})", file=sys.stderr)
        return None


def read_frames(path: str | os.PathLike, limit: int | None = None) -> Iterator[torch.Tensor]:
    """The decoded frames of a video as (1, 3, H, W) float tensors in [0, 1], in order (the
    first `limit` when given)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FastNSTError(f"{path}: video not found")
    container = _open_input(path)
    count = 0
    try:
        for frame in container.decode(video=0):
            if limit is not None and count >= limit:
                break
            yield _frame_to_tensor(frame)
            count += 1
    except (av.error.FFmpegError, ValueError) as e:
        raise FastNSTError(f"{path}: cannot decode video ({_one_line(e)})") from None
    finally:
        container.close()
    if count == 0:
        raise FastNSTError(f"{path}: no decodable video frames")


def write_video(frames, dst: str | os.PathLike, rate=30, overwrite: bool = False) -> int:
    """Encode (1, 3, H, W) frames in [0, 1] as H.264 (VP9 for .webm) at `rate` fps, atomically;
    returns the number of frames."""
    import av

    dst = Path(dst)
    refuse_to_overwrite(dst, overwrite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(rate).limit_denominator(1001)
    count = 0
    with atomic_path(dst, tag="partial") as tmp:
        with av.open(str(tmp), "w") as out:
            stream = None
            for t in frames:
                if stream is None:
                    h, w = t.shape[-2:]
                    codec = VIDEO_CODECS.get(dst.suffix.lower(), DEFAULT_CODEC)
                    stream = out.add_stream(codec, rate=rate)
                    stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
                    stream.time_base = 1 / rate
                    if codec == DEFAULT_CODEC:
                        stream.options = {"crf": "16"}  # near-lossless: clips made to be measured
                frame = _tensor_to_frame(t)
                frame.pts, frame.time_base = count, 1 / rate
                out.mux(stream.encode(frame))
                count += 1
            if stream is not None:
                out.mux(stream.encode(None))
    return count
