"""A style measure that sees strokes: the sliced Wasserstein distance between the distributions
of VGG19 feature vectors of a picture and of the painting (`style_swd`, lower = closer).

The Gram loss compares second moments only: a photo re-tinted in the painting's palette plus a
fine uniform grain matches them without drawing one stroke. Here every feature vector of the
picture is one sample, every feature vector of the painting another, and the two clouds are
compared as distributions: along fixed random directions (seeded, so the score is
deterministic) the sorted projections are matched quantile by quantile (exact 1-D optimal
transport). A sky of flat tint with a grain and a sky of swirls give clouds of different shape
even where their second moments agree.

Scale matters as much as the distance. A feed-forward network paints its strokes at a fixed
pixel scale, so the painting is taken at a fixed size in px (`painting_size`: for the styles of
Johnson et al. 2016's released models, the style image size those models were trained with,
which is the size at which their outputs show the painting's motifs). The picture is judged at
the size it was made, plus a pyramid level at half size for both, so larger motifs reach the
deeper layers' receptive fields. Judge pictures of 512 px or more: on Chicago at 256 px and
below, where VGG no longer resolves the brushwork, the ranking of Johnson's wave against a
tint-and-grain network flips.

    judge = StyleJudge(load_image("styles/wave.jpg", painting_size("wave")))
    judge(stylized)   # {"style_swd": 0.61, "style_swd_std": 0.004, "style_swd/block1_conv1": ...}
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastnst.color import opponent_channels
from fastnst.images import resize_tensor
from fastnst.styles import judge_size
from fastnst.vgg import VGG19Features

# relu1_1 .. relu5_1, Gatys's style layers: colour and edges up to whole motifs. Measured on
# Chicago at 512 px, block5_conv1 is where Johnson's wave is farthest ahead of a tint plus grain,
# block1_conv1 where the tint plus grain scores best (it is little more than colour)
JUDGE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
NUM_DIRECTIONS = 128
SEEDS = (0, 1, 2)
# pyramid levels: 1 = as given, 0.5 = picture and painting both at half size
LEVELS = (1.0, 0.5)
# feature vectors drawn per layer and image (seeded): the distribution, not every pixel, is needed
MAX_SAMPLES = 16384
# a pyramid level's picture is at least this many px on each side (VGG needs a few pixels)
MIN_LEVEL_SIDE = 16
# each layer's directions are seeded seed x DIRECTION_SEED_STRIDE + the layer's index
DIRECTION_SEED_STRIDE = 1000
# the judged picture's samples are drawn with seed + this (a prime): other draws than the
# painting's, so a picture equal to the painting still scores ~0
PICTURE_SAMPLE_SEED_OFFSET = 7919


def painting_size(style: str | None, own_side: int | None = None) -> int:
    """The painting's longer side (px) the judge compares against, for a style name; never more
    than the painting's own longer side `own_side` (a small copy is not enlarged into blur)."""
    side = judge_size(style)  # the style registry's (fastnst.styles), by name or alias
    return min(side, int(own_side)) if own_side else side


def random_directions(channels: int, count: int, seed: int) -> torch.Tensor:
    """(channels, count) unit vectors, the same for the same seed on every machine."""
    generator = torch.Generator().manual_seed(int(seed))
    d = torch.randn(channels, count, generator=generator, dtype=torch.float64)
    return (d / d.norm(dim=0, keepdim=True)).float()


def _quantile_rows(sorted_values: torch.Tensor, n: int) -> torch.Tensor:
    """n evenly spaced quantiles (mid-points) of each column of an already sorted (N, K) tensor."""
    total = sorted_values.shape[0]
    index = ((torch.arange(n, dtype=torch.float64) + 0.5) * total / n).long().clamp_(max=total - 1)
    return sorted_values[index.to(sorted_values.device)]


