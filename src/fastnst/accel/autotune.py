"""Pick the fastest CPU inference path for a network on this machine by measuring it, once.

Which path is fastest depends on the processor: NNPACK's Winograd convolutions and the fused
forward (the default path, `accel`) win on AVX2 CPUs, while on CPUs with AVX-512 and AMX oneDNN's
own kernels, channels_last maps or bf16 convolutions can run faster. So the first time a network
of a given shape meets an input of a given size class on a CPU, the runner (runners.AutoRunner)
hands `choose` its candidate paths. On a smooth synthetic image at a reduced size of the class
each runs once to set up (kernels, buffers) and once to warm up; those over 1.5x the default
path stop there, the rest run 2 more interleaved rounds (the best of 3 times counts: other work
only ever adds time). The fastest whose output stays within PSNR >= 40 dB of the default fp32
path wins if it beats the default path by more than 5%, and again, interleaved with it, at the
class's own size (at most 768 px square): noise or the reduced size never moves a machine off
the default path. On a busy CPU (load average over 1.5 per CPU) nothing is measured: the default
path runs, and the next quieter run measures.

The choice is cached in a small JSON file (`cache_file()`: $FASTNST_CACHE_DIR, else
$XDG_CACHE_HOME/fastnst, else ~/.cache/fastnst; autotune.json, written atomically) keyed by the
CPU model, the flags that matter, thread count and torch version, the network's shape, the size
class and the paths offered, and logged once per process as one line on stderr: the path, why,
its ms and what the measurement cost. FASTNST_AUTOTUNE=0 keeps the default path without
measuring; FASTNST_AUTOTUNE=measure measures again (busy or not) and replaces the cached choice.

This module loads no ONNX or runner code: the candidates are callables the runner builds.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fastnst.accel.cpu_tuning import cpu_info
from fastnst.metrics import psnr

ENV_ENABLE = "FASTNST_AUTOTUNE"
ENV_CACHE_DIR = "FASTNST_CACHE_DIR"
CACHE_NAME = "autotune.json"
CACHE_VERSION = 1
BASELINE = "accel"  # the default path: NNPACK convolutions + the fused forward, fp32
QUALITY_FLOOR_DB = 40.0
MIN_GAIN = 1.05  # another path must be this much faster than the default one to replace it
PRUNE_RATIO = 1.5  # slower than this x the default path at warm-up: not timed further
ROUNDS = 2  # timed rounds after the warm-up call (the median of 3 times counts)
CONFIRM_MAX_SIDE = 768  # a winner is confirmed at the class size, at most this square
BUSY_LOAD = 1.5  # load average per CPU above which other work skews the timings
# the CPU flags that decide which kernels oneDNN / NNPACK have
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# images with a geometric-mean side below this run the default path untimed (too small to matter)
MIN_TUNED_SIDE = 96

_logged: set[str] = set()
_clock = time.perf_counter  # tests substitute a fake clock


@functools.cache
def cpu_flags() -> list[str]:
    """The flags in `FLAGS` this CPU has."""
    flags = cpu_info()[1]
    return [f for f in FLAGS if f in flags]


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated."""
    return bool(set(BF16_FLAGS) & cpu_info()[1])


def describe_cpu() -> str:
    """'<model name> (avx2, avx512f, ...)', for logs and benchmark tables."""
    return f"{cpu_info()[0]} ({', '.join(cpu_flags()) or 'none of ' + '/'.join(FLAGS)})"


def enabled() -> bool:
    return os.environ.get(ENV_ENABLE, "1") not in ("0", "off", "false")


def forced() -> bool:
    """FASTNST_AUTOTUNE=measure: measure (even on a busy CPU, once per process, ignoring the
    cached choice) and cache the result."""
    return os.environ.get(ENV_ENABLE) == "measure"


