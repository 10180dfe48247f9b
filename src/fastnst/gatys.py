"""Per-image optimization (Gatys, Ecker, Bethge 2016): optimize the pixels of one image so its VGG
features match the photo's content and the painting's Gram matrices.

`stylize_gatys` is the tensor API (tensors in, result out); `python gatys.py` (files, style
presets, intermediates, the JSON loss log) is `fastnst.apps.gatys.run_gatys`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from fastnst.errors import FastNSTError
from fastnst.images import resize_tensor
from fastnst.lbfgs import LBFGS
from fastnst.losses import PerceptualLoss
from fastnst.precision import BF16, FP32, check_choice, cpu_auto_precision

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "content+noise")
# `scales: auto` optimizes coarse-to-fine above this size (px, longer side) and single-scale below
AUTO_MULTISCALE_ABOVE = 384
# smallest coarse scale `auto` goes down to: below that VGG's deep layers see almost nothing
AUTO_MIN_SIDE = 128
# L-BFGS keeps this many (s, y) pairs of image-sized vectors: more costs memory, fewer converge slower
LBFGS_HISTORY = 50
LOSS_TERMS = ("total", "content", "style", "tv")
# what stays fp32 when the VGG runs in bf16 (the reason line of precision=auto says it)
BF16_KEEPS = "Grams, losses and the L-BFGS state stay fp32"


@dataclass
class GatysResult:
    """What `stylize_gatys` returns.

    image: the lowest-loss image seen at the final (output) scale, (1, 3, H, W) in [0, 1].
    best_loss / best_iteration: its total loss and 1-based global iteration number.
    history: one dict per loss evaluation: iteration, scale (index), height, width, total,
        content, style, tv, the unweighted per-layer terms ("content/block5_conv2",
        "style/block1_conv1", ...), time_s (since the start).
    """

    image: torch.Tensor
    best_loss: float
    best_iteration: int
    history: list[dict] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    iterations_per_scale: list[int] = field(default_factory=list)
    wall_time_s: float = 0.0
    precision: str = FP32


# ----------------------------------------------------------------------------- precision


def resolve_precision(precision: str, device: torch.device | str) -> tuple[str, str | None]:
    """(32-true | bf16-mixed, the one-line reason, or None when `precision` was not auto).

    auto follows training's rule on CPU (fastnst.precision: bf16-mixed where the CPU computes
    bf16 natively, AMX or AVX512-BF16) and takes bf16-mixed on GPUs that support it (Ampere and
    later). bf16-mixed runs the VGG's convolutions forward and backward under bf16 autocast
    (the first one, which sees the pixels, in fp32); the image, the style targets, the Grams,
    the loss terms, the gradient L-BFGS sees and its history stay fp32.
    """
    precision = check_choice(precision, "precision")
    device = torch.device(device)
    if precision != "auto":
        if precision == BF16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise FastNSTError(
                f"precision={BF16}: {torch.cuda.get_device_name(device)} has no bf16; use precision=32-true"
            )
        return precision, None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return BF16, f"precision {BF16} (precision=auto): {name} computes bf16; {BF16_KEEPS}"
        return FP32, f"precision {FP32} (precision=auto): {name} has no bf16"
    if device.type == "cpu":
        return cpu_auto_precision("precision", BF16_KEEPS)
    return FP32, f"precision {FP32} (precision=auto on {device.type})"


@contextlib.contextmanager
def _bf16_vgg(loss: PerceptualLoss, device: torch.device):
    """The VGG set up for bf16-mixed while the block runs, as it was afterwards.

    Its first convolution stays fp32 (autocast off): it sees the pixels themselves, whose L-BFGS
    steps are finer than bf16 resolves (bf16 keeps 8 bits: steps of 0.5 on the 0-255 input), and
    costs little (3 input channels). On CPU the weights go channels_last: oneDNN's bf16 kernels
    work on NHWC maps, without it every convolution reorders its input."""
    conv = next(iter(loss.vgg.convs.values()))  # built in forward order: block1_conv1
    own = conv.__dict__.get("forward")  # an instance's own forward (a compiled one), if any
    plain = conv.forward

    def fp32_forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, enabled=False):
            return plain(x.float())

    conv.forward = fp32_forward
    if device.type == "cpu":
        loss.vgg.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if own is None:
            del conv.forward  # the class's forward again
        else:
            conv.forward = own
        if device.type == "cpu":
            loss.vgg.to(memory_format=torch.contiguous_format)


def _memory_format(image: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return image.contiguous(memory_format=torch.channels_last) if channels_last else image


def _autocast(precision: str, device: torch.device):
    if precision != BF16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# ----------------------------------------------------------------------------- schedule


# smallest shorter side VGG's poolings take (size=20 on a 4:3 photo, 20x15, failed in max_pool2d)
MIN_SIDE = 16


def scale_sizes(
    height: int, width: int, scales: Sequence[float | int] | str | None
) -> list[tuple[int, int]]:
    """Resolutions to optimize at, coarse to fine, ending at (height, width).

    scales: "auto" (coarse-to-fine above AUTO_MULTISCALE_ABOVE px, else single-scale), None or
    [1] (single-scale), or a list mixing fractions of the output (<= 1, e.g. 0.25) and longer-side
    sizes in px (> 1, e.g. 256). The output size is always the last scale.
    """
    longest = max(height, width)
    if scales is None:
        scales = [1.0]
    elif isinstance(scales, str):
        if scales != "auto":
            raise FastNSTError(
                f"scales must be 'auto' or a list like [0.25,0.5,1] or [128,256,512], got {scales!r}"
            )
        scales = []
        side = longest
        while side > AUTO_MULTISCALE_ABOVE and side // 2 >= AUTO_MIN_SIDE:
            side //= 2
            scales.append(side)
        scales = [*reversed(scales), longest]
    sides = set()
    for s in scales:
        try:
            s = float(s)
        except (TypeError, ValueError):
            raise FastNSTError(
                f"scales: {s!r} is neither a fraction (<= 1) nor a size in px (> 1)"
            ) from None
        if not s > 0 or not math.isfinite(s):
            raise FastNSTError(f"scales: {s!r} must be positive")
        side = round(s * longest) if s <= 1 else round(s)
        if side > longest:
            raise FastNSTError(
                f"scales: {s:g} px is larger than the output ({longest} px); raise size instead"
            )
        sides.add(side)
    sides.add(longest)
    sizes = [
        (max(1, round(height * side / longest)), max(1, round(width * side / longest)))
        for side in sorted(sides)
    ]
    # a thin image (a panorama strip) is fine: the VGG extends its short side for the poolings;
    # a size or scale below that minimum is a request for a tiny picture, refused
    for h, w in sizes:
        if max(h, w) < MIN_SIDE:
            what = "the output" if (h, w) == sizes[-1] else f"scale {w}x{h}"
            raise FastNSTError(
                f"{what} is {w}x{h} px; VGG's five poolings need at least {MIN_SIDE} px "
                f"(raise size, or drop the small scales)"
            )
    return sizes


def split_iterations(total: int, n_scales: int) -> list[int]:
    """Iterations per scale, coarse to fine, summing to `total`.

    Each coarser scale gets twice the iterations of the next finer one: coarse iterations are cheap
    (a quarter of the pixels per halving) and lay out the large structures, so the expensive
    full-size scale only refines detail.
    """
    if total < n_scales:
        raise FastNSTError(
            f"iterations={total} is fewer than the {n_scales} scales; raise iterations or use scales=[1]"
        )
    shares = [2.0 ** (n_scales - 1 - i) for i in range(n_scales)]
    counts = [max(1, math.floor(total * s / sum(shares))) for s in shares]
    counts[-1] += total - sum(counts)  # rounding leftovers go to the finest scale
    return counts


# ----------------------------------------------------------------------------- init


def initial_image(
    content: torch.Tensor,
    init: str = "content",
    noise: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The image the optimization starts from, in [0, 1].

    content: the photo itself. noise: uniform white noise, independent of the photo.
    content+noise: (1 - noise) * photo + noise * white noise (noise in [0, 1]: 0 = photo, 1 = noise).
    """
    if init not in INITS:
        raise FastNSTError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "content":
        return content.detach().clone()
    amount = 1.0 if init == "noise" else float(noise)
    if not 0.0 <= amount <= 1.0:
        raise FastNSTError(
            f"noise must be in [0, 1] (the fraction of white noise mixed into the photo), got {noise}"
        )
    white = torch.rand(content.shape, generator=generator, dtype=content.dtype).to(content.device)
    return (1.0 - amount) * content.detach() + amount * white


