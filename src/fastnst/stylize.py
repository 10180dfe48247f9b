"""Stylizer: run a trained transformer fast on images, tensors, folders and videos.

    s = Stylizer.load("runs/mosaic", device="auto", backend="auto")
    s("photo.jpg")                    # path -> PIL image
    s(pil_image, strength=0.7)        # PIL -> PIL
    s(batch)                          # float tensor (B, 3, H, W) in [0, 1] -> same kind
    s(img, style="wave")              # a multi-style network: one of its styles ...
    s(img, mix={"starry_night": 0.7, "wave": 0.3})   # ... or a blend (weights normalised)

Backends: "torch" (eager; on CPU NNPACK convolutions and a fused inference forward, see
fastnst.accel; fp16 + channels_last on CUDA, optional torch.compile), "onnxruntime"
(CPU), "torchscript" (a TorchScript file). "auto" is torch: on a 2-core CPU it ran 1.4x faster
than onnxruntime at 512 px (README "Speed and memory").
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig
from PIL import Image

from fastnst import accel, zoo
from fastnst.accel.cpu_tuning import keep_freed_memory
from fastnst.color import transfer_luminance
from fastnst.config import resolve_user_path
from fastnst.errors import FastNSTError
from fastnst.export import load_network, model_kind, onnx_bytes
from fastnst.images import (
    SAVE_FORMATS,
    find_images,
    fit_size,
    open_rgb,
    pil_to_tensor,
    resize_tensor,
    save_image,
    tensor_to_pil,
)
from fastnst.tiling import tiled_forward
from fastnst.zoo import resolve_model

BACKENDS = ("auto", "torch", "onnxruntime", "torchscript")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise FastNSTError(f"device must be auto, cpu or cuda[:N], got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FastNSTError("device=cuda requested but CUDA is not available (use device=cpu or auto)")
    return dev


class TorchRunner:
    """Eager (or compiled) PyTorch: (B,3,H,W) float32 -> float32, on `device` in `dtype`."""

    name = "torch"

    def __init__(self, net: torch.nn.Module, device: torch.device, dtype: torch.dtype, compile: bool = False):
        self.device, self.dtype = device, dtype
        # channels_last lets cuDNN use tensor-core NHWC kernels; on CPU it measured no faster.
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.net = net.eval().to(device=device, dtype=dtype, memory_format=self.memory_format)
        self.forward = torch.compile(self.net, dynamic=True) if compile else self.net
        if not compile and device.type == "cpu" and dtype == torch.float32:
            # opt into fastnst.accel: NNPACK convs, sub-pixel upsampling and the fused forward
            self.forward = accel.fast_forward(accel.accelerate(self.net))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: callers may modify results in place
            if style is None:
                return self.forward(self.prepare(x)).float()
            return self.forward(self.prepare(x), style.to(self.device)).float()


class OnnxRunner:
    """onnxruntime on CPU with all graph optimizations and one intra-op thread per torch thread."""

    name = "onnxruntime"

    def __init__(self, model: bytes | str, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        # a multi-style network's second input: the style weights (N,)
        self.style_input = inputs[1].name if len(inputs) > 1 else None

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        feeds = {self.input_name: array}
        if self.style_input is not None:
            if style is None:
                raise FastNSTError("this ONNX network is multi-style: pass style= or mix=")
            feeds[self.style_input] = style.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, feeds)[0])


class ScriptRunner:
    """A TorchScript file (what export.py format=torchscript writes)."""

    name = "torchscript"

    def __init__(self, module, device: torch.device, dtype: torch.dtype):
        self.module, self.device, self.dtype = module.to(device=device, dtype=dtype).eval(), device, dtype

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: callers may modify results in place
            x = x.to(device=self.device, dtype=self.dtype)
            if style is None:
                return self.module(x).float()
            return self.module(x, style.to(device=self.device, dtype=self.dtype)).float()


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise FastNSTError(f"{name} must be between 0 and 1, got {value}")
    return value


def _check_positive(name: str, value, minimum: int = 1):
    if value is None:
        return None
    if int(value) < minimum:
        raise FastNSTError(f"{name} must be at least {minimum} (or null), got {value}")
    return int(value)


# smallest side the network runs at (its 9x9 reflection padding and two stride-2 stages need it)
MIN_SIDE = 16


class Stylizer:
    """A loaded transformer plus the options of how to apply it. Use `Stylizer.load`.

    Options (constructor/load keyword arguments, each overridable per call):
        size: longer side in px the input is resized to (None keeps the input size).
        preserve_color: keep the photo's colours (luminance-only transfer).
        strength: 0..1 blend with the photo; 0 returns the (resized) photo exactly.
        tile: tile size in px for huge images (None = whole image at once); needs a fastnst
            network (.pt/.ckpt/run dir), since tiles reuse instance-norm statistics.
        tile_overlap: px shared by neighbouring tiles (default tile // 4).
        batch_size: images per forward pass in `stylize_many` (folders, videos).
        style: a multi-style network's style by name (None: its first style).
        mix: a blend of a multi-style network's styles, {name: weight} (normalised to sum 1):
            the scales and shifts of the styles interpolated.
    """

    def __init__(self, runner, net: torch.nn.Module | None = None, *, source: str | None = None, meta: dict | None = None,
                 size: int | None = None, preserve_color: bool = False, strength: float = 1.0,
                 tile: int | None = None, tile_overlap: int | None = None, batch_size: int = 1,
                 styles: list[str] | None = None, style: str | None = None, mix: dict | None = None):
        self.runner, self.net, self.source, self.meta = runner, net, source, dict(meta or {})
        # the style names of a multi-style network, None for a single-style one
        self.styles = list(styles) if styles else (list(net.styles) if getattr(net, "styles", None) else None)
        self.style, self.mix = style, None if mix is None else dict(mix)
        self.style_weights(style, mix)  # an unknown style name fails now
        self.size = _check_positive("size", size)
        self.preserve_color = bool(preserve_color)
        self.strength = _check_unit("strength", strength)
        self.tile = _check_positive("tile", tile, minimum=16)
        self.tile_overlap = tile_overlap
        self.batch_size = _check_positive("batch_size", batch_size)
        if self.tile and self.net is None:
            raise FastNSTError(f"{source}: tile needs a fastnst network (.pt, .ckpt or run dir), not an exported file")

    @property
    def backend(self) -> str:
        return self.runner.name

    def style_weights(self, style: str | None = None, mix: dict | None = None) -> torch.Tensor | None:
        """The style weights (N,) the network runs with (a multi-style network's first style
        without style/mix); None for a single-style network."""
        from fastnst.multistyle import style_weights

        weights = style_weights(self.styles, style, mix, source=str(self.source))
        if weights is None and self.styles:
            weights = torch.zeros(len(self.styles))
            weights[0] = 1.0
        return weights

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", backend: str = "auto", precision: str = "auto",
             compile: bool = False, trust_model_file: bool = False, **options) -> Stylizer:
        """Load an exported .pt, a Lightning .ckpt, a run directory, an .onnx or a TorchScript file
        (recognised by content) and pick the backend: "auto" = torch for fastnst networks (the
        fastest measured on CPU too), the file's own runtime for ONNX and TorchScript files.

        .pt/.ckpt files are read with torch.load(weights_only=True) and refused when they hold
        anything but tensors and plain values; trust_model_file=True loads such (older or foreign)
        files by full unpickling, which can run code from the file. A style name that is not a
        file (`"the_scream"`) loads the bundled network of that style (`fastnst.zoo`)."""
        path = resolve_model(path)
        if backend not in BACKENDS:
            raise FastNSTError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        dev = resolve_device(device)
        if dev.type == "cpu":
            keep_freed_memory()  # feature maps reuse freed memory instead of page-faulting it in
        kind = model_kind(path)
        if precision == "auto":
            precision = "fp16" if dev.type == "cuda" else "fp32"
        if precision not in PRECISIONS:
            raise FastNSTError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
        dtype = PRECISIONS[precision]
        if kind == "onnx":
            if backend not in ("auto", "onnxruntime"):
                raise FastNSTError(f"{path}: an ONNX file runs only with backend=onnxruntime")
            _need_onnxruntime(path)
            _need_cpu_fp32(path, dev, dtype, "onnxruntime")
            meta = _onnx_meta(path)
            return cls(OnnxRunner(str(path)), None, source=str(path), meta=meta, styles=meta.get("styles"), **options)
        if kind == "torchscript":
            if backend not in ("auto", "torch", "torchscript"):
                raise FastNSTError(f"{path}: a TorchScript file runs only with backend=torchscript (or torch)")
            extra = {"fastnst.json": ""}
            try:
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            except Exception as e:
                raise FastNSTError(f"{path}: cannot load TorchScript model ({type(e).__name__})") from None
            return cls(ScriptRunner(module, dev, dtype), None, source=str(path), styles=_script_styles(extra), **options)
        net, meta = load_network(path, trust_model_file=trust_model_file)
        if backend == "auto":
            backend = "torch"
        if backend == "torchscript":
            raise FastNSTError(f"{path}: backend=torchscript needs a TorchScript file (export.py format=torchscript)")
        if backend == "onnxruntime":
            _need_onnxruntime(path)
            _need_cpu_fp32(path, dev, dtype, "onnxruntime")
            runner = OnnxRunner(onnx_bytes(net, meta))
            # the torch net stays on CPU for tiled runs (instance-norm statistics are handed in)
            return cls(runner, accel.accelerate(net), source=str(path), meta=meta, **options)
        runner = TorchRunner(net, dev, dtype, compile=compile)
        return cls(runner, runner.net, source=str(path), meta=meta, **options)

    # -- tensors ---------------------------------------------------------------------------

    def _options(self, overrides: dict) -> dict:
        unknown = set(overrides) - {"size", "preserve_color", "strength", "tile", "tile_overlap", "style", "mix"}
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        opts = {k: getattr(self, k) for k in ("size", "preserve_color", "strength", "tile", "tile_overlap")}
        if "style" in overrides or "mix" in overrides:  # a per-call style replaces the default one
            opts["weights"] = self.style_weights(overrides.pop("style", None), overrides.pop("mix", None))
        else:
            opts["weights"] = self.style_weights(self.style, self.mix)
        opts.update(overrides)
        opts["strength"] = _check_unit("strength", opts["strength"])
        opts["size"] = _check_positive("size", opts["size"])
        opts["tile"] = _check_positive("tile", opts["tile"], minimum=16)
        if opts["tile"] and self.net is None:
            raise FastNSTError(f"{self.source}: tile needs a fastnst network (.pt, .ckpt or run dir), not an exported file")
        return opts

    def _forward(self, photo: torch.Tensor, tile: int | None, tile_overlap: int | None,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
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
                return tiled_forward(self.net, x, tile, tile_overlap, style=style, forward=accel.fused.forward).float()
        return self.runner(photo) if weights is None else self.runner(photo, weights)

    def stylize_tensor(self, photo: torch.Tensor, **overrides) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> stylized (B, 3, H', W') float32 on the input's device."""
        opts = self._options(overrides)
        if photo.dim() != 4 or photo.shape[1] != 3:
            raise FastNSTError(f"expected an image tensor of shape (B, 3, H, W), got {tuple(photo.shape)}")
        if not photo.is_floating_point():
            raise FastNSTError(f"expected a float image tensor in [0, 1], got {photo.dtype}")
        out_device = photo.device
        photo = photo.float()
        if opts["size"]:
            photo = resize_tensor(photo, fit_size(*photo.shape[-2:], opts["size"]))
        if opts["strength"] == 0.0:
            return photo.clone()
        stylized = self._forward(photo, opts["tile"], opts["tile_overlap"], opts["weights"]).to(out_device)
        if opts["preserve_color"]:
            stylized = transfer_luminance(stylized, photo)
        if opts["strength"] < 1.0:
            stylized = torch.lerp(photo, stylized, opts["strength"])
        return stylized.clamp(0, 1)

    def __call__(self, image, **overrides):
        """Stylize a PIL image (-> PIL), an image path (-> PIL) or a float tensor in [0, 1] of
        shape (B, 3, H, W) or (3, H, W) (-> tensor of the same rank)."""
        if isinstance(image, (str, os.PathLike)):
            image = open_rgb(image)
        if isinstance(image, Image.Image):
            return tensor_to_pil(self.stylize_tensor(pil_to_tensor(image.convert("RGB")), **overrides))
        if isinstance(image, torch.Tensor):
            if image.dim() == 3:
                return self.stylize_tensor(image.unsqueeze(0), **overrides)[0]
            return self.stylize_tensor(image, **overrides)
        raise TypeError(f"expected a PIL image, a path or a tensor, got {type(image).__name__}")

    def stylize_many(self, images: Iterable[torch.Tensor], batch_size: int | None = None, **overrides) -> Iterator[torch.Tensor]:
        """Stylize a stream of (1, 3, H, W) or (3, H, W) tensors, `batch_size` per forward pass
        (consecutive images of equal size share a batch); yields results in order, each of the
        rank of its input."""
        batch_size = _check_positive("batch_size", batch_size) or self.batch_size
        pending: list[torch.Tensor] = []
        ranks: list[int] = []

        def flush():
            for result, rank in zip(self.stylize_tensor(torch.cat(pending), **overrides).split(1), ranks):
                yield result[0] if rank == 3 else result

        for image in images:
            rank = image.dim()
            if rank == 3:  # a (3, H, W) frame, as __call__ takes it
                image = image.unsqueeze(0)
            if pending and (len(pending) >= batch_size or image.shape != pending[0].shape):
                yield from flush()
                pending, ranks = [], []
            pending.append(image)
            ranks.append(rank)
        if pending:
            yield from flush()


def _need_onnxruntime(path: Path) -> None:
    if not onnxruntime_available():
        raise FastNSTError(f"{path}: backend onnxruntime needs `pip install fastnst[onnx]` (onnxruntime is not installed)")


def _need_cpu_fp32(path: Path, device: torch.device, dtype: torch.dtype, backend: str) -> None:
    if device.type != "cpu" or dtype != torch.float32:
        raise FastNSTError(f"{path}: backend {backend} runs on CPU in fp32 here (use backend=torch for {device}/{dtype})")


def _onnx_meta(path: Path) -> dict:
    import json

    try:
        import onnx

        props = {p.key: p.value for p in onnx.load_model(str(path), load_external_data=False).metadata_props}
        saved = json.loads(props.get("fastnst", "{}"))
    except Exception:  # foreign ONNX files carry no fastnst metadata
        return {}
    meta = dict(saved.get("meta", {}))
    if saved.get("config", {}).get("styles"):
        meta["styles"] = list(saved["config"]["styles"])
    return meta


def _script_styles(extra: dict) -> list[str] | None:
    """The style names stored beside a TorchScript file (export.py's fastnst.json)."""
    import json

    try:
        return json.loads(extra.get("fastnst.json") or "{}").get("config", {}).get("styles")
    except (ValueError, AttributeError):
        return None


# -- command line ----------------------------------------------------------------------------

def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"fastnst: {message}", file=sys.stderr)


