"""Peak memory of stylize.py against fastnst.memory's estimate, each case in a fresh process.

    python scripts/bench/bench_memory.py [--photo 3000x2000] [--style wave] \
        [--cases 1 0.25 0.25:512] [--max-memory-gb 4]

A case is a stroke scale, with `:<tile>` for tile=<tile>. The photo is a synthetic JPEG of
--photo px; the peak is the stylize.py process's resident memory (ru_maxrss, the whole program:
Python, torch and the network included), its CPU time beside it. A case whose estimate does not
fit the limit is refused in one line before allocating: its peak is what refusing took. The
must-show of the memory bound: `--photo 3000x2000 --cases 0.25 0.25:512` (the tiled case is long
on 2 cores: ~150 s of CPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fastnst.accel.cpu_tuning import cpu_info

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
# runs one command and reports its peak RSS (KB) and CPU seconds: the wrapper has one child only
MEASURE = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_maxrss, r.ru_utime + r.ru_stime, p.returncode)
print((p.stderr.strip().splitlines() or [""])[-1])
"""


def size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 20000 and 16 <= h <= 20000):
        raise argparse.ArgumentTypeError(f"each side must be 16..20000 px, got {text!r}")
    return w, h


def case_arg(text: str) -> tuple[float, int | None]:
    scale, _, tile = text.partition(":")
    try:
        return float(scale), int(tile) if tile else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected STROKE_SCALE[:TILE], e.g. 0.25:512, got {text!r}"
        ) from None


def main():
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photo", type=size_arg, default=(1500, 1000), help="WIDTHxHEIGHT")
    parser.add_argument("--style", default="wave", help="a bundled network")
    parser.add_argument(
        "--cases", type=case_arg, nargs="+", default=[(1.0, None), (0.5, None), (0.5, 512)]
    )
    parser.add_argument("--max-memory-gb", type=float, default=None)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from fastnst import Stylizer

    stylizer = Stylizer.load(args.style, device="cpu")
    width, height = args.photo
    print(f"{cpu_info()[0]}, {os.cpu_count()} cores; {args.style}, a {width}x{height} photo")
    print("| stroke scale | tile | network input | estimate GB | peak RSS GB | CPU s | result |")
    print("|---:|---:|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as work:
        photo = Path(work) / "photo.jpg"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(photo)
        for scale, tile in args.cases:
            options = [f"stroke_scale={scale}"] + ([f"tile={tile}"] if tile else [])
            if args.max_memory_gb:
                options.append(f"max_memory_gb={args.max_memory_gb}")
            command = [
                PY,
                str(REPO / "stylize.py"),
                f"style={args.style}",
                f"input={photo}",
                f"output={Path(work) / 'out.png'}",
                "overwrite=true",
                *options,
            ]
            measured = subprocess.run(
                [PY, "-c", MEASURE, *command], capture_output=True, text=True, check=True
            ).stdout.splitlines()
            peak_kb, cpu_s, code = measured[0].split()
            last = measured[1] if len(measured) > 1 else ""
            combined = scale * stylizer.native_stroke_scale
            big = f"{round(width / combined)}x{round(height / combined)}"
            estimate = stylizer.memory_estimate(height, width, stroke_scale=scale, tile=tile)
            result = "ok" if code == "0" else f"exit {code}: {last.removeprefix('fastnst: ')}"
            print(
                f"| {scale:g} | {tile or '-'} | {big} | {estimate / 1e9:.1f} | "
                f"{int(peak_kb) / 1e6:.2f} | {float(cpu_s):.0f} | {result[:160]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
