"""Style targets from a style config: one image, several weighted images, or a folder."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.errors import FastNSTError
from fastnst.images import find_images, load_image, open_rgb, pil_to_tensor, resize_shorter_side
from fastnst.losses import TRAINING_ONLY_LOSS_KEYS, PerceptualLoss


def _style_weights(style: DictConfig, n_images: int) -> list[float] | None:
    if style.get("weights") is None:
        return None
    try:
        weights = [float(w) for w in style.weights]
    except (TypeError, ValueError):
        raise FastNSTError(
            f"style.weights must be a list of numbers, got {style.weights}"
        ) from None
    if len(weights) != n_images:
        raise FastNSTError(f"style.weights has {len(weights)} entries for {n_images} style images")
    if min(weights) < 0 or sum(weights) <= 0:
        raise FastNSTError(f"style.weights must be non-negative with a positive sum, got {weights}")
    return weights


def style_image_paths(style: DictConfig) -> tuple[list[Path], list[float] | None]:
    """The files a style config points at, checked to exist, with their weights (or None).

    Precedence: `images` (with optional `weights`) > `images_dir` > `image`. A multi-style
    config (`names`): every style's files, weights None.
    """
    if style.get("names") is not None:
        from fastnst.multistyle import members_of

        return [
            p
            for member in members_of(style)
            for p in style_image_paths(OmegaConf.create(member))[0]
        ], None
    if style.get("images"):
        paths = [Path(str(p)).expanduser() for p in style.images]
    elif style.get("images_dir"):
        folder = Path(str(style.images_dir)).expanduser()
        if not folder.is_dir():
            raise FastNSTError(f"{folder}: style.images_dir is not a folder")
        paths = find_images(folder)
        if not paths:
            raise FastNSTError(f"{folder}: style.images_dir holds no images (.jpg, .png, ...)")
    elif style.get("image"):
        paths = [Path(str(style.image)).expanduser()]
    else:
        raise FastNSTError(
            "no style image: choose a preset (style=starry_night) or set style.image=/path/to/painting.jpg"
        )
    weights = _style_weights(style, len(paths))
    for p in paths:
        if not p.exists():
            # the download script takes the file's name (the_scream, not the alias scream) and
            # fetches only public-domain paintings: offer it just for those
            download = (
                f", run `python scripts/data/download_styles.py {p.stem}` (public domain)"
                if p.stem in downloadable_styles()
                else ""
            )
            raise FastNSTError(
                f"{p}: style image not found. Set FASTNST_DATA to the data folder{download}, "
                "or pass style.image=/path/to/painting.jpg"
            )
    return paths, weights


def downloadable_styles() -> set[str]:
    """The names scripts/data/download_styles.py accepts (the registry's public-domain paintings)."""
    from fastnst.styles import public_domain_styles

    return set(public_domain_styles())


def instantiate_loss(loss_cfg: DictConfig, **kwargs) -> PerceptualLoss:
    """The PerceptualLoss of a loss preset, without style targets. The temporal-stability
    settings belong to training (fastnst.temporal), not to the VGG loss: they are left out."""
    settings = {
        k: v for k, v in loss_cfg.items() if k not in TRAINING_ONLY_LOSS_KEYS and k != "defaults"
    }
    return hydra.utils.instantiate(OmegaConf.create(settings), **kwargs, _convert_="all")


def build_loss(
    loss_cfg: DictConfig,
    style: DictConfig,
    vgg_weights: str = "embedded",
    device="cpu",
    style_size: int | None = None,
) -> PerceptualLoss:
    """Instantiate the PerceptualLoss of `loss_cfg` and set its style targets from `style`.

    The loss's beta is multiplied by `style.beta_scale`. `style_size` is used when
    `style.size` is null (Gatys: the output size).
    """
    return loss_with_style_targets(
        instantiate_loss(loss_cfg, _partial_=True),
        style,
        vgg_weights=vgg_weights,
        device=device,
        style_size=style_size,
    )


def loss_with_style_targets(
    make_loss,
    style: DictConfig,
    vgg_weights: str = "embedded",
    device="cpu",
    style_size: int | None = None,
) -> PerceptualLoss:
    """`make_loss` (a partial PerceptualLoss: `instantiate_loss(loss_cfg, _partial_=True)`) called
    with the effective beta (its beta x `style.beta_scale`) and `vgg_weights`, with the style
    targets of `style` set. `style_size` is used when `style.size` is null."""
    beta_scale = style.get("beta_scale")
    beta = float(make_loss.keywords["beta"]) * (1.0 if beta_scale is None else float(beta_scale))
    paths, weights = style_image_paths(style)  # before building the VGG: fail fast on a bad path
    crops = _crops(style)
    loss = make_loss(beta=beta, vgg_weights=vgg_weights).to(device)
    size = style.get("size") or style_size
    loss.set_style_targets(mean_style_grams(loss, paths, weights, size, crops=crops, device=device))
    return loss


def _crops(style: DictConfig) -> int:
    value = style.get("crops") or 0  # a missing key means whole images
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FastNSTError(
            f"style.crops must be a whole number >= 0 (0 = whole images), got {value!r}"
        )
    return value


def random_square_crops(
    image: torch.Tensor, side: int, n: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """n random side x side crops of a (1, 3, H, W) image whose shorter side is `side`."""
    h, w = image.shape[-2:]
    tops = torch.randint(0, h - side + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - side + 1, (n,), generator=generator).tolist()
    return [image[..., t : t + side, left : left + side] for t, left in zip(tops, lefts)]


@torch.no_grad()
def mean_style_grams(
    loss: PerceptualLoss,
    paths,
    weights: list[float] | None,
    size: int | None,
    crops: int = 0,
    seed: int = 0,
    device="cpu",
) -> dict[str, torch.Tensor]:
    """Weighted mean of the images' Grams (equal weights when None), one image in memory at a
    time so a collection of thousands of frames fits. crops=0: each whole image, longer side
    `size`; crops=N: the mean over N seeded random size x size crops of the image scaled so its
    shorter side is `size`."""
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    total = sum(weights)
    generator = torch.Generator().manual_seed(seed)
    targets: dict[str, torch.Tensor] = {}
    for path, weight in zip(paths, weights):
        if crops:
            photo = open_rgb(path)
            side = int(size or min(photo.size))
            views = random_square_crops(
                pil_to_tensor(resize_shorter_side(photo, side)), side, crops, generator
            )
        else:
            views = [load_image(path, size)]
        for view in views:
            for name, gram in loss.style_grams(view.to(device)).items():
                targets[name] = targets.get(name, 0) + gram * (weight / total / len(views))
    return targets


@torch.no_grad()
def stacked_style_grams(
    loss: PerceptualLoss, members: list[dict], device="cpu"
) -> dict[str, torch.Tensor]:
    """The target Grams of each style of a multi-style config, stacked: {layer: (N, C, C)}."""
    per_style = []
    for member in members:
        member = OmegaConf.create(member)
        paths, weights = style_image_paths(member)
        per_style.append(
            mean_style_grams(
                loss, paths, weights, member.get("size"), crops=_crops(member), device=device
            )
        )
    return {name: torch.cat([g[name] for g in per_style]) for name in per_style[0]}


def style_summary(style: DictConfig) -> str:
    return str(OmegaConf.to_container(style, resolve=True).get("name", "custom"))


__all__ = [
    "style_image_paths",
    "build_loss",
    "loss_with_style_targets",
    "instantiate_loss",
    "mean_style_grams",
    "stacked_style_grams",
    "style_summary",
]
