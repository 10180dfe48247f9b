"""Compare trained runs side by side: one PNG grid and one Markdown table of their evaluation.

    python scripts/figures/compare_runs.py outputs/starry_night/imagenet_mini/johnson_half/<date> \\
        outputs/starry_night/anime_standin/johnson_half/<date> --out report/

Writes <out>/grid.png (rows: evaluation photos; columns: the photo, the style image(s), then
each run's output, headed by style, dataset and model) and <out>/metrics.md (+ metrics.json).
Runs without an eval.json, or evaluated on other photos/size/budget, are evaluated first
(fastnst.evaluate.evaluate_run), so the table compares like with like. Exit code 2 on a bad run.

--tensorboard DIR also writes the comparison as a TensorBoard run (`tensorboard --logdir DIR`,
or a folder above it): images `compare/<probe>` (each probe photo of fastnst.probes, the photos
every training run logs under probe/<probe>, then each run's output on it, labelled),
`compare/grid` (grid.png) and the table as text `compare/metrics`; and under DIR/runs/<run> each
run's settings and evaluation as hparams and eval/<metric> scalars (the HParams tab's table).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fastnst.config import data_dir, resolve_user_path
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
from fastnst.probes import PROBE_SIZE, missing_note, probe_photos
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
    tensorboard=None,
    probe_size: int = PROBE_SIZE,
) -> dict:
    """Evaluate what needs it, then write <out>/grid.png, metrics.md and metrics.json (and with
    `tensorboard`, a folder, the TensorBoard run described in the module's doc).
    progress: bars on stderr (true, false, or None/"auto": only on a terminal)."""
    if not run_dirs:
        raise FastNSTError("give at least one run directory")
    ensure_writable(resolve_user_path(out), "--out", folder=True)
    if tensorboard is not None:
        if probe_size < 16:
            raise FastNSTError(f"--probe-size {probe_size}: use at least 16 px")
        tensorboard = resolve_user_path(tensorboard)
        ensure_writable(tensorboard, "--tensorboard", folder=True)
        old = tensorboard_files(tensorboard)
        if old and not overwrite:
            raise FastNSTError(
                f"{tensorboard}: --tensorboard already holds a TensorBoard run; pass --overwrite "
                "to replace it"
            )
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
    if tensorboard is not None:
        probe_names, probes, missing = probe_photos(size=probe_size)
        if missing:
            print(f"fastnst: {missing_note(missing, data_dir())}", file=sys.stderr)
        # (header lines, one output per probe photo) of each run (each style of a multi-style run)
        probe_columns: list[tuple[list[str], list[Image.Image]]] = []
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
            if tensorboard is not None:
                probe_columns.append(
                    (
                        header,
                        [
                            tensor_to_pil(
                                (stylizer(x) if name is None else stylizer(x, style=name)).cpu()
                            )
                            for x in probes.split(1)
                        ],
                    )
                )
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
    if tensorboard is not None:
        for path in old:
            path.unlink()
        photos = [tensor_to_pil(x) for x in probes.split(1)]
        write_tensorboard(
            tensorboard,
            {
                name: probe_strip(photos[i], [(h, outs[i]) for h, outs in probe_columns])
                for i, name in enumerate(probe_names)
            },
            grid,
            table,
            [(run, cfg, ev) for run, cfg, ev in zip(run_dirs, configs, evaluations, strict=True)],
        )
    return {
        "grid": targets[0],
        "table": targets[1],
        "json": targets[2],
        "evaluations": evaluations,
        "columns": len(columns),
        "rows": len(images),
        "tensorboard": tensorboard,
    }


# ----------------------------------------------------------------------------- TensorBoard


def tensorboard_files(folder: Path) -> list[Path]:
    """The event files a previous --tensorboard left in `folder` (and its runs/ subfolders)."""
    if not folder.is_dir():
        return []
    return sorted(
        [*folder.glob("events.out.tfevents.*"), *folder.glob("runs/*/events.out.tfevents.*")]
    )


def probe_strip(photo: Image.Image, runs: list[tuple[list[str], Image.Image]]) -> Image.Image:
    """One probe photo, then each run's output on it, side by side, each headed by its label
    (style / data / model)."""
    width, height = photo.size
    top = 2 * LINE + PAD
    cells = [(["photo", ""], photo), *runs]
    strip = Image.new(
        "RGB", (len(cells) * width + (len(cells) + 1) * PAD, top + height + PAD), "white"
    )
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    for i, (lines, image) in enumerate(cells):
        x = PAD + i * (width + PAD)
        text = [" / ".join(lines[:2]), " / ".join(lines[2:])] if len(lines) > 2 else lines
        for j, line in enumerate(text[:2]):
            draw.text((x + 2, PAD + j * LINE), _clip(line, width, font), fill="black", font=font)
        strip.paste(image.resize((width, height), Image.LANCZOS), (x, top))
    return strip


def run_folder_name(index: int, ev: dict) -> str:
    """runs/<this>: the run's position and labels, as a folder name."""
    label = "_".join(str(ev.get(k, "")) for k in ("style", "data", "model"))
    return f"{index}_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip("_")


def write_tensorboard(folder: Path, strips: dict, grid: Image.Image, table: str, runs) -> None:
    """The comparison as a TensorBoard run in `folder` (images and the table) and one run per
    compared run under folder/runs/ (its hparams and eval/ scalars)."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    from fastnst.evaluate import log_to_tensorboard

    folder.mkdir(parents=True, exist_ok=True)
    with SummaryWriter(log_dir=str(folder)) as writer:
        for name, strip in strips.items():
            writer.add_image(f"compare/{name}", np.asarray(strip), 0, dataformats="HWC")
        writer.add_image("compare/grid", np.asarray(grid.convert("RGB")), 0, dataformats="HWC")
        writer.add_text("compare/metrics", table, 0)
    for i, (run, cfg, ev) in enumerate(runs):
        log_to_tensorboard(
            folder / "runs" / run_folder_name(i, ev),
            cfg,
            run_labels(run, cfg),
            ev["metrics"],
            int(ev.get("global_step") or 0),
        )


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
    parser.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="also write the comparison as a TensorBoard run in DIR (probe photos x runs, the "
        "grid, the table; each run's hparams and eval/ scalars under DIR/runs/)",
    )
    parser.add_argument(
        "--probe-size",
        type=int,
        default=PROBE_SIZE,
        help=f"width in px of the probe photos in --tensorboard (default {PROBE_SIZE})",
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
        tensorboard=args.tensorboard,
        probe_size=args.probe_size,
    )
    print(Path(result["table"]).read_text())
    print(f"wrote {result['grid']}, {result['table']} and {result['json']}")
    if result["tensorboard"] is not None:
        print(f"wrote a TensorBoard run: tensorboard --logdir {result['tensorboard']}")
    return 0
