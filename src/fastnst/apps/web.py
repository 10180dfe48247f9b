"""`python app.py`: a local Gradio web app on the project's own Stylizer (see docs/webapp.md).

Tabs: Photo (any network the project can load: bundled styles and the runs/model files under
`models=`), Webcam (the camera stream stylized live by a fast network) and Gatys (any painting,
optimized per image, with progress, intermediate images and a Cancel button).

The handlers are plain functions of `WebApp` (tests call them directly); `build_ui` wires them
into Gradio. Every handler turns a user error into a one-line message in the page and any
other failure into a one-line message plus a traceback on the server's stderr: one bad request
never takes the app down.
"""

import base64
import os
import queue
import re
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from fastnst.config import CONFIG_DIR, resolve_user_path
from fastnst.errors import FastNSTError, ImageError
from fastnst.images import fit_size, open_rgb, pil_to_tensor, save_image, tensor_to_pil
from fastnst.stroke import STROKE_SCALE_RANGE, check_stroke_scale, combined_stroke_scale

MODEL_SUFFIXES = (".pt", ".ckpt", ".onnx", ".ts")
# a run directory: what fastnst.formats.load_network accepts as one
RUN_MARKERS = ("model.pt", "checkpoints/last.ckpt", "checkpoints/best.ckpt")
BUNDLED_SUFFIX = " (bundled)"
OUTPUT_SIZES = ("256", "512", "768", "1024", "1536", "2048", "original")


# -- the networks on offer ------------------------------------------------------------------


def bundled_networks() -> dict[str, Path]:
    """{style name: file} of the networks shipped with fastnst; {} when there are none."""
    try:
        from fastnst.zoo import bundled_styles
    except ImportError:
        return {}
    try:
        return {str(k): Path(v) for k, v in (bundled_styles() or {}).items()}
    except FastNSTError:
        return {}


def find_models(folder: Path) -> dict[str, Path]:
    """{label: path} of the run directories and model files under `folder` (or `folder` itself
    when it is one model file); labels are paths relative to `folder`."""
    if folder.is_file():
        return {folder.stem: folder}
    if not folder.is_dir():
        raise FastNSTError(
            f"models={folder}: not found (a folder of runs / model files, or one model file)"
        )
    found: dict[str, Path] = {}
    runs = {
        p.parent.parent if p.parent.name == "checkpoints" else p.parent
        for marker in RUN_MARKERS
        for p in folder.rglob(Path(marker).name)
        if p.as_posix().endswith(marker)
    }
    for run in sorted(runs):
        found[run.relative_to(folder).as_posix() or run.name] = run
    for path in sorted(folder.rglob("*")):
        inside_run = any(run == path.parent or run in path.parents for run in runs)
        if path.is_file() and path.suffix.lower() in MODEL_SUFFIXES and not inside_run:
            found[path.relative_to(folder).as_posix()] = path
    return found


def model_catalog(models: str | os.PathLike | None) -> dict[str, Path]:
    """Every network the app offers: bundled styles first, then those under `models`."""
    catalog = {f"{name}{BUNDLED_SUFFIX}": path for name, path in sorted(bundled_networks().items())}
    if models not in (None, ""):
        catalog.update(find_models(resolve_user_path(models)))
    return catalog


def without_code_files(catalog: dict[str, Path], models, trust_model_file: bool) -> dict[str, Path]:
    """The catalog less the user's files that could run code when opened (TorchScript, pickles,
    ONNX custom ops; fastnst.formats), unless trust_model_file: `models=` naming one such file is a
    one-line error, one found in a folder is left out with a one-line note. Bundled networks ship
    with fastnst and are not checked."""
    from fastnst.formats import TRUST_HINT, code_risk, refuse_code

    if models not in (None, "") and resolve_user_path(models).is_file():
        refuse_code(resolve_user_path(models), trust_model_file)
    if trust_model_file:
        return catalog
    kept = {}
    for label, path in catalog.items():
        risk = None if label.endswith(BUNDLED_SUFFIX) else code_risk(path)
        if risk:
            print(
                f"fastnst: note: {risk[0]}: not offered: {risk[1]}; {TRUST_HINT}", file=sys.stderr
            )
        else:
            kept[label] = path
    return kept