def _default_output(src: Path) -> Path:
    if src.is_dir():
        return src.with_name(f"{src.name}_stylized")
    from fastnst.video import is_video_file

    out = src.with_name(f"{src.stem}_stylized{src.suffix}")
    # image formats we cannot write (tif, gif, ppm) become png, as in folders
    return out if is_video_file(src) else _image_output_name(out)


def _image_output_name(path: Path) -> Path:
    # formats we cannot write (tif, gif, ppm) become png
    return path if path.suffix.lower() in SAVE_FORMATS else path.with_suffix(".png")


def stylize_image_file(stylizer: Stylizer, src: Path, dst: Path, overwrite: bool = False) -> bool:
    """One image file -> one output file; False (with a note) when the output exists."""
    if dst.is_dir():
        dst = dst / _image_output_name(Path(src.name))
    if dst.resolve() == src.resolve():
        raise FastNSTError(f"{dst}: output is the input file; refusing to overwrite an input")
    if dst.exists() and not overwrite:
        _note(f"{dst}: exists, skipped (overwrite=true replaces it)")
        return False
    save_image(stylizer(src), dst, overwrite=overwrite)
    return True


def stylize_folder(stylizer: Stylizer, src: Path, dst: Path, overwrite: bool = False, progress: bool = True) -> tuple[int, list[str]]:
    """Every image under `src` (recursively) -> the same relative path under `dst`.
    Unreadable files are reported and skipped; returns (written, failure messages)."""
    from tqdm import tqdm

    from fastnst.errors import ImageError
    from fastnst.images import load_image

    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise FastNSTError(f"{dst}: output folder must not be the input folder or inside it")
    images = find_images(src)
    if not images:
        raise FastNSTError(f"{src}: no images found in this folder (searched recursively)")
    jobs, skipped = [], 0
    for path in images:
        out = dst / _image_output_name(path.relative_to(src))
        if out.exists() and not overwrite:
            skipped += 1
            continue
        jobs.append((path, out))
    if skipped:
        _note(f"{skipped} existing output(s) in {dst} kept (overwrite=true replaces them)")
    failures: list[str] = []
    loaded: deque[Path] = deque()  # outputs of images read but not yet stylized, in order

    def readable():
        for path, out in jobs:
            try:
                image = load_image(path)
            except ImageError as e:
                failures.append(str(e))
                _note(f"error: {e}")
                bar.update(1)
                continue
            loaded.append(out)
            yield image

    written = 0
    with tqdm(total=len(jobs), unit="img", disable=not progress, desc="stylize") as bar:
        # stylize_many reads ahead up to a batch; each result belongs to the oldest read image
        for result in stylizer.stylize_many(readable()):
            try:
                save_image(result, loaded.popleft(), overwrite=overwrite)
                written += 1
            except ImageError as e:  # e.g. a full disk: report it, go on with the other images
                failures.append(str(e))
                _note(f"error: {e}")
            bar.update(1)
    return written, failures


