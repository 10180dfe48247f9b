"""Memory a stylization needs, estimated before any work, and the limit it must fit in.

The peak of a forward pass grows with the pixels the network runs on: the photo's pixels
(after `size=`) divided by the square of the combined stroke scale (stroke scale 0.5 paints on
the photo enlarged 2x a side: 4x the pixels), times the bytes a pixel takes through the network
(its widest activations are at full resolution: about 48 bytes per channel of the first
convolution). `tile=` bounds that part by one tile plus the instance-norm statistics pass on a
copy at most 1024 px a side; the photo-sized buffers (the photo, the painting, the
blend with the photo) stay. Measured on an AMD EPYC (Zen 4, 2 cores) through `Stylizer`: a
16-channel network takes 620-730 bytes a pixel, a 32-channel one 1100-1180 (peak RSS minus the
RSS before the call, 1-3 megapixels); the constants below are above both.

The limit is `max_memory_gb` when given, else the memory the system reports available
(MemAvailable; on CUDA the device's free memory). A stylization that cannot fit is refused in
one line, with the largest `size=` that fits, before any large allocation.
"""

from __future__ import annotations

import math
import os

from fastnst.errors import FastNSTError

BYTES_PER_CHANNEL_PIXEL = 48  # per channel of the first convolution, per network-input pixel
NETWORK_BYTES_PER_PIXEL = 64  # the network's input, output and the narrower layers beyond that
PHOTO_BUFFERS = 8  # float32 RGB copies of the photo alive at once (photo, painting, blend, ...)
DEFAULT_CHANNELS = 32  # an exported file whose first layer we do not see: the usual width
MIN_SIZE = 16


class MemoryLimitError(FastNSTError):
    """A stylization that would not fit in memory (refused before it starts)."""


def network_bytes_per_pixel(first_channels: int | None) -> int:
    channels = first_channels or DEFAULT_CHANNELS
    return BYTES_PER_CHANNEL_PIXEL * int(channels) + NETWORK_BYTES_PER_PIXEL


def network_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size the network runs on for a photo of (height, width) at combined stroke scale
    `scale` (fastnst.stroke.scaled_side)."""
    from fastnst.stroke import scaled_side

    return scaled_side(height, scale), scaled_side(width, scale)


def estimate_bytes(
    height: int,
    width: int,
    *,
    scale: float = 1.0,
    tile: int | None = None,
    batch: int = 1,
    first_channels: int | None = None,
    stats_side: int = 1024,
) -> int:
    """The peak extra memory (bytes) of stylizing `batch` photos of (height, width) (after
    `size=`) at combined stroke scale `scale`, whole (`tile=None`) or in tiles of `tile` px."""
    big_h, big_w = network_size(height, width, scale)
    net_pixels = big_h * big_w
    if tile and max(big_h, big_w) > tile:
        # one tile, and the statistics pass before it (the allocator may keep what it freed)
        from fastnst.images import fit_size

        stats_h, stats_w = fit_size(big_h, big_w, min(stats_side, max(big_h, big_w)))
        stats_pixels = stats_h * stats_w
        net_pixels = (tile + 4) ** 2 + stats_pixels
    photo_pixels = height * width
    if scale > 1.0:  # the reduced photo and its painting at the network's size too
        photo_pixels += 2 * big_h * big_w
    per_image = (
        net_pixels * network_bytes_per_pixel(first_channels) + photo_pixels * PHOTO_BUFFERS * 12
    )
    return batch * per_image


def available_bytes(device=None) -> int | None:
    """What the system says is free: the CUDA device's free memory for a CUDA device, else
    MemAvailable of /proc/meminfo (else the free physical pages); None when unknown."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # noqa: BLE001 - no answer: no limit
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_max_memory_gb(value) -> float | None:
    """max_memory_gb: None (the memory available) or a positive finite number of GB."""
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise FastNSTError(f"max_memory_gb must be a number of GB (or null), got {value!r:.60}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise FastNSTError(
            f"max_memory_gb must be a positive number of GB (or null), got {value!r:.60}"
        )
    return number


def limit_bytes(max_memory_gb: float | None, device=None) -> tuple[int | None, str]:
    """(the limit in bytes or None, how it is named in messages)."""
    if max_memory_gb is not None:
        return int(max_memory_gb * 1e9), f"max_memory_gb={max_memory_gb:g}"
    return available_bytes(device), "available"


def largest_fitting_size(fits, longest: int) -> int | None:
    """The largest longer side in MIN_SIZE..longest for which `fits(side)` holds (it is
    monotonic), or None when not even MIN_SIZE fits."""
    if not fits(MIN_SIZE):
        return None
    low, high = MIN_SIZE, max(MIN_SIZE, longest)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


__all__ = [
    "MemoryLimitError",
    "estimate_bytes",
    "available_bytes",
    "limit_bytes",
    "check_max_memory_gb",
    "largest_fitting_size",
    "network_size",
]
