"""What this CPU is, in one place: its model name, its feature flags and what follows from them
(native bf16, AMX), for the autotuner's path registry (`paths.py`), the cache keys, training's
precision choice and every benchmark table's header.

`current()` reads /proc/cpuinfo once per process; `CPU(model, flags)` describes any other
(tests fake a CPU with the flags they need). This module loads no torch.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

# the flags that decide which kernels oneDNN / NNPACK have
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # bf16 computed natively (elsewhere: emulated, slow)
AMX_FLAGS = ("amx_bf16", "amx_tile")


@dataclass(frozen=True)
class CPU:
    model: str
    flags: frozenset[str]

    @property
    def relevant_flags(self) -> list[str]:
        """The flags in `FLAGS` this CPU has, in `FLAGS` order."""
        return [f for f in FLAGS if f in self.flags]

    @property
    def native_bf16(self) -> bool:
        """Whether the CPU computes bf16 natively (AMX or AVX512-BF16)."""
        return bool(set(BF16_FLAGS) & self.flags)

    @property
    def amx(self) -> bool:
        return all(f in self.flags for f in AMX_FLAGS)

    def describe(self) -> str:
        """'<model name> (avx2, avx512f, ...)', for logs and benchmark tables."""
        return f"{self.model} ({', '.join(self.relevant_flags) or 'none of ' + '/'.join(FLAGS)})"


@functools.cache  # the CPU does not change while a process runs
def cpu_info() -> tuple[str, frozenset[str]]:
    """(CPU model name, its feature flags) from /proc/cpuinfo; elsewhere the platform's name and
    no flags (so no bf16 path is ever offered there)."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", flags


def current() -> CPU:
    """This machine's CPU."""
    model, flags = cpu_info()
    return CPU(model, frozenset(flags))


def native_bf16() -> bool:
    return current().native_bf16


def describe_cpu() -> str:
    return current().describe()