# ----------------------------------------------------------------------------- optimization


def _style_targets_for_scale(
    loss: PerceptualLoss, style_images, style_weights, factor: float
) -> None:
    """Style Grams from the style images shrunk by `factor`, so brush strokes keep their size
    relative to the image at every scale."""
    images = [
        resize_tensor(
            img, (max(1, round(img.shape[-2] * factor)), max(1, round(img.shape[-1] * factor)))
        )
        for img in style_images
    ]
    loss.set_style(images, style_weights)


def _make_optimizer(name: str, param: torch.Tensor, lr: float):
    if name == "lbfgs":
        # one loss evaluation per step (no line search), so `iterations` counts evaluations
        return LBFGS(param, lr=1.0, history_size=LBFGS_HISTORY)
    if name == "adam":
        return torch.optim.Adam([param], lr=lr)
    raise FastNSTError(f"optimizer must be lbfgs or adam, got {name!r}")


def stylize_gatys(
    content: torch.Tensor,
    loss: PerceptualLoss,
    iterations: int = 300,
    optimizer: str = "lbfgs",
    lr: float = 0.02,
    init: str = "content",
    noise: float = 0.5,
    seed: int | None = 0,
    scales: Sequence[float | int] | str | None = "auto",
    style_images: Sequence[torch.Tensor] | None = None,
    style_weights: Sequence[float] | None = None,
    save_every: int = 0,
    on_save: Callable[[int, torch.Tensor], None] | None = None,
    progress: bool = False,
    precision: str = "auto",
) -> GatysResult:
    """Optimize an image to match `content` (1, 3, H, W) in [0, 1] under `loss` (style set).

    The defaults are gatys.py's: with `PerceptualLoss.preset("seed")`, the painting's Grams
    taken at 512 px and `style_images` given, this reproduces `python gatys.py` exactly.

    optimizer: "lbfgs" (one loss evaluation per iteration) or "adam" (learning rate `lr`, in
        [0, 1] pixel units). Pixels are clamped to [0, 1] inside the loss, so the loss seen is the
        loss of the image saved.
    init / noise / seed: see `initial_image`; seed makes the noise reproducible (None = random).
    scales: see `scale_sizes`; `iterations` is the total over all scales (`split_iterations`).
        Each finer scale starts from the previous scale's best image, upsampled.
    style_images / style_weights: the style images at full size; with several scales the style
        targets are recomputed from them at each scale (brushwork scales with the image). When
        None, the loss's current targets are used at every scale.
    save_every / on_save: on_save(iteration, image) every `save_every` iterations (any scale).
    progress: show a tqdm bar with the current loss terms.
    precision: auto, 32-true or bf16-mixed (`resolve_precision`): bf16-mixed runs the VGG
        forward and backward under bf16 autocast (channels_last on CPU; its first convolution
        in fp32), the photo's content features too (so the content term is 0 at the photo);
        the style targets (the loss's, set in fp32), the Grams, the loss terms and the L-BFGS
        state stay fp32.
    Returns a GatysResult whose image is the lowest-loss image of the final scale.
    """
    if content.dim() != 4 or content.shape[:2] != (1, 3):
        raise ValueError(f"content must be (1, 3, H, W), got {tuple(content.shape)}")
    if not loss.has_style:
        raise RuntimeError("set the loss's style (loss.set_style) before stylize_gatys")
    iterations = int(iterations)
    if iterations < 1:
        raise FastNSTError(f"iterations must be >= 1, got {iterations}")
    if optimizer not in OPTIMIZERS:
        raise FastNSTError(f"optimizer must be lbfgs or adam, got {optimizer!r}")
    if save_every < 0:
        raise FastNSTError(f"save_every must be >= 0 (0 = no intermediates), got {save_every}")
    device = content.device
    precision, _ = resolve_precision(precision, device)
    content = content.contiguous()
    sizes = scale_sizes(content.shape[-2], content.shape[-1], scales)
    counts = split_iterations(iterations, len(sizes))
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    history: list[dict] = []
    best = {"loss": math.inf, "iteration": 0, "image": None}
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=iterations, unit="it", dynamic_ncols=True, leave=True)

    image = None
    channels_last = precision == BF16 and device.type == "cpu"
    with contextlib.ExitStack() as stack:
        if precision == BF16:
            stack.enter_context(_bf16_vgg(loss, device))
        for scale_idx, (size, count) in enumerate(zip(sizes, counts)):
            final = scale_idx == len(sizes) - 1
            target = resize_tensor(content, size)
            if len(sizes) > 1 and style_images:
                _style_targets_for_scale(
                    loss, style_images, style_weights, size[0] / content.shape[-2]
                )
            # the photo's features in the precision the image's are taken in: the content term
            # is exactly 0 at the photo (bf16 features of both, compared in fp32)
            with _autocast(precision, device):
                content_feats = loss.content_features(_memory_format(target, channels_last))
            x0 = (
                initial_image(target, init, noise, generator)
                if image is None
                else resize_tensor(image, size)
            )
            # contiguous: images from PIL are channels-last views, which L-BFGS cannot .view()
            x = x0.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
            opt = _make_optimizer(optimizer, x, lr)
            scale_best = {"loss": math.inf, "image": x0.detach().clone()}

            def closure(
                x=x,
                content_feats=content_feats,
                scale_idx=scale_idx,
                final=final,
                size=size,
                scale_best=scale_best,
            ):
                x.grad = None
                current = x.clamp(0, 1)
                with _autocast(precision, device):  # bf16: the VGG; Grams and losses stay fp32
                    terms = loss(_memory_format(current, channels_last), content_feats)
                total = terms["total"]
                total.backward()
                it = len(history) + 1
                value = float(total.detach())
                row = {"iteration": it, "scale": scale_idx, "height": size[0], "width": size[1]}
                # every term, per layer too ("style/block5_conv1", unweighted): where the loss sits
                row.update({k: float(v.detach()) for k, v in terms.items()})
                row["time_s"] = round(time.perf_counter() - start, 4)
                history.append(row)
                if value < scale_best["loss"]:
                    scale_best.update(loss=value, image=current.detach().clone())
                    if final:
                        best.update(loss=value, iteration=it, image=scale_best["image"])
                if save_every and on_save is not None and it % save_every == 0:
                    on_save(it, current.detach())
                if bar is not None:
                    bar.set_postfix_str(_postfix(terms, size), refresh=False)
                    bar.update(1)
                return total

            if optimizer == "lbfgs":
                for _ in range(count):
                    opt.step(closure)
            else:
                for _ in range(count):
                    closure()
                    opt.step()
                    with torch.no_grad():
                        x.clamp_(0, 1)
            # the next scale starts from this scale's best image, not a possible last-step blow-up
            image = scale_best["image"]
            del opt, x

    if bar is not None:
        bar.close()
    return GatysResult(
        image=best["image"].to(device),
        best_loss=best["loss"],
        best_iteration=best["iteration"],
        history=history,
        sizes=sizes,
        iterations_per_scale=counts,
        wall_time_s=time.perf_counter() - start,
        precision=precision,
    )


def reference_rendering(
    content: torch.Tensor, loss: PerceptualLoss, iterations: int, progress: bool = False
) -> GatysResult:
    """The Gatys rendering a feed-forward network is compared with (evaluate.py, the judge table):
    L-BFGS from the photo at one scale, seeded, so every caller's reference is the same picture."""
    return stylize_gatys(
        content,
        loss,
        iterations=iterations,
        optimizer="lbfgs",
        init="content",
        scales=None,
        seed=0,
        progress=progress,
    )


def _postfix(terms: Mapping[str, torch.Tensor], size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]} " + " ".join(
        f"{k}={float(terms[k].detach()):.4g}" for k in LOSS_TERMS
    )


__all__ = ["GatysResult", "stylize_gatys", "initial_image", "scale_sizes", "split_iterations"]