def parse_mix(text: str) -> dict[str, float]:
    """ "starry_night: 0.7, wave: 0.3" -> {"starry_night": 0.7, "wave": 0.3}; one line when malformed
    (the Stylizer then checks the names and normalises the weights)."""
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            mix[name.strip()] = float(weight)
        except ValueError:
            raise FastNSTError(
                f"blend {text!r}: write it as 'style: weight, style: weight'"
            ) from None
    return mix


# -- uploads --------------------------------------------------------------------------------


def read_photo(path: str | os.PathLike, max_side: int, max_megapixels: float) -> Image.Image:
    """An uploaded image as RGB, or ImageError naming the file by its own name (not the server's
    temp path): not an image, truncated, a decompression bomb, or larger than the app accepts."""
    path = Path(path)
    try:
        return _read_checked(path, max_side, max_megapixels)
    except ImageError as e:
        raise ImageError(str(e).replace(str(path), path.name)) from None


def _read_checked(path: Path, max_side: int, max_megapixels: float) -> Image.Image:
    # the header gives the size before any pixel is decoded: refuse huge images up front
    try:
        with Image.open(path) as header:
            width, height = header.size
    except Exception:  # noqa: BLE001 - open_rgb says precisely what is wrong with the file
        width = height = 0
    if max(width, height) > max_side or width * height > max_megapixels * 1e6:
        raise ImageError(
            f"{path}: image is {width}x{height} px; the app takes up to {max_side} px a side and "
            f"{max_megapixels:g} megapixels (shrink it, or use stylize.py tile=... for huge images)"
        )
    return open_rgb(path)


