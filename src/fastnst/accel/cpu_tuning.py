"""Process-wide settings that make CPU runs faster: `keep_freed_memory` and `passive_openmp_waits`.

glibc serves every allocation above 128 KiB-32 MiB with a fresh mmap and hands it back on free, so
each feature map of a forward pass is page-faulted in again, zero-filled page by page: about a third
of an eager 512 px forward of the Johnson network on 2 cores (scripts/bench/bench_inference.py). Raising
the mmap and trim thresholds keeps freed blocks in the heap for the next forward pass to reuse, at
the price of the process holding on to its peak memory. Stylizer.load applies it for CPU inference
unless FASTNST_KEEP_FREED_MEMORY=0, and training on CPU.

This module loads no torch: `passive_openmp_waits` must run before torch is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from fastnst.accel.cpu import cpu_info  # noqa: F401 (the CPU's facts live in accel.cpu)

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
# blocks up to this size come from the heap; up to this much free memory stays with the process
KEEP_BYTES = 1 << 30

_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep and reuse freed memory (see the module docstring). Returns whether
    the setting is in effect (False off glibc, e.g. macOS/Windows/musl, or when switched off)."""
    global _applied
    if _applied:
        return True
    if os.environ.get("FASTNST_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # glibc builds that cap the mmap threshold at 32 MiB refuse it: then no mmap for blocks at all
    from_heap = bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) or bool(mallopt(_M_MMAP_MAX, 0))
    _applied = from_heap and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
    return _applied


def passive_openmp_waits() -> bool:
    """OpenMP threads yield the cores as soon as an op ends instead of spinning.

    In Gatys mode and CPU inference NNPACK's thread pool and OpenMP (oneDNN, elementwise ops)
    take turns layer by layer, and OpenMP's spin-waiting threads steal the 2 cores from NNPACK's:
    passive waits made a Gatys iteration ~10% faster here. On a loaded machine spinning threads
    also burn the time slices the busy thread needs: training, video and evaluation ran 5-40x
    slower with other jobs on the cores (scripts/bench/bench_load.py).

    A value the user set wins. torch's GNU OpenMP reads OMP_WAIT_POLICY once, when torch is
    imported, so this only takes effect before that: `import fastnst` calls it (every entry
    point, script and `from fastnst import Stylizer` first imports the package). Returns whether
    the policy in effect is passive (False when torch was imported first without it)."""
    global _torch_first
    if _torch_first is None:  # the first call (`import fastnst`) tells; torch reads it only once
        _torch_first = "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # children still inherit it
    return not _torch_first and os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


_torch_first: bool | None = None
_warned = False


def warn_if_spinning() -> None:
    """One warning per process when torch was imported before fastnst without OMP_WAIT_POLICY:
    its OpenMP threads spin-wait, which makes CPU work several times slower on a loaded machine."""
    global _warned
    if not _torch_first or _warned:
        return
    _warned = True
    import warnings

    warnings.warn(
        "fastnst: torch was imported before fastnst, so its OpenMP threads spin-wait and CPU work "
        "slows down several times when other jobs share the cores; import fastnst before torch "
        "or set OMP_WAIT_POLICY=PASSIVE in the environment",
        RuntimeWarning,
        stacklevel=3,
    )
