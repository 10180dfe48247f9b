"""Style targets from a style config: one image, several weighted images, or a folder."""

from __future__ import annotations

from pathlib import Path

import hydra

from omegaconf import DictConfig, OmegaConf

from fastnst.errors import FastNSTError
from fastnst.images import find_images, load_image
from fastnst.losses import PerceptualLoss


def style_image_paths(style: DictConfig) -> tuple[list[Path], list[float] | None]:
    """The files a style config points at, checked to exist, with their weights (or None)."""
    if style.get("images"):
        paths = [Path(str(p)).expanduser() for p in style.images]
        weights = list(style.weights) if style.get("weights") is not None else None
        if weights is not None and len(weights) != len(paths):
            raise FastNSTError(f"style.weights has {len(weights)} entries for {len(paths)} style.images")
    elif style.get("images_dir"):
        folder = Path(str(style.images_dir)).expanduser()
        if not folder.is_dir():
            raise FastNSTError(f"{folder}: style.images_dir is not a folder")
        paths, weights = find_images(folder), None
        if not paths:
            raise FastNSTError(f"{folder}: style.images_dir holds no images (.jpg, .png, ...)")
    elif style.get("image"):
        paths, weights = [Path(str(style.image)).expanduser()], None
    else:
        raise FastNSTError("no style image: choose a preset (style=starry_night) or set style.image=/path/to/painting.jpg")
    for p in paths:
        if not p.exists():
            raise FastNSTError(
                f"{p}: style image not found. Set FASTNST_DATA to the data folder, run "
                f"`python scripts/download_styles.py {style.get('name', '')}`".rstrip()
                + ", or pass style.image=/path/to/painting.jpg"
            )
    return paths, weights


def build_loss(loss_cfg: DictConfig, style: DictConfig, vgg_weights: str = "embedded", device="cpu",
               style_size: int | None = None) -> PerceptualLoss:
    """Instantiate the PerceptualLoss of `loss_cfg` and set its style targets from `style`.

    `style_size` is used when `style.size` is null (Gatys: the output size).
    """
    beta = float(loss_cfg.beta) * float(style.get("beta_scale", 1.0) or 1.0)
    loss: PerceptualLoss = hydra.utils.instantiate(loss_cfg, beta=beta, vgg_weights=vgg_weights, _convert_="all")
    loss = loss.to(device)
    paths, weights = style_image_paths(style)
    size = style.get("size") or style_size
    images = [load_image(p, size) for p in paths]
    loss.set_style([img.to(device) for img in images], weights)
    return loss


def style_summary(style: DictConfig) -> str:
    return str(OmegaConf.to_container(style, resolve=True).get("name", "custom"))


__all__ = ["style_image_paths", "build_loss", "style_summary"]
