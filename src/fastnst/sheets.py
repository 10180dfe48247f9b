"""Labelled picture strips and contact sheets: the figures of the scripts (the zoo sheet, the
bundled networks' pictures, the judge's and the recipe study's strips, the stroke-scale sheet)
drawn by one helper.

    contact_sheet([[("photo", img, 0), ("ours", out, 0)], ...], height=170)
    labelled_strip([("photo", photo_tensor), ("painting", painting)], height=256)
"""

from __future__ import annotations

from PIL import Image, ImageDraw

# px above each panel for its label, px between panels and rows
LABEL_HEIGHT = 18
GAP = 4
EMPTY_PANEL = (235, 235, 235)


def as_pil(image) -> Image.Image:
    """A PIL image, or a (1, 3, H, W) / (3, H, W) tensor in [0, 1] as one."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from fastnst.images import tensor_to_pil

    return tensor_to_pil(image)


def fit_height(image, height: int) -> Image.Image:
    """`image` scaled to `height` px, its aspect kept."""
    img = as_pil(image)
    return img.resize((max(1, round(img.width * height / img.height)), height), Image.LANCZOS)


def contact_sheet(
    rows: list[list[tuple[str, object, int]]],
    height: int,
    label_height: int = LABEL_HEIGHT,
    gap: int = GAP,
) -> Image.Image:
    """Rows of (label, image or None, width) panels, every image scaled to `height` px and
    labelled above; a None image is an empty grey panel `width` px wide."""
    fitted = [
        [(label, None if img is None else fit_height(img, height), w) for label, img, w in row]
        for row in rows
    ]
    widths = [sum((img.width if img else w) + gap for _, img, w in row) - gap for row in fitted]
    sheet = Image.new(
        "RGB", (max(widths), len(rows) * (height + label_height + gap) - gap), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(fitted):
        x, y = 0, r * (height + label_height + gap)
        for label, img, w in row:
            draw.text((x + 3, y + 2), label, fill="black")
            if img is None:
                draw.rectangle(
                    (x, y + label_height, x + w - 1, y + label_height + height - 1),
                    fill=EMPTY_PANEL,
                )
            else:
                sheet.paste(img, (x, y + label_height))
            x += (img.width if img else w) + gap
    return sheet


def labelled_strip(panels: list[tuple[str, object]], height: int, **kw) -> Image.Image:
    """One row of (label, image) panels at `height` px (contact_sheet's single row)."""
    return contact_sheet([[(label, img, 0) for label, img in panels]], height, **kw)


__all__ = ["contact_sheet", "fit_height", "labelled_strip"]