def upload_path(value) -> str | None:
    """The file behind a Gradio image value: a path, a FileData-like dict, or a data: URL (paste)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("path") or value.get("url")
    value = str(value)
    if value.startswith("data:"):
        header, _, data = value.partition(",")
        suffix = "." + header.split("/")[-1].split(";")[0] if "/" in header else ".png"
        path = Path(tempfile.mkdtemp(prefix="fastnst-paste-")) / f"pasted{suffix}"
        path.write_bytes(base64.b64decode(data))
        return str(path)
    return value


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- the app --------------------------------------------------------------------------------


@dataclass
class PhotoResult:
    image: str | None  # path of the full-size PNG (shown, and the download)
    status: str


@dataclass
class WebApp:
    """The app's state: the catalog, the loaded networks (each loaded once) and the options."""

    catalog: dict[str, Path]
    device: str = "auto"
    max_side: int = 8192
    max_megapixels: float = 40.0
    webcam_model: str | None = None
    webcam_size: int = 320
    # open model files that can hold code (TorchScript, pickles, ONNX custom ops): formats.py
    trust_model_file: bool = False
    gatys_max_iterations: int = 1000
    output_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fastnst-app-")))
    _stylizers: dict = field(default_factory=dict, repr=False)
    _load_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _runners: dict = field(default_factory=dict, repr=False)
    _gatys_loss: object = field(default=None, repr=False)
    _gatys_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gatys_stops: dict = field(default_factory=dict, repr=False)

    # -- networks ---------------------------------------------------------------------------

    def choices(self) -> list[str]:
        return list(self.catalog)

    def default_webcam_model(self) -> str | None:
        """`webcam_model`, else the smallest network offered: fewer weights, faster frames."""
        if self.webcam_model:
            return self.webcam_model
        return min(self.catalog, key=lambda label: _model_bytes(self.catalog[label]), default=None)

    def stylizer(self, label: str):
        """(the loaded network for `label`, its runner): loaded on first use and kept (a failed
        load is not). The runner is the one thread that runs this network's forward passes: one
        at a time (a call sets its style weights and statistics on the network's norms), and always
        on the same thread, so glibc's per-thread malloc arena and OpenMP's per-thread team are
        reused. A fresh server thread per request made a 512 px forward ~25% slower here
        (scripts/bench/bench_app.py)."""
        from fastnst.stylize import Stylizer

        if label not in self.catalog:
            raise FastNSTError(
                f"unknown style {label!r}; choose one of: {', '.join(self.catalog) or 'none offered'}"
            )
        with self._load_lock:
            if label not in self._stylizers:
                self._stylizers[label] = Stylizer.load(
                    self.catalog[label], device=self.device, trust_model_file=self.trust_model_file
                )
                self._stylizers[label].expect_many()  # a server: compiling a CPU path pays
                self._runners[label] = ThreadPoolExecutor(
                    1, thread_name_prefix=f"fastnst-{_slug(label)}"
                )
            return self._stylizers[label], self._runners[label]

    def network_styles(self, label: str | None) -> list[str]:
        """The styles of a multi-style network (loads it, once); [] for a single-style one."""
        if not label:
            return []
        return list(self.stylizer(label)[0].styles or [])

    def _style_options(self, label: str, network_style: str | None, mix: str | None) -> dict:
        """style=/mix= for the Stylizer: a blend when one is typed, else the chosen style; nothing
        for a single-style network, or for a style left from another network (a dropdown that
        has not caught up yet: the network's first style then)."""
        styles = self.network_styles(label)
        if not styles:
            return {}
        if mix and mix.strip():
            return {"mix": parse_mix(mix)}
        return {"style": network_style} if network_style in styles else {}

    def run_network(self, label: str, call):
        """`call(stylizer)` on the network's own thread; its result (or its exception) here."""
        stylizer, runner = self.stylizer(label)
        return runner.submit(call, stylizer).result()

    # -- Photo tab ---------------------------------------------------------------------------

    def stylize_photo(
        self,
        photo,
        style: str | None,
        strength: float = 1.0,
        keep_colours: bool = False,
        output_size: str | int | None = "512",
        network_style: str | None = None,
        mix: str | None = None,
        stroke_scale: float = 1.0,
    ) -> PhotoResult:
        """One upload -> the full-size stylized PNG (its path) and a one-line status.
        network_style / mix: a multi-style network's style, or a blend "name: weight, ...";
        stroke_scale: how large the network paints, relative to the scale it was made for (Stylizer)."""
        path = upload_path(photo)
        if path is None:
            return PhotoResult(None, "Upload or paste a photo.")
        if not style:
            return PhotoResult(
                None, "error: no style to apply (start the app with models=<folder of runs>)"
            )

        def work() -> PhotoResult:
            # the request's values first (an API client may send anything): one line each
            size = _output_size(output_size)
            amount = _number(strength, "strength")
            scale = check_stroke_scale(_number(stroke_scale, "stroke scale"), source="stroke scale")
            image = read_photo(path, self.max_side, self.max_megapixels)
            options = self._style_options(style, network_style, mix)
            self._check_network_pixels(style, image, size, scale, options)
            start = time.perf_counter()
            result = self.run_network(
                style,
                lambda stylizer: stylizer(
                    image,
                    size=size,
                    strength=amount,
                    preserve_color=bool(keep_colours),
                    stroke_scale=scale,
                    **options,
                ),
            )
            elapsed = time.perf_counter() - start
            name = _slug(style) + (f"_{_slug(options['style'])}" if "style" in options else "")
            name += "_blend" if "mix" in options else ""
            out = self.output_dir / uuid.uuid4().hex[:12] / f"{Path(path).stem}_{name}.png"
            save_image(result, out, png_compress_level=1)  # served once: speed over size
            return PhotoResult(
                str(out), f"{result.width}x{result.height} px, {name}, {elapsed:.2f} s"
            )

        return _guarded(work, lambda message: PhotoResult(None, message), self.catalog)

    def _check_network_pixels(
        self, label: str, image: Image.Image, size, scale: float, options: dict
    ) -> None:
        """The upload cap counts the stroke scale: at stroke scale 0.5 the network paints on the
        output enlarged 2x a side (4x the pixels), so those pixels must be within
        max_megapixels too (`options`: the call's style= / mix=, whose own scale counts)."""
        stylizer = self.stylizer(label)[0]
        native = stylizer.native_stroke_scale_of(options.get("style"), options.get("mix"))
        combined = combined_stroke_scale(scale, native, source="stroke scale")
        h, w = fit_size(image.height, image.width, size)
        pixels = h * w / combined**2
        if pixels > self.max_megapixels * 1e6:
            raise ImageError(
                f"{w}x{h} px at stroke scale {combined:g} paints {pixels / 1e6:.0f} megapixels; "
                f"the app takes up to {self.max_megapixels:g} (choose a smaller output size or a "
                "larger stroke scale)"
            )

    # -- Webcam tab --------------------------------------------------------------------------

    def stylize_frame(
        self, frame: np.ndarray | None, style: str | None, network_style: str | None = None
    ) -> np.ndarray | None:
        """One camera frame (H, W, 3 uint8) -> stylized at `webcam_size` px (longer side)."""
        if frame is None or not style:
            return None
        options = self._style_options(style, network_style, None)
        x = (
            torch.from_numpy(np.array(frame[..., :3]))
            .permute(2, 0, 1)
            .unsqueeze(0)
            .float()
            .div_(255)
        )
        y = self.run_network(
            style, lambda stylizer: stylizer.stylize_tensor(x, size=self.webcam_size, **options)
        )
        return y[0].mul(255).round_().byte().permute(1, 2, 0).numpy()

    # -- Gatys tab ---------------------------------------------------------------------------

    def gatys_loss(self):
        """The perceptual loss (its VGG19) loaded once; the painting's targets are set per run."""
        if self._gatys_loss is None:
            from fastnst.runners import resolve_device
            from fastnst.style import instantiate_loss

            loss = instantiate_loss(
                OmegaConf.load(CONFIG_DIR / "loss" / "seed.yaml"), vgg_weights="embedded"
            )
            self._gatys_loss = loss.to(resolve_device(self.device))
        return self._gatys_loss

    def run_gatys(
        self,
        painting,
        photo,
        iterations: int = 100,
        size: int = 256,
        session: str = "",
        every: int = 10,
        progress: Callable[[float, str], None] | None = None,
    ) -> Iterator[tuple]:
        """Yields (image or None, status) as the optimization goes: an intermediate every
        `every` iterations, then the best image. `cancel_gatys(session)` stops it."""
        painting_path, photo_path = upload_path(painting), upload_path(photo)
        if painting_path is None or photo_path is None:
            yield None, "Upload a painting and a photo."
            return
        stop = threading.Event()
        self._gatys_stops[session] = stop
        updates: queue.Queue = queue.Queue()
        try:
            yield from self._gatys_updates(
                painting_path,
                photo_path,
                int(iterations),
                int(size),
                int(every),
                stop,
                updates,
                progress,
            )
        finally:
            stop.set()  # a client that went away (or a cancel) ends the optimization too
            if self._gatys_stops.get(session) is stop:
                del self._gatys_stops[session]

    def cancel_gatys(self, session: str = "") -> str:
        stop = self._gatys_stops.get(session)
        if stop is not None:
            stop.set()
        return "Cancelled."

    def _gatys_updates(
        self, painting_path, photo_path, iterations, size, every, stop, updates, progress
    ):
        try:
            painting = read_photo(painting_path, self.max_side, self.max_megapixels)
            photo = read_photo(photo_path, self.max_side, self.max_megapixels)
            if not 1 <= iterations <= self.gatys_max_iterations:
                raise FastNSTError(
                    f"iterations must be between 1 and {self.gatys_max_iterations}, got {iterations}"
                )
        except Exception as e:  # noqa: BLE001
            yield None, _message(e, self.catalog)
            return

        class Cancelled(Exception):
            pass

        def on_iteration(it: int, image: torch.Tensor) -> None:
            if stop.is_set():
                raise Cancelled
            updates.put(
                (
                    "image" if it % every == 0 else "step",
                    it,
                    image.cpu() if it % every == 0 else None,
                )
            )

        def work() -> None:
            try:
                with self._gatys_lock:  # one VGG, one painting's targets at a time
                    result = self._optimize(painting, photo, iterations, size, on_iteration)
                updates.put(("done", iterations, result))
            except Cancelled:
                updates.put(("cancelled", 0, None))
            except Exception as e:  # noqa: BLE001 - reported in the page, the app keeps serving
                updates.put(("error", 0, e))

        threading.Thread(target=work, name="fastnst-gatys", daemon=True).start()
        while True:
            kind, it, payload = updates.get()
            if kind in ("step", "image") and progress is not None:
                progress(it / iterations, f"iteration {it}/{iterations}")
            if kind == "image":
                yield tensor_to_pil(payload), f"iteration {it}/{iterations}"
            elif kind == "done":
                yield (
                    tensor_to_pil(payload.image.cpu()),
                    (
                        f"done: best loss {payload.best_loss:.4g} at iteration {payload.best_iteration}, "
                        f"{payload.wall_time_s:.1f} s"
                    ),
                )
                return
            elif kind == "cancelled":
                yield None, "Cancelled."
                return
            elif kind == "error":
                yield None, _message(payload, self.catalog)
                return

    def _optimize(
        self, painting: Image.Image, photo: Image.Image, iterations: int, size: int, on_iteration
    ):
        from fastnst.gatys import scale_sizes, stylize_gatys
        from fastnst.images import resize_tensor

        loss = self.gatys_loss()
        device = next(loss.parameters(), torch.empty(0)).device
        h, w = fit_size(photo.height, photo.width, size)
        content = resize_tensor(pil_to_tensor(photo), (h, w)).to(device)
        style = pil_to_tensor(painting)
        ph, pw = fit_size(painting.height, painting.width, max(h, w))
        style = resize_tensor(style, (ph, pw)).to(device)
        loss.set_style_targets(loss.style_grams(style))
        sizes = scale_sizes(h, w, "auto")
        return stylize_gatys(
            content,
            loss,
            iterations=iterations,
            scales=[max(s) for s in sizes],
            style_images=[style],
            save_every=1,
            on_save=on_iteration,
            seed=0,
        )


