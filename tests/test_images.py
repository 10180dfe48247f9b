"""images.py: any readable image -> RGB float [0, 1]; one-line errors naming the file; safe writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import images
from fastnst.errors import FastNSTError, ImageError, OutputExistsError
from fastnst.images import (
    check_output_path,
    find_images,
    fit_size,
    load_image,
    open_rgb,
    pil_to_tensor,
    resize_tensor,
    save_image,
    tensor_to_pil,
)

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def pixel(t: torch.Tensor, y: int, x: int) -> tuple[int, ...]:
    """RGB 0-255 of a (1, 3, H, W) tensor at (y, x)."""
    return tuple(int(round(v * 255)) for v in t[0, :, y, x].tolist())


def assert_rgb01(t: torch.Tensor, h: int, w: int) -> None:
    assert t.shape == (1, 3, h, w) and t.dtype == torch.float32
    assert 0.0 <= t.min().item() and t.max().item() <= 1.0


# ---------------------------------------------------------------- reading: every kind of image


def test_rgb_png_round_values(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[1, 2] = (10, 128, 255)
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert_rgb01(t, 4, 6)
    assert pixel(t, 1, 2) == (10, 128, 255) and pixel(t, 0, 0) == (0, 0, 0)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    arr = np.tile(np.arange(0, 250, 50, dtype=np.uint8), (3, 1))
    Image.fromarray(arr, "L").save(tmp_path / "g.png")
    t = load_image(tmp_path / "g.png")
    assert_rgb01(t, 3, 5)
    assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 1], t[:, 2])
    assert pixel(t, 0, 3) == (150, 150, 150)


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.tif")  # pure red in CMYK
    assert pixel(load_image(tmp_path / "c.tif"), 2, 2) == RED


def test_palette_without_transparency(tmp_path):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    img.putpixel((3, 1), 1)
    img.save(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png")
    assert pixel(t, 0, 0) == RED and pixel(t, 1, 3) == BLUE


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (4, 2), 1)
    img.putpalette([0, 0, 0, *RED] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)  # index 0 (black) is the transparent colour
    img.save(tmp_path / "pt.png", transparency=0)
    t = load_image(tmp_path / "pt.png")
    assert pixel(t, 0, 0) == WHITE and pixel(t, 1, 3) == RED


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[..., 0] = 255  # red
    arr[0, 0, 3] = 0  # fully transparent -> white
    arr[0, 1, 3] = 255  # opaque -> red
    arr[0, 2, 3] = 128  # half -> pink
    Image.fromarray(arr, "RGBA").save(tmp_path / "rgba.png")
    t = load_image(tmp_path / "rgba.png")
    assert pixel(t, 0, 0) == WHITE and pixel(t, 0, 1) == RED
    r, g, b = pixel(t, 0, 2)
    assert r == 255 and abs(g - 127) <= 1 and g == b


def test_grayscale_with_alpha(tmp_path):
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "la.png")  # transparent black
    assert pixel(load_image(tmp_path / "la.png"), 1, 1) == WHITE


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as raw:
        assert raw.mode.startswith("I")  # really a 16-bit file
    t = load_image(tmp_path / "g16.png")
    got = [pixel(t, 0, x)[0] for x in range(4)]
    assert got == [round(v / 65535 * 255) for v in values[0].tolist()]  # [0, 4, 128, 255]


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    frames[0].save(
        tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0
    )
    with Image.open(tmp_path / "anim.gif") as raw:
        assert raw.n_frames == 2
    assert pixel(load_image(tmp_path / "anim.gif"), 4, 4) == RED


def test_exif_orientation_is_applied(tmp_path):
    # stored 32x16, left half red; orientation 6 = display rotated 90 degrees clockwise
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16] = RED
    arr[:, 16:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    t = load_image(tmp_path / "rot.jpg")
    assert_rgb01(t, 32, 16)  # portrait now
    top, bottom = pixel(t, 4, 8), pixel(t, 28, 8)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".webp", ".tif", ".ppm"])
def test_other_formats(tmp_path, ext, image_factory):
    src = image_factory("src.png", size=(20, 10))
    Image.open(src).save(tmp_path / f"x{ext}")
    t = load_image(tmp_path / f"x{ext}")
    assert_rgb01(t, 10, 20)
    assert (t - load_image(src)).abs().mean() < 0.05


def test_load_image_size_is_longer_side(image_factory):
    path = image_factory("wide.png", size=(64, 32))
    assert load_image(path, size=32).shape == (1, 3, 16, 32)
    assert load_image(path, size=None).shape == (1, 3, 32, 64)
    assert load_image(path, size=128).shape == (1, 3, 64, 128)  # upscales too


def test_open_rgb_returns_loaded_rgb_image(image_factory):
    img = open_rgb(image_factory(mode="L"))
    assert img.mode == "RGB" and img.size == (64, 48)


# ---------------------------------------------------------------- reading: bad files


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated(path, fmt):
    src = path.parent / f"full.{fmt.lower()}"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(src, fmt)
    data = src.read_bytes()
    return _write(path, data[: len(data) // 2])


def _bomb(path, monkeypatch, limit):
    Image.new("RGB", (64, 48)).save(path)  # 3072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    return path


BAD_FILES = {
    # kind: (file name, make(path, monkeypatch) -> path, words the message must contain)
    "missing": ("nothere.png", lambda p, mp: p, "not found"),
    "folder": ("afolder.png", lambda p, mp: (p.mkdir(), p)[1], "folder"),
    "empty": ("empty.jpg", lambda p, mp: _write(p, b""), "empty"),
    "text": (
        "notes.png",
        lambda p, mp: _write(p, b"hello, I am not a picture\n" * 20),
        "not an image",
    ),
    "random-bytes": ("noise.jpg", lambda p, mp: _write(p, os.urandom(2048)), "not an image"),
    "truncated-png": ("cut.png", lambda p, mp: _truncated(p, "PNG"), "truncated"),
    "truncated-jpeg": ("cut.jpg", lambda p, mp: _truncated(p, "JPEG"), "truncated"),
    "bomb": ("bomb.png", lambda p, mp: _bomb(p, mp, 1000), "decompression bomb"),
    # Pillow only warns between 1x and 2x its limit: still refused
    "bomb-warning": ("bomb2.png", lambda p, mp: _bomb(p, mp, 2000), "decompression bomb"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_image_files_give_one_line_errors_naming_the_file(kind, tmp_path, monkeypatch):
    name, make, words = BAD_FILES[kind]
    path = make(tmp_path / name, monkeypatch)
    with pytest.raises(ImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert name in msg and words in msg
    assert "\n" not in msg
    assert isinstance(info.value, FastNSTError)  # caught by the entry points


def test_unreadable_file_is_refused(image_factory, monkeypatch):
    # tests run as root, which chmod 000 does not stop: simulate what a normal user sees
    path = image_factory("secret.png")
    real_access = os.access
    monkeypatch.setattr(
        images.os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode)
    )
    with pytest.raises(ImageError, match="secret.png: permission denied") as info:
        load_image(path)
    assert "\n" not in str(info.value)


# write-only sysctl files: the kernel refuses to let even root read them (root ignores chmod 000)
WRITE_ONLY = (
    "/proc/sys/vm/compact_memory",
    "/proc/sys/net/ipv4/route/flush",
    "/proc/sys/net/ipv6/route/flush",
)


def test_unreadable_file_real_permissions(image_factory):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        path = next((Path(p) for p in WRITE_ONLY if os.path.exists(p)), None)
        if path is None:
            pytest.skip("running as root and no write-only /proc/sys file to read")
        with pytest.raises(ImageError, match=f"{path.name}: permission denied"):
            load_image(path)
        return
    path = image_factory("secret.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="secret.png: permission denied"):
            load_image(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


# ---------------------------------------------------------------- writing


def test_png_round_trip_is_exact(tmp_path):
    t = torch.rand(1, 3, 12, 20).mul(255).round().div(255)
    out = save_image(t, tmp_path / "o.png")
    assert out == tmp_path / "o.png"
    with Image.open(out) as img:
        assert img.format == "PNG"
    assert torch.equal(load_image(out), t)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_round_trip_within_tolerance(tmp_path, ext, image_factory):
    t = load_image(image_factory(size=(64, 48)))
    out = save_image(t, tmp_path / f"o{ext}")
    with Image.open(out) as img:
        assert img.format == "JPEG"
    assert (load_image(out) - t).abs().mean() < 0.02


def test_existing_output_is_not_overwritten(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="out.png") as info:
        save_image(torch.zeros(1, 3, 4, 4), target)
    assert "overwrite" in str(info.value) and "\n" not in str(info.value)
    assert target.read_bytes() == b"precious"
    with pytest.raises(OutputExistsError):
        check_output_path(target)
    save_image(torch.ones(1, 3, 4, 4), target, overwrite=True)
    assert pixel(load_image(target), 0, 0) == WHITE


@pytest.mark.parametrize("name", ["out.gif", "out.txt", "out"])
def test_unsupported_output_extension(tmp_path, name):
    with pytest.raises(ImageError, match="unsupported output extension") as info:
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / name)
    assert name in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_folder(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="dir.png: is a folder"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "dir.png", overwrite=True)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    save_image(torch.zeros(1, 3, 4, 4), tmp_path / "sub" / "dir" / "a.png")  # folders created
    save_image(torch.zeros(1, 3, 4, 4), tmp_path / "sub" / "dir" / "a.png", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "sub" / "dir").iterdir()) == ["a.png"]

    # a failure half-way through the encoder leaves neither the output nor a temp file
    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match="b.png: cannot write image") as info:
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "b.png")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_output_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        out = save_image(torch.zeros(1, 3, 2, 2), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not mkstemp's 0o600


def test_save_pil_rgba_composites_on_white(tmp_path):
    out = save_image(Image.new("RGBA", (3, 3), (0, 0, 0, 0)), tmp_path / "w.png")
    assert pixel(load_image(out), 1, 1) == WHITE


# ---------------------------------------------------------------- tensors, sizes, folders


def test_tensor_pil_round_trip_clamps_and_handles_nan():
    t = torch.tensor([[[[-1.0, 0.5, 2.0, float("nan")]]]]).expand(1, 3, 1, 4)
    back = pil_to_tensor(tensor_to_pil(t))
    assert back[0, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0, 0.0])
    assert tensor_to_pil(t[0]).size == (4, 1)  # (3, H, W) accepted too
    with pytest.raises(ValueError, match="batch"):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))


def test_fit_size_and_resize_tensor():
    assert fit_size(100, 50, None) == (100, 50)
    assert fit_size(100, 50, 40) == (40, 20)
    assert fit_size(3, 1000, 100) == (1, 100)  # never 0
    t = torch.rand(2, 3, 32, 16)
    assert resize_tensor(t, (32, 16)) is t
    small = resize_tensor(t, (8, 4))
    assert small.shape == (2, 3, 8, 4) and small.min() >= 0 and small.max() <= 1


def test_find_images_recursive_sorted_skips_hidden_and_non_images(tmp_path, image_factory):
    for name in ["b.png", "a.JPG", "sub/c.webp", ".hidden.png", ".cache/d.png", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.JPG", "b.png", "sub/c.webp"]
    with pytest.raises(ImageError, match="nope: folder not found"):
        find_images(tmp_path / "nope")
    with pytest.raises(ImageError, match="not a folder"):
        find_images(tmp_path / "b.png")
