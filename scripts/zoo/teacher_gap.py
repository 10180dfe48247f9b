"""How far a multi-style network is from the single networks that taught it (fastnst.distill,
`teachers=zoo`): per style, the mean squared difference of its outputs from its teacher's on
the same photos, and its detail energy over the teacher's (fastnst.judge.detail_energy; below 1
= softer strokes than the teacher paints: what a pixel target the network cannot reach exactly
averages away).

    python scripts/zoo/teacher_gap.py six_styles
    python scripts/zoo/teacher_gap.py now=six_styles new=runs/six/model.pt --size 256

Each style's teacher is its bundled single network, painting relative to the stroke scale the
network's file gives that style, as in training; the network runs at its own pixel scale. The
photos are the blind sheets' close-ups (--photos to choose others) at --size px, longer side.
"""

from __future__ import annotations

import sys

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch

from fastnst.apps.blind_sheet import CLOSEUPS, photo_paths
from fastnst.distill import Teachers
from fastnst.errors import FastNSTError, one_line_errors
from fastnst.images import load_image
from fastnst.judge import detail_energy
from fastnst.preflight import ArgumentParser
from fastnst.stylize import Stylizer
from fastnst.transformer import one_hot


def gaps(network: str, photos: list[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """{style: (mean squared difference from its teacher, detail energy / the teacher's)}."""
    stylizer = Stylizer.load(network, backend="torch")
    styles = stylizer.styles
    if not styles:
        raise FastNSTError(f"{network}: a single-style network; this compares a multi-style one")
    # the scale the file paints each style at: what its teachers paint relative to, as in training
    scales = [stylizer.native_stroke_scale_of(style) for style in styles]
    teachers = Teachers(dict(enumerate(styles)), dict(enumerate(scales)))
    net = stylizer.net.float().eval()
    result = {}
    for index, style in enumerate(styles):
        squared, ours, theirs = 0.0, 0.0, 0.0
        for photo in photos:
            target, _ = teachers.targets(photo, [index])
            with torch.no_grad():
                output = net(photo, one_hot(index, len(styles), photo)).float().clamp(0, 1)
            squared += float((output - target).square().mean())
            ours, theirs = ours + detail_energy(output), theirs + detail_energy(target)
        result[style] = (squared / len(photos), ours / max(theirs, 1e-12))
    return result


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="+", help="LABEL=NETWORK or NETWORK (multi-style)")
    parser.add_argument("--photos", help="comma-separated photo files (default: the close-ups)")
    parser.add_argument("--size", type=int, default=384, help="photos' longer side (px)")
    args = parser.parse_args(argv)
    paths = (
        args.photos.split(",") if args.photos else [p for _, p in photo_paths(list(CLOSEUPS))[1:]]
    )
    photos = [load_image(p, args.size) for p in paths]
    columns = {}
    for spec in args.networks:
        label, _, network = spec.rpartition("=")
        columns[label or network] = gaps(network, photos)
    styles = list(dict.fromkeys(s for column in columns.values() for s in column))
    head = " | ".join(f"{label}: MSE / detail" for label in columns)
    print(f"| style | {head} |\n|---|{'---|' * len(columns)}")
    for style in styles:
        cells = [
            f"{c[style][0]:.4f} / {c[style][1]:.2f}" if style in c else "-"
            for c in columns.values()
        ]
        print(f"| {style} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
