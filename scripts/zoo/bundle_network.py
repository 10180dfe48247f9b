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
  published output ($FASTNST_DATA/reference/johnson2016/chicago_<style>.jpg);
- a picture docs/images/zoo_<style>.jpg: photo | painting | ours | the published output.
The weights are stored in fp16 (half the size; the loader casts them back to fp32).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()  # before torch loads: its OpenMP reads the wait policy only then

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import fastnst.config  # noqa: E402, F401  (registers the config resolvers)
from fastnst.accel.cpu_tuning import cpu_info  # noqa: E402
from fastnst.artifacts import load_network, save_exported  # noqa: E402
from fastnst.atomic import atomic_torch_save  # noqa: E402
from fastnst.config import CONFIG_DIR, REPO_ROOT, data_dir  # noqa: E402
from fastnst.errors import one_line_errors, output_exists  # noqa: E402
from fastnst.evaluate import evaluate_run, load_run_config  # noqa: E402
from fastnst.images import load_image, resize_tensor, tensor_to_pil  # noqa: E402
from fastnst.multistyle import preset_stroke_scale  # noqa: E402
from fastnst.preflight import ArgumentParser  # noqa: E402
from fastnst.style import build_loss, style_image_paths  # noqa: E402
from fastnst.styles import published_output  # noqa: E402
from fastnst.stylize import Stylizer  # noqa: E402
from fastnst.zoo import ZOO_DIR, bundled_styles, network_meta, network_styles  # noqa: E402

GATYS_ITERATIONS = 100
PICTURE_HEIGHT = 256
# the parts of a run's config that make its recipe (paths and machine settings left out)
RECIPE_KEYS = ("model", "loss", "style", "system", "seed")


def seed_loss(style_cfg):
    """The seed's loss with the painting's Grams at 512 px (the reference scoring; the style
    weight is the loss's own, whatever beta_scale the network trained with)."""
    loss_cfg = OmegaConf.load(CONFIG_DIR / "loss" / "seed.yaml")
    style = OmegaConf.merge(style_cfg, {"size": 512, "beta_scale": 1.0})
    return build_loss(loss_cfg, style)


def seed_scores(loss, photo: torch.Tensor, image: torch.Tensor) -> dict[str, float]:
    image = resize_tensor(image, tuple(photo.shape[-2:]))
    with torch.no_grad():
        terms = loss(image, loss.content_features(photo))
    return {
        "content": float(terms["content"]),
        "style": float(terms["style"]),
        "total": float(terms["total"]),
    }


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
    loss = seed_loss(style_cfg)
    theirs = resize_tensor(load_image(published), tuple(photo.shape[-2:]))
    panels.append(load_image(published))
    a, b = seed_scores(loss, photo, ours), seed_scores(loss, photo, theirs)
    return {
        "ours": a,
        "published": b,
        "content_ratio": a["content"] / b["content"],
        "style_ratio": a["style"] / b["style"],
        "photo": "chicago.jpg at 256 px",
        "loss": "conf/loss/seed.yaml, painting Grams at 512 px",
    }, panels


def save_picture(panels: list[torch.Tensor], labels: list[str], path: Path) -> None:
    images = []
    for panel in panels:
        img = tensor_to_pil(panel)
        images.append(
            img.resize(
                (round(img.width * PICTURE_HEIGHT / img.height), PICTURE_HEIGHT), Image.LANCZOS
            )
        )
    strip = Image.new(
        "RGB", (sum(i.width for i in images) + 4 * (len(images) - 1), PICTURE_HEIGHT + 18), "white"
    )
    x, draw = 0, ImageDraw.Draw(strip)
    for img, label in zip(images, labels):
        strip.paste(img, (x, 18))
        draw.text((x + 4, 3), label, fill="black")
        x += img.width + 4
    strip.save(path, quality=88)


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


def recipe_of(cfg, step: int, hours: float | None) -> dict:
    styles = list(cfg.style.get("names") or [])
    beta = float(cfg.loss.beta) * float(cfg.style.get("beta_scale") or 1.0)
    weight = f"style weight {beta:g}" if not styles else "each style's preset style weight"
    painting = f"{cfg.style.size} px" if cfg.style.size else "each preset's size"
    stroke_scale = preset_stroke_scale(cfg.style)
    if stroke_scale != 1.0:  # the motifs learnt small, painted larger (Stylizer's stroke_scale)
        painting += f" and run at stroke scale {stroke_scale:g}"
    summary = (
        f"{cfg.model.get('channels')} channels, {cfg.data.name} {cfg.data.image_size} px crops x "
        f"{cfg.data.batch_size}, {step} steps, lr {cfg.system.optimizer.lr}, painting at "
        f"{painting}, {weight}"
    )
    base = cfg.get("init_from")
    if base:  # a run's model.pt is named after its run folder
        base = Path(str(base))
        base = f"{base.parent.name}/{base.name}" if base.name == "model.pt" else base.name
        summary += f", fine-tuned from {base}"
    if hours is not None:
        summary += f", {hours:.2f} h on {cpu_info()[0]}"
    if styles:
        command = (
            f"python train.py experiment=zoo style=multi style.names=[{','.join(styles)}] "
            f"style.size={'null' if cfg.style.size is None else cfg.style.size}"
        )
    else:
        command = f"python train.py experiment=zoo style={cfg.style.name}"
    command += f" trainer.max_steps={step}" + (f" init_from=<{base}>" if base else "")
    return {
        "summary": summary,
        "command": command,
        "steps": step,
        "hours": hours,
        "config": {key: _plain(cfg[key]) for key in RECIPE_KEYS if key in cfg},
    }


