"""Image files in and out. The only module that knows about files and pixel formats.

Inside fastnst every image is an RGB float tensor in [0, 1] of shape (B, 3, H, W).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from fastnst.atomic import atomic_write
from fastnst.errors import (
    ImageError,
    os_error_reason,
    refuse_to_overwrite,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def _one_line(text: object) -> str:
    """Library messages can span lines; ours are one line (entry points print them as is)."""
    return " ".join(str(text).split())


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under `folder` (recursively), sorted for a stable order.

    Hidden files and folders (".name": editor backups, macOS "._" forks, our own temp files)
    are skipped. Raises ImageError when `folder` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(
            f"{folder}: not a folder" if folder.exists() else f"{folder}: folder not found"
        )
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB (alpha composited on white, 16-bit scaled, CMYK converted)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of letting convert() clip at 255.
        # "I;16*" is 16-bit by definition; plain "I" is guessed from its values.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray((arr / peak * 255.0).clip(0, 255).round().astype(np.uint8)).convert(
            "RGB"
        )
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray((arr / peak * 255.0).clip(0, 255).round().astype(np.uint8)).convert(
            "RGB"
        )
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        # palette / grayscale / RGB with a transparent colour key (GIF, PNG tRNS)
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open any image Pillow reads as an 8-bit RGB PIL image, or raise ImageError naming the file.

    EXIF orientation is applied; animated images give their first frame.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{path}: permission denied (cannot read the file)")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; treat that as an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)  # animated images: first frame
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(
            f"{path}: image too large, refusing a possible decompression bomb ({_one_line(e)})"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied (cannot read the file)") from None
    except MemoryError:
        raise ImageError(f"{path}: image too large to decode in memory") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure on a user file is a user error
        msg = _one_line(e) or type(e).__name__
        if "truncated" in msg.lower():
            raise ImageError(f"{path}: truncated or corrupt image ({msg})") from None
        raise ImageError(f"{path}: cannot decode image ({msg})") from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> RGB float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(_to_rgb(img), dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> PIL RGB (values clamped, NaN -> 0)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) RGB image tensor, got shape {tuple(t.shape)}")
    t = torch.nan_to_num(t.detach().float(), nan=0.0)
    arr = t.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def fit_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(H, W) scaled so the longer side is `max_side` (aspect kept); unchanged if max_side is None."""
    if not max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def load_image(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """Read an image file as (1, 3, H, W) float in [0, 1]; `size` = longer side in px."""
    return fit_image(open_rgb(path), size)


def fit_image(img: Image.Image, size: int | None = None) -> torch.Tensor:
    """An RGB image as (1, 3, H, W) float in [0, 1], its longer side resized to `size` px."""
    if size:
        h, w = fit_size(img.height, img.width, int(size))
        if (h, w) != (img.height, img.width):
            img = img.resize((w, h), Image.LANCZOS)
    return pil_to_tensor(img)


def resize_tensor(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, 3, H, W) image tensor to (h, w), bicubic with antialiasing (which also
    smooths enlargements slightly: its cubic kernel is PIL's, a = -0.5)."""
    size = (int(size[0]), int(size[1]))
    if tuple(t.shape[-2:]) == size:
        return t
    return F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(
        0, 1
    )


def check_output_path(
    path: str | os.PathLike, overwrite: bool = False, option: str = "overwrite=true"
) -> Path:
    """Validate an output path before any work is done: known extension, no silent overwrite
    (`option`: how the program spells overwriting, e.g. "--overwrite" in a script)."""
    path = Path(path)
    if path.is_dir() or str(path).endswith(os.sep):
        raise ImageError(
            f"{path}: is a folder, expected an output file name (e.g. {Path(path) / 'out.png'})"
        )
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ImageError(
            f"{path}: unsupported output extension '{path.suffix}' (use one of {', '.join(SAVE_FORMATS)})"
        )
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an output file name")
    refuse_to_overwrite(path, overwrite, option=option)
    return path


def save_image(
    image: torch.Tensor | Image.Image,
    path: str | os.PathLike,
    overwrite: bool = False,
    png_compress_level: int = 6,
    jpeg_quality: int = 95,
) -> Path:
    """Write PNG/JPEG/WebP/BMP by extension, atomically (temp file + rename).

    `png_compress_level` 1 writes a 512 px PNG in less than half the time of the default 6, for
    files that are served once rather than kept (the web app's results); `jpeg_quality` 85 keeps
    documentation pictures at about half the size of the default.

    Refuses to replace an existing file unless `overwrite` (OutputExistsError); write failures
    (read-only folder, disk full) raise ImageError naming the file.
    """
    path = check_output_path(path, overwrite)
    img = tensor_to_pil(image) if isinstance(image, torch.Tensor) else _to_rgb(image)
    fmt = SAVE_FORMATS[path.suffix.lower()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, replace=overwrite) as f:
            options = {
                "JPEG": {"quality": jpeg_quality},
                "PNG": {"compress_level": png_compress_level},
            }
            img.save(f, format=fmt, **options.get(fmt, {}))
    except OSError as e:
        raise ImageError(f"{path}: cannot write image ({os_error_reason(e)})") from None
    return path


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Shorter side -> `size` px (aspect kept); small images are upscaled, never dropped."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    return img if new == (w, h) else img.resize(new, Image.BILINEAR)


def center_square(img: Image.Image, side: int) -> Image.Image:
    """The centred `side` x `side` square of `img` after resizing its shorter side to `side`."""
    img = resize_shorter_side(img, side)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side))
