"""Train the bundled networks (src/fastnst/zoo/) with experiment=zoo, one style after another,
resumable: a style whose run has model.pt is skipped, one with a checkpoint is resumed in place.

    python scripts/zoo/train_zoo.py --runs-dir ~/fastnst-zoo --styles starry_night the_scream wave
    python scripts/zoo/train_zoo.py --runs-dir ~/fastnst-zoo --styles udnie --base ~/fastnst-zoo/base.pt
    python scripts/zoo/train_zoo.py --runs-dir ~/fastnst-zoo --multi starry_night the_scream wave udnie ...

Each style starts from --base (a trained network: a fine-tune, see docs/quality.md) or from scratch
(--base none). Run it in the background under nice; then scripts/zoo/bundle_network.py <run>.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()  # the trainings it starts share the cores (their OpenMP waits passively)

REPO = Path(__file__).resolve().parents[2]


def train_command(args, run_dir: Path, style_args: list[str]) -> list[str]:
    steps = args.steps
    base = args.base.replace("{style}", run_dir.name)
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "experiment=zoo",
        *style_args,
        f"seed={args.seed}",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        f"system.scheduler.warmup_steps={min(50, max(1, steps // 8))}",
        "trainer.enable_progress_bar=false",
        "data.num_workers=0",
        f"callbacks.images.every_n_steps={steps}",
        f"callbacks.last_checkpoint.every_n_steps={max(10, steps // 8)}",
        *([] if base == "none" else [f"init_from={base}"]),
        *args.extra,
        f"hydra.run.dir={run_dir}",
    ]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        command.append(f"resume={run_dir}")
    return command


def run_logged(command: list[str], log_path: Path, threads: int) -> tuple[int, float]:
    """Run a training command on `threads` CPU threads (OpenMP waiting passively: other runs share
    the cores), its output appended to `log_path` after the command line; (exit code, seconds)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    start = time.time()
    with open(log_path, "a") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        rc = subprocess.call(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return rc, time.time() - start


def run(args, name: str, style_args: list[str]) -> int:
    run_dir = args.runs_dir / name
    if (run_dir / "model.pt").is_file():
        print(f"{name}: finished before ({run_dir}), skipped", flush=True)
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    command = train_command(args, run_dir, style_args)
    print(f"{name}: training in {run_dir}", flush=True)
    rc, took = run_logged(command, run_dir / "train_zoo.log", args.threads)
    if rc == 0:  # wall time over every resumed piece of the run
        previous = (
            float((run_dir / "wall_s.txt").read_text())
            if (run_dir / "wall_s.txt").is_file()
            else 0.0
        )
        (run_dir / "wall_s.txt").write_text(f"{previous + took:.0f}\n")
    print(f"{name}: rc {rc} after {took / 60:.1f} min", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs-dir", type=Path, required=True, help="one run folder per style, outside the repo"
    )
    parser.add_argument(
        "--styles", nargs="*", default=[], help="single-style networks to train, in order"
    )
    parser.add_argument(
        "--multi", nargs="*", default=[], help="styles of one multi-style network (run name: multi)"
    )
    parser.add_argument(
        "--steps", type=int, default=400, help="training steps per network (default 400)"
    )
    parser.add_argument(
        "--base",
        default="none",
        help="network every run starts from (init_from=; "
        "{style} stands for the run's style, e.g. old/{style}.pt), or none",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "extra", nargs="*", help="more train.py overrides (key=value), for every run"
    )
    args = parser.parse_args(argv)
    args.runs_dir = args.runs_dir.expanduser().resolve()
    if not args.styles and not args.multi:
        parser.error("nothing to train: give --styles and/or --multi")
    failed = [s for s in args.styles if run(args, s, [f"style={s}"])]
    if args.multi:
        names = ",".join(args.multi)
        # each member at its preset's painting size and style weight, as its single-style network
        failed += (
            ["multi"]
            if run(args, "multi", ["style=multi", f"style.names=[{names}]", "style.size=null"])
            else []
        )
    if failed:
        print(f"failed: {', '.join(failed)} (rerun the same command to resume)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
