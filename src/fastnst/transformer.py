"""The feed-forward image transformation network (Johnson et al. 2016, instance norm of
Ulyanov et al. 2016, upsample-then-conv of Odena et al. 2016 against checkerboard artifacts),
and its small exported file format for inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst import fastconv, fused
from fastnst.errors import FastNSTError


class ConditionalInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm with one scale and shift per style (Dumoulin et al. 2017): `weight` and
    `bias` are (num_styles, C). The style weights (N,) or (B, N) that `TransformerNet.forward`
    sets in `style_weights` mix the rows: a blend of styles interpolates scales and shifts."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__(channels, affine=False)
        self.num_styles = int(num_styles)
        self.weight = nn.Parameter(torch.ones(self.num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(self.num_styles, channels))
        self.style_weights: torch.Tensor | None = None

    def style_affine(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (B, C), for the current style weights."""
        w = self.style_weights
        if w is None:
            raise RuntimeError("ConditionalInstanceNorm2d: no style weights set (call the TransformerNet)")
        w = w.to(self.weight.dtype)
        if w.dim() == 1:
            return (w @ self.weight).unsqueeze(0).expand(batch, -1), (w @ self.bias).unsqueeze(0).expand(batch, -1)
        return w @ self.weight, w @ self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.style_affine(x.shape[0])
        y = F.instance_norm(x, eps=self.eps)
        return y * scale.to(y.dtype)[..., None, None] + shift.to(y.dtype)[..., None, None]


def _norm(kind: str, channels: int, num_styles: int = 0) -> nn.Module:
    if kind == "instance" and num_styles:
        return ConditionalInstanceNorm2d(channels, num_styles)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise FastNSTError(f"model.norm must be instance, batch or none, got {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection pad + conv (+ norm + ReLU)."""

    def __init__(self, cin, cout, kernel, stride=1, norm="instance", relu=True, num_styles=0):
        layers = [nn.ReflectionPad2d(kernel // 2), fastconv.Conv2d(cin, cout, kernel, stride)]
        if norm is not None:
            layers.append(_norm(norm, cout, num_styles))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels, norm="instance", num_styles=0):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm, num_styles=num_styles),
            ConvLayer(channels, channels, 3, norm=norm, relu=False, num_styles=num_styles),
        )

    def forward(self, x):
        return x + self.body(x)


