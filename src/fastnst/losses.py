"""Perceptual losses on frozen VGG19 features: content, style (Gram) and total variation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.color import opponent_channels
from fastnst.errors import check_weight
from fastnst.vgg import VGG19Features


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrix normalized by C*H*W."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    # fp32 accumulation: Grams of large maps overflow fp16/bf16 range and precision. Autocast
    # would cast bmm back to half, so it is switched off here.
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between feature maps; a (1, C, H, W) target broadcasts over the batch."""
    features = features.float()
    return F.mse_loss(features, target.float().expand_as(features))


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """MSE between Grams; a (1, C, C) target broadcasts over the batch."""
    gram = gram.float()
    return F.mse_loss(gram, target_gram.float().expand_as(gram))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean absolute difference between neighbouring pixels."""
    dh = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    dw = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return dh + dw


def chroma_tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation of the colour alone (the red-green and yellow-blue channels). Painted
    strokes live in luminance; fine colour detail is what a fringe is, or a photo's fine grating
    (a facade's rows of windows) repainted in the painting's colours, so only that costs."""
    return tv_loss(opponent_channels(image)[..., 1:, :, :])


def _as_weights(layers: str | Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    if isinstance(layers, str):  # one layer name, not a sequence of characters
        return {layers: 1.0}
    if isinstance(layers, Mapping):
        return {str(k): float(v) for k, v in layers.items()}
    return {str(name): 1.0 for name in layers}


def _keep_float32(moved: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    return moved if moved.dtype == torch.float32 else original.to(moved.device)


# loss preset keys that configure training (fastnst.temporal), not the VGG loss
TRAINING_ONLY_LOSS_KEYS = ("temporal_weight", "temporal_transform")


class PerceptualLoss(nn.Module):
    """alpha * content + beta * style + tv_weight * tv + chroma_tv_weight * chroma_tv, on one
    VGG19 pass.

    Args:
        content_layers: names (weight 1 each) or {name: weight}.
        style_layers: names (weight 1 each) or {name: weight}.
        alpha, beta, tv_weight: weights of the content, style and total-variation terms.
        chroma_tv_weight: weight of the total variation of the colour alone (chroma_tv_loss).
        feature_scale: the losses are taken on the VGG features times this factor (content x
            its square, style x its fourth power). Weights published for a VGG fed ImageNet-
            normalized [0, 1] input apply to the embedded Caffe VGG (0-255 input) with
            1 / (255 * 0.226) = 0.01735 (conf/loss/pytorch_examples.yaml).
        vgg: a VGG19Features; built from `vgg_weights` when None.
        pooling: the loss network's pools when it is built here: "max" (VGG19's own) or "avg"
            (Gatys et al.'s choice; conf/loss `pooling:`, docs/quality.md).

    Call `set_style(images, weights)` once, then `forward(image, content_features)` returns a dict
    with "total", "content", "style", "tv", "chroma_tv", "content/<layer>" and "style/<layer>"
    (unweighted per-layer terms, for logging).
    """

    def __init__(
        self,
        content_layers: Sequence[str] | Mapping[str, float] = ("block5_conv2",),
        style_layers: Sequence[str] | Mapping[str, float] = (
            "block1_conv1",
            "block2_conv1",
            "block3_conv1",
            "block4_conv1",
            "block5_conv1",
        ),
        alpha: float = 1.0,
        beta: float = 1.0,
        tv_weight: float = 0.0,
        vgg: VGG19Features | None = None,
        vgg_weights: str = "embedded",
        feature_scale: float = 1.0,
        pooling: str = "max",
        chroma_tv_weight: float = 0.0,
    ):
        super().__init__()
        self.content_weights = _as_weights(content_layers)
        self.style_weights = _as_weights(style_layers)
        self.alpha = check_weight("loss.alpha", alpha)
        self.beta = check_weight("loss.beta", beta)
        self.tv_weight = check_weight("loss.tv_weight", tv_weight)
        self.chroma_tv_weight = check_weight("loss.chroma_tv_weight", chroma_tv_weight)
        if not float(feature_scale) > 0:
            raise ValueError(f"loss.feature_scale must be > 0, got {feature_scale}")
        self.feature_scale = float(feature_scale)
        layers = list(dict.fromkeys([*self.content_weights, *self.style_weights]))
        self.vgg = (
            vgg if vgg is not None else VGG19Features(layers, weights=vgg_weights, pooling=pooling)
        )
        missing = [n for n in layers if n not in self.vgg.layers]
        if missing:
            raise ValueError(f"the VGG extractor does not return {missing}")
        self._targets: dict[str, torch.Tensor] | None = None

    # Style targets live outside the state dict: they are derived from the style images + config.
    # They follow the module's device (.to/.cuda) but stay float32 (fp16 would underflow small
    # Gram entries), whatever dtype the module is cast to.
    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._targets:
            self._targets = {k: _keep_float32(fn(v), v) for k, v in self._targets.items()}
        return self

    @classmethod
    def preset(cls, name: str = "seed", **overrides) -> PerceptualLoss:
        """The loss of a preset in conf/loss/ (`seed`: gatys.py's default, the reference loss;
        `johnson`, ...), with `overrides` (e.g. beta=10.0, vgg_weights=...). A bare
        `PerceptualLoss()` has plain defaults (all five relu*_1 layers weighted 1, beta 1), not
        a preset's tuned weights: use this to reproduce what the commands do."""
        from omegaconf import OmegaConf

        from fastnst.config import load_preset

        settings = OmegaConf.to_container(load_preset("loss", name))  # unknown name: one line
        for key in ("_target_", *TRAINING_ONLY_LOSS_KEYS):
            settings.pop(key, None)
        return cls(**{**settings, **overrides})

    @property
    def reads_features(self) -> bool:
        """Whether a term reads VGG features (content or style weight above 0). A loss without
        (a network taught by its teachers alone: `loss.alpha=0 loss.beta=0`) runs no VGG pass."""
        return bool(self.alpha or self.beta)

    @property
    def has_style(self) -> bool:
        return self._targets is not None

    @property
    def style_targets(self) -> dict[str, torch.Tensor]:
        """The target Grams {layer: (1, C, C)} set by set_style / set_style_targets."""
        if self._targets is None:
            raise RuntimeError("PerceptualLoss.set_style() has not been called")
        return dict(self._targets)

    def _device(self) -> torch.device:
        return next(iter(self.vgg.parameters())).device

    @torch.no_grad()
    def style_grams(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The images' mean Grams {layer: (1, C, C)}: one style target."""
        return {k: g.mean(0, keepdim=True) for k, g in self.style_grams_each(image).items()}

    @torch.no_grad()
    def style_grams_each(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each image's own Grams {layer: (B, C, C)} (fp32): per-image style targets."""
        feats = self.vgg(images)
        return {name: gram_matrix(feats[name]) for name in self.style_weights}

    @torch.no_grad()
    def set_style(
        self, images: Sequence[torch.Tensor], weights: Sequence[float] | None = None
    ) -> None:
        """Target Grams = weighted mean of each style image's Grams (weights normalized)."""
        images = list(images)
        if not images:
            raise ValueError("set_style needs at least one style image")
        weights = [1.0] * len(images) if weights is None else [float(w) for w in weights]
        if len(weights) != len(images) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"need one non-negative weight per style image (positive sum), got {weights} for {len(images)} images"
            )
        total = sum(weights)
        device = self._device()
        targets: dict[str, torch.Tensor] = {}
        for img, w in zip(images, weights):
            for name, g in self.style_grams(img.to(device)).items():
                targets[name] = targets.get(name, 0) + g * (w / total)
        self.set_style_targets(targets)

    def set_style_targets(self, grams: Mapping[str, torch.Tensor]) -> None:
        """Use precomputed target Grams {layer: (1, C, C)} (e.g. from `style_grams`)."""
        missing = [name for name in self.style_weights if name not in grams]
        if missing:
            raise ValueError(f"style targets lack the style layers {missing}")
        device = self._device()
        self._targets = {
            name: grams[name].detach().float().to(device) for name in self.style_weights
        }

    @torch.no_grad()
    def content_features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.reads_features:
            return {}
        feats = self.vgg(image)
        return {name: feats[name].detach() for name in self.content_weights}

    def forward(
        self,
        image: torch.Tensor,
        content_features: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor] | None = None,
        style_scales: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """`targets`: Grams {layer: (B, C, C)} used instead of the set ones, one per image (a
        multi-style network's batch pairs each photo with a style), `style_scales` (B,) each
        image's style weight factor (its style's beta_scale); then the result also holds
        "style_per_image" (B,), each image's weighted style term (detached, for logging)."""
        if targets is None and self._targets is None:
            raise RuntimeError(
                "PerceptualLoss.set_style() must be called before computing the loss"
            )
        per_image = targets is not None
        targets = self._targets if targets is None else targets
        reads = self.reads_features
        feats = self.vgg(image) if reads else {}
        terms: dict[str, torch.Tensor] = {}
        content = image.new_zeros((), dtype=torch.float32)
        for name, w in self.content_weights.items() if reads else ():
            term = content_loss(feats[name], content_features[name])
            terms[f"content/{name}"] = term.detach()
            content = content + w * term
        style = image.new_zeros((), dtype=torch.float32)
        items = image.new_zeros(image.shape[0], dtype=torch.float32)
        for name, w in self.style_weights.items() if reads else ():
            gram = gram_matrix(feats[name])
            if per_image:
                # the same mean as style_loss, keeping each image's share
                each = (gram.float() - targets[name].float()).square().mean(dim=(1, 2))
                if style_scales is not None:
                    each = each * style_scales.to(each)
                items = items + w * each.detach()
                term = each.mean()
            else:
                term = style_loss(gram, targets[name])
            terms[f"style/{name}"] = term.detach()
            style = style + w * term
        zero = image.new_zeros((), dtype=torch.float32)
        tv = tv_loss(image.float()) if self.tv_weight else zero
        chroma_tv = chroma_tv_loss(image.float()) if self.chroma_tv_weight else zero
        if self.feature_scale != 1.0:  # MSE of features x s, of Grams x s^2
            content, style = content * self.feature_scale**2, style * self.feature_scale**4
            items = items * self.feature_scale**4
        total = self.alpha * content + self.beta * style + self.tv_weight * tv
        total = total + self.chroma_tv_weight * chroma_tv
        terms.update(
            total=total,
            content=content.detach(),
            style=style.detach(),
            tv=tv.detach(),
            chroma_tv=chroma_tv.detach(),
        )
        if per_image:
            terms["style_per_image"] = items
        return terms
