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
path runs (or the path the caller prefers: `compile=true` asked for the compiled one), and the
next quieter run measures.

The choice is cached in a small JSON file (`cache_file()`: $FASTNST_CACHE_DIR, else
$XDG_CACHE_HOME/fastnst, else ~/.cache/fastnst; autotune.json) keyed by the CPU model, the flags
that matter, thread count and torch version, the network's shape, the size class and the paths
offered. A measurement prints one short line on stderr (the path, why, what measuring cost); a
cached choice is silent. FASTNST_AUTOTUNE=0 keeps the default path without measuring;
FASTNST_AUTOTUNE=measure measures again (busy or not) and replaces the cached choice.

The cache is untrusted input: only a regular file is read (never a FIFO or a device, opened
non-blocking), at most MAX_CACHE_BYTES, and an entry of the wrong shape is dropped and measured
again; a writer holds a lock file while it re-reads the cache and replaces it atomically, so
processes tuning at once keep each other's choices.

The paths themselves live in `paths.py` (a registry: name, description, factory, where offered);
this module times the callables it is handed and loads no ONNX or runner code.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fastnst.accel import cpu
from fastnst.accel.cpu import BF16_FLAGS, FLAGS, cpu_info  # noqa: F401 (re-exported)
from fastnst.metrics import psnr

ENV_ENABLE = "FASTNST_AUTOTUNE"
ENV_CACHE_DIR = "FASTNST_CACHE_DIR"
CACHE_NAME = "autotune.json"
CACHE_VERSION = 1
BASELINE = "accel"  # the default path: NNPACK convolutions + the fused forward, fp32
QUALITY_FLOOR_DB = 40.0
MIN_GAIN = 1.05  # another path must be this much faster than the default one to replace it
PRUNE_RATIO = 1.5  # slower than this x the default path at warm-up: not timed further
ROUNDS = 2  # timed rounds after the warm-up call (the shortest of the 3 times counts)
CONFIRM_MAX_SIDE = 768  # a winner is confirmed at the class size, at most this square
BUSY_LOAD = 1.5  # load average per CPU above which other work skews the timings
# images with a geometric-mean side below this run the default path untimed (too small to matter)
MIN_TUNED_SIDE = 96
# the cache is untrusted input: at most this many bytes are read, nested at most this deep
MAX_CACHE_BYTES = 4 << 20
MAX_CACHE_DEPTH = 8
LOCK_WAIT_S = 5.0  # a writer waits this long for another one's lock, then writes anyway

_measured: set[str] = set()  # keys measured in this process
_clock = time.perf_counter  # tests substitute a fake clock


def cpu_flags() -> list[str]:
    """The flags in `cpu.FLAGS` this CPU has."""
    return cpu.current().relevant_flags


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated."""
    return cpu.current().native_bf16


def describe_cpu() -> str:
    """'<model name> (avx2, avx512f, ...)', for logs and benchmark tables."""
    return cpu.current().describe()


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
    name += f" {config['upsample']}" if "upsample" in config else ""  # only a non-default mode
    return name + (f" {len(config['styles'])} styles" if config.get("styles") else "")


def cache_key(network: str, cls: int, offered) -> str:
    facts = cpu.current()
    machine = f"{facts.model} [{','.join(facts.relevant_flags)}] {torch.get_num_threads()} threads, torch {torch.__version__}"
    return f"{machine} | {network} | {cls} px | {','.join(sorted(offered))}"


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
    """The cached choices in `path`, {} when there are none usable. The file is untrusted input:
    only a regular file is read (a FIFO, a device or a directory in its place is ignored, never
    waited on), at most MAX_CACHE_BYTES of it, and content of the wrong shape counts as empty;
    single entries are checked when used (`_from_entry`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            return {}
        chunks, left = [], MAX_CACHE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # grew past the cap while being read
            return {}
        data = json.loads(b"".join(chunks))
    except (OSError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return {}
    finally:
        os.close(fd)
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("choices"), dict)
    ):
        return {}
    return {k: v for k, v in data["choices"].items() if _depth(v) <= MAX_CACHE_DEPTH}