def busy() -> str | None:
    """'load L on N CPUs' while other work loads the CPU (timings would mostly measure it), else None."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average (Windows)
        return None
    cpus = os.cpu_count() or 1
    return f"load {load:.1f} on {cpus} CPUs" if load > BUSY_LOAD * cpus else None


def cache_file() -> Path:
    folder = os.environ.get(ENV_CACHE_DIR)
    if folder:
        return Path(folder).expanduser() / CACHE_NAME
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastnst" / CACHE_NAME


def size_class(height: int, width: int) -> tuple[int, tuple[int, int]] | None:
    """(class side, timing size) of an input: the class is the power of two nearest its
    geometric-mean side (128..2048), timed on a square of 3/4 that side (at most 768): the
    reduced size keeps the measurement cheap. None below MIN_TUNED_SIDE."""
    side = math.sqrt(height * width)
    if side < MIN_TUNED_SIDE:
        return None
    cls = min(2048, max(128, 2 ** round(math.log2(side))))
    timing = min(768, cls * 3 // 4) // 16 * 16
    return cls, (timing, timing)


def network_name(config: dict) -> str:
    """A TransformerNet's shape (what its speed depends on) from its config: 'c32-64-128 r5 instance'."""
    name = f"c{'-'.join(str(c) for c in config['channels'])} r{config['num_residual']} {config['norm']}"
    return name + (f" {len(config['styles'])} styles" if config.get("styles") else "")


def cache_key(network: str, cls: int, offered) -> str:
    cpu = f"{cpu_info()[0]} [{','.join(cpu_flags())}] {torch.get_num_threads()} threads, torch {torch.__version__}"
    return f"{cpu} | {network} | {cls} px | {','.join(sorted(offered))}"