def _model_bytes(path: Path) -> int:
    if path.is_dir():
        path = next((path / m for m in RUN_MARKERS if (path / m).is_file()), path)
    return path.stat().st_size if path.is_file() else sys.maxsize


def _slug(label: str) -> str:
    name = label.removesuffix(BUNDLED_SUFFIX)
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_") or "style"


# an absolute path in a message: "/" not inside a word, a URL or a relative path, then folders
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/:;,'\"()\[\]]+)+/?")


def public_message(text: str, catalog: dict[str, Path] | None = None) -> str:
    """`text` without the server's absolute paths: a network's file or run folder becomes its
    label in the page, any other absolute path its last component (an upload is named by its
    file name, the app's folders by nothing more)."""
    for label, path in sorted((catalog or {}).items(), key=lambda item: -len(str(item[1]))):
        text = text.replace(str(path), label.removesuffix(BUNDLED_SUFFIX))
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group(0)).name or "/", text)


def _message(error: BaseException, catalog: dict[str, Path] | None = None) -> str:
    """One line for the page: the user error itself, or the kind of an internal failure;
    never a path of the server's (public_message)."""
    if isinstance(error, FastNSTError):
        return f"error: {public_message(one_line(error), catalog)}"
    if isinstance(error, MemoryError):
        return "error: out of memory for this image (try a smaller output size)"
    detail = public_message(one_line(error)[:200], catalog)
    return f"error: internal error ({type(error).__name__}: {detail}); the app keeps serving"


