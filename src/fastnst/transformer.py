"""The feed-forward image transformation network (Johnson et al. 2016, instance norm of
Ulyanov et al. 2016, upsample-then-conv of Odena et al. 2016 against checkerboard artifacts),
and its small exported file format for inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.errors import FastNSTError


class InstanceNorm2d(nn.InstanceNorm2d):
    """`nn.InstanceNorm2d(affine=True)` (the same parameters and state_dict) that normalizes with
    given per-image statistics instead of each map's own while `statistics` is set:
    `TransformerNet.forward(x, stats=...)` sets them for one call (tiling: every tile normalized
    with the whole image's statistics)."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=True)
        self.statistics: tuple[torch.Tensor, torch.Tensor] | None = (
            None  # (mean, var), each (B, C, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.statistics is None:
            return super().forward(x)
        y = normalize(x, self.statistics, self.eps)
        return y * self.weight.view(1, -1, 1, 1).to(x.dtype) + self.bias.view(1, -1, 1, 1).to(
            x.dtype
        )


class ConditionalInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm with one scale and shift per style (Dumoulin et al. 2017): `weight` and
    `bias` are (num_styles, C). The style weights (N,) or (B, N) that `TransformerNet.forward`
    sets in `style_weights` mix the rows: a blend of styles interpolates scales and shifts.
    `statistics`: as in `InstanceNorm2d`."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__(channels, affine=False)
        self.num_styles = int(num_styles)
        self.weight = nn.Parameter(torch.ones(self.num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(self.num_styles, channels))
        self.style_weights: torch.Tensor | None = None
        self.statistics: tuple[torch.Tensor, torch.Tensor] | None = None

    def style_affine(
        self, batch: int, style_weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (B, C), for the given style weights (N,) or (B, N), by default
        the ones the current `TransformerNet` call set."""
        w = self.style_weights if style_weights is None else style_weights
        if w is None:
            raise RuntimeError(
                "ConditionalInstanceNorm2d: no style weights set (call the TransformerNet)"
            )
        w = w.to(self.weight.dtype)
        if w.dim() == 1:
            return (w @ self.weight).unsqueeze(0).expand(batch, -1), (w @ self.bias).unsqueeze(
                0
            ).expand(batch, -1)
        return w @ self.weight, w @ self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.style_affine(x.shape[0])
        y = (
            F.instance_norm(x, eps=self.eps)
            if self.statistics is None
            else normalize(x, self.statistics, self.eps)
        )
        return y * scale.to(y.dtype)[..., None, None] + shift.to(y.dtype)[..., None, None]


def normalize(
    x: torch.Tensor, statistics: tuple[torch.Tensor, torch.Tensor], eps: float
) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) with given (mean, var), each (B, C, 1, 1)."""
    mean, var = statistics
    return (x - mean.to(x.dtype)) * torch.rsqrt(var.to(x.dtype) + eps)


def _norm(kind: str, channels: int, num_styles: int = 0) -> nn.Module:
    if kind == "instance" and num_styles:
        return ConditionalInstanceNorm2d(channels, num_styles)
    if kind == "instance":
        return InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise FastNSTError(f"model.norm must be instance, batch or none, got {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection pad + conv (+ norm + ReLU)."""

    def __init__(self, cin, cout, kernel, stride=1, norm="instance", relu=True, num_styles=0):
        layers = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
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


# How the decoder enlarges its maps. "nearest" (Odena et al. 2016) copies each value into a
# 2x2 block: a sign flip between neighbouring bottleneck cells survives as a diagonal grating
# locked to the network's 4 px lattice (the "hatch", docs/quality.md). "bilinear" interpolates,
# which halves that grating's amplitude before any conv sees it.
UPSAMPLE_MODES = ("nearest", "bilinear")


def check_upsample(mode) -> str:
    if mode not in UPSAMPLE_MODES:
        raise FastNSTError(
            f"model.upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}"
        )
    return mode


def upsample(x: torch.Tensor, size, mode: str) -> torch.Tensor:
    """`x` enlarged to `size` (the skip connection's exact size, also for odd inputs)."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class UpsampleConv(nn.Module):
    """Upsample to an explicit size (UPSAMPLE_MODES), then conv: no transposed-conv checkerboard
    and the output matches the skip size exactly for odd inputs."""

    def __init__(self, cin, cout, kernel=3, norm="instance", num_styles=0, mode="nearest"):
        super().__init__()
        self.mode = check_upsample(mode)
        self.conv = ConvLayer(cin, cout, kernel, norm=norm, num_styles=num_styles)

    def forward(self, x, size):
        return self.conv(upsample(x, size, self.mode))


class TransformerNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> stylized image of the same size in [0, 1].

    Args:
        channels: widths of the three stages (Johnson: 32, 64, 128).
        num_residual: residual blocks at the bottleneck (Johnson: 5).
        norm: "instance" (Ulyanov et al.), "batch" (Johnson's original) or "none".
        styles: None (one style: plain instance norm) or the names of the styles of a
            multi-style network (conditional instance norm, Dumoulin et al. 2017; needs
            norm="instance"). Its forward takes style weights (N,) or (B, N) beside the image.
        upsample: the decoder's upsampling, "nearest" or "bilinear" (UPSAMPLE_MODES).
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128),
        num_residual: int = 5,
        norm: str = "instance",
        styles: Sequence[str] | None = None,
        upsample: str = "nearest",
    ):
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.config = {"channels": [c1, c2, c3], "num_residual": int(num_residual), "norm": norm}
        if check_upsample(upsample) != "nearest":  # files of nearest networks stay as they were
            self.config["upsample"] = upsample
        n = 0
        if styles is not None:
            styles = [str(name) for name in styles]
            if norm != "instance" or not styles or len(set(styles)) != len(styles):
                raise FastNSTError(
                    f"a multi-style network needs norm=instance and distinct style names, got "
                    f"norm={norm!r}, styles={styles}"
                )
            self.config["styles"] = styles
            n = len(styles)
        self.down1 = ConvLayer(3, c1, 9, norm=norm, num_styles=n)
        self.down2 = ConvLayer(c1, c2, 3, stride=2, norm=norm, num_styles=n)
        self.down3 = ConvLayer(c2, c3, 3, stride=2, norm=norm, num_styles=n)
        self.residuals = nn.Sequential(
            *[ResidualBlock(c3, norm=norm, num_styles=n) for _ in range(int(num_residual))]
        )
        self.up1 = UpsampleConv(c3, c2, norm=norm, num_styles=n, mode=upsample)
        self.up2 = UpsampleConv(c2, c1, norm=norm, num_styles=n, mode=upsample)
        self.out = ConvLayer(c1, 3, 9, norm=None, relu=False)

    @property
    def styles(self) -> list[str] | None:
        """The style names of a multi-style network, None for a single-style one."""
        return self.config.get("styles")

    @property
    def upsample_mode(self) -> str:
        return self.up1.mode

    def conditional_norms(self) -> list[ConditionalInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def instance_norms(self) -> list[nn.InstanceNorm2d]:
        """The instance norms (plain or conditional) in forward order: what `stats` lists."""
        return [m for m in self.modules() if isinstance(m, nn.InstanceNorm2d)]

    def forward(
        self,
        x: torch.Tensor,
        style: torch.Tensor | None = None,
        stats: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1]; `style`: a multi-style network's style weights, (N,) for
        the whole batch or (B, N) per image (None = the first style). Ignored by a single-style
        network. `stats`: optional (mean, var) per instance norm (`instance_norms()` order),
        each (B, C, 1, 1), to normalize with instead of each map's own statistics (tiling)."""
        norms = self._hand_to_norms(x, style, stats)
        try:
            h1 = self.down1(x)
            h2 = self.down2(h1)
            h = self.residuals(self.down3(h2))
            h = self.up1(h, h2.shape[-2:])
            h = self.up2(h, h1.shape[-2:])
            # sigmoid keeps the output in [0, 1] with gradients everywhere (a clamp would kill them)
            return torch.sigmoid(self.out(h))
        finally:
            for m in norms:  # the style weights and statistics hold for this call only
                m.statistics = None
                if isinstance(m, ConditionalInstanceNorm2d):
                    m.style_weights = None

    def _hand_to_norms(self, x, style, stats) -> list[nn.Module]:
        """Set the style weights and statistics of one call on the norms; returns the norms set."""
        conditional = self.conditional_norms() if self.styles else []
        if conditional and style is None:
            style = one_hot(0, len(self.styles), x)
        for m in conditional:
            m.style_weights = style
        if stats is None:
            return conditional
        norms = self.instance_norms()
        if len(norms) != len(stats):
            raise ValueError(f"{len(stats)} statistics for {len(norms)} instance norms")
        for m, (mean, var) in zip(norms, stats):
            m.statistics = (mean, var)
        return norms


def one_hot(index: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """Style weights (n,) selecting style `index`."""
    w = torch.zeros(n, dtype=torch.float32, device=like.device)
    w[index] = 1.0
    return w
