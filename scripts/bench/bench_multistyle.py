"""The measurements of multi-style networks (docs/benchmarks.md "Multi-style networks"), as markdown tables.

    python scripts/bench/bench_multistyle.py --runs outputs/bench [--rounds 15]

Reads the trained runs under --runs (made with conf/experiment/multistyle_bench.yaml, commands
in docs/benchmarks.md): single_<style> (one single-style network per style, S steps each), multi3 (the
3-style network, 3 S steps: as many photos per style), scratch_udnie (a single-style network
trained from scratch, 2,000 steps) and finetune_udnie (multi3 plus udnie, finetune=style_params).
Prints:
 1. quality: each style's final validation loss, multi-style vs its single-style network (the
    same 8 validation photos, loss and recipe; from TensorBoard);
 2. speed: median ms of one 512 px CPU forward (Stylizer, torch backend) of the single-style
    network and of the multi-style network with one style and with a blend, interleaved rounds;
 3. a new style: the steps fine-tuning only udnie's scales and shifts needs to reach the
    validation loss the from-scratch network has after its last step, and both curves;
 4. export parity of the multi-style network (ONNX, TorchScript) on one style and a blend.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch

from fastnst.artifacts import load_network
from fastnst.export import export_model
from fastnst.preflight import ArgumentParser, ensure_writable
from fastnst.stylize import Stylizer

STYLES = ("starry_night", "the_scream", "wave")


def scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    if tag not in acc.Tags()["scalars"]:
        raise SystemExit(f"{run}: no {tag} in its TensorBoard events")
    return [(e.step + 1, e.value) for e in acc.Scalars(tag)]  # step + 1: steps done when logged


def quality(runs: Path) -> list[str]:
    lines = [
        "| style | single-style val loss (S steps) | 3-style val loss (3 S steps) | ratio |",
        "|---|---|---|---|",
    ]
    for name in STYLES:
        (s_step, single), (m_step, multi) = (
            scalars(runs / f"single_{name}", "val/loss")[-1],
            scalars(runs / "multi3", f"val/{name}/loss")[-1],
        )
        lines.append(
            f"| {name} | {single:.0f} ({s_step} steps) | {multi:.0f} ({m_step} steps) | {multi / single:.3f} |"
        )
    return lines


def speed(runs: Path, rounds: int, side: int = 512) -> list[str]:
    torch.manual_seed(0)
    x = torch.rand(1, 3, side, side)
    single = Stylizer.load(runs / f"single_{STYLES[0]}", device="cpu")
    multi = Stylizer.load(runs / "multi3", device="cpu")
    cases = {
        "single-style": lambda: single(x),
        "3-style, style=starry_night": lambda: multi(x, style="starry_night"),
        "3-style, mix={starry_night: 0.7, wave: 0.3}": lambda: multi(
            x, mix={"starry_night": 0.7, "wave": 0.3}
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in cases.items():  # interleaved: load from other processes hits all alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["single-style"])
    lines = [
        f"| {side} px, CPU ({torch.get_num_threads()} threads), median of {rounds} | ms | vs single-style |",
        "|---|---|---|",
    ]
    for name, t in times.items():
        lines.append(
            f"| {name} | {1000 * statistics.median(t):.1f} | {statistics.median(t) / base:.3f} |"
        )
    return lines


def finetune(runs: Path, tuned_run: str = "finetune_udnie") -> list[str]:
    scratch = scalars(runs / "scratch_udnie", "val/loss")
    tuned = scalars(runs / tuned_run, "val/udnie/loss")
    target_step, target = scratch[-1]
    reached = next((step for step, value in tuned if value <= target), None)
    s_time = _seconds_per_step(runs / "scratch_udnie")
    f_time = _seconds_per_step(runs / tuned_run)
    lines = [
        f"target: the from-scratch network's val loss after {target_step} steps = {target:.0f}",
        "",
    ]
    if reached is None:
        lines.append(
            f"fine-tuning did NOT reach it within {tuned[-1][0]} steps (best {min(v for _, v in tuned):.0f})"
        )
    else:
        lines.append(
            f"fine-tuning udnie's scales and shifts reached it after {reached} steps "
            f"({reached / target_step:.3f} of {target_step})"
        )
    lines.append(
        f"seconds per step: from scratch {s_time:.2f}, fine-tuning {f_time:.2f} (2 shared CPU cores)"
    )
    lines += [
        "",
        "| step | from scratch val loss | fine-tune (style params only) val loss |",
        "|---|---|---|",
    ]
    merged = sorted({s for s, _ in scratch} | {s for s, _ in tuned})
    a, b = dict(scratch), dict(tuned)
    for step in merged:
        cells = [f"{d[step]:.0f}" if step in d else "" for d in (a, b)]
        lines.append(f"| {step} | {cells[0]} | {cells[1]} |")
    return lines


def plot_curves(
    runs: Path, out: Path, tuned_runs=("finetune_udnie",), width: int = 640, height: int = 320
) -> Path:
    """The from-scratch curve and each fine-tune's validation curve as a small PNG chart (PIL only)."""
    from PIL import Image, ImageDraw

    colors = [(40, 90, 200), (40, 160, 80), (150, 60, 170), (230, 140, 20)]
    curves = {
        "from scratch (whole network)": (scalars(runs / "scratch_udnie", "val/loss"), (200, 60, 40))
    }
    for run, color in zip(tuned_runs, colors):
        curves[f"{run} (finetune=style_params)"] = (scalars(runs / run, "val/udnie/loss"), color)
    points = [p for c, _ in curves.values() for p in c]
    x_max = max(s for s, _ in points)
    y_min, y_max = min(v for _, v in points), max(v for _, v in points)
    left, right, top, bottom = 60, 10, 10, 30
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def xy(step, value):
        x = left + (width - left - right) * step / x_max
        y = top + (height - top - bottom) * (y_max - value) / (y_max - y_min)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline=(120, 120, 120))
    for v in (y_min, (y_min + y_max) / 2, y_max):
        draw.text((4, xy(0, v)[1] - 6), f"{v:.0f}", fill="black")
    for step in (0, x_max // 2, x_max):
        draw.text((xy(step, y_min)[0] - 10, height - bottom + 6), f"{step}", fill="black")
    target_step, target = curves["from scratch (whole network)"][0][-1]
    draw.line([xy(0, target), xy(x_max, target)], fill=(160, 160, 160), width=1)
    draw.text(
        (xy(x_max, target)[0] - 250, xy(0, target)[1] - 14),
        f"target: from scratch at {target_step} steps",
        fill=(110, 110, 110),
    )
    quarter = target_step / 4  # the must-show: reach the target within a quarter of the steps
    quarter_x = xy(quarter, target)[0]
    for y in range(top, height - bottom, 8):  # dashed
        draw.line([(quarter_x, y), (quarter_x, y + 4)], fill=(160, 160, 160))
    draw.text((quarter_x + 4, height - bottom - 16), f"{quarter:.0f} steps", fill=(110, 110, 110))
    draw.text((left + 90, height - bottom + 6), "training steps (batch 4)", fill="black")
    for i, (label, (curve, color)) in enumerate(curves.items()):
        draw.line([xy(s, v) for s, v in curve], fill=color, width=2)
        draw.text((left + 10, top + 8 + 14 * i), f"{label}: udnie val loss", fill=color)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def _seconds_per_step(run: Path) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload().Scalars("train/loss")
    return (events[-1].wall_time - events[0].wall_time) / max(1, events[-1].step - events[0].step)


def parity(runs: Path) -> list[str]:
    net, _ = load_network(runs / "multi3")
    lines = [
        "| format | max abs difference vs PyTorch (one style and a blend, 67x45 and 96x128) |",
        "|---|---|",
    ]
    from fastnst.export import check_parity

    with tempfile.TemporaryDirectory() as tmp:
        for fmt, ext in (("onnx", ".onnx"), ("torchscript", ".ts")):
            path = export_model(net, Path(tmp) / f"multi{ext}", fmt, check=False)
            lines.append(f"| {fmt} | {check_parity(net, path, fmt):.1e} |")
    return lines


def main(argv=None) -> int:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["quality", "speed", "finetune", "parity"]
    )
    parser.add_argument(
        "--plot", type=Path, default=None, help="also draw the fine-tune curves into this PNG"
    )
    parser.add_argument(
        "--finetune-runs",
        nargs="+",
        default=["finetune_udnie"],
        help="the fine-tune run(s) under --runs to compare with scratch_udnie (the first one is the table's)",
    )
    args = parser.parse_args(argv)
    if args.plot is not None:
        parser.check(ensure_writable, args.plot, "--plot")
    if args.plot is not None:
        print(f"wrote {plot_curves(args.runs, args.plot, args.finetune_runs)}\n")
    sections = {
        "quality": ("1. Quality per style", quality),
        "speed": ("2. Speed", None),
        "finetune": ("3. A new style (finetune=style_params vs from scratch)", finetune),
        "parity": ("4. Export parity", parity),
    }
    for key, (title, fn) in sections.items():
        if key in args.skip:
            continue
        print(f"### {title}\n")
        if key == "speed":
            lines = speed(args.runs, args.rounds)
        elif key == "finetune":
            lines = [
                line
                for run in args.finetune_runs
                for line in [f"**{run}**", "", *finetune(args.runs, run), ""]
            ]
        else:
            lines = fn(args.runs)
        print("\n".join(lines) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