def _guarded(work: Callable, on_error: Callable[[str], object], catalog=None):
    try:
        return work()
    except FastNSTError as e:
        return on_error(_message(e, catalog))
    except Exception as e:  # noqa: BLE001 - one request's failure never takes the app down
        traceback.print_exc(file=sys.stderr)
        return on_error(_message(e, catalog))


def _number(value, name: str) -> float:
    """A number from a request (an API client may send a string): one line when it is not."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise FastNSTError(f"{name} must be a number, got {value[:40]!r}") from None
    if value is None or isinstance(value, bool) or not hasattr(value, "__float__"):
        raise FastNSTError(f"{name} must be a number, got {value!r:.40}")
    return float(value)


def _output_size(value) -> int | None:
    """The output size choice: "original" (None) or a longer side in px."""
    if value is None or str(value) in ("original", "None", ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise FastNSTError(
            f"output size must be one of {', '.join(OUTPUT_SIZES)} or a number of px, "
            f"got {str(value)[:40]!r}"
        ) from None


# -- Gradio ---------------------------------------------------------------------------------


# Gradio behaviours changed on the instance, not in a gr.Image subclass: Gradio writes a .pyi
# stub beside the module of every Component subclass it sees (into the installed package).


def network_style_choices(app: WebApp, label: str | None):
    """Gradio updates for (the "Style in this network" dropdown, the blend box): shown with the
    network's styles for a multi-style network, hidden otherwise (and when it fails to load:
    the photo's own request then says why, in one line)."""
    import gradio as gr

    try:
        styles = app.network_styles(label)
    except Exception:  # noqa: BLE001 - reported by the stylize request itself
        styles = []
    return (
        gr.update(choices=styles, value=styles[0] if styles else None, visible=bool(styles)),
        gr.update(visible=len(styles) > 1),
    )


