"""`python scripts/data/extract_frames.py VIDEOS --out DIR`: a frame data set from videos
(`fastnst.frames.extract_frames`; its signature holds the defaults, shown here in --help)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from fastnst.errors import one_line_errors
from fastnst.frames import extract_frames
from fastnst.preflight import ArgumentParser

DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(extract_frames).parameters.items()
    if p.default is not inspect.Parameter.empty
}


@one_line_errors(interrupted="rerun the same command to continue")
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="extract_frames.py",
        description="Extract de-duplicated, letterbox-cropped frames from videos into a flat folder of numbered JPEGs.",
    )
    parser.set_defaults(**DEFAULTS)
    parser.add_argument("sources", nargs="+", help="video files or folders of videos")
    parser.add_argument(
        "--out", required=True, help="output folder (created; reruns add only what is missing)"
    )
    parser.add_argument("--every", type=float, help="seconds between frames (default %(default)s)")
    parser.add_argument(
        "--scenes", action="store_true", help="take a frame at each scene change instead"
    )
    parser.add_argument(
        "--scene-threshold",
        type=float,
        help="mean grey change in 0..1 that counts as a scene change (default %(default)s)",
    )
    parser.add_argument(
        "--dup-threshold",
        type=int,
        help="drop a frame within this many bits (of 64) of a recently kept one; -1 keeps all "
        "(default %(default)s)",
    )
    parser.add_argument("--max-side", type=int, help="longer side of the written frames in px")
    parser.add_argument(
        "--no-crop", dest="crop_bars", action="store_false", help="keep letterbox bars"
    )
    parser.add_argument(
        "--bar-threshold",
        type=float,
        help="border rows/columns darker than this mean (0-255) are cropped as bars (default %(default)s)",
    )
    parser.add_argument(
        "--start", type=int, help="first frame number in an empty folder (default %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    stats = extract_frames(
        args.sources,
        args.out,
        every=args.every,
        scenes=args.scenes,
        scene_threshold=args.scene_threshold,
        dup_threshold=args.dup_threshold,
        max_side=args.max_side,
        crop_bars=args.crop_bars,
        bar_threshold=args.bar_threshold,
        start=args.start,
        progress=not args.quiet,
    )
    print(stats.summary())
    return 0
