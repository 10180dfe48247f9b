#!/usr/bin/env python3
"""Compare trained runs side by side: one PNG grid and one Markdown table of their evaluation.

    python scripts/figures/compare_runs.py outputs/starry_night/imagenet_mini/johnson_half/<date> \\
        outputs/starry_night/anime_standin/johnson_half/<date> --out report/

Writes <out>/grid.png (rows: evaluation photos; columns: the photo, the style image(s), then
each run's output, headed by style, dataset and model) and <out>/metrics.md (+ metrics.json).
Runs without an eval.json, or evaluated on other photos/size/budget, are evaluated first
(fastnst.evaluate.evaluate_run), so the table compares like with like. Exit code 2 on a bad run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fastnst.config import resolve_user_path
from fastnst.errors import FastNSTError, one_line_errors
from fastnst.evaluate import (
    evaluate_run,
    evaluation_photo_paths,
    load_photo,
    load_run_config,
    read_eval,
    run_labels,
)
from fastnst.images import load_image, save_image, tensor_to_pil
from fastnst.preflight import ArgumentParser, ensure_writable
from fastnst.progress import add_progress_argument, bar
from fastnst.style import style_image_paths
from fastnst.stylize import Stylizer
from fastnst.video_metrics import stylized_warping_error

PAD = 4  # px between cells and around the grid
HEADER = 52  # px of the column headers (three lines of the default font)
LINE = 14
# table columns: (header, metric key, format)
COLUMNS = (
    ("content", "content", "{:.4g}"),
    ("style", "style", "{:.4g}"),
    ("style SWD", "style_swd", "{:.3f}"),
    ("Gatys style SWD", "gatys/style_swd", "{:.3f}"),
    ("total", "total", "{:.4g}"),
    ("Gatys total", "gatys/total", "{:.4g}"),
    ("total / Gatys", "total_vs_gatys", "{:.2f}"),
    ("edge SSIM", "edge_ssim", "{:.3f}"),
    ("Gatys edge SSIM", "gatys/edge_ssim", "{:.3f}"),
    ("ms / image", "ms_per_image", "{:.1f}"),
)
# with --video: the temporal warping error of each run on that clip (lower = less flicker)
VIDEO_COLUMN = ("warping error", "warping_error", "{:.5f}")


def grid_size(rows: int, columns: int, cell: int) -> tuple[int, int]:
    """(width, height) of the grid image."""
    return columns * cell + (columns + 1) * PAD, HEADER + rows * cell + (rows + 1) * PAD


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """The whole image scaled into a cell x cell white square."""
    image = image.copy()
    image.thumbnail((cell, cell), Image.LANCZOS)
    canvas = Image.new("RGB", (cell, cell), "white")
    canvas.paste(image, ((cell - image.width) // 2, (cell - image.height) // 2))
    return canvas


def _square(image: Image.Image, side: int) -> Image.Image:
    """Center square crop scaled to side x side."""
    s = min(image.size)
    left, top = (image.width - s) // 2, (image.height - s) // 2
    return image.crop((left, top, left + s, top + s)).resize((side, side), Image.LANCZOS)


def style_cell(paths: list[Path], cell: int) -> Image.Image:
    """One painting fitted into the cell, or a 2 x 2 mosaic of the first images of a collection."""
    if len(paths) == 1:
        return _fit(tensor_to_pil(load_image(paths[0], cell)), cell)
    canvas = Image.new("RGB", (cell, cell), "white")
    half = cell // 2
    for i, path in enumerate(paths[:4]):
        canvas.paste(
            _square(tensor_to_pil(load_image(path, cell)), half), ((i % 2) * half, (i // 2) * half)
        )
    return canvas


def _clip(text: str, width: int, font) -> str:
    while text and ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font) > width - 4:
        text = text[:-1]
    return text


def draw_grid(columns: list[tuple[list[str], list[Image.Image]]], cell: int) -> Image.Image:
    """columns: (header lines, one image per row) -> the grid image."""
    rows = len(columns[0][1])
    width, height = grid_size(rows, len(columns), cell)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for c, (lines, images) in enumerate(columns):
        x = PAD + c * (cell + PAD)
        for i, line in enumerate(lines[:3]):
            draw.text((x + 2, PAD + i * LINE), _clip(line, cell, font), fill="black", font=font)
        for r, image in enumerate(images):
            grid.paste(
                image.resize((cell, cell), Image.LANCZOS), (x, HEADER + PAD + r * (cell + PAD))
            )
    return grid


def _styles_of(cfg) -> list:
    """The style configs of a run: its one style, or each style of a multi-style run."""
    from omegaconf import OmegaConf

    from fastnst.multistyle import is_multi, members_of

    return (
        [OmegaConf.create(m) for m in members_of(cfg.style)] if is_multi(cfg.style) else [cfg.style]
    )


def markdown_table(evaluations: list[dict]) -> str:
    columns = COLUMNS + (
        (VIDEO_COLUMN,) if any(VIDEO_COLUMN[1] in ev["metrics"] for ev in evaluations) else ()
    )
    header = ["style", "data", "model", "steps", *(name for name, _, _ in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for ev in evaluations:
        # a multi-style run: one row per style (the warping error: single-style runs only)
        per_style = ev["per_style"] if "per_style" in ev else {ev["style"]: ev["metrics"]}
        for style, m in per_style.items():
            label = style if "per_style" not in ev else f"{style} (multi)"
            cells = [label, ev["data"], ev["model"], str(ev.get("global_step", ""))]
            cells += [fmt.format(m[key]) if key in m else "-" for _, key, fmt in columns]
            lines.append("| " + " | ".join(cells) + " |")
    settings = evaluations[0]["settings"]
    lines += [
        "",
        f"{len(settings['photos'])} photos at {settings['size']} px; Gatys reference: "
        f"{settings['gatys_iterations']} L-BFGS iterations from the photo under each run's own loss; "
        "lower losses are better, style SWD (distance of the VGG feature distributions to the painting's, fastnst.judge): lower = closer, edge SSIM (content fidelity, -1..1): higher = more of the photo's edges kept; ms / image depends on the load of the machine.",
    ]
    video = evaluations[0].get("video")
    if video:
        lines.append(
            f"Warping error (Lai et al. 2018, lower = less flicker): {video['path']}, first {video['frames']} "
            f"frames at {video['size']} px."
        )
    return "\n".join(lines) + "\n"


def _same_settings(ev: dict, photos: list[Path], size: int, gatys_iterations: int) -> bool:
    s = ev.get("settings", {})
    return (
        s.get("photos") == [str(p) for p in photos]
        and s.get("size") == size
        and s.get("gatys_iterations") == gatys_iterations
    )


def compare_runs(
    run_dirs,
    out,
    photos=None,
    num_photos: int | None = 8,
    size: int = 256,
    cell: int = 192,
    gatys_iterations: int = 50,
    cache_dir=None,
    backend: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
    trust_model_file: bool = False,
    video=None,
    video_frames: int = 30,
    video_size: int = 256,
    progress: bool | str | None = False,
) -> dict:
    """Evaluate what needs it, then write <out>/grid.png, metrics.md and metrics.json.
    progress: bars on stderr (true, false, or None/"auto": only on a terminal)."""
    if not run_dirs:
        raise FastNSTError("give at least one run directory")
    ensure_writable(resolve_user_path(out), "--out", folder=True)
    run_dirs = [resolve_user_path(r) for r in run_dirs]
    configs = [load_run_config(r) for r in run_dirs]  # a bad run fails before any work
    out = resolve_user_path(out)
    targets = [out / "grid.png", out / "metrics.md", out / "metrics.json"]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FastNSTError(f"{existing[0]}: already exists; pass --overwrite to replace the report")
    photo_paths = evaluation_photo_paths(photos, num_photos)
    if video is not None:
        video = resolve_user_path(video)
        if not video.is_file():
            raise FastNSTError(f"{video}: --video not found")

    evaluations = []
    for run in run_dirs:
        ev = read_eval(run)
        if ev is None or not _same_settings(ev, photo_paths, size, gatys_iterations):
            print(f"evaluating {run} ...", file=sys.stderr)
            ev = evaluate_run(
                run,
                photos=photo_paths,
                num_photos=None,
                size=size,
                gatys_iterations=gatys_iterations,
                cache_dir=cache_dir,
                backend=backend,
                device=device,
                overwrite=True,
                trust_model_file=trust_model_file,
                progress=progress,
            )
        evaluations.append(ev)

    images = [load_photo(p, size) for p in photo_paths]
    columns: list[tuple[list[str], list[Image.Image]]] = [
        (["photo"], [tensor_to_pil(x) for x in images])
    ]
    styles_seen: dict[tuple, None] = {}
    for cfg in configs:  # one style column per distinct style (each style of a multi-style run)
        for style in _styles_of(cfg):
            paths, _ = style_image_paths(style)
            key = (str(style.get("name")), tuple(map(str, paths)))
            if key not in styles_seen:
                styles_seen[key] = None
                lines = ["style", key[0]] + ([f"{len(paths)} images"] if len(paths) > 1 else [])
                columns.append((lines, [style_cell(paths, cell)] * len(images)))
    for run, cfg in bar(list(zip(run_dirs, configs)), progress=progress, desc="grid", unit="run"):
        labels = run_labels(run, cfg)
        stylizer = Stylizer.load(
            run, device=device, backend=backend, trust_model_file=trust_model_file
        )
        # a multi-style network: one column per style
        for name in stylizer.styles or [None]:
            outputs = [
                tensor_to_pil((stylizer(x) if name is None else stylizer(x, style=name)).cpu())
                for x in images
            ]
            header = [
                labels["style"] if name is None else f"{name} (multi)",
                labels["data"],
                labels["model"],
            ]
            columns.append((header, outputs))
        if video is not None and not stylizer.styles:
            ev = evaluations[run_dirs.index(run)]
            ev["metrics"] = {
                **ev["metrics"],
                "warping_error": stylized_warping_error(stylizer, video, video_frames, video_size),
            }
            ev["video"] = {"path": str(video), "frames": video_frames, "size": video_size}

    out.mkdir(parents=True, exist_ok=True)
    grid = draw_grid(columns, cell)
    save_image(grid, targets[0], overwrite=overwrite)
    table = markdown_table(evaluations)
    for path, text in ((targets[1], table), (targets[2], json.dumps(evaluations, indent=1))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return {
        "grid": targets[0],
        "table": targets[1],
        "json": targets[2],
        "evaluations": evaluations,
        "columns": len(columns),
        "rows": len(images),
    }


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="run directories (with config.yaml and model.pt)")
    parser.add_argument(
        "--out", required=True, help="report folder (grid.png, metrics.md, metrics.json)"
    )
    parser.add_argument(
        "--photos",
        nargs="*",
        default=None,
        help="evaluation photos: folders or images (default: imagenet-mini val of $FASTNST_DATA)",
    )
    parser.add_argument(
        "--num-photos", type=int, default=8, help="photos (grid rows), evenly spread (default 8)"
    )
    parser.add_argument("--size", type=int, default=256, help="evaluation size in px (default 256)")
    parser.add_argument("--cell", type=int, default=192, help="grid cell size in px (default 192)")
    parser.add_argument(
        "--gatys-iterations", type=int, default=50, help="Gatys reference budget (0 = none)"
    )
    parser.add_argument(
        "--cache-dir", default=None, help="Gatys reference cache (default outputs/.cache/gatys)"
    )
    parser.add_argument("--backend", default="auto", help="auto | torch | onnxruntime")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument(
        "--trust-model-file",
        action="store_true",
        help="also load model files holding Python objects besides tensors (can run code)",
    )
    parser.add_argument(
        "--video",
        default=None,
        help="a video clip: adds each run's temporal warping error on it (flicker)",
    )
    parser.add_argument(
        "--video-frames", type=int, default=30, help="first N frames of --video (default 30)"
    )
    parser.add_argument(
        "--video-size", type=int, default=256, help="--video's longer side in px (default 256)"
    )
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    result = compare_runs(
        args.runs,
        args.out,
        photos=args.photos or None,
        num_photos=args.num_photos,
        size=args.size,
        cell=args.cell,
        gatys_iterations=args.gatys_iterations,
        cache_dir=args.cache_dir,
        backend=args.backend,
        device=args.device,
        overwrite=args.overwrite,
        trust_model_file=args.trust_model_file,
        video=args.video,
        video_frames=args.video_frames,
        video_size=args.video_size,
        progress=args.progress,
    )
    print(Path(result["table"]).read_text())
    print(f"wrote {result['grid']}, {result['table']} and {result['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