def photo_input(**kwargs):
    """gr.Image whose upload reaches the handler undecoded: Gradio's own Image.preprocess opens
    the file with Pillow first, so a broken upload would fail there with a generic "Error"
    instead of our one-line message."""
    import gradio as gr

    component = gr.Image(
        type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs
    )

    def preprocess(payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return upload_path(payload.url)
        return payload.path

    component.preprocess = preprocess
    return component


def live_frame(**kwargs):
    """gr.Image that sends each webcam result inline as a JPEG data: URL: Gradio's Image writes
    every frame to its file cache and the browser fetches it with one more request per frame."""
    import io

    import gradio as gr
    from gradio.data_classes import ImageData

    component = gr.Image(interactive=False, **kwargs)

    def postprocess(value):
        if value is None:
            return None
        buffer = io.BytesIO()
        Image.fromarray(value).save(buffer, format="JPEG", quality=85)
        return ImageData(
            url="data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        )

    component.postprocess = postprocess
    return component


def build_ui(app: WebApp):
    import gradio as gr

    choices = app.choices()
    with gr.Blocks(title="fastnst") as demo:
        gr.Markdown(
            "# fastnst: neural style transfer\nStylize a photo with a trained network, "
            "the webcam live, or any painting with Gatys optimization."
        )
        with gr.Tab("Photo", id="photo"):
            with gr.Row():
                with gr.Column():
                    photo = photo_input(label="Photo", elem_id="photo-input")
                    style = gr.Dropdown(
                        choices,
                        value=choices[0] if choices else None,
                        label="Style",
                        elem_id="photo-style",
                    )
                    network_style = gr.Dropdown(
                        [],
                        label="Style in this network",
                        visible=False,
                        elem_id="photo-network-style",
                    )
                    mix = gr.Textbox(
                        "",
                        label="Blend (e.g. starry_night: 0.7, wave: 0.3); empty = the style above",
                        visible=False,
                        elem_id="photo-mix",
                    )
                    strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength")
                    keep_colours = gr.Checkbox(False, label="Keep the photo's colours")
                    stroke_scale = gr.Slider(
                        *STROKE_SCALE_RANGE,
                        value=1.0,
                        step=0.25,
                        elem_id="photo-stroke-scale",
                        label="Stroke scale (2 = strokes twice as large)",
                    )
                    output_size = gr.Dropdown(
                        list(OUTPUT_SIZES), value="512", label="Output size (longer side, px)"
                    )
                    run = gr.Button("Stylize", variant="primary", elem_id="photo-run")
                with gr.Column():
                    result = gr.Image(
                        label="Stylized (download: full size PNG)",
                        type="filepath",
                        format="png",
                        interactive=False,
                        elem_id="photo-result",
                        buttons=["download", "fullscreen"],
                    )
                    status = gr.Markdown("", elem_id="photo-status")

            def on_photo(
                photo_value,
                style_value,
                strength_value,
                keep,
                size_value,
                network_style_value=None,
                mix_value="",
                stroke_value=1.0,
            ):  # defaults: older API clients may leave them out
                r = app.stylize_photo(
                    photo_value,
                    style_value,
                    strength_value,
                    keep,
                    size_value,
                    network_style_value,
                    mix_value,
                    stroke_value,
                )
                return r.image, r.status

            style.change(
                lambda label: network_style_choices(app, label),
                [style],
                [network_style, mix],
                show_progress="hidden",
                api_name="photo_network_styles",
            )
            demo.load(
                lambda label: network_style_choices(app, label),
                [style],
                [network_style, mix],
                show_progress="hidden",
            )
            gr.on(
                [photo.upload, run.click, style.change, network_style.change],
                on_photo,
                [
                    photo,
                    style,
                    strength,
                    keep_colours,
                    output_size,
                    network_style,
                    mix,
                    stroke_scale,
                ],
                [result, status],
                concurrency_limit=4,
                show_progress="minimal",
                api_name="stylize_photo",
                queue=False,
            )
        with gr.Tab("Webcam", id="webcam"):
            webcam_default = app.default_webcam_model()
            with gr.Row():
                camera = gr.Image(
                    label="Camera",
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    elem_id="webcam-input",
                    webcam_options=gr.WebcamOptions(
                        mirror=False, constraints={"video": {"width": 320, "height": 240}}
                    ),
                )
                live = live_frame(label="Stylized live", elem_id="webcam-output")
            webcam_style = gr.Dropdown(
                choices, value=webcam_default, label="Network (a fast one)", elem_id="webcam-style"
            )
            webcam_network_style = gr.Dropdown(
                [], label="Style in this network", visible=False, elem_id="webcam-network-style"
            )
            webcam_style.change(
                lambda label: network_style_choices(app, label)[0],
                [webcam_style],
                [webcam_network_style],
                show_progress="hidden",
            )
            demo.load(
                lambda label: network_style_choices(app, label)[0],
                [webcam_style],
                [webcam_network_style],
                show_progress="hidden",
            )

            def on_frame(frame, style_value, network_style_value=None):
                try:
                    return app.stylize_frame(frame, style_value, network_style_value)
                except Exception as e:  # noqa: BLE001 - a bad frame must not end the stream
                    if not isinstance(e, FastNSTError):
                        traceback.print_exc(file=sys.stderr)
                    return None

            camera.stream(
                on_frame,
                [camera, webcam_style, webcam_network_style],
                [live],
                stream_every=0.02,
                concurrency_limit=1,
                show_progress="hidden",
                api_name="stylize_frame",
            )
        with gr.Tab("Gatys", id="gatys"):
            with gr.Row():
                with gr.Column():
                    painting = photo_input(label="Painting", elem_id="gatys-painting")
                    gatys_photo = photo_input(label="Photo", elem_id="gatys-photo")
                    iterations = gr.Slider(
                        10, app.gatys_max_iterations, value=100, step=10, label="Iterations"
                    )
                    gatys_size = gr.Slider(
                        128, 768, value=256, step=64, label="Output size (longer side, px)"
                    )
                    with gr.Row():
                        start = gr.Button("Run", variant="primary", elem_id="gatys-run")
                        cancel = gr.Button("Cancel", variant="stop", elem_id="gatys-cancel")
                with gr.Column():
                    gatys_result = gr.Image(
                        label="Result (intermediate images as they come)",
                        format="png",
                        interactive=False,
                        elem_id="gatys-result",
                    )
                    gatys_status = gr.Markdown("", elem_id="gatys-status")

            def on_gatys(
                painting_value,
                photo_value,
                iterations_value,
                size_value,
                request: gr.Request,
                progress=gr.Progress(),  # noqa: B008 - Gradio's own injection idiom
            ):
                session = getattr(request, "session_hash", "") or ""
                yield from app.run_gatys(
                    painting_value,
                    photo_value,
                    iterations_value,
                    size_value,
                    session=session,
                    progress=lambda f, d: progress(f, desc=d),
                )

            def on_cancel(request: gr.Request):
                return app.cancel_gatys(getattr(request, "session_hash", "") or "")

            job = start.click(
                on_gatys,
                [painting, gatys_photo, iterations, gatys_size],
                [gatys_result, gatys_status],
                concurrency_limit=1,
                api_name="gatys",
            )
            cancel.click(on_cancel, None, [gatys_status], cancels=[job], api_name="cancel_gatys")
    return demo


def launch(cfg: DictConfig, block: bool = True):
    """Build the app from `cfg` (conf/app.yaml) and serve it; returns the Gradio Blocks."""
    app = WebApp(
        catalog=model_catalog(cfg.models),
        device=str(cfg.device),
        max_side=int(cfg.max_side),
        max_megapixels=float(cfg.max_megapixels),
        webcam_model=cfg.webcam_model,
        webcam_size=int(cfg.webcam_size),
        trust_model_file=bool(cfg.trust_model_file),
    )
    app.catalog = without_code_files(app.catalog, cfg.models, app.trust_model_file)
    if app.webcam_model and app.webcam_model not in app.catalog:
        raise FastNSTError(
            f"webcam_model={app.webcam_model!r} is not offered; choose one of: "
            f"{', '.join(app.catalog) or 'none (pass models=<folder>)'}"
        )
    if not app.catalog:
        print(
            "fastnst: note: no networks to offer (no bundled styles, no models=...); "
            "only the Gatys tab works",
            file=sys.stderr,
        )
    import logging

    use_fastnst_temp_dir()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    _patient_localhost_check()
    demo = build_ui(app)
    demo.queue(default_concurrency_limit=2)
    demo.launch(
        server_name=str(cfg.host),
        server_port=int(cfg.port),
        prevent_thread_lock=not block,
        show_error=False,
        quiet=False,
        max_file_size=f"{int(cfg.max_upload_mb)}mb",
        allowed_paths=[str(app.output_dir)],
    )
    return demo


def _patient_localhost_check() -> None:
    """Gradio's launch() gives up when its own server does not answer a HEAD request within 3 s
    ("localhost is not accessible"), which happens on a busy 2-core machine: wait up to 60 s."""
    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=20, verify=False).status_code in (
                    200,
                    401,
                    301,
                    302,
                    303,
                    307,
                    308,
                ):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    networking.url_ok = url_ok


def gradio_temp_dir() -> Path:
    """Where Gradio keeps uploads and served files unless GRADIO_TEMP_DIR says otherwise:
    <fastnst cache dir>/gradio ($FASTNST_CACHE_DIR, else $XDG_CACHE_HOME/fastnst, else
    ~/.cache/fastnst), not a shared /tmp/gradio."""
    from fastnst.accel import autotune

    return autotune.cache_file().parent / "gradio"


def use_fastnst_temp_dir() -> Path:
    """GRADIO_TEMP_DIR, set to gradio_temp_dir() when unset (before Gradio reads it)."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        os.environ["GRADIO_TEMP_DIR"] = str(gradio_temp_dir())
    return Path(os.environ["GRADIO_TEMP_DIR"])


def app_cli(cfg: DictConfig) -> None:
    use_fastnst_temp_dir()
    _check_temp_folders()
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FastNSTError(
            "the web app needs Gradio: pip install 'fastnst[app]' (or make install)"
        ) from None
    launch(cfg, block=True)


def _check_temp_folders() -> None:
    """The app writes results to the temp folder (TMPDIR) and Gradio its uploads to
    GRADIO_TEMP_DIR: both must be writable before it starts serving."""
    from fastnst.preflight import ensure_writable

    try:
        ensure_writable(tempfile.gettempdir(), "temporary folder (TMPDIR)", folder=True)
    except FileNotFoundError:  # tempfile found no writable candidate at all
        raise FastNSTError(
            "no writable temporary folder: set TMPDIR to a folder you can write"
        ) from None
    if os.environ.get("GRADIO_TEMP_DIR"):
        ensure_writable(os.environ["GRADIO_TEMP_DIR"], "GRADIO_TEMP_DIR", folder=True)
