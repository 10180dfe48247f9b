"""The README's side-by-side: for each style, the painting, then per photo our network's output
and Johnson et al. 2016's published one where it exists, all at the same size.

    python scripts/zoo/zoo_sheet.py docs/images/zoo_sheet.jpg
    python scripts/zoo/zoo_sheet.py out.jpg --styles wave udnie --network wave=runs/wave --photos chicago stata

Our network runs on each photo at the published Chicago output's resolution for that style (510
or 1022 px wide, so its strokes are at the pixel scale Johnson's show), then every panel is shown
at --height px. A photo without a published output for a style gets an empty panel, labelled so.
Close-ups (--closeups, ImageNet-mini val photos of people and animals: where a network must keep
its subject) run at --closeup-size px, as on the blind sheets (docs/quality.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from fastnst.apps.blind_sheet import CLOSEUPS
from fastnst.bundled import painting_path
from fastnst.config import data_dir
from fastnst.errors import one_line_errors
from fastnst.images import check_output_path, fit_size, open_rgb, save_image
from fastnst.preflight import ArgumentParser
from fastnst.sheets import contact_sheet
from fastnst.styles import johnson_styles, published_output
from fastnst.stylize import Stylizer


def run_width(data: Path, style: str) -> int:
    """The width Johnson's Chicago output for `style` was published at (510 or 1022 px)."""
    published = published_output(data, style)
    return open_rgb(published).width if published and published.is_file() else 1024


def fit(image: Image.Image, height: int) -> Image.Image:
    return image.resize((round(image.width * height / image.height), height), Image.LANCZOS)


def style_row(args, style: str) -> list[tuple[str, Image.Image | None, int]]:
    """(label, image or None, panel width) for one style's row."""
    data = args.data
    stylizer = Stylizer.load(args.networks.get(style, style))
    painting = painting_image(data, style)
    panels = [(style.replace("_", " "), fit(painting, args.height), 0)]
    width = run_width(data, style)
    for photo_name in args.photos:
        photo = open_rgb(data / "content" / f"{photo_name}.jpg")
        photo = photo.resize((width, round(photo.height * width / photo.width)), Image.LANCZOS)
        ours = fit(stylizer(photo, stroke_scale=args.stroke_scale), args.height)
        panels.append((f"{photo_name}: fastnst", ours, ours.width))
        published = published_output(data, style, photo_name)
        if published and published.is_file():
            panels.append(
                (f"{photo_name}: Johnson 2016", fit(open_rgb(published), args.height), ours.width)
            )
        elif args.empty_panels:
            panels.append((f"{photo_name}: Johnson 2016 not published", None, ours.width))
    for path in closeup_paths(args):
        photo = open_rgb(path)
        height, width = fit_size(photo.height, photo.width, args.closeup_size)
        photo = photo.resize((width, height), Image.LANCZOS)
        ours = fit(stylizer(photo, stroke_scale=args.stroke_scale), args.height)
        panels.append((f"{closeup_name(path)}: fastnst", ours, ours.width))
    return panels


def closeup_paths(args) -> list[Path]:
    return [args.data / "imagenet-mini" / "val" / name for name in args.closeups]


def closeup_name(path: Path) -> str:
    """n02099849_Chesapeake_Bay_retriever.JPEG -> Chesapeake Bay retriever"""
    return path.stem.split("_", 1)[-1].replace("_", " ")


def photo_row(args) -> list[tuple[str, Image.Image | None, int]]:
    """The photos themselves, above their stylizations (the painting column left empty)."""
    photos = [
        fit(open_rgb(args.data / "content" / f"{name}.jpg"), args.height) for name in args.photos
    ]
    first = fit(painting_image(args.data, args.styles[0]), args.height).width
    closeups = [(closeup_name(p), fit(open_rgb(p), args.height)) for p in closeup_paths(args)]
    return [
        ("photo", None, first),
        *((name, photo, photo.width) for name, photo in zip(args.photos, photos)),
        *((name, photo, photo.width) for name, photo in closeups),
    ]


def painting_image(data: Path, style: str) -> Image.Image:
    return open_rgb(painting_path(str(data), style))


@one_line_errors
def main(argv=None) -> int:
    data = data_dir()
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--styles", nargs="+", default=johnson_styles())
    parser.add_argument(
        "--photos",
        nargs="+",
        default=["chicago", "hoovertowernight", "stata"],
        help="names in $FASTNST_DATA/content (without .jpg)",
    )
    parser.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="STYLE=PATH",
        help="use this network (run dir, model.pt) for STYLE instead of the bundled one",
    )
    parser.add_argument(
        "--closeups",
        nargs="*",
        default=list(CLOSEUPS[:2]),
        help="ImageNet-mini val photos (<wnid>/<file>) shown after the photos; none: --closeups",
    )
    parser.add_argument("--closeup-size", type=int, default=512, help="close-ups' longer side (px)")
    parser.add_argument("--stroke-scale", type=float, default=1.0)
    parser.add_argument("--height", type=int, default=170, help="panel height in px")
    parser.add_argument(
        "--empty-panels", action="store_true", help="a grey panel where Johnson published nothing"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    check_output_path(args.output, args.overwrite, option="--overwrite")  # before minutes of work
    args.data = data
    args.networks = dict(spec.split("=", 1) for spec in args.network)
    rows = [photo_row(args), *(style_row(args, style) for style in args.styles)]
    save_image(
        contact_sheet(rows, args.height), args.output, overwrite=args.overwrite, jpeg_quality=85
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