def timing_image(height: int, width: int) -> torch.Tensor:
    """A fixed smooth image with some fine grain, closer to a photo than uniform noise."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, max(1, height // 32), max(1, width // 32), generator=g)
    smooth = torch.nn.functional.interpolate(
        coarse, size=(height, width), mode="bicubic", align_corners=False
    )
    return (0.9 * smooth + 0.1 * torch.rand(1, 3, height, width, generator=g)).clamp_(0, 1)


@dataclass
class Choice:
    path: str
    reason: str
    ms: dict[str, float] = field(default_factory=dict)  # best ms of each path timed in full
    psnr: dict[str, float] = field(default_factory=dict)  # dB against the default fp32 path
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it was not timed in full
    timed_at: tuple[int, int] = (0, 0)
    seconds: float = 0.0  # what the measurement cost
    cached: bool = False

    def summary(self) -> str:
        others = [f"{name} {self.ms[name]:.0f} ms" for name in self.ms if name != self.path]
        others += [f"{name}: {why}" for name, why in self.skipped.items()]
        if self.path not in self.ms:
            return f"{self.path} ({self.reason})"
        h, w = self.timed_at
        return f"{self.path} ({self.reason}; {self.ms[self.path]:.0f} ms at {h}x{w}; others: {'; '.join(others) or 'none'})"


def _best_times(
    fns: dict, x: torch.Tensor, rounds: int, first: dict | None = None
) -> dict[str, float]:
    """The shortest of `rounds` interleaved calls of each function (plus `first`'s times), in ms:
    other work on the machine only ever adds time, so the minimum is the steadiest estimate."""
    times = {name: [first[name]] if first else [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = _clock()
            fn(x)
            times[name].append(_clock() - t)
    return {name: 1000 * min(ts) for name, ts in times.items()}


def measure(
    paths: dict[str, Callable[[], Callable]],
    x: torch.Tensor,
    skipped: dict[str, str] | None = None,
    rounds: int = ROUNDS,
    confirm: torch.Tensor | None = None,
) -> Choice:
    """Build and time each path (`paths`: name -> factory of a callable x -> output) on `x` and
    choose (see the module docstring). `paths` must hold BASELINE; `skipped`: paths not offered
    on this machine, name -> why. `confirm`: a larger input on which a path that beat the default
    one must beat it again (by MIN_GAIN, interleaved with it) to be chosen."""
    start = _clock()
    skipped = dict(skipped or {})
    fns = {}
    for name, make in paths.items():
        try:
            fns[name] = make()
            fns[name](x)  # first call: kernels and buffers are set up
        except Exception as e:  # a path that cannot run here (export failure, missing kernel)
            if name == BASELINE:
                raise
            skipped[name] = (
                f"failed ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''})"
            )
            fns.pop(name, None)
    warm, outputs = {}, {}
    for name, fn in fns.items():
        t = _clock()
        outputs[name] = fn(x)
        warm[name] = _clock() - t
    quality = {name: psnr(out, outputs[BASELINE]) for name, out in outputs.items()}
    timed = {}
    for name in fns:
        if quality[name] < QUALITY_FLOOR_DB:
            skipped[name] = f"PSNR {quality[name]:.1f} dB < {QUALITY_FLOOR_DB:.0f}"
        elif name != BASELINE and warm[name] > PRUNE_RATIO * warm[BASELINE]:
            skipped[name] = f"{warm[name] / warm[BASELINE]:.1f}x slower at warm-up"
        else:
            timed[name] = fns[name]
    ms = _best_times(timed, x, rounds, first=warm)
    best = min(ms, key=ms.get)
    gain = ms[BASELINE] / ms[best]
    if best == BASELINE:
        path, reason = BASELINE, "fastest"
    elif gain < MIN_GAIN:
        path, reason = BASELINE, f"the default path kept: {best} only {gain:.2f}x faster"
    else:
        path, reason = best, f"{gain:.2f}x the default path, PSNR {quality[best]:.1f} dB"
    if path != BASELINE and confirm is not None:
        pair = {BASELINE: fns[BASELINE], best: fns[best]}
        for fn in pair.values():
            fn(confirm)  # set up at this size
        again = _best_times(pair, confirm, rounds + 1)
        gain_again = again[BASELINE] / again[best]
        size = "x".join(str(d) for d in confirm.shape[-2:])
        if gain_again < MIN_GAIN:
            path, reason = (
                BASELINE,
                f"the default path kept: {best} {gain:.2f}x faster, but {gain_again:.2f}x at {size}",
            )
        else:
            reason = f"{gain:.2f}x the default path, {gain_again:.2f}x at {size}, PSNR {quality[best]:.1f} dB"
    return Choice(
        path,
        reason,
        ms,
        {k: round(v, 2) for k, v in quality.items()},
        skipped,
        tuple(x.shape[-2:]),
        _clock() - start,
    )


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("choices"), dict)
    ):
        return {}
    return data["choices"]


def _write(path: Path, key: str, choice: Choice) -> None:
    from fastnst.atomic import write_json

    entry = asdict(choice)
    entry.pop("cached")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        choices = _read(path)  # re-read: another process may have added its own choices
        choices[key] = entry
        write_json(path, {"version": CACHE_VERSION, "choices": choices}, indent=1, default=float)
    except OSError as e:  # a read-only home still runs, it only measures again next time
        print(
            f"fastnst: autotune: cannot write {path} ({e.strerror or e}); the choice is not kept",
            file=sys.stderr,
        )


def _from_entry(entry: dict, offered) -> Choice | None:
    try:
        choice = Choice(**{**entry, "timed_at": tuple(entry["timed_at"]), "cached": True})
    except (TypeError, KeyError):
        return None
    return choice if choice.path in offered else None


def choose(
    network: str,
    height: int,
    width: int,
    paths: dict[str, Callable[[], Callable]],
    run: Callable[[Callable, torch.Tensor], torch.Tensor] | None = None,
    skipped: dict[str, str] | None = None,
) -> Choice | None:
    """The path to run `network` (a shape description) on (height, width) inputs with: the cached
    choice for this CPU, network, size class and offered paths, else measured now and cached.
    None where there is nothing to choose (autotuning off, or an input too small to tune).
    `run(fn, x)`: how a path's callable is applied to the timing image (default fn(x))."""
    if not enabled():
        return None
    cls = size_class(height, width)
    if cls is None:
        return None
    cls_side, (th, tw) = cls
    key = cache_key(network, cls_side, list(paths) + list(skipped or {}))
    file = cache_file()
    remeasure = forced() and key not in _logged  # FASTNST_AUTOTUNE=measure: once per process
    entry = None if remeasure else _read(file).get(key)
    choice = _from_entry(entry, paths) if entry else None
    load = None if choice or forced() else busy()
    if load:  # not measured, not cached: the next run on a quieter CPU measures
        choice = Choice(BASELINE, f"the default path: CPU busy ({load}), measured another time")
        how = "not measured"
    elif choice is None:
        wrapped = {name: _bind(make, run) for name, make in paths.items()}
        side = min(cls_side, CONFIRM_MAX_SIDE)
        choice = measure(wrapped, timing_image(th, tw), skipped, confirm=timing_image(side, side))
        _write(file, key, choice)
        how = f"measured in {choice.seconds:.1f} s, cached in {file}"
    else:
        how = f"cached in {file}"
    if key not in _logged:
        _logged.add(key)
        print(
            f"fastnst: CPU path for {network} at ~{cls_side} px on {describe_cpu()}: {choice.summary()}; {how}",
            file=sys.stderr,
        )
    return choice


def _bind(make, run):
    if run is None:
        return make

    def bound():
        fn = make()
        return lambda x: run(fn, x)

    return bound
