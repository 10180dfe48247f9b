"""The scoring rows of the zoo pipeline and the recipe study: one reference Gram ruler (a loss
preset with the painting's Grams at a fixed size), its terms on an output, and the rows and
tables of judge_table.py, bundle_network.py and bench_recipe.py.

    loss = reference_loss(style_cfg)                  # conf/loss/seed.yaml, painting at 512 px
    loss_terms(loss, photo, output)                   # {"content", "style", "total"}
    score_row(loss, judge, output, photo)             # the recipe study's row
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

# the reference ruler: the painting's Grams at this many px (longer side), the photo at PHOTO_SIZE
REFERENCE_PAINTING_SIZE = 512
REFERENCE_PHOTO_SIZE = 256


def reference_loss(style, preset: str = "seed", painting_size: int = REFERENCE_PAINTING_SIZE):
    """The reference Gram ruler: conf/loss/<preset>.yaml as the entry points compose it (every
    term kept: tv_weight, feature_scale, pooling), the style weight the loss's own (beta_scale
    1, whatever a network trained with), the painting's Grams at `painting_size` px. `style`:
    a style config (a preset, a run's cfg.style) or a painting file."""
    from fastnst.config import load_preset
    from fastnst.style import build_loss

    if isinstance(style, (str, Path)):
        style = {"name": Path(style).stem, "image": str(style)}
    style_cfg = OmegaConf.merge(style, {"size": painting_size, "beta_scale": 1.0})
    return build_loss(load_preset("loss", preset), style_cfg)


def loss_terms(loss, photo: torch.Tensor, image: torch.Tensor) -> dict[str, float]:
    """The ruler's content, style and total terms of `image` (resized to the photo's size)."""
    from fastnst.images import resize_tensor

    image = resize_tensor(image.float(), tuple(photo.shape[-2:]))
    with torch.no_grad():
        terms = loss(image, loss.content_features(photo))
    return {key: float(terms[key]) for key in ("content", "style", "total")}


def score_row(loss, judge, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    """The recipe study's measures of one output: Gram (style) and content terms of the ruler,
    edge SSIM against the photo, and the style judge's distance when there is a judge."""
    from fastnst.evaluate import edge_ssim

    terms = loss_terms(loss, photo, output)
    row = {
        "gram": terms["style"],
        "content": terms["content"],
        "edge_ssim": edge_ssim(output, photo),
    }
    if judge is not None:
        row["swd"] = float(judge(output)["style_swd"])
    return row


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def recipe_table(rows: list[dict], with_judge: bool) -> str:
    """The recipe study's markdown table."""
    head = (
        "| variant | style judge (SWD) | Gram loss | content loss | edge SSIM | val loss | steps "
        "| wall s | what |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {_fmt(r.get('swd'), '.4f') if with_judge else '(no judge)'} | "
            f"{r['gram']:.0f} | {r['content']:.0f} | {r['edge_ssim']:.3f} | "
            f"{_fmt(r.get('val_loss'), '.0f')} | {_fmt(r.get('steps'), 'd')} | "
            f"{_fmt(r.get('wall_s'), '.0f')} | {r['about']} |"
        )
    return "\n".join(lines)


def judge_table(rows: list[dict]) -> str:
    """judge_table.py's markdown table: per style and row, style_swd, Gram style and content."""
    lines = [
        "| style | row | style_swd (lower = closer) | Gram style loss | content loss |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['style']} | {r['row']} | {r['style_swd']:.3f} +- {r['style_swd_std']:.3f} | "
            f"{r['gram_style']:.4g} | {r['content']:.4g} |"
        )
    return "\n".join(lines)


__all__ = [
    "REFERENCE_PAINTING_SIZE",
    "REFERENCE_PHOTO_SIZE",
    "judge_table",
    "loss_terms",
    "recipe_table",
    "reference_loss",
    "score_row",
]
