"""Make a test video from one real photo: a slow simulated camera pan and zoom, with slight
sensor noise (the second clip of docs/benchmarks.md "Stable video", built offline from a photo we have).

    python scripts/data/make_pan_clip.py data/content/hoovertowernight.jpg --out pan.mp4 --frames 90 --size 512

The window (the photo's shorter side x `--zoom-start`, square) slides linearly from the left to
the right of the photo while zooming to `--zoom-end`, sampled bilinearly at sub-pixel positions;
Gaussian noise of std `--noise` (on 0..255) is added to every frame. H.264 at --fps, near-lossless.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastnst.errors import one_line_errors
from fastnst.images import load_image
from fastnst.preflight import ArgumentParser, check_new_output
from fastnst.progress import add_progress_argument, bar
from fastnst.video import write_video


def pan_frames(
    photo: torch.Tensor,
    frames: int,
    size: int,
    zoom_start: float,
    zoom_end: float,
    noise: float,
    seed: int = 0,
):
    """(1, 3, size, size) frames of a pan across `photo` (1, 3, H, W), left to right."""
    _, _, h, w = photo.shape
    generator = torch.Generator().manual_seed(seed)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        side = min(h, w) * (zoom_start + (zoom_end - zoom_start) * t)  # window side in px
        cx = side / 2 + (w - side) * t
        cy = h / 2 + (h - side) / 2 * 0.3 * t  # a slight downward drift
        # affine_grid maps the output square to the window, in normalized coordinates
        theta = torch.tensor([[[side / w, 0, 2 * cx / w - 1], [0, side / h, 2 * cy / h - 1]]])
        grid = F.affine_grid(theta, (1, 3, size, size), align_corners=False)
        frame = F.grid_sample(
            photo, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        frame = frame + torch.randn(frame.shape, generator=generator) * (noise / 255)
        yield frame.clamp(0, 1)


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument(
        "--zoom-start",
        type=float,
        default=0.9,
        help="window side / photo's shorter side at the start",
    )
    parser.add_argument("--zoom-end", type=float, default=0.8)
    parser.add_argument("--noise", type=float, default=2.0, help="noise std on 0..255")
    parser.add_argument("--overwrite", action="store_true")
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    check_new_output(args.out, args.overwrite, option="--overwrite")
    photo = load_image(args.photo)
    frames = pan_frames(photo, args.frames, args.size, args.zoom_start, args.zoom_end, args.noise)
    frames = bar(frames, total=args.frames, progress=args.progress, desc="pan clip", unit="frame")
    count = write_video(frames, args.out, rate=args.fps, overwrite=args.overwrite)
    print(f"wrote {args.out} ({count} frames)")
    return 0
