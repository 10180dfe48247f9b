"""A contact sheet of bundled networks at several stroke scales on one photo.

python scripts/figures/stroke_scale_sheet.py docs/images/stroke_scale.jpg
python scripts/figures/stroke_scale_sheet.py out.jpg --photo my.jpg --styles wave --scales 1 2 4
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastnst.config import data_dir
from fastnst.errors import one_line_errors
from fastnst.images import check_output_path, open_rgb, save_image
from fastnst.sheets import contact_sheet
from fastnst.stylize import Stylizer


@one_line_errors
def main(argv=None) -> int:
    data = data_dir()
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--photo", type=Path, default=data / "content" / "chicago.jpg")
    parser.add_argument("--styles", nargs="+", default=["starry_night", "the_scream"])
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0, 3.0])
    parser.add_argument(
        "--size", type=int, default=1024, help="longer side the photo is stylized at"
    )
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    check_output_path(args.output, args.overwrite, option="--overwrite")  # before minutes of work

    photo = open_rgb(args.photo)
    photo.thumbnail((args.size, args.size))
    height = photo.height // 2  # the sheet shows half size
    rows = []
    for style in args.styles:
        stylizer = Stylizer.load(style)
        rows.append(
            [
                (f"{style}  stroke_scale={scale:g}", stylizer(photo, stroke_scale=scale), 0)
                for scale in args.scales
            ]
        )
    sheet = contact_sheet(rows, height)
    save_image(sheet, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