def _plain(value):
    """A config value as plain Python (sub-configs resolved; numbers and strings as they are)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


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
    if (
        not net.styles
    ):  # a multi-style network: scripts/zoo/judge_table.py and zoo_sheet.py judge each style
        stylizer = Stylizer.load(run_dir, backend="torch")
        stylizer.meta["stroke_scale"] = stroke_scale
        reference, panels = reference_comparison(stylizer, style, cfg.style)
        if reference:
            quality["reference"] = reference
        labels = ["photo", "painting", "fastnst (bundled)", "Johnson et al. 2016"][: len(panels)]
        save_picture(panels, labels, REPO_ROOT / "docs" / "images" / f"zoo_{style}.jpg")
    step = int(meta.get("global_step") or result.get("global_step") or 0)
    hours = training_time_hours(run_dir)
    bundled_meta = {
        "style": style,
        "status": status,
        "stroke_scale": stroke_scale,
        "recipe": recipe_of(cfg, step, hours),
        "quality": quality,
        "validation_curve": validation_curve(run_dir),
    }
    net = net.half()  # fp16 weights: half the file; Stylizer casts back to fp32
    save_exported(target, net, bundled_meta)
    target.chmod(0o644)
    return bundled_meta


def judge_quality(rows: list[dict], style: str, label: str = "bundled (today)") -> dict | None:
    """The style judge's numbers for `style` from scripts/zoo/judge_table.py's JSON rows: this
    network's style_swd on Chicago and the published Johnson 2016 output's, judged alike."""
    by_row = {r["row"]: r for r in rows if r["style"] == style}
    if label not in by_row or "Johnson 2016" not in by_row:
        return None
    ours, johnson = by_row[label], by_row["Johnson 2016"]
    return {
        "style_swd": round(ours["style_swd"], 4),
        "johnson_style_swd": round(johnson["style_swd"], 4),
        "photo_style_swd": round(by_row["photo"]["style_swd"], 4) if "photo" in by_row else None,
        "judged": f"chicago at {ours['judged_at']} px (scripts/zoo/judge_table.py)",
    }


def restamp(path: Path, judge: dict | None, status: str | None) -> None:
    """Rewrite a bundled file's meta (judge numbers, status), the weights untouched."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    meta = dict(payload.get("meta", {}))
    if judge:
        meta["quality"] = {**meta.get("quality", {}), "judge": judge}
    if status is not None:
        meta["status"] = status
    payload["meta"] = meta
    atomic_torch_save(payload, path)
    path.chmod(0o644)


def table_row(style: str, meta: dict) -> str:
    """One row of --table; "-" for whatever a file does not record (one not bundled by this script)."""
    q, recipe = meta.get("quality", {}), meta.get("recipe", {})
    r = q.get("reference")
    ref = (
        (
            f"{r['ours']['content']:.3g} / {r['ours']['style']:.4g} | {r['published']['content']:.3g} / "
            f"{r['published']['style']:.4g}"
        )
        if r
        else "- | -"
    )

    def number(value, form=".2f"):
        return "-" if value is None else format(value, form)

    return (
        f"| {style} | {recipe.get('steps', '-')} | {number(recipe.get('hours'))} | "
        f"{q.get('photos', '-').split()[0]} | {number(q.get('total_vs_gatys'))} | {number(q.get('edge_ssim'))} | "
        f"{number(q.get('gatys/edge_ssim'))} | {ref} |"
    )


TABLE_HEAD = (
    "| style | steps | wall h | photos | total / Gatys-100 | edge SSIM | Gatys edge SSIM | ours on Chicago: content / style "
    "| Johnson 2016 on Chicago: content / style |\n|---|---|---|---|---|---|---|---|---|"
)


@one_line_errors
def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
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
        for style, path in bundled_styles().items():
            inside = network_styles(
                path
            )  # a multi-style network: its row is labelled with its name
            judge = (
                ({s: q for s in inside if (q := judge_quality(rows, s, label=style))} or None)
                if inside
                else judge_quality(rows, style)
            )
            if judge or args.status:
                restamp(path, judge, args.status or None)
                print(
                    f"{path.name}: style judge {judge}" if judge else f"{path.name}: status updated"
                )
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
