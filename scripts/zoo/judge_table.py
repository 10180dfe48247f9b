"""The judge's table on Chicago: how close each stylization is to the painting (style_swd,
fastnst.judge), beside the seed's Gram loss and content loss, for the styles with a published
Johnson et al. 2016 output.

    python scripts/zoo/judge_table.py [--styles starry_night,wave] [--network new=runs/wave/...]
        [--pictures docs/images] [--json table.json] [--cache ~/.cache/fastnst/judge]

Rows per style: the photo; a tint plus grain (the photo in the painting's colour statistics plus
a fine diagonal grain, its period and amplitude the ones the Gram loss likes best: the adversary
of the Gram loss); today's bundled network (when
there is one); each --network; Johnson et al. 2016's published output; Gatys (fastnst's L-BFGS
optimization under conf/loss/seed.yaml, cached in --cache).

Scales. Networks run on Chicago at the published output's size (510 or 1022 px, as
scripts/zoo/bundle_network.py shows them), so their strokes are at the published output's pixel
scale; every row is then judged at --size px (longer side), against the painting at
painting_size(style) x size / published size (the style registry's judge_size, fastnst.styles:
the style image sizes of Johnson's released models). Gatys optimizes at --gatys-size px with the painting's Grams
at the same relative scale, and is enlarged to --size to be judged.
The Gram (style) and content columns are the seed's loss as evaluate.py and bundle_network.py
take it: Chicago at 256 px, the painting's Grams at 512 px. style_swd is the mean over
projection seeds, +- their spread.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch
from omegaconf import OmegaConf

import fastnst.config  # noqa: F401  (registers the config resolvers)
from fastnst.accel.autotune import cpu_info
from fastnst.atomic import write_json
from fastnst.bundled import painting_path
from fastnst.config import CONFIG_DIR, data_dir
from fastnst.errors import FastNSTError, one_line_errors, refuse_to_overwrite
from fastnst.gatys import reference_rendering
from fastnst.images import load_image, resize_tensor, save_image
from fastnst.judge import (
    SceneJudge,
    StyleJudge,
    hatch_measure,
    painting_size,
    tint_and_grain,
)
from fastnst.sheets import labelled_strip
from fastnst.style import build_loss
from fastnst.styles import johnson_styles, published_output
from fastnst.stylize import Stylizer
from fastnst.zoo import bundled_styles
from fastnst.zoo.scoring import (
    REFERENCE_PHOTO_SIZE,
    judge_table,
    loss_terms,
    reference_loss,
)

STYLES = johnson_styles()
PICTURE_HEIGHT = 256
# the tint-plus-grain adversary: the grain (period px at --size, amplitude) with the lowest Gram loss
GRAIN_PERIODS = (4.0, 6.0, 8.0)
GRAIN_AMPLITUDES = (0.0, 0.05, 0.1, 0.2, 0.3)


def chicago_published(style: str) -> Path:
    path = published_output(data_dir(), style)
    if path is None or not path.is_file():
        raise FastNSTError(
            f"{path or style}: no published Johnson et al. 2016 output for {style} (set FASTNST_DATA)"
        )
    return path


def painting_file(style: str) -> Path:
    path = Path(painting_path(data_dir(), style))
    if not path.is_file():
        raise FastNSTError(f"{path}: painting not found (set FASTNST_DATA to the data folder)")
    return path


def seed_loss(style: str):
    """The reference ruler (conf/loss/seed.yaml, the painting's Grams at 512 px)."""
    return reference_loss(painting_file(style))


def seed_terms(loss, photo: torch.Tensor, image: torch.Tensor) -> dict[str, float]:
    terms = loss_terms(loss, photo, image)
    return {"gram_style": terms["style"], "content": terms["content"]}


def gram_adversary(
    photo: torch.Tensor, painting: torch.Tensor, loss, photo_gram: torch.Tensor
) -> tuple[str, torch.Tensor]:
    """(label, image) of the tint plus grain with the lowest Gram loss over the grain grid."""
    best = None
    for period in GRAIN_PERIODS:
        for amplitude in GRAIN_AMPLITUDES:
            image = tint_and_grain(photo, painting, period, amplitude)
            gram = seed_terms(loss, photo_gram, image)["gram_style"]
            if best is None or gram < best[0]:
                best = (gram, f"tint + grain {period:g}px x{amplitude:g}", image)
    return best[1], best[2]


# ----------------------------------------------------------------------------- Gatys, cached


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def gatys_output(
    style: str, reference_side: int, size: int, iterations: int, cache: Path
) -> torch.Tensor:
    """Gatys on Chicago at `size` px, the painting's Grams at the judge's relative scale; cached
    as a PNG keyed by everything it depends on."""
    photo_path = data_dir() / "content" / "chicago.jpg"
    style_size = max(32, round(painting_size(style) * size / reference_side))
    loss_cfg = OmegaConf.load(CONFIG_DIR / "loss" / "seed.yaml")
    key = hashlib.sha256(
        json.dumps(
            {
                "photo": _digest(photo_path),
                "painting": _digest(painting_file(style)),
                "size": size,
                "style_size": style_size,
                "iterations": iterations,
                "loss": OmegaConf.to_container(loss_cfg),
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12]
    path = cache / f"gatys_{style}_{size}px_{iterations}it_{key}.png"
    if path.is_file():
        return load_image(path)
    style_cfg = OmegaConf.create(
        {"name": style, "image": str(painting_file(style)), "size": style_size}
    )
    loss = build_loss(loss_cfg, style_cfg)
    print(
        f"  Gatys {style}: {iterations} L-BFGS iterations at {size} px, painting at {style_size} px "
        f"(cached in {path})",
        file=sys.stderr,
        flush=True,
    )
    result = reference_rendering(load_image(photo_path, size), loss, iterations)
    save_image(result.image, path, overwrite=True)
    return result.image


# ----------------------------------------------------------------------------- networks


def parse_network(spec: str) -> tuple[str, str | None, Path]:
    """LABEL=PATH or LABEL@STYLE=PATH -> (label, style or None, path)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise FastNSTError(f"--network {spec}: expected LABEL=PATH or LABEL@STYLE=PATH")
    label, _, style = name.partition("@")
    path = Path(path).expanduser()
    if not path.exists():
        raise FastNSTError(f"--network {spec}: {path} does not exist")
    return label, style or None, path


def network_styles(stylizer: Stylizer, path: Path, style: str | None) -> list[str]:
    """The styles a network paints: its own list (multi-style), the one named, or its meta's /
    run config's style."""
    if stylizer.styles:
        return list(stylizer.styles)
    if style:
        return [style]
    found = stylizer.meta.get("style")
    if not found and path.is_dir() and (path / "config.yaml").is_file():
        found = OmegaConf.load(path / "config.yaml").style.get("name")
    if not found:
        raise FastNSTError(
            f"--network {path}: cannot tell which style it paints; write LABEL@STYLE={path}"
        )
    return [str(found)]


def run_network(
    stylizer: Stylizer, photo: torch.Tensor, style: str, stroke_scale: float = 1.0
) -> torch.Tensor:
    options = {"style": style} if stylizer.styles else {}
    with torch.no_grad():
        out = stylizer(photo, stroke_scale=stroke_scale, **options)
    return out.float().clamp(0, 1)


# ----------------------------------------------------------------------------- one style


def style_rows(
    style: str,
    networks: list[tuple[str, Stylizer, list[str], float]],
    size: int,
    gatys_size: int,
    gatys_iterations: int,
    cache: Path,
) -> tuple[list[dict], dict[str, torch.Tensor], torch.Tensor]:
    published = load_image(chicago_published(style))
    reference_side = max(published.shape[-2:])
    chicago = data_dir() / "content" / "chicago.jpg"
    photo = load_image(chicago, size)
    hw = tuple(photo.shape[-2:])
    photo_at_reference = load_image(chicago, reference_side)
    painting_px = round(painting_size(style) * size / reference_side)
    painting = load_image(painting_file(style), painting_px)

    loss = seed_loss(style)
    photo_gram = load_image(chicago, REFERENCE_PHOTO_SIZE)
    images = {"photo": photo, **dict([gram_adversary(photo, painting, loss, photo_gram)])}
    if style in bundled_styles():
        images["bundled (today)"] = run_network(Stylizer.load(style), photo_at_reference, style)
    for label, stylizer, styles, stroke_scale in networks:
        if style in styles:
            images[label] = run_network(stylizer, photo_at_reference, style, stroke_scale)
    images["Johnson 2016"] = published
    if gatys_iterations:
        images[f"Gatys {gatys_size}px/{gatys_iterations}it"] = gatys_output(
            style, reference_side, gatys_size, gatys_iterations, cache
        )
    # the hatch at the size each picture was made (a resize moves the 2-6 px band), the scene
    # against the photo (fastnst.judge: hatch_measure, SceneJudge; docs/quality.md)
    hatch = {k: hatch_measure(v)["hatch"] for k, v in images.items()}
    scene = SceneJudge()
    images = {k: resize_tensor(v, hw) for k, v in images.items()}
    scene_distance = {k: scene(v, photo)["scene_distance"] for k, v in images.items()}

    judge = StyleJudge(painting)
    rows = []
    for label, image in images.items():
        scores = judge(image)
        rows.append(
            {
                "style": style,
                "row": label,
                **scores,
                **seed_terms(loss, photo_gram, image),
                "hatch": hatch[label],
                "scene_distance": scene_distance[label],
                "judged_at": size,
                "painting_px": painting_px,
            }
        )
    return rows, images, load_image(painting_file(style), PICTURE_HEIGHT * 2)


def save_picture(
    images: dict[str, torch.Tensor], painting: torch.Tensor, rows: list[dict], path: Path
) -> None:
    """photo | painting | the networks, Johnson, Gatys | the tint plus grain, each labelled with
    its style_swd."""
    swd = {r["row"]: r["style_swd"] for r in rows}
    tinted = [(k, v) for k, v in images.items() if k.startswith("tint + grain")]
    panels = [("photo", images["photo"]), ("painting", painting)]
    panels += [
        (k, v) for k, v in images.items() if k != "photo" and not k.startswith("tint + grain")
    ] + tinted
    shown = [
        (label if label == "painting" else f"{label}  swd {swd[label]:.3f}", tensor)
        for label, tensor in panels
    ]
    strip = labelled_strip(shown, PICTURE_HEIGHT)
    save_image(strip, path, overwrite=True, jpeg_quality=85)


@one_line_errors
def main(argv=None) -> int:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--styles", default=",".join(STYLES), help="comma-separated (default: the five)"
    )
    parser.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="LABEL[@STYLE]=PATH",
        help="an extra network row (run dir, .pt/.ckpt, .onnx); repeatable",
    )
    parser.add_argument(
        "--stroke-scales",
        nargs="+",
        type=float,
        default=[1.0],
        metavar="S",
        help="judge each --network at these stroke scales (stylize.py stroke_scale=), a row each",
    )
    parser.add_argument(
        "--size", type=int, default=512, help="longer side (px) every row is judged at"
    )
    parser.add_argument(
        "--gatys-size", type=int, default=256, help="longer side (px) Gatys optimizes at"
    )
    parser.add_argument(
        "--gatys-iterations", type=int, default=60, help="L-BFGS iterations (0 = no Gatys row)"
    )
    parser.add_argument(
        "--cache", default="~/.cache/fastnst/judge", help="where Gatys outputs are cached"
    )
    parser.add_argument("--pictures", help="folder for judge_<style>.jpg side-by-side pictures")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace existing pictures / JSON")
    args = parser.parse_args(argv)
    styles = [s for s in args.styles.split(",") if s]
    if args.size < 64 or args.gatys_size < 64:
        raise FastNSTError("--size and --gatys-size must be at least 64 px")
    pictures = Path(args.pictures) if args.pictures else None
    for target in ([pictures / f"judge_{s}.jpg" for s in styles] if pictures else []) + (
        [Path(args.json)] if args.json else []
    ):
        refuse_to_overwrite(target, args.overwrite)
    networks = []
    for spec in args.network:
        label, style, path = parse_network(spec)
        stylizer = Stylizer.load(path)
        for scale in args.stroke_scales:
            row = label if scale == 1 else f"{label} stroke_scale={scale:g}"
            networks.append((row, stylizer, network_styles(stylizer, path, style), scale))
    cache = Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)

    print(f"# style_swd judged at {args.size} px; CPU: {cpu_info()[0]}", flush=True)
    all_rows = []
    for style in styles:
        rows, images, painting = style_rows(
            style, networks, args.size, args.gatys_size, args.gatys_iterations, cache
        )
        all_rows += rows
        print(judge_table(rows), flush=True)
        if pictures:
            save_picture(images, painting, rows, pictures / f"judge_{style}.jpg")
    print()
    print(judge_table(all_rows))
    if args.json:
        write_json(
            args.json,
            {
                "rows": all_rows,
                "size": args.size,
                "gatys_size": args.gatys_size,
                "gatys_iterations": args.gatys_iterations,
            },
            indent=1,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
