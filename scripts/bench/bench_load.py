"""Speed with other jobs on the machine: each command quiet, then with --load busy-loop processes
beside it, then (rows named by --spin) loaded again with OpenMP's spin-waits back on, back to back.

    FASTNST_DATA=<data> python scripts/bench/bench_load.py [--load 3] [--nice 0] \
        [--rows stylizer blend evaluate train] [--spin stylizer evaluate] [--run <run dir>]

Rows: one 256 px `Stylizer` call (median of 10 warm calls, in a process that starts with
`from fastnst import Stylizer`), `style_blend.py --video` (wall time, a 3-style network of the
default width), evaluate.py's ms/image (its eval.json; --run, or the train row's run) and
`train.py debug=quick` (wall time). Every command runs in its own process, as a user starts it: fastnst sets
OMP_WAIT_POLICY=PASSIVE as it is imported. The spin column sets GOMP_SPINCOUNT=300000, the spin
count GNU OpenMP uses when OMP_WAIT_POLICY is unset, i.e. how these commands ran before. The
load average printed is the machine's (other jobs count too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastnst.accel.cpu_tuning import cpu_info  # torch-free: this process only starts others

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ROWS = (
    "stylizer",
    "blend",
    "train",
    "evaluate",
)  # train before evaluate: it scores the train row's run
SPIN_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "300000"}

STYLIZER_CALL = """
from fastnst import Stylizer
import statistics, time, torch
s = Stylizer.load("the_scream", device="cpu")
x = torch.rand(1, 3, 256, 256)
s(x); s(x)
times = []
for _ in range(10):
    t = time.perf_counter(); s(x); times.append(time.perf_counter() - t)
print(statistics.median(times) * 1000)
"""

MULTI_NET = """
import sys
from fastnst.artifacts import save_exported
from fastnst.transformer import TransformerNet
import torch
torch.manual_seed(0)
save_exported(sys.argv[1], TransformerNet(styles=["a", "b", "c"]))
"""


def cpu_name() -> str:
    return f"{cpu_info()[0]}, {os.cpu_count()} cores"


class BusyLoad:
    """`n` busy-loop processes at normal priority for the duration of a `with` block."""

    def __init__(self, n: int, nice: int = 0):
        self.n, self.nice, self.procs = n, nice, []

    def __enter__(self):
        self.procs = [
            subprocess.Popen(["nice", "-n", str(self.nice), PY, "-c", "while 1: pass"])
            for _ in range(self.n)
        ]
        time.sleep(2)  # let the load average notice them
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def run(cmd: list[str], env_extra: dict, cwd: Path = REPO) -> tuple[float, str]:
    """(wall seconds, stdout) of one command; fails loudly with its stderr."""
    env = {**os.environ, **env_extra}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def measure(row: str, work: Path, env_extra: dict, state: dict) -> tuple[float, str]:
    """(value, unit) of one row in one condition."""
    if row == "train":
        out = work / f"runs-{len(state.setdefault('train_runs', []))}"
        seconds, stdout = run(
            [
                PY,
                "train.py",
                "debug=quick",
                f"paths.output_root={out}",
                "trainer.enable_progress_bar=false",
            ],
            env_extra,
        )
        state["train_runs"].append(next(out.glob("*/*/*/*/model.pt")).parent)
        return seconds, "s"
    if row == "blend":
        seconds, _ = run(
            [
                PY,
                "scripts/figures/style_blend.py",
                "--model",
                str(state["multi"]),
                "--photo",
                str(state["photo"]),
                "--video",
                str(work / "morph.mp4"),
                "--overwrite",
                "--no-progress",
            ],
            env_extra,
        )
        return seconds, "s"
    if row == "stylizer":
        _, stdout = run([PY, "-c", STYLIZER_CALL], env_extra)
        return float(stdout.split()[-1]), "ms"
    if row == "evaluate":
        runs = [state["run"]] if state.get("run") else state.get("train_runs")
        if not runs:
            raise SystemExit(
                "the evaluate row needs a trained run: --run <run dir>, or the train row first"
            )
        run(
            [
                PY,
                "evaluate.py",
                f"run={runs[0]}",
                "gatys_iterations=0",
                "tensorboard=false",
                "num_photos=4",
                "overwrite=true",
                "progress=false",
            ],
            env_extra,
        )
        return json.loads((runs[0] / "eval.json").read_text())["metrics"][
            "ms_per_image"
        ], "ms/image"
    raise ValueError(row)


LABELS = {
    "train": "`train.py debug=quick`",
    "blend": "`style_blend.py --video` (3 styles, 256 px)",
    "stylizer": "256 px `Stylizer` call",
    "evaluate": "evaluate.py ms/image (256 px, 4 photos, 5 calls)",
}


def main(argv=None) -> int:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--load", type=int, default=3, help="busy-loop processes beside each loaded run"
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="niceness of the busy loops (commands run at 0)"
    )
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="the run evaluate.py measures (default: the train row's; its eval.json is replaced)",
    )
    parser.add_argument(
        "--spin",
        nargs="*",
        choices=ROWS,
        default=[],
        help="rows also measured loaded with spin-waits (GOMP_SPINCOUNT=300000: the old default)",
    )
    args = parser.parse_args(argv)
    from fastnst.config import data_dir

    photo = data_dir() / "content" / "chicago.jpg"
    if not photo.is_file():
        raise SystemExit(f"{photo}: not found; set FASTNST_DATA to the data folder")
    rows = [r for r in ROWS if r in args.rows]
    conditions = [
        ("quiet", 0, {}),
        ("loaded", args.load, {}),
        ("loaded, spin", args.load, SPIN_ENV),
    ]
    results: dict[str, dict[str, tuple[float, str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        state = {"photo": photo, "multi": work / "multi.pt", "run": args.run}
        run([PY, "-c", MULTI_NET, str(state["multi"])], {})
        for row in rows:
            for name, load, env_extra in conditions:  # back to back, so slow phases hit all
                if env_extra and row not in args.spin:
                    continue
                with BusyLoad(load, args.nice):
                    before = os.getloadavg()[0]
                    value, unit = measure(row, work, env_extra, state)
                    after = os.getloadavg()[0]
                results.setdefault(row, {})[name] = (value, unit, (before + after) / 2)
                print(
                    f"{row} {name}: {value:.1f} {unit} (load {before:.1f}-{after:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    head = [name for name, _, env in conditions if not env or args.spin]
    print(
        f"CPU: {cpu_name()}; loaded = {args.load} busy-loop processes (`nice -n {args.nice} python -c "
        f"'while 1: pass'`) beside the command, plus whatever else ran; load = 1-min load average\n"
    )
    print("| what | " + " | ".join(head) + " | loaded / quiet |")
    print("|---|" + "---|" * (len(head) + 1))
    for row in rows:
        cells = [
            f"{results[row][h][0]:.1f} {results[row][h][1]} (load {results[row][h][2]:.1f})"
            if h in results[row]
            else "-"
            for h in head
        ]
        ratio = results[row]["loaded"][0] / results[row]["quiet"][0]
        print(f"| {LABELS[row]} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
