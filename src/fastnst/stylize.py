"""Stylizer: run a trained transformer fast on images, tensors, folders and videos.

    s = Stylizer.load("runs/mosaic", device="auto", backend="auto")
    s("photo.jpg")                    # path -> PIL image
    s(pil_image, strength=0.7)        # PIL -> PIL
    s(batch)                          # float tensor (B, 3, H, W) in [0, 1] -> same kind
    s(img, style="wave")              # a multi-style network: one of its styles ...
    s(img, mix={"starry_night": 0.7, "wave": 0.3})   # ... or a blend (weights normalised)

Backends: "torch" (eager; on CPU NNPACK convolutions and a fused inference forward, see
fastnst.accel; fp16 + channels_last on CUDA, optional torch.compile), "onnxruntime"
(CPU), "torchscript" (a TorchScript file). "auto" on CPU runs each image size class on the path
measured fastest on this machine (fastnst.accel.autotune: the torch path above, plain oneDNN,
channels_last, bf16 where the CPU has AMX / AVX512-BF16, onnxruntime), measured once and cached;
precision="fp32" keeps it to fp32 paths, backend="torch" / precision="bf16" pin a path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from PIL import Image

from fastnst import accel
from fastnst.accel.cpu_tuning import warn_if_spinning
from fastnst.color import transfer_luminance
from fastnst.errors import FastNSTError, check_in_range
from fastnst.images import fit_size, open_rgb, pil_to_tensor, resize_tensor, tensor_to_pil
from fastnst.margin import network_margin, paint_with_margin, photo_margin
from fastnst.memory import (
    MemoryLimitError,
    check_max_memory_gb,
    estimate_bytes,
    gb,
    largest_fitting_size,
    limit_bytes,
    network_size,
)
from fastnst.runners import TorchRunner, open_network
from fastnst.stroke import (
    blended_stroke_scale,
    check_stroke_scale,
    combined_stroke_scale,
    network_stroke_scale,
    network_stroke_scales,
    paint_at_scale,
)
from fastnst.tiling import tiled_enlarged_forward, tiled_forward


def _check_positive(name: str, value, minimum: int = 1):
    if value is None:
        return None
    try:
        int(value)
    except (TypeError, ValueError):
        raise FastNSTError(f"{name} must be a whole number (or null), got {value!r}") from None
    if int(value) < minimum:
        raise FastNSTError(f"{name} must be at least {minimum} (or null), got {value}")
    return int(value)


# options that a call can override (Stylizer attributes of the same name are the defaults)
_PER_CALL_OPTIONS = (
    "size",
    "preserve_color",
    "strength",
    "tile",
    "tile_overlap",
    "stroke_scale",
    "max_memory_gb",
)
# a tile size that bounds the network's memory and still runs fast (the hint of a refusal)
SUGGESTED_TILE = 512


def network_name(source) -> str:
    """How messages name a network: a bundled one by its style name (`six_styles`), never its
    install path; any other by the path it was opened from."""
    from fastnst import zoo

    path = Path(str(source))
    return path.stem if path.suffix == ".pt" and path.parent == zoo.ZOO_DIR else str(source)


def _is_out_of_memory(error: BaseException) -> bool:
    """An allocation failure: MemoryError, torch's OutOfMemoryError (CUDA), the CPU allocator's
    RuntimeError ("can't allocate memory") or onnxruntime's ("Failed to allocate memory")."""
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "allocate memory" in text
    )


# smallest side the network runs at (its 9x9 reflection padding and two stride-2 stages need it)
MIN_SIDE = 16