def _model_argument(cfg: DictConfig):
    """model=<run dir | file> or, without it, style=<bundled style> (fastnst.zoo)."""
    model, style = cfg.get("model"), cfg.get("style")
    if model not in (None, "", "???"):
        return resolve_model(model)  # style= then picks a style inside a multi-style network
    if style is None:
        raise FastNSTError("model=<run dir | model file> or style=<bundled style> is required "
                           f"(bundled: {', '.join(zoo.bundled_styles()) or 'none'}; styles=list describes them)")
    return zoo.bundled_network(str(style))


def _style_options(cfg: DictConfig) -> dict:
    """style=/mix= for a multi-style network given with model= (style= alone names a bundled network)."""
    from omegaconf import OmegaConf

    mix = cfg.get("mix")
    if mix is not None and not OmegaConf.is_dict(mix):
        raise FastNSTError(f"mix must be a mapping of style names to weights, e.g. 'mix={{starry_night: 0.7, wave: 0.3}}', "
                           f"got mix={mix}")
    has_model = cfg.get("model") not in (None, "", "???")
    if mix is not None and not has_model:
        raise FastNSTError("mix= blends the styles of a multi-style network: pass model=<run dir | file> too")
    style = cfg.get("style") if has_model else None
    return {"style": None if style is None else str(style),
            "mix": None if mix is None else OmegaConf.to_container(mix, resolve=True)}


