"""Blends between the styles of a multi-style network: a strip of one photo across k blend steps
between two styles, and/or a short video of the photo morphing from one style to the next.

    python scripts/figures/style_blend.py --model <run> --photo photo.jpg --out strip.jpg \\
        [--styles starry_night wave] [--steps 5] [--size 256]
    python scripts/figures/style_blend.py --model <run> --photo photo.jpg --video morph.mp4 \\
        [--styles starry_night the_scream wave] [--seconds 2] [--fps 24]

The strip: the photo, then `steps` stylizations from the first style (weight 1) to the second
(weight 1), weights evenly spaced (0.75/0.25 etc. in between: the scales and shifts of the
conditional instance norms interpolated). The video: `seconds` per transition between
consecutive --styles (default: all the network's styles in order). Outputs are never overwritten
without --overwrite; files are written atomically.
"""

from __future__ import annotations

import argparse
import os
from fractions import Fraction
from pathlib import Path

import torch
from PIL import Image

from fastnst.errors import FastNSTError, one_line_errors
from fastnst.images import load_image, save_image, tensor_to_pil
from fastnst.preflight import ArgumentParser, check_new_output
from fastnst.progress import add_progress_argument, bar
from fastnst.stylize import Stylizer

PAD = 4


def blend_weights(a: str, b: str, t: float) -> dict[str, float]:
    return {a: 1.0 - t, b: t} if a != b else {a: 1.0}


def blend_strip(stylizer: Stylizer, photo: torch.Tensor, a: str, b: str, steps: int) -> Image.Image:
    """The photo, then `steps` outputs from style a to style b, side by side."""
    if steps < 2:
        raise FastNSTError(f"--steps must be at least 2, got {steps}")
    tiles = [photo] + [
        stylizer(photo, mix=blend_weights(a, b, i / (steps - 1))) for i in range(steps)
    ]
    h, w = photo.shape[-2:]
    strip = Image.new("RGB", (len(tiles) * w + (len(tiles) + 1) * PAD, h + 2 * PAD), "white")
    for i, tile in enumerate(tiles):
        strip.paste(tensor_to_pil(tile), (PAD + i * (w + PAD), PAD))
    return strip


def morph_video(
    stylizer: Stylizer,
    photo: torch.Tensor,
    styles: list[str],
    out: Path,
    seconds: float,
    fps: int,
    overwrite: bool = False,
    progress: bool | None = None,
) -> int:
    """The photo morphing through `styles` (a smoothstep ease per transition); returns frames written.
    progress: a bar on stderr (None: only on a terminal)."""
    import av

    from fastnst.errors import OutputExistsError
    from fastnst.video import _tensor_to_frame

    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if len(styles) < 2:
        raise FastNSTError("the video needs at least two styles (--styles a b ...)")
    per = max(2, round(seconds * fps))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    count = 0
    try:
        with (
            av.open(str(tmp), "w") as container,
            bar(
                total=per * (len(styles) - 1) + 1, unit="frame", desc="morph", progress=progress
            ) as frames,
        ):
            h, w = photo.shape[-2:]
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
            for a, b in zip(styles, styles[1:]):
                for i in range(per):
                    t = i / per
                    t = t * t * (3 - 2 * t)  # ease in and out
                    frame = _tensor_to_frame(stylizer(photo, mix=blend_weights(a, b, t)))
                    frame.pts = count
                    container.mux(stream.encode(frame))
                    count += 1
                    frames.update()
            frame = _tensor_to_frame(stylizer(photo, style=styles[-1]))
            frame.pts = count
            container.mux(stream.encode(frame))
            count += 1
            frames.update()
            container.mux(stream.encode(None))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return count


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", required=True, help="a multi-style network (run dir, model.pt, .onnx, .ts)"
    )
    parser.add_argument("--photo", required=True)
    parser.add_argument(
        "--styles",
        nargs="+",
        default=None,
        help="strip: the two styles (default: the network's first two); video: the sequence",
    )
    parser.add_argument("--out", default=None, help="the strip image (.jpg, .png)")
    parser.add_argument(
        "--steps", type=int, default=5, help="blend steps in the strip (both ends included)"
    )
    parser.add_argument("--video", default=None, help="the morph video (.mp4)")
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="seconds per style-to-style transition"
    )
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", type=int, default=256, help="longer side of the photo in px")
    parser.add_argument("--overwrite", action="store_true")
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    if not args.out and not args.video:
        raise FastNSTError("nothing to write: give --out strip.jpg and/or --video morph.mp4")
    for output in (args.out, args.video):
        if output:
            check_new_output(output, args.overwrite, option="--overwrite")
    stylizer = Stylizer.load(args.model, device="cpu")
    if not stylizer.styles:
        raise FastNSTError(
            f"{args.model}: a single-style network; blends need a multi-style one (style=multi)"
        )
    styles = args.styles or stylizer.styles
    for name in styles:
        stylizer.style_weights(name)  # an unknown name: one line listing the network's styles
    photo = load_image(args.photo, args.size)
    if args.out:
        if len(styles) < 2 and not args.styles:
            raise FastNSTError("the strip needs two styles")
        a, b = styles[0], styles[1] if len(styles) > 1 else styles[0]
        save_image(
            blend_strip(stylizer, photo, a, b, args.steps), Path(args.out), overwrite=args.overwrite
        )
        print(f"wrote {args.out} ({a} -> {b}, {args.steps} steps)")
    if args.video:
        n = morph_video(
            stylizer,
            photo,
            list(styles),
            Path(args.video),
            args.seconds,
            args.fps,
            args.overwrite,
            progress=args.progress,
        )
        print(f"wrote {args.video} ({n} frames, {' -> '.join(styles)})")
    return 0
