"""The probe set: the same few photos every training run stylizes at each validation.

A run's own validation photos come from its training data (ImageNet photos for one run, anime
frames for another), so their image grids never show two networks on the same picture. The probe
set is chosen here, by the framework, not by the run's data: Chicago, three ImageNet-mini
validation photos and three anime frames from the data folder (`FASTNST_DATA` /
`paths.data_dir`), logged to TensorBoard under the same tags (`probe/<name>`) by every run, so
two runs' pictures line up in the Images tab whatever they trained on
(fastnst.callbacks.LogImagesAndHparams). compare_runs.py --tensorboard uses the same set.

A probe photo that is missing (or unreadable) is replaced by a synthesized picture made from its
name (the same one on every machine), and the log says so once.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from pathlib import Path

import torch

log = logging.getLogger("fastnst.train")

# the width of a probe photo in px; each is a centered 4:3 crop (small and all of one shape: one
# batch through the network at each validation, one compiled shape)
PROBE_SIZE = 256
# (tag name, path under the data folder), in TensorBoard's order
PROBES: tuple[tuple[str, str], ...] = (
    ("chicago", "content/chicago.jpg"),
    ("imagenet_macaw", "imagenet-mini/val/n01818515/n01818515_macaw.JPEG"),
    ("imagenet_palace", "imagenet-mini/val/n03877845/n03877845_palace.JPEG"),
    ("imagenet_sorrel", "imagenet-mini/val/n02389026/n02389026_sorrel.JPEG"),
    ("anime_283", "anime-standin/283.jpg"),
    ("anime_328", "anime-standin/328.jpg"),
    ("anime_358", "anime-standin/358.jpg"),
)
TAG_PREFIX = "probe"


def probe_tag(name: str, style: str | None = None) -> str:
    """The TensorBoard image tag of a probe photo: probe/<name>, or probe/<style>/<name> for one
    style of a multi-style network."""
    return f"{TAG_PREFIX}/{name}" if style is None else f"{TAG_PREFIX}/{style}/{name}"


def probe_shape(size: int = PROBE_SIZE) -> tuple[int, int]:
    """(H, W) of every probe photo: 4:3, `size` px wide."""
    return max(8, round(int(size) * 3 / 4)), max(8, int(size))


def load_probe(path: str | os.PathLike, size: int = PROBE_SIZE) -> torch.Tensor:
    """A photo's centered 4:3 crop at probe_shape(size), as (1, 3, H, W) in [0, 1]."""
    from PIL import Image

    from fastnst.images import open_rgb, pil_to_tensor

    img = open_rgb(path)
    height, width = probe_shape(size)
    crop_w = min(img.width, round(img.height * width / height))
    crop_h = min(img.height, round(crop_w * height / width))
    left, top = (img.width - crop_w) // 2, (img.height - crop_h) // 2
    img = img.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.LANCZOS)
    return pil_to_tensor(img)


def synthesized_probe(name: str, size: int = PROBE_SIZE) -> torch.Tensor:
    """A stand-in picture for a missing probe photo: (1, 3, H, W) in [0, 1] at probe_shape(size),
    made from `name` alone (a sky gradient, a sun, ground and a row of buildings), the same
    everywhere."""
    height, width = probe_shape(size)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    r = torch.rand(16, generator=g)
    y = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
    x = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    sky_top, sky_low = r[0:3] * 0.5, 0.5 + r[3:6] * 0.5
    image = sky_top.view(3, 1, 1) * (1 - y) + sky_low.view(3, 1, 1) * y
    sun = ((x - (0.2 + 0.6 * r[6])) ** 2 + ((y - 0.25) * height / width) ** 2).sqrt() < 0.08
    image = torch.where(sun, torch.tensor([1.0, 0.9, 0.5]).view(3, 1, 1), image)
    horizon = 0.6 + 0.15 * r[7]
    ground = y > horizon + 0.03 * torch.sin(x * math.pi * (2 + 4 * r[8]))
    image = torch.where(ground, (0.2 + 0.4 * r[9:12]).view(3, 1, 1) * (1.2 - y), image)
    for i in range(6):  # buildings
        left = (i + 0.15) / 6
        top = horizon - (0.15 + 0.3 * float(torch.rand(1, generator=g)))
        block = (x > left) & (x < left + 0.12) & (y > top) & (y < horizon + 0.05)
        tone = 0.15 + 0.5 * torch.rand(3, generator=g)
        image = torch.where(block, tone.view(3, 1, 1), image)
        windows = block & ((x * width / 6).floor() % 2 == 0) & ((y * height / 8).floor() % 2 == 0)
        image = torch.where(windows, torch.tensor([0.95, 0.9, 0.6]).view(3, 1, 1), image)
    return image.clamp(0, 1).unsqueeze(0)


def probe_photos(
    data_dir: str | os.PathLike | None = None, size: int = PROBE_SIZE
) -> tuple[list[str], torch.Tensor, list[str]]:
    """(names, (N, 3, H, W) photos at probe_shape(size), [names synthesized because their file is
    missing or unreadable]) of the probe set under `data_dir` (default: the configured data
    folder, fastnst.config.data_dir)."""
    from fastnst.config import data_dir as configured_data_dir

    root = Path(data_dir) if data_dir is not None else configured_data_dir()
    names, photos, missing = [], [], []
    for name, relative in PROBES:
        path = root / relative
        try:
            photo = load_probe(path, size) if path.is_file() else None
        except Exception:  # an unreadable file: the same stand-in as a missing one
            photo = None
        if photo is None:
            missing.append(name)
            photo = synthesized_probe(name, size)
        names.append(name)
        photos.append(photo)
    return names, torch.cat(photos), missing


def missing_note(missing: list[str], data_dir) -> str:
    """The one log line naming the probe photos that were synthesized."""
    paths = dict(PROBES)
    return (
        f"probe photos: {len(missing)} of {len(PROBES)} not found under {data_dir} "
        f"({', '.join(paths[m] for m in missing)}); synthesized pictures stand in under the same "
        "probe/ tags (FASTNST_DATA or paths.data_dir points at the data folder)"
    )


__all__ = [
    "PROBES",
    "PROBE_SIZE",
    "TAG_PREFIX",
    "probe_tag",
    "probe_photos",
    "probe_shape",
    "load_probe",
    "synthesized_probe",
    "missing_note",
]