def stylize_cli(cfg: DictConfig) -> None:
    """`python stylize.py model=... input=... output=...` (image, folder or video)."""
    from fastnst.video import check_temporal, is_video_file, stylize_video

    if cfg.get("styles") is not None:
        if str(cfg.styles) != "list":
            raise FastNSTError(f"styles=list prints the bundled networks, got styles={cfg.styles}")
        print(zoo.listing())
        return
    style_options = _style_options(cfg)
    model = _model_argument(cfg)
    temporal = check_temporal(cfg.get("temporal"), cfg.get("temporal_strength", 0.5))
    if cfg.get("input") in (None, "", "???"):
        raise FastNSTError("input=... is required (an image, a folder or a video)")
    src = resolve_user_path(cfg.input)
    if not src.exists():
        raise FastNSTError(f"{src}: input not found")
    if temporal[0] and not is_video_file(src):
        raise FastNSTError(f"{src}: temporal={temporal[0]} smooths videos (.mp4, .webm, ...), not images or folders")
    dst = resolve_user_path(cfg.output) if cfg.get("output") else _default_output(src)
    overwrite = bool(cfg.get("overwrite", False))
    stylizer = Stylizer.load(
        model,
        device=str(cfg.get("device", "auto")),
        backend=str(cfg.get("backend", "auto")),
        precision=str(cfg.get("precision", "auto")),
        compile=bool(cfg.get("compile", False)),
        trust_model_file=bool(cfg.get("trust_model_file", False)),
        size=cfg.get("size"),
        preserve_color=bool(cfg.get("preserve_color", False)),
        strength=float(cfg.get("strength", 1.0)),
        tile=cfg.get("tile"),
        batch_size=int(cfg.get("batch_size", 4)),
        **style_options,
    )
    if src.is_dir():
        written, failures = stylize_folder(stylizer, src, dst, overwrite=overwrite)
        print(f"wrote {written} image(s) to {dst}")
        if failures:
            raise FastNSTError(f"{len(failures)} of {written + len(failures)} image(s) failed (first: {failures[0]})")
    elif is_video_file(src):
        if dst.resolve() == src.resolve():
            raise FastNSTError(f"{dst}: output is the input file; refusing to overwrite an input")
        if dst.exists() and not overwrite:
            _note(f"{dst}: exists, skipped (overwrite=true replaces it)")
            return
        frames = stylize_video(stylizer, src, dst, overwrite=overwrite, temporal=temporal[0],
                               temporal_strength=temporal[1])
        print(f"wrote {dst} ({frames} frames)")
    else:
        if str(cfg.get("output") or "").endswith(("/", os.sep)):  # a folder: <folder>/<name>_stylized.png
            dst.mkdir(parents=True, exist_ok=True)
            dst = dst / _default_output(src).name
        if stylize_image_file(stylizer, src, dst, overwrite=overwrite):
            print(f"wrote {dst}")


__all__ = ["Stylizer", "stylize_cli", "stylize_folder", "stylize_image_file"]