def sorted_projections(samples: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(N, C) samples along (C, K) directions, each column sorted: (N, K)."""
    return torch.sort(samples.float() @ directions, dim=0).values


def _transport(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """Squared W2 per column of two sorted projections, at min(N, M) evenly spaced quantiles."""
    n = min(pa.shape[0], pb.shape[0])
    return (_quantile_rows(pa, n) - _quantile_rows(pb, n)).square().mean(dim=0)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between the samples a (N, C) and b (M, C) along each
    direction (C, K): (K,). The order of the rows does not matter; N and M may differ."""
    return _transport(sorted_projections(a, directions), sorted_projections(b, directions))


def feature_samples(features: torch.Tensor, max_samples: int, seed: int) -> torch.Tensor:
    """(1, C, H, W) -> (N, C) feature vectors, at most `max_samples` of them drawn (seeded)."""
    c = features.shape[1]
    rows = features[0].reshape(c, -1).t()
    if rows.shape[0] <= max_samples:
        return rows
    generator = torch.Generator().manual_seed(int(seed))
    return rows[torch.randperm(rows.shape[0], generator=generator)[:max_samples].to(rows.device)]


def _downscale(image: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(MIN_LEVEL_SIDE, round(h * factor)), max(MIN_LEVEL_SIDE, round(w * factor)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


class StyleJudge:
    """Distance of pictures to one painting (see the module docstring).

    painting: (1, 3, H, W) in [0, 1], already at the judge's scale (`painting_size`), or a list
    of such images (a style of several paintings: their feature vectors pooled).
    Calling the judge on a (1, 3, h, w) picture returns "style_swd" (mean over seeds of the
    per-seed score), "style_swd_std" (spread over seeds) and "style_swd/<layer>". A per-seed
    score is the mean over layers and pyramid levels of the sliced W2 distance, divided by the
    painting's own spread along the same directions (so every layer counts alike; 0 = the same
    distribution as the painting's, about 1 = off by the painting's whole spread).
    """

    def __init__(
        self,
        painting: torch.Tensor | Sequence[torch.Tensor],
        layers: Sequence[str] = JUDGE_LAYERS,
        num_directions: int = NUM_DIRECTIONS,
        seeds: Sequence[int] = SEEDS,
        levels: Sequence[float] = LEVELS,
        max_samples: int = MAX_SAMPLES,
        vgg: VGG19Features | None = None,
        vgg_weights: str = "embedded",
    ):
        paintings = [painting] if isinstance(painting, torch.Tensor) else list(painting)
        if not paintings or any(p.dim() != 4 or p.shape[:2] != (1, 3) for p in paintings):
            raise ValueError("painting must be a (1, 3, H, W) image or a list of them")
        self.layers, self.seeds, self.levels = (
            tuple(layers),
            tuple(int(s) for s in seeds),
            tuple(levels),
        )
        self.num_directions, self.max_samples = int(num_directions), int(max_samples)
        self.vgg = vgg if vgg is not None else VGG19Features(self.layers, weights=vgg_weights)
        self.device = self.vgg.scale.device
        self._directions = {}
        # the painting's samples and projections, once: {(level, layer, seed): (sorted proj, spread)}
        self._painting = {}
        share = max(
            1, self.max_samples // len(paintings)
        )  # several paintings: one pooled distribution
        for level in self.levels:
            feats = [self._features(_downscale(p, level)) for p in paintings]
            for layer in self.layers:
                for seed in self.seeds:
                    samples = torch.cat([feature_samples(f[layer], share, seed) for f in feats])
                    proj = sorted_projections(samples, self._dirs(layer, samples.shape[1], seed))
                    spread = proj.var(dim=0, unbiased=False).mean().sqrt().clamp_min(1e-8)
                    self._painting[level, layer, seed] = (proj, spread)

    def _dirs(self, layer: str, channels: int, seed: int) -> torch.Tensor:
        key = (layer, seed)
        if key not in self._directions:
            # the layer's index joins the seed: each layer its own directions
            self._directions[key] = random_directions(
                channels,
                self.num_directions,
                seed * DIRECTION_SEED_STRIDE + self.layers.index(layer),
            ).to(self.device)
        return self._directions[key]

    @torch.no_grad()
    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            k: v.float() for k, v in self.vgg(image.to(self.device).float().clamp(0, 1)).items()
        }

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> dict[str, float]:
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"the judged picture must be (1, 3, H, W), got {tuple(image.shape)}")
        per_seed = {seed: [] for seed in self.seeds}
        per_layer = {layer: [] for layer in self.layers}
        for level in self.levels:
            feats = self._features(_downscale(image, level))
            for layer in self.layers:
                for seed in self.seeds:
                    samples = feature_samples(
                        feats[layer], self.max_samples, seed + PICTURE_SAMPLE_SEED_OFFSET
                    )
                    proj = sorted_projections(samples, self._dirs(layer, samples.shape[1], seed))
                    target, spread = self._painting[level, layer, seed]
                    score = float(_transport(proj, target).mean().sqrt() / spread)
                    per_seed[seed].append(score)
                    per_layer[layer].append(score)
        scores = [sum(v) / len(v) for v in per_seed.values()]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
        result = {"style_swd": mean, "style_swd_std": std}
        result.update({f"style_swd/{layer}": sum(v) / len(v) for layer, v in per_layer.items()})
        return result


# ----------------------------------------------------------------------------- the adversary


def _sqrtm(cov: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-10).sqrt()) @ vectors.t()


