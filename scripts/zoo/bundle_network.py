"""Measure a trained run and ship it as a bundled network (src/fastnst/zoo/<style>.pt).

    python scripts/zoo/bundle_network.py <run dir> [--style NAME] [--status "CPU, 1 h"] [--overwrite]
    python scripts/zoo/bundle_network.py --table          # the table of every bundled network (docs/inference.md)
    python scripts/zoo/bundle_network.py --judge table.json [--status "..."]   # store the style judge's
        numbers (scripts/zoo/judge_table.py --json table.json) in the bundled files, weights unchanged

Quality, stored in the file's meta and printed as a table row of docs/inference.md:
- evaluate.py's metrics on 8 ImageNet-mini val photos at 256 px against Gatys with 100 L-BFGS
  iterations under the run's own loss (`total_vs_gatys`, `edge_ssim`);
- the seed's loss (conf/loss/seed.yaml: content block5_conv2, style block1..5_conv1) on Chicago at
  256 px with the painting's Grams at 512 px, for our output and for Johnson et al. 2016's
  published output (fastnst.styles.published_output: chicago_scream.jpg for the_scream);
- a picture <run dir>/zoo_<style>.jpg: photo | painting | ours | the published output.
The weights are stored in fp16 (half the size; the loader casts them back to fp32).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch

import fastnst.config  # noqa: F401  (registers the config resolvers)
from fastnst.accel.cpu_tuning import cpu_info
from fastnst.artifacts import load_network
from fastnst.config import data_dir
from fastnst.errors import one_line_errors, output_exists
from fastnst.evaluate import evaluate_run, load_run_config, load_run_overrides, load_run_stylizer
from fastnst.images import load_image, resize_tensor
from fastnst.margin import preset_margin
from fastnst.multistyle import own_stroke_scales, preset_stroke_scale
from fastnst.preflight import ArgumentParser
from fastnst.sheets import labelled_strip
from fastnst.style import style_image_paths
from fastnst.styles import published_output
from fastnst.stylize import Stylizer
from fastnst.zoo import ZOO_DIR, bundled_styles, network_meta
from fastnst.zoo.meta import (
    TABLE_HEAD,
    bundled_meta,
    recipe_of,
    stamp_judge,
    table_row,
    write_bundled,
)
from fastnst.zoo.scoring import loss_terms, reference_loss

GATYS_ITERATIONS = 100
PICTURE_HEIGHT = 256


def reference_comparison(
    stylizer: Stylizer, style_name: str, style_cfg
) -> tuple[dict | None, list[torch.Tensor]]:
    """Seed-loss scores of ours vs the published output on Chicago, and the picture's panels
    (ours painted as `stylize.py` paints it: at the network's own stroke scale)."""
    chicago = data_dir() / "content" / "chicago.jpg"
    published = published_output(data_dir(), style_name)
    published = published if published is not None and published.is_file() else None
    photo = load_image(chicago, 256)
    with torch.no_grad():
        ours = stylizer.stylize_tensor(photo).clamp(0, 1)
        # the picture shows ours at the published output's resolution (strokes at the same scale)
        shown_size = max(load_image(published).shape[-2:]) if published else 512
        ours_shown = stylizer.stylize_tensor(load_image(chicago, shown_size)).clamp(0, 1)
    paths, _ = style_image_paths(style_cfg)
    panels = [photo, load_image(paths[0], 256), ours_shown]
    if published is None:
        return None, panels
    loss = reference_loss(style_cfg)
    theirs = resize_tensor(load_image(published), tuple(photo.shape[-2:]))
    panels.append(load_image(published))
    a, b = loss_terms(loss, photo, ours), loss_terms(loss, photo, theirs)
    return {
        "ours": a,
        "published": b,
        "content_ratio": a["content"] / b["content"],
        "style_ratio": a["style"] / b["style"],
        "photo": "chicago.jpg at 256 px",
        "loss": "conf/loss/seed.yaml, painting Grams at 512 px",
    }, panels


def save_picture(panels: list[torch.Tensor], labels: list[str], path: Path) -> None:
    labelled_strip(list(zip(labels, panels)), PICTURE_HEIGHT).save(path, quality=88)


def training_time_hours(run_dir: Path) -> float | None:
    """Wall time between the first and the last TensorBoard event of the run (all resumes)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    times = [
        e.wall_time
        for tag in acc.Tags()["scalars"]
        if tag.startswith("train/")
        for e in acc.Scalars(tag)
    ]
    return (max(times) - min(times)) / 3600 if times else None


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return (
        [(e.step, round(e.value, 1)) for e in acc.Scalars("val/loss")]
        if "val/loss" in acc.Tags()["scalars"]
        else []
    )


def bundle(
    run_dir: Path, style: str | None, status: str, overwrite: bool, num_photos: int = 8
) -> dict:
    cfg = load_run_config(run_dir)
    style = style or str(cfg.style.name)
    target = ZOO_DIR / f"{style}.pt"
    if target.exists() and not overwrite:
        raise output_exists(target, option="--overwrite")
    net, meta = load_network(run_dir)
    result = evaluate_run(
        run_dir,
        num_photos=num_photos,
        size=256,
        gatys_iterations=GATYS_ITERATIONS,
        tensorboard=False,
        overwrite=True,
        progress=True,
    )
    quality = {
        **result["metrics"],
        "gatys_iterations": GATYS_ITERATIONS,
        "photos": f"{len(result['settings']['photos'])} imagenet-mini val at 256 px",
    }
    stroke_scale = preset_stroke_scale(cfg.style)  # the file keeps the scale its preset paints at
    margin = preset_margin(cfg.style)  # ... and the margin
    if (
        not net.styles
    ):  # a multi-style network: scripts/zoo/judge_table.py and zoo_sheet.py judge each style
        stylizer = load_run_stylizer(run_dir, cfg, backend="torch")
        stylizer.margin = margin
        reference, panels = reference_comparison(stylizer, style, cfg.style)
        if reference:
            quality["reference"] = reference
        labels = ["photo", "painting", "fastnst (bundled)", "Johnson et al. 2016"][: len(panels)]
        save_picture(panels, labels, run_dir / f"zoo_{style}.jpg")  # beside the run, not in docs/
    step = int(meta.get("global_step") or result.get("global_step") or 0)
    hours = training_time_hours(run_dir)
    meta = bundled_meta(
        style,
        status,
        stroke_scale,
        recipe_of(cfg, step, hours, cpu_info()[0], load_run_overrides(run_dir)),
        quality,
        validation_curve(run_dir),
        margin,
        own_stroke_scales(cfg.style),  # a multi-style network's scale per style, as trained
    )
    write_bundled(target, net, meta)
    return meta


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="the run directory to bundle")
    parser.add_argument("--style", help="bundled name (default: the run's style)")
    parser.add_argument(
        "--status", default="", help="a label shown in `styles=list`, e.g. 'CPU-trained'"
    )
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--num-photos", type=int, default=8, help="evaluation photos (ImageNet-mini val)"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the table of the bundled networks (docs/inference.md)",
    )
    parser.add_argument(
        "--judge",
        type=Path,
        metavar="TABLE_JSON",
        help="store scripts/zoo/judge_table.py's numbers (its --json file) in every bundled file it covers",
    )
    args = parser.parse_args(argv)
    if args.judge:
        rows = json.loads(args.judge.read_text())["rows"]
        for line in stamp_judge(rows, bundled_styles(), args.status):
            print(line)
    elif not args.table:
        if not args.run:
            parser.error("give a run directory, or --table")
        bundle(Path(args.run), args.style, args.status, args.overwrite, args.num_photos)
    print(TABLE_HEAD)
    for style, path in bundled_styles().items():
        print(table_row(style, network_meta(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
