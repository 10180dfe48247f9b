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
import sys
from pathlib import Path

from fastnst.zoo.recipe import is_finished, run_training, train_command, zoo_overrides


def run(args, name: str, style_args: list[str]) -> int:
    """Train one network of the zoo into runs_dir/name: skipped when finished, resumed when it
    holds a checkpoint."""
    run_dir = args.runs_dir / name
    if is_finished(run_dir):
        print(f"{name}: finished before ({run_dir}), skipped", flush=True)
        return 0
    base = args.base.replace("{style}", name)
    overrides = [
        *zoo_overrides(args.steps, args.seed),
        *style_args,
        *([] if base == "none" else [f"init_from={base}"]),
        *args.extra,
    ]
    print(f"{name}: training in {run_dir}", flush=True)
    rc, took = run_training(
        train_command(overrides, run_dir), run_dir, "train_zoo.log", args.threads
    )
    print(f"{name}: rc {rc} after {took / 60:.1f} min", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
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