def transfer_colour_statistics(photo: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """The photo's pixels moved to the painting's RGB mean and covariance (a linear colour map)."""
    x = photo[0].reshape(3, -1).double()
    y = painting[0].reshape(3, -1).double()
    mx, my = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    cx, cy = torch.cov(x), torch.cov(y)
    mapping = _sqrtm(cy) @ torch.linalg.inv(_sqrtm(cx) + 1e-6 * torch.eye(3, dtype=x.dtype))
    out = mapping @ (x - mx) + my
    return out.reshape(photo.shape).float().clamp(0, 1)


def tint_and_grain(
    photo: torch.Tensor, painting: torch.Tensor, period: float = 4.0, amplitude: float = 0.08
) -> torch.Tensor:
    """What the Gram loss mistakes for a painting: the photo in the painting's colour statistics
    plus a fine, uniform diagonal grain (a sine of `period` px along x + y, +-amplitude)."""
    h, w = photo.shape[-2:]
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    grain = amplitude * torch.sin(2 * math.pi * (xx + yy) / period)
    return (transfer_colour_statistics(photo, painting) + grain.to(photo.device)).clamp(0, 1)


__all__ = [
    "StyleJudge",
    "sliced_wasserstein",
    "random_directions",
    "feature_samples",
    "painting_size",
    "tint_and_grain",
    "transfer_colour_statistics",
    "JUDGE_LAYERS",
]


# ----------------------------------------------------------------------------- hatching and scene
#
# Two rulers for what blind raters named and style_swd does not see.
#
# hatch_measure: a network's regular fine hatch (a diagonal grating of period ~3 px, often with
# magenta/cyan fringes) against brush strokes. Plain energy in the 2-6 px band cannot tell them
# apart (Johnson's strokes carry more of it than a hatch); what makes a hatch a hatch is that the
# energy sits at ONE spatial frequency and orientation everywhere in the picture. The picture is
# cut into overlapping windowed tiles, their power spectra are averaged (Welch), and in the
# 2-6 px band the share of energy standing in narrow peaks above the local spectral background
# (a median over neighbouring frequencies) is taken: ~0 for strokes of every orientation and
# width, -> 1 for a pure grating. It is taken on the luminance and on two chroma channels
# (opponent colours) together; `fringe` is the chroma share of the band's energy (a colour-
# fringed hatch is mostly chroma there, painted strokes mostly luminance).
#
# texture_fineness: how fine a picture's texture is, what raters call a "fine regular hatch" or
# "wallpaper" even where no single frequency stands out (hatch_measure ~0): the luminance power
# at 2-6 px periods over that at 8-32 px (Welch spectra of 128 px tiles). Johnson et al.'s
# Chicago outputs score 0.05-0.20 (bold strokes tens of px wide); networks that paint the
# painting's motifs too small score 1.4-2.2x their style's (the photo itself: 0.21-0.25).
#
# scene_measure: how much of the photo's structure survives, for close-ups where a face or an
# animal must stay recognizable: the relative distance of deep VGG19 features (block4_conv2, the
# layer where objects and parts are coded; 0 = the photo's own features, ~1 = unrelated) and the
# SSIM of coarse-scale edge maps (both pictures at SCENE_COARSE_SIDE px on the longer side: the
# scene's layout, not the strokes).

HATCH_BAND = (2.0, 6.0)  # periods in px
HATCH_TILE = 64
HATCH_PEAK_FACTOR = 4.0  # a frequency bin is a peak when its power exceeds this x its background
HATCH_FLOOR = 1.0  # levels (0-255) RMS added to the band's energy when taking shares
HATCH_BACKGROUND = 9  # the background: median over this x this neighbouring frequency bins
FINENESS_TILE = 128
FINE_BAND = (2.0, 6.0)  # periods in px: the fine texture
MID_BAND = (8.0, 32.0)  # periods in px: strokes and motifs
SCENE_LAYER = "block4_conv2"
SCENE_SIDE = 256
SCENE_COARSE_SIDE = 128


def band_spectra(image: torch.Tensor, tile: int = HATCH_TILE) -> tuple[torch.Tensor, torch.Tensor]:
    """Welch power spectra of a (1|B, 3, H, W) picture's opponent channels: (3, tile, tile),
    zero frequency at the centre, averaged over half-overlapping Hann-windowed tiles; and the
    (tile, tile) mask of the 2-6 px band (HATCH_BAND)."""
    x = opponent_channels(image[0].float().clamp(0, 1))
    h, w = x.shape[-2:]
    if min(h, w) < tile:
        raise ValueError(f"hatch_measure needs a picture of at least {tile} px, got {w}x{h}")
    tiles = x.unfold(1, tile, tile // 2).unfold(2, tile, tile // 2).reshape(3, -1, tile, tile)
    tiles = tiles - tiles.mean(dim=(-2, -1), keepdim=True)
    hann = torch.hann_window(tile, periodic=False)
    spectra = torch.fft.fft2(tiles * (hann[:, None] * hann[None, :])).abs().square().mean(1)
    spectra = torch.fft.fftshift(spectra, dim=(-2, -1))
    return spectra, period_band(tile, HATCH_BAND)


def period_band(tile: int, periods: tuple[float, float]) -> torch.Tensor:
    """(tile, tile) mask of a centred (fftshift) spectrum's bins whose period lies in `periods`
    (px, shortest first)."""
    f = torch.fft.fftshift(torch.fft.fftfreq(tile))
    radius = (f[:, None].square() + f[None, :].square()).sqrt()
    return (radius >= 1.0 / periods[1]) & (radius <= 1.0 / periods[0])


def _median_background(power: torch.Tensor, k: int = HATCH_BACKGROUND) -> torch.Tensor:
    """Median of each bin's k x k neighbourhood (the spectrum treated as periodic)."""
    padded = F.pad(power[None], (k // 2,) * 4, mode="circular")[0]
    return padded.unfold(-2, k, 1).unfold(-2, k, 1).reshape(*power.shape, -1).median(-1).values


def _peaks(spectra: torch.Tensor, band: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(peak mask, background) of Welch spectra: bins of the band above HATCH_PEAK_FACTOR x
    their neighbourhood's median."""
    background = _median_background(spectra)
    return (spectra > HATCH_PEAK_FACTOR * background) & band, background


def hatch_measure(image: torch.Tensor, photo: torch.Tensor | None = None) -> dict[str, float]:
    """{"hatch": share of the 2-6 px band's energy in narrow spectral peaks (0 = none, 1 = a pure
    grating), "hatch_rms": the peaks' amplitude (RMS, 0-255 levels, summed over the three
    channels), "fringe": chroma share of that band's energy, "band_rms": the whole band's
    amplitude (RMS, levels)} of a (1, 3, H, W) picture in [0, 1]. Judge at the size the
    picture was made (a resize moves and blurs the band).

    With `photo` (the picture's source photo, any size: it is resized to the picture's), the
    peaks the photo has itself (a facade's rows of windows are a grating too) are not counted:
    the hatch the rendering added."""
    spectra, band = band_spectra(image)
    peaks, background = _peaks(spectra, band)
    if photo is not None:  # a peak the photo has with at least a quarter of its power
        photo_spectra = band_spectra(resize_tensor(photo.float(), image.shape[-2:]))[0]
        own, _ = _peaks(photo_spectra, band)
        peaks = peaks & ~(own & (photo_spectra >= 0.25 * spectra))
    peaks = peaks.float()
    excess = ((spectra - background) * peaks).sum()
    band_total = (spectra * band).sum()
    chroma = (spectra[1:] * band).sum()
    hann = torch.hann_window(HATCH_TILE, periodic=False)
    to_variance = HATCH_TILE**2 * float((hann[:, None] * hann[None, :]).square().sum())
    # the shares are taken of at least HATCH_FLOOR levels RMS: a band nobody can see scores ~0
    floor = to_variance * (HATCH_FLOOR / 255.0) ** 2
    return {
        "hatch": float(excess / (band_total + floor)),
        "hatch_rms": 255.0 * float(excess / to_variance) ** 0.5,
        "fringe": float(chroma / (band_total + floor)),
        "band_rms": 255.0 * float(band_total / to_variance) ** 0.5,
    }


def texture_fineness(image: torch.Tensor) -> float:
    """Luminance power at FINE_BAND periods over that at MID_BAND periods of a (1, 3, H, W)
    picture in [0, 1]: higher = a finer texture. Tiles of FINENESS_TILE px, or of the largest
    power of two that fits a smaller picture (at least HATCH_TILE). Judge at the size the
    picture was made."""
    side = min(image.shape[-2:])
    tile = FINENESS_TILE if side >= FINENESS_TILE else max(HATCH_TILE, 2 ** int(math.log2(side)))
    luminance = band_spectra(image, tile=tile)[0][0]
    mid = luminance[period_band(tile, MID_BAND)].sum().clamp_min(1e-12)
    return float(luminance[period_band(tile, FINE_BAND)].sum() / mid)


def detail_energy(image: torch.Tensor) -> float:
    """Mean squared difference between a (B, 3, H, W) picture and its 3x3 box blur: the energy
    of its finest detail (brush-stroke edges, hatch, grain). A student network that averages
    strokes it cannot place paints less of it than its teacher (scripts/zoo/teacher_gap.py)."""
    image = image.float()
    blurred = F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return float((image - blurred).square().mean())


def _resize_longer(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image.float(), size=size, mode="bilinear", antialias=True)


def coarse_edge_ssim(
    output: torch.Tensor, photo: torch.Tensor, side: int = SCENE_COARSE_SIDE
) -> float:
    """SSIM of the Sobel edge maps of both pictures at `side` px (longer side): 1 = the photo's
    layout kept, ~0 = none of it (the strokes are below this scale)."""
    import kornia

    def edges(x: torch.Tensor) -> torch.Tensor:
        e = kornia.filters.sobel(kornia.color.rgb_to_grayscale(_resize_longer(x, side).clamp(0, 1)))
        return e / e.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)

    a, b = edges(output), edges(photo)
    if a.shape[-2:] != b.shape[-2:]:
        a = F.interpolate(a, size=b.shape[-2:], mode="bilinear")
    return float(kornia.metrics.ssim(a, b, window_size=7).mean())


class SceneJudge:
    """How much of a photo's scene a stylization keeps:

        scene = SceneJudge()
        scene(stylized, photo)  # {"scene_distance": 0.83, "scene_ssim": 0.41}

    scene_distance: ||F(out) - F(photo)|| / ||F(photo)|| of VGG19's block4_conv2 features, both
    pictures at SCENE_SIDE px (lower = more of the scene); scene_ssim: coarse_edge_ssim."""

    def __init__(self, vgg: VGG19Features | None = None, side: int = SCENE_SIDE):
        self.vgg = vgg if vgg is not None else VGG19Features([SCENE_LAYER])
        self.side = side
        self._photo: tuple[torch.Tensor, torch.Tensor] | None = None  # the last photo's features

    def _photo_features(self, p: torch.Tensor) -> torch.Tensor:
        if self._photo is None or not (
            self._photo[0].shape == p.shape and torch.equal(self._photo[0], p)
        ):
            self._photo = (p, self.vgg(p.clamp(0, 1))[SCENE_LAYER])
        return self._photo[1]

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
        p = _resize_longer(photo, self.side)
        o = F.interpolate(output.float(), size=p.shape[-2:], mode="bilinear", antialias=True)
        fo, fp = self.vgg(o.clamp(0, 1))[SCENE_LAYER], self._photo_features(p)
        distance = (fo - fp).norm() / fp.norm().clamp_min(1e-8)
        return {"scene_distance": float(distance), "scene_ssim": coarse_edge_ssim(output, photo)}


__all__ += [
    "hatch_measure",
    "texture_fineness",
    "detail_energy",
    "band_spectra",
    "coarse_edge_ssim",
    "SceneJudge",
    "HATCH_BAND",
    "SCENE_LAYER",
]