# Which original 3x3 taps (columns) land on which low-resolution tap (rows) for output phase 0
# (rows i-1, i, i of the upsampled map) and phase 1 (rows i, i, i+1).
_PHASE_TAPS = torch.tensor(
    [[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
)


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsample to an explicit size, then conv: no checkerboard artifacts and
    the output matches the skip size exactly for odd inputs."""

    def __init__(self, cin, cout, kernel=3, norm="instance", num_styles=0):
        super().__init__()
        self.conv = ConvLayer(cin, cout, kernel, norm=norm, num_styles=num_styles)
        self._kernel_cache = None  # (weight versions, (kernels, bias)) for inference

    def forward(self, x, size):
        if (
            fastconv.fast_path_allowed(x)  # first: never reached while tracing or exporting
            and self.conv[1].kernel_size == (3, 3)
            and tuple(size) == (2 * x.shape[-2], 2 * x.shape[-1])
        ):
            y = self._subpixel_conv(x)
            for layer in list(self.conv)[2:]:  # norm, ReLU
                y = layer(y)
            return y
        return self.conv(F.interpolate(x, size=size, mode="nearest"))

    def _subpixel_conv(self, x):
        """The same result as conv(reflect_pad(upsample2x(x))), computed at the low resolution:
        reflect-padding a 2x nearest upsample equals upsampling a replicate-padded input, so each
        of the 4 output phases is a 3x3 conv of the small map with taps summed (Shi et al. 2016's
        pixel shuffle). Same multiply count, but no 4x-sized intermediates, and the wider
        low-resolution conv suits the Winograd path."""
        kernels, bias = self.subpixel_kernels()
        y = fastconv.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, bias)
        return F.pixel_shuffle(y, 2)

    def subpixel_kernels(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The (4 * cout, cin, 3, 3) phase kernels and bias of `_subpixel_conv`; cached while the
        weights stay the same and no gradient must flow into them (inference)."""
        conv = self.conv[1]
        if torch.is_grad_enabled() and conv.weight.requires_grad:
            return self._phase_kernels(conv)
        key = tuple((p.data_ptr(), p._version) for p in (conv.weight, conv.bias) if p is not None)
        if self._kernel_cache is None or self._kernel_cache[0] != key:
            with torch.no_grad():
                self._kernel_cache = (key, self._phase_kernels(conv))
        return self._kernel_cache[1]

    @staticmethod
    def _phase_kernels(conv) -> tuple[torch.Tensor, torch.Tensor | None]:
        taps = _PHASE_TAPS.to(conv.weight)
        kernels = torch.einsum("api,ocij,bqj->oabcpq", taps, conv.weight, taps)
        kernels = kernels.reshape(-1, conv.in_channels, 3, 3).contiguous()
        bias = None if conv.bias is None else conv.bias.repeat_interleave(4)
        return kernels, bias


class TransformerNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> stylized image of the same size in [0, 1].

    Args:
        channels: widths of the three stages (Johnson: 32, 64, 128).
        num_residual: residual blocks at the bottleneck (Johnson: 5).
        norm: "instance" (Ulyanov et al.), "batch" (Johnson's original) or "none".
        styles: None (one style: plain instance norm) or the names of the styles of a
            multi-style network (conditional instance norm, Dumoulin et al. 2017; needs
            norm="instance"). Its forward takes style weights (N,) or (B, N) beside the image.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), num_residual: int = 5, norm: str = "instance",
                 styles: Sequence[str] | None = None):
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.config = {"channels": [c1, c2, c3], "num_residual": int(num_residual), "norm": norm}
        n = 0
        if styles is not None:
            styles = [str(name) for name in styles]
            if norm != "instance" or not styles or len(set(styles)) != len(styles):
                raise FastNSTError(f"a multi-style network needs norm=instance and distinct style names, got "
                                   f"norm={norm!r}, styles={styles}")
            self.config["styles"] = styles
            n = len(styles)
        self.down1 = ConvLayer(3, c1, 9, norm=norm, num_styles=n)
        self.down2 = ConvLayer(c1, c2, 3, stride=2, norm=norm, num_styles=n)
        self.down3 = ConvLayer(c2, c3, 3, stride=2, norm=norm, num_styles=n)
        self.residuals = nn.Sequential(*[ResidualBlock(c3, norm=norm, num_styles=n) for _ in range(int(num_residual))])
        self.up1 = UpsampleConv(c3, c2, norm=norm, num_styles=n)
        self.up2 = UpsampleConv(c2, c1, norm=norm, num_styles=n)
        self.out = ConvLayer(c1, 3, 9, norm=None, relu=False)

    @property
    def styles(self) -> list[str] | None:
        """The style names of a multi-style network, None for a single-style one."""
        return self.config.get("styles")

    def conditional_norms(self) -> list[ConditionalInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1]; `style`: a multi-style network's style weights, (N,) for
        the whole batch or (B, N) per image (None = the first style). Ignored by a single-style
        network."""
        norms = self.conditional_norms() if self.styles else []
        if not norms:
            return self._forward(x)
        if style is None:
            style = one_hot(0, len(self.styles), x)
        for m in norms:
            m.style_weights = style
        try:
            return self._forward(x)
        finally:
            for m in norms:
                m.style_weights = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if fused.can_fuse(self, x):  # inference on CPU: the same result with fewer memory passes
            return fused.fused_forward(self, x)
        h1 = self.down1(x)
        h2 = self.down2(h1)
        h = self.residuals(self.down3(h2))
        h = self.up1(h, h2.shape[-2:])
        h = self.up2(h, h1.shape[-2:])
        # sigmoid keeps the output in [0, 1] with gradients everywhere (a clamp would kill them)
        return torch.sigmoid(self.out(h))


def one_hot(index: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Style weights (n,) selecting style `index`."""
    w = torch.zeros(n, dtype=torch.float32, device=like.device)
    w[index] = 1.0
    return w