def _depth(value, limit: int = MAX_CACHE_DEPTH) -> int:
    """How deeply `value` nests (dicts and lists), counting no further than limit + 1."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


@contextlib.contextmanager
def _locked(path: Path):
    """Hold `path`.lock (an advisory flock) while re-reading and replacing the cache, so that
    two processes tuning at once merge their choices instead of one losing the other's. The
    lock file is never followed through a link nor waited on longer than LOCK_WAIT_S; without
    it (no flock, a read-only folder, a stale holder) the write still happens: the re-read just
    before the atomic replace loses at most a choice written in between."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = None
    try:
        fd = os.open(
            path.with_name(path.name + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0),
            0o644,
        )
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        deadline = _clock() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _clock() > deadline:
                    break
                time.sleep(0.02)
    except OSError:
        pass
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _write(path: Path, key: str, choice: Choice) -> None:
    from fastnst.atomic import write_json

    entry = asdict(choice)
    entry.pop("cached")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            choices = _read(path)  # re-read: another process may have added its own choices
            choices = {k: v for k, v in choices.items() if _valid(v)}  # bad entries dropped
            choices[key] = entry
            write_json(
                path, {"version": CACHE_VERSION, "choices": choices}, indent=1, default=float
            )
    except OSError as e:  # a read-only home still runs, it only measures again next time
        print(
            f"fastnst: autotune: cannot write {path} ({e.strerror or e}); the choice is not kept",
            file=sys.stderr,
        )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _decibels(value) -> bool:  # inf: a path identical to the default one
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _valid(entry) -> bool:
    """Whether a cached entry has Choice's fields with the right types (anything else in the file
    is dropped and measured again)."""
    if not isinstance(entry, dict) or set(entry) - {f for f in Choice.__dataclass_fields__}:
        return False
    if not isinstance(entry.get("path"), str) or not isinstance(entry.get("reason"), str):
        return False
    for name, check in (
        ("ms", _number),
        ("psnr", _decibels),
        ("skipped", lambda v: isinstance(v, str)),
    ):
        value = entry.get(name, {})
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and check(v) for k, v in value.items()
        ):
            return False
    timed_at = entry.get("timed_at", [0, 0])
    if not (
        isinstance(timed_at, list)
        and len(timed_at) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in timed_at)
    ):
        return False
    return _number(entry.get("seconds", 0.0))


def _from_entry(entry, offered) -> Choice | None:
    if not _valid(entry):
        return None
    choice = Choice(**{**entry, "timed_at": tuple(entry.get("timed_at", (0, 0))), "cached": True})
    return choice if choice.path in offered else None


def choose(
    network: str,
    height: int,
    width: int,
    paths: dict[str, Callable[[], Callable]],
    run: Callable[[Callable, torch.Tensor], torch.Tensor] | None = None,
    skipped: dict[str, str] | None = None,
    prefer: str | None = None,
) -> Choice | None:
    """The path to run `network` (a shape description) on (height, width) inputs with: the cached
    choice for this CPU, network, size class and offered paths, else measured now and cached.
    None where there is nothing to choose (autotuning off, or an input too small to tune).
    `run(fn, x)`: how a path's callable is applied to the timing image (default fn(x)).
    `prefer`: the path to take unmeasured on a busy CPU (default: the default path)."""
    if not enabled():
        return None
    cls = size_class(height, width)
    if cls is None:
        return None
    cls_side, (th, tw) = cls
    key = cache_key(network, cls_side, paths)
    file = cache_file()
    remeasure = forced() and key not in _measured  # FASTNST_AUTOTUNE=measure: once per process
    entry = None if remeasure else _read(file).get(key)
    choice = _from_entry(entry, paths) if entry is not None else None
    load = None if choice or forced() else busy()
    if load:  # not measured, not cached: the next run on a quieter CPU measures
        path = prefer if prefer in paths else BASELINE
        return Choice(path, f"not measured: CPU busy ({load})")
    if choice is None:
        wrapped = {name: _bind(make, run) for name, make in paths.items()}
        side = min(cls_side, CONFIRM_MAX_SIDE)
        choice = measure(wrapped, timing_image(th, tw), skipped, confirm=timing_image(side, side))
        _write(file, key, choice)
        _measured.add(key)
        # the one line, only when it measured (a cached choice is silent)
        print(
            f"fastnst: CPU path for {network} at ~{cls_side} px: {choice.path} ({choice.reason}); "
            f"measured in {choice.seconds:.0f} s, cached",
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
