"""What `precision: auto` means on a CPU, decided in one place for training (`trainer.precision`,
fastnst.train.resolve_precision) and Gatys (`precision`, fastnst.gatys.resolve_precision).

The rule: bf16-mixed where the CPU computes bf16 natively (AMX or AVX512-BF16, read from
/proc/cpuinfo), 32-true elsewhere, where bf16 convolutions are emulated and run several times
slower than fp32. The names are Lightning's precision names, so both commands spell them alike.
Light on purpose: no Lightning import, so gatys.py starts fast.
"""

from __future__ import annotations

FP32, BF16 = "32-true", "bf16-mixed"
# the precisions a command that is not Lightning (gatys.py) takes, `auto` first
CHOICES = ("auto", FP32, BF16)


def cpu_auto_precision(option: str, keeps: str) -> tuple[str, str]:
    """(precision, one-line reason) that `option`=auto resolves to on this CPU.

    option: how the command spells the setting ("trainer.precision", "precision"), named in the
    reason; keeps: what stays fp32 under bf16 (e.g. "Grams and losses stay fp32")."""
    from fastnst.accel import autotune  # looked up at call time: tests fake the CPU's flags

    name, flags = autotune.cpu_info()
    found = [f for f in autotune.BF16_FLAGS if f in flags]
    if found:
        return BF16, (
            f"precision {BF16} ({option}=auto): {name} computes bf16 natively "
            f"({'/'.join(found)}); {keeps}"
        )
    return FP32, (
        f"precision {FP32} ({option}=auto): {name} has no native bf16 "
        f"({'/'.join(autotune.BF16_FLAGS)}), so bf16 convolutions would be emulated and slower than fp32"
    )


def check_choice(value, option: str = "precision") -> str:
    """`value` if it is one of CHOICES (exact spelling), else a one-line FastNSTError."""
    from fastnst.errors import FastNSTError

    if isinstance(value, str) and value in CHOICES:
        return value
    hint = ""
    if isinstance(value, str) and value.strip().lower() in CHOICES:
        hint = f" (did you mean {value.strip().lower()}?)"
    raise FastNSTError(f"{option} must be {', '.join(CHOICES)}, got {value!r}{hint}")


__all__ = ["BF16", "CHOICES", "FP32", "check_choice", "cpu_auto_precision"]