class Stylizer:
    """A loaded transformer plus the options of how to apply it. Use `Stylizer.load`.

    Options (constructor/load keyword arguments, each overridable per call):
        size: longer side in px the input is resized to (None keeps the input size), for
            every kind of input: PIL images, paths and tensors alike (a tensor result then has
            the resized height and width, not the input's).
        preserve_color: keep the photo's colours (luminance-only transfer).
        strength: 0..1 blend with the photo; 0 returns the (resized) photo exactly.
        tile: tile size in px for huge images (None = whole image at once); needs a fastnst
            network (.pt/.ckpt/run dir), since tiles reuse instance-norm statistics.
        tile_overlap: px shared by neighbouring tiles (default tile // 4).
            With tile, a stroke scale below 1 enlarges the photo tile by tile
            (`fastnst.tiling.tiled_enlarged_forward`): memory stays bounded by the tile.
        max_memory_gb: the memory a call may take (default: what the system reports available);
            a call whose estimate (`fastnst.memory`) does not fit is refused before it starts,
            naming the largest size= that fits.
        stroke_scale: how large the network paints, relative to the scale it was made for
            (default 1.0). 2.0 runs the network on the photo at half size, brings the painting
            back to full size and adds back the photo's fine luminance detail that the half size
            lost: strokes twice as large, edges kept. Below 1.0 the network runs on an enlarged
            photo (finer strokes). A network file may carry its own scale (`meta["stroke_scale"]`,
            from its style preset: a network that learnt the painting's motifs at half size so
            that its small training crops hold them paints at 2); stroke_scale multiplies it.
        batch_size: images per forward pass in `stylize_many` (folders, videos).
        style: a multi-style network's style by name (None: its first style).
        mix: a blend of a multi-style network's styles, {name: weight} (normalised to sum 1):
            the scales and shifts of the styles interpolated.
    """

    def __init__(
        self,
        runner,
        net: torch.nn.Module | None = None,
        *,
        source: str | None = None,
        meta: dict | None = None,
        size: int | None = None,
        preserve_color: bool = False,
        strength: float = 1.0,
        tile: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 4,
        styles: list[str] | None = None,
        style: str | None = None,
        mix: dict | None = None,
        stroke_scale: float = 1.0,
        max_memory_gb: float | None = None,
    ):
        self.runner, self.net, self.source, self.meta = runner, net, source, dict(meta or {})
        self.name = network_name(source)
        # the style names of a multi-style network, None for a single-style one
        self.styles = (
            list(styles) if styles else (list(net.styles) if getattr(net, "styles", None) else None)
        )
        self.style, self.mix = style, None if mix is None else dict(mix)
        weights = self.style_weights(style, mix)  # an unknown style name fails now
        # the file's own scale, checked once (a one-line error naming the network); a multi-style
        # file may carry one per style (meta stroke_scales): a blend paints at their mean
        self._native_stroke_scale = network_stroke_scale(self.meta, source=self.name)
        self._native_stroke_scales = network_stroke_scales(self.meta, self.styles, source=self.name)
        self.margin = network_margin(self.meta, source=self.name)  # network pixels (fastnst.margin)
        defaults = self._check_options(
            {
                "size": size,
                "preserve_color": preserve_color,
                "strength": strength,
                "tile": tile,
                "tile_overlap": tile_overlap,
                "stroke_scale": stroke_scale,
                "max_memory_gb": max_memory_gb,
            }
        )
        # the combined scale (the user's times the network's own, bounded) of the defaults
        self.combined_stroke_scale = combined_stroke_scale(
            defaults["stroke_scale"], self._native_for(weights)
        )
        for key, value in defaults.items():
            setattr(self, key, value)
        self.batch_size = _check_positive("batch_size", batch_size)

    @property
    def native_stroke_scale(self) -> float:
        """The scale the network paints at for stroke_scale=1 (with its default style): its
        file's `stroke_scale` (its style preset's), 1.0 for networks that carry none."""
        return self.native_stroke_scale_of(self.style, self.mix)

    def native_stroke_scale_of(self, style: str | None = None, mix: dict | None = None) -> float:
        """The scale a multi-style network paints `style` (or the blend `mix`) at for
        stroke_scale=1: the style's own (meta stroke_scales), a blend's the mean of its styles'."""
        return self._native_for(self.style_weights(style, mix))

    def _native_for(self, weights: torch.Tensor | None) -> float:
        if weights is None or self._native_stroke_scales is None:
            return self._native_stroke_scale
        return blended_stroke_scale(self._native_stroke_scales, weights)

    @property
    def backend(self) -> str:
        return self.runner.name

    def style_weights(
        self, style: str | None = None, mix: dict | None = None
    ) -> torch.Tensor | None:
        """The style weights (N,) the network runs with (a multi-style network's first style
        without style/mix); None for a single-style network."""
        from fastnst.multistyle import style_weights

        weights = style_weights(self.styles, style, mix, source=self.name)
        if weights is None and self.styles:
            weights = torch.zeros(len(self.styles))
            weights[0] = 1.0
        return weights

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        backend: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        trust_model_file: bool = False,
        **options,
    ) -> Stylizer:
        """Load an exported .pt, a Lightning .ckpt, a run directory, an .onnx or a TorchScript file
        (recognised by content) and pick the backend: "auto" = for fastnst networks on CPU the path
        measured fastest on this machine (`fastnst.accel.autotune`), torch elsewhere; the file's
        own runtime for ONNX and TorchScript files.

        .pt/.ckpt files are read with torch.load(weights_only=True) and refused when they hold
        anything but tensors and plain values; trust_model_file=True loads such (older or foreign)
        files by full unpickling, which can run code from the file. A style name that is not a
        file (`"the_scream"`) loads the bundled network of that style (`fastnst.zoo`).

        compile=True: on a GPU torch.compile; on a CPU with native bf16 (AVX512-BF16 or AMX)
        the compiled bf16 path (`fastnst.accel.compiled`), compiled on the first image unless
        this machine compiled it before (then it starts in about a second)."""
        opened = open_network(
            path, device, backend, precision, compile=compile, trust_model_file=trust_model_file
        )
        if getattr(getattr(opened.runner, "device", None), "type", "cpu") == "cpu":
            warn_if_spinning()
        return cls(
            opened.runner,
            opened.net,
            source=opened.source,
            meta=opened.meta,
            styles=opened.styles,
            **options,
        )

    # -- tensors ---------------------------------------------------------------------------

    def _check_options(self, values: dict) -> dict:
        """The one check of the per-call options, for the constructor's defaults and a call's
        overrides alike: each value given, checked (a one-line FastNSTError naming the option)."""
        checks = {
            "size": lambda v: _check_positive("size", v),
            "preserve_color": bool,
            "strength": lambda v: check_in_range("strength", v),
            "tile": lambda v: _check_positive("tile", v, minimum=16),
            "tile_overlap": lambda v: _check_positive("tile_overlap", v, minimum=0),
            "stroke_scale": lambda v: check_stroke_scale(v, source="stroke_scale"),
            "max_memory_gb": check_max_memory_gb,
        }
        checked = {key: checks[key](value) for key, value in values.items()}
        if checked.get("tile") and self.net is None:
            raise FastNSTError(
                f"{self.name}: tile needs a fastnst network (.pt, .ckpt or run dir), not an exported file"
            )
        return checked

    def _options(self, overrides: dict) -> dict:
        """The options of one call: the defaults, with the overrides (only those) checked."""
        overrides = dict(overrides)
        unknown = set(overrides) - {*_PER_CALL_OPTIONS, "style", "mix"}
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        opts = {k: getattr(self, k) for k in _PER_CALL_OPTIONS}
        if "style" in overrides or "mix" in overrides:  # a per-call style replaces the default one
            opts["weights"] = self.style_weights(
                overrides.pop("style", None), overrides.pop("mix", None)
            )
        else:
            opts["weights"] = self.style_weights(self.style, self.mix)
        opts.update(self._check_options(overrides))
        # the combined scale: the user's times the network's own for this call's style(s)
        opts["scale"] = combined_stroke_scale(
            opts["stroke_scale"], self._native_for(opts["weights"])
        )
        return opts

    # -- memory ----------------------------------------------------------------------------

    def _tiles(self, height: int, width: int, opts: dict) -> bool:
        """Whether a photo of (height, width) (after size=) runs in tiles."""
        big = network_size(height, width, opts["scale"])
        return bool(opts["tile"]) and self.net is not None and max(big) > opts["tile"]

    def memory_estimate(self, height: int, width: int, batch: int = 1, **overrides) -> int:
        """Bytes a call on `batch` photos of (height, width) would take at its peak, beyond what
        is already held (fastnst.memory.estimate_bytes): the size after size=, the combined
        stroke scale, tiling and the network's width."""
        opts = self._options(overrides)
        height, width = fit_size(height, width, opts["size"])
        return self._estimate(height, width, batch, opts)

    def _estimate(self, height: int, width: int, batch: int, opts: dict, tile=None) -> int:
        margin = photo_margin(self.margin, opts["scale"])  # the network paints the margin too
        height, width = height + 2 * margin, width + 2 * margin
        channels = self.net.config["channels"][0] if self.net is not None else None
        tiled = tile or (opts["tile"] if self._tiles(height, width, opts) else None)
        return estimate_bytes(
            height, width, scale=opts["scale"], tile=tiled, batch=batch, first_channels=channels
        )

    def check_memory(self, height: int, width: int, batch: int = 1, **overrides) -> None:
        """Refuse (MemoryLimitError, one line) a call on `batch` photos of (height, width) whose
        estimate exceeds max_memory_gb (default: the memory available), naming the largest
        size= that fits and whether tile= would; before anything large is allocated."""
        self._check_memory(height, width, batch, self._options(overrides))

    def _check_memory(self, height: int, width: int, batch: int, opts: dict) -> None:
        h, w = fit_size(height, width, opts["size"])
        limit, named = limit_bytes(opts["max_memory_gb"], getattr(self.runner, "device", None))
        need = self._estimate(h, w, batch, opts)
        if limit is None or need <= limit:
            return
        best = largest_fitting_size(
            lambda side: self._estimate(*fit_size(h, w, side), batch, opts) <= limit, max(h, w)
        )
        big_h, big_w = network_size(h, w, opts["scale"])
        runs_on = f", the network runs on {big_w}x{big_h}" if (big_h, big_w) != (h, w) else ""
        hints = [f"size={best} is the largest that fits" if best else "not even size=16 fits"]
        tiled = self._estimate(h, w, batch, opts, tile=SUGGESTED_TILE)
        if not opts["tile"] and self.net is not None and tiled <= limit:
            hints.append(f"or tile={SUGGESTED_TILE} at this size")
        over = f"the {gb(limit)} available" if named == "available" else named
        photos = f"{batch} photos of " if batch > 1 else ""
        raise MemoryLimitError(
            f"{photos}{w}x{h} px at stroke scale {opts['scale']:g}{runs_on}: needs about "
            f"{gb(need)} of memory, more than {over}; {', '.join(hints)}"
        )

    def _forward(
        self,
        photo: torch.Tensor,
        tile: int | None,
        tile_overlap: int | None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h, w = photo.shape[-2:]
        if min(h, w) < MIN_SIDE:
            # the network's reflection padding needs a few pixels per stage: run tiny images
            # upscaled, then bring the result back to the input size. Only the short side(s)
            # grow, so a 1 x 20000 strip runs at 16 x 20000, not 16 x 320000.
            big = resize_tensor(photo, (max(MIN_SIDE, h), max(MIN_SIDE, w)))
            return resize_tensor(self._forward(big, tile, tile_overlap, weights).float(), (h, w))
        if tile and max(h, w) > tile:
            runner = self.runner if isinstance(self.runner, TorchRunner) else None
            x = runner.prepare(photo) if runner else photo.float().cpu()
            with torch.no_grad():  # not inference_mode: callers may modify results in place
                style = None if weights is None else weights.to(x.device)
                return tiled_forward(
                    self.net, x, tile, tile_overlap, style=style, forward=accel.fused.forward
                ).float()
        return self.runner(photo) if weights is None else self.runner(photo, weights)

    def _paint(self, photo: torch.Tensor, opts: dict) -> torch.Tensor:
        """The network's output at the photo's size, painted with the network's mirrored margin
        (fastnst.margin) at the combined stroke scale opts["scale"]."""
        margin = photo_margin(self.margin, opts["scale"])
        return paint_with_margin(photo, margin, lambda x: self._paint_at_scale(x, opts))

    def _paint_at_scale(self, photo: torch.Tensor, opts: dict) -> torch.Tensor:
        """The network's output at the photo's size, painted at the combined stroke scale
        opts["scale"] (fastnst.stroke.paint_at_scale). Below 1 with tile=, the photo is
        enlarged tile by tile (fastnst.tiling.tiled_enlarged_forward), never whole."""
        scale = opts["scale"]
        h, w = photo.shape[-2:]
        if scale < 1.0 and min(h, w) >= MIN_SIDE and self._tiles(h, w, opts):
            runner = self.runner if isinstance(self.runner, TorchRunner) else None
            device = runner.device if runner else torch.device("cpu")
            weights = opts["weights"]
            return tiled_enlarged_forward(
                self.net,
                photo.to(device),
                network_size(h, w, scale),
                opts["tile"],
                opts["tile_overlap"],
                style=None if weights is None else weights.to(device),
                forward=accel.fused.forward,
                prepare=runner.prepare if runner else None,
            )
        return paint_at_scale(
            photo,
            scale,
            lambda x: self._forward(x, opts["tile"], opts["tile_overlap"], opts["weights"]),
        )

    def stylize_tensor(self, photo: torch.Tensor, **overrides) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> stylized (B, 3, H', W') float32 on the input's device."""
        opts = self._options(overrides)
        if photo.dim() != 4 or photo.shape[1] != 3:
            raise FastNSTError(
                f"expected an image tensor of shape (B, 3, H, W), got {tuple(photo.shape)}"
            )
        if not photo.is_floating_point():
            raise FastNSTError(f"expected a float image tensor in [0, 1], got {photo.dtype}")
        self._check_memory(*photo.shape[-2:], photo.shape[0], opts)
        try:
            return self._stylize(photo, opts)
        except Exception as e:
            if not _is_out_of_memory(e):
                raise
            h, w = fit_size(*photo.shape[-2:], opts["size"])
            raise MemoryLimitError(
                f"out of memory stylizing {w}x{h} px at stroke scale {opts['scale']:g} "
                f"(estimate {gb(self._estimate(h, w, photo.shape[0], opts))}); try a smaller "
                f"size=, tile={SUGGESTED_TILE} or a lower max_memory_gb="
            ) from None

    def _stylize(self, photo: torch.Tensor, opts: dict) -> torch.Tensor:
        out_device = photo.device
        photo = photo.float()
        if opts["size"]:
            photo = resize_tensor(photo, fit_size(*photo.shape[-2:], opts["size"]))
        if opts["strength"] == 0.0:
            return photo.clone()
        stylized = self._paint(photo, opts).to(out_device)
        if opts["preserve_color"]:
            stylized = transfer_luminance(stylized, photo)
        if opts["strength"] < 1.0:
            stylized = torch.lerp(photo, stylized, opts["strength"])
        return stylized.clamp(0, 1)

    def __call__(self, image, **overrides):
        """Stylize a PIL image (-> PIL), an image path (-> PIL) or a float tensor in [0, 1] of
        shape (B, 3, H, W) or (3, H, W) (-> tensor of the same rank). With size= (here or at
        construction) tensors are resized too: the result has the resized height and width."""
        if isinstance(image, (str, os.PathLike)):
            path, image = image, open_rgb(image)
            try:
                return self(image, **overrides)
            except MemoryLimitError as e:  # name the file
                raise MemoryLimitError(f"{path}: {e}") from None
        if isinstance(image, Image.Image):
            return tensor_to_pil(
                self.stylize_tensor(pil_to_tensor(image.convert("RGB")), **overrides)
            )
        if isinstance(image, torch.Tensor):
            if image.dim() == 3:
                return self.stylize_tensor(image.unsqueeze(0), **overrides)[0]
            return self.stylize_tensor(image, **overrides)
        raise TypeError(f"expected a PIL image, a path or a tensor, got {type(image).__name__}")

    def expect_many(self) -> None:
        """Many images follow (a folder, a video, a server): on CPU the runner may now compile
        the compiled bf16 path where it is not cached yet (`runners.AutoRunner.allow_compile`)."""
        allow = getattr(self.runner, "allow_compile", None)
        if allow is not None:
            allow()

    def stylize_many(
        self, images: Iterable[torch.Tensor], batch_size: int | None = None, **overrides
    ) -> Iterator[torch.Tensor]:
        """Stylize a stream of (1, 3, H, W) or (3, H, W) tensors, `batch_size` per forward pass
        (consecutive images of equal size share a batch); yields results in order, each of the
        rank of its input."""
        batch_size = _check_positive("batch_size", batch_size) or self.batch_size
        self.expect_many()
        pending: list[torch.Tensor] = []
        ranks: list[int] = []
        opts = self._options(overrides)
        limit, _ = limit_bytes(opts["max_memory_gb"], getattr(self.runner, "device", None))

        def fits(image: torch.Tensor, batch: int) -> bool:
            """Whether a batch of `batch` images of its size fits the memory limit (a batch that
            does not is cut short; an image that does not fit alone is refused in one line)."""
            if limit is None:
                return True
            h, w = fit_size(*image.shape[-2:], opts["size"])
            return self._estimate(h, w, batch, opts) <= limit

        def flush():
            for result, rank in zip(
                self.stylize_tensor(torch.cat(pending), **overrides).split(1), ranks
            ):
                yield result[0] if rank == 3 else result

        for image in images:
            rank = image.dim()
            if rank == 3:  # a (3, H, W) frame, as __call__ takes it
                image = image.unsqueeze(0)
            if pending and (
                len(pending) >= batch_size
                or image.shape != pending[0].shape
                or not fits(image, len(pending) + 1)
            ):
                yield from flush()
                pending, ranks = [], []
            pending.append(image)
            ranks.append(rank)
        if pending:
            yield from flush()


__all__ = ["Stylizer", "MIN_SIDE"]
