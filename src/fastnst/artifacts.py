"""Trained-network files of every kind, in one place: what a path holds (run directory, exported
model.pt, Lightning .ckpt, ONNX, TorchScript), reading it safely, the exported format, and the
runners that execute a network (eager torch, onnxruntime, TorchScript) on a resolved device.

`open_network(path, ...)` is the path from a model argument to a runner; `Stylizer.load` calls it,
export.py writes the files it reads. Bundled networks are resolved by name in `fastnst.zoo`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst import accel
from fastnst.atomic import atomic_torch_save
from fastnst.errors import FastNSTError
from fastnst.transformer import TransformerNet

EXPORT_FORMAT = "fastnst.transformer"


EXPORT_VERSION = 1


INPUT_NAME, OUTPUT_NAME = "image", "stylized"


STYLE_INPUT_NAME = "style_weights"  # a multi-style network's second input, float32 (N,)


META_KEY = "fastnst"  # ONNX metadata_props key / TorchScript extra file holding config + meta


ONNX_OPSET = 17


BACKENDS = ("auto", "torch", "onnxruntime", "torchscript")


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def jit_deprecation_silenced():
    """TorchScript is the exported format users asked for: torch's FutureWarning that
    torch.jit.save/load are deprecated (in favour of torch.export) is noise to them. Only that
    warning is ignored, only inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.(save|load)` is deprecated", category=FutureWarning
        )
        yield


def save_exported(path: str | os.PathLike, net: TransformerNet, meta: dict | None = None) -> Path:
    """Write the transformer alone (weights + config to rebuild it + format version), atomically."""
    payload = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "config": dict(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": dict(meta or {}),
    }
    return atomic_torch_save(payload, path)


def load_exported(path: str | os.PathLike, map_location="cpu") -> tuple[TransformerNet, dict]:
    """Rebuild a TransformerNet from an exported file; returns (net in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise FastNSTError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise FastNSTError(
            f"{path}: cannot read model file, truncated or not a torch file ({type(e).__name__})"
        ) from None
    return exported_network(payload, path)


def exported_network(payload, path: str | os.PathLike) -> tuple[TransformerNet, dict]:
    """(net in eval mode, meta) from the loaded contents of an exported file."""
    if not isinstance(payload, dict) or payload.get("format") != EXPORT_FORMAT:
        raise FastNSTError(
            f"{path}: not an exported fastnst transformer (no '{EXPORT_FORMAT}' format tag)"
        )
    if int(payload.get("version", -1)) > EXPORT_VERSION:
        raise FastNSTError(
            f"{path}: exported with format version {payload['version']}, this fastnst reads up to {EXPORT_VERSION}"
        )
    try:
        net = TransformerNet(**payload["config"])
        net.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise FastNSTError(
            f"{path}: exported weights do not fit its model config ({str(e).splitlines()[0]})"
        ) from None
    return net.eval(), payload.get("meta", {})


def model_kind(path: str | os.PathLike) -> str:
    """What a model path holds, judged by content: "run_dir", "torch" (exported .pt or Lightning
    .ckpt), "torchscript" or "onnx". Raises FastNSTError naming the file otherwise."""
    path = Path(path)
    if path.is_dir():
        return "run_dir"
    if not path.exists():
        raise FastNSTError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise FastNSTError(f"{path}: empty model file (0 bytes)")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise FastNSTError(f"{path}: corrupt model archive ({e})") from None
        # TorchScript archives carry the serialized code; torch.save archives only data.pkl
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise FastNSTError(f"{path}: a zip archive but not a torch or TorchScript model")
    if _looks_like_onnx(path):
        return "onnx"
    raise FastNSTError(
        f"{path}: not a model file (expected an exported .pt, a Lightning .ckpt, a run directory, "
        "an .onnx or a TorchScript file; a truncated file also ends up here)"
    )


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:  # optional dependency: fall back to the extension
        return path.suffix.lower() == ".onnx"
    model = _parsed_onnx(path)
    return model is not None and len(model.graph.node) > 0


def _parsed_onnx(path: Path):
    """The file's ONNX ModelProto, or None. Parsed once per file version: detecting the kind and
    reading the metadata share the parse (a 7 MB network took ~3 parses before)."""
    stat = path.stat()
    return _parse_onnx(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _parse_onnx(path: str, mtime_ns: int, size: int):
    import onnx

    try:
        return onnx.load_model(path, load_external_data=False)
    except Exception:
        return None


def load_network(
    path: str | os.PathLike, trust_model_file: bool = False
) -> tuple[TransformerNet, dict]:
    """(TransformerNet in eval mode, meta) from an exported .pt, a Lightning .ckpt or a run
    directory (model.pt preferred, else checkpoints/last.ckpt). Files are read with
    weights_only=True; see `load_torch_file` for `trust_model_file`."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "run_dir":
        for candidate in (
            path / "model.pt",
            path / "checkpoints" / "last.ckpt",
            path / "checkpoints" / "best.ckpt",
        ):
            if candidate.is_file():
                return load_network(candidate, trust_model_file)
        raise FastNSTError(f"{path}: run directory without model.pt or checkpoints/last.ckpt")
    if kind != "torch":
        raise FastNSTError(
            f"{path}: is a {kind} file; this needs a fastnst .pt, .ckpt or run directory"
        )
    payload = load_torch_file(path, trust_model_file)
    if isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT:
        return exported_network(payload, path)
    if isinstance(payload, dict) and "fastnst_model_config" in payload and "state_dict" in payload:
        state = {
            k[len("net.") :]: v for k, v in payload["state_dict"].items() if k.startswith("net.")
        }
        if not state:
            raise FastNSTError(
                f"{path}: checkpoint has no 'net.' weights (not a fastnst transformer checkpoint)"
            )
        try:
            net = TransformerNet(**dict(payload["fastnst_model_config"]))
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise FastNSTError(
                f"{path}: checkpoint weights do not fit its model config ({str(e).splitlines()[0]})"
            ) from None
        meta = {
            "source": str(path),
            "epoch": payload.get("epoch"),
            "global_step": payload.get("global_step"),
        }
        return net.eval(), meta
    raise FastNSTError(
        f"{path}: a torch file but neither an exported fastnst model nor a fastnst checkpoint"
    )


def load_torch_file(path: str | os.PathLike, trust_model_file: bool = False):
    """torch.load a model file or checkpoint with weights_only=True: tensors and plain containers
    only, so a file from elsewhere cannot run code while it is read (what fastnst writes, model.pt
    and Lightning .ckpt files, is plain). Anything else is refused with one line naming the file,
    unless `trust_model_file`: then it is unpickled fully, which runs whatever code it holds."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:
        if "weights_only" not in str(first) and "Unsupported global" not in str(first):
            raise FastNSTError(
                f"{path}: cannot read model file, truncated or corrupt ({type(first).__name__})"
            ) from None
    if not trust_model_file:
        raise FastNSTError(
            f"{path}: refused: the file holds Python objects besides tensors and plain values, and "
            "loading those can run code; if you trust where it came from, pass trust_model_file=true"
        )
    print(
        f"fastnst: warning: {path}: loaded with trust_model_file=true (full unpickling, which can run code "
        "from the file)",
        file=sys.stderr,
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise FastNSTError(f"{path}: cannot read model file ({type(e).__name__}: {e})") from None


def check_is_training_checkpoint(path: Path) -> None:
    """A Lightning checkpoint of this system (not an exported model.pt or another project's file)."""

    ckpt = load_torch_file(path)  # weights_only=True: a foreign file cannot run code here
    if (
        not isinstance(ckpt, dict)
        or "fastnst_model_config" not in ckpt
        or "optimizer_states" not in ckpt
    ):
        hint = (
            " (an exported model.pt: use it with stylize.py)"
            if isinstance(ckpt, dict) and "format" in ckpt
            else ""
        )
        raise FastNSTError(f"{path}: not a fastnst training checkpoint{hint}")


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
        raise FastNSTError(
            "device=cuda requested but CUDA is not available (use device=cpu or auto)"
        )
    return dev


class TorchRunner:
    """Eager (or compiled) PyTorch: (B,3,H,W) float32 -> float32, on `device` in `dtype`."""

    name = "torch"

    def __init__(
        self, net: torch.nn.Module, device: torch.device, dtype: torch.dtype, compile: bool = False
    ):
        self.device, self.dtype = device, dtype
        # channels_last lets cuDNN use tensor-core NHWC kernels; on CPU it measured no faster.
        self.memory_format = (
            torch.channels_last if device.type == "cuda" else torch.contiguous_format
        )
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


class Bf16Runner(TorchRunner):
    """CPU bf16 inference (precision=bf16): bf16 convolutions on channels_last maps, instance-norm
    statistics and the output in fp32 (`accel.bf16`). The net stays fp32 (tiles run in fp32)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__(net, torch.device("cpu"), torch.float32)

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        from fastnst.accel import bf16

        return bf16.forward(self.net, self.prepare(x), style)


class AutoRunner(TorchRunner):
    """backend=auto on CPU: each input runs on the path `accel.autotune` measured fastest on this
    CPU for the network's shape and the input's size class (cached per machine): the default path
    (`accel`: NNPACK + fused fp32, also for small inputs or FASTNST_AUTOTUNE=0), plain oneDNN
    fp32, channels_last fp32, bf16 (`offer_bf16` and a CPU with native bf16) or onnxruntime."""

    def __init__(self, net: TransformerNet, meta: dict | None = None, offer_bf16: bool = True):
        super().__init__(net, torch.device("cpu"), torch.float32)
        self.meta, self.offer_bf16 = dict(meta or {}), offer_bf16
        self.path = accel.autotune.BASELINE  # the path the last call took
        self.choices: dict[int, accel.autotune.Choice] = {}  # size class -> choice
        self._paths: dict[str, object] = {}

    @property
    def name(self) -> str:
        return "onnxruntime" if self.path == "onnxruntime" else "torch"

    def candidates(self) -> tuple[dict, dict]:
        """(path -> factory of a callable (x, style) -> fp32 output, path -> why not offered here)."""
        from fastnst.accel import autotune

        paths = {
            "accel": lambda: self._accel,
            "onednn": lambda: self._onednn,
            "channels_last": self._channels_last,
        }
        skipped = {}
        if self.offer_bf16 and self.net.config["norm"] != "instance":
            skipped["bf16"] = "needs instance norm"
        elif self.offer_bf16 and autotune.native_bf16():
            paths["bf16"] = lambda: self._bf16
        elif self.offer_bf16:
            skipped["bf16"] = "no amx_bf16/avx512_bf16 (emulated bf16)"
        if onnxruntime_available():
            paths["onnxruntime"] = self._onnxruntime
        else:
            skipped["onnxruntime"] = "not installed"
        return paths, skipped

    def _accel(self, x, style=None):
        return TorchRunner.__call__(self, x, style)

    def _onednn(self, x, style=None):
        with (
            torch.no_grad(),
            accel.fastconv.disabled(),
        ):  # plain eager: no NNPACK, sub-pixel or fusion
            return self.net(self.prepare(x), style)

    def _channels_last(self):
        net = copy.deepcopy(self.net).to(memory_format=torch.channels_last)

        def run(x, style=None):
            with torch.no_grad(), accel.fastconv.disabled():
                y = net(x.to(torch.float32, memory_format=torch.channels_last), style)
            return y.contiguous()

        return run

    def _bf16(self, x, style=None):
        return accel.bf16.forward(self.net, self.prepare(x), style)

    def _onnxruntime(self):
        runner = OnnxRunner(onnx_bytes(self.net, self.meta))
        return lambda x, style=None: runner(x, style)

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        from fastnst.accel import autotune
        from fastnst.transformer import one_hot

        if self.net.styles and style is None:
            style = one_hot(0, len(self.net.styles), x)
        choice = None
        if x.device.type == "cpu" and autotune.enabled():
            cls = autotune.size_class(*x.shape[-2:])
            choice = self.choices.get(cls[0]) if cls else None
            if cls and choice is None:
                paths, skipped = self.candidates()
                # factories of paths built during the measurement are kept for the calls after it
                paths = {
                    name: functools.partial(self._keep, name, make) for name, make in paths.items()
                }
                one = (
                    style[0] if style is not None and style.dim() == 2 else style
                )  # the timing image is one
                choice = autotune.choose(
                    autotune.network_name(self.net.config),
                    *x.shape[-2:],
                    paths,
                    run=lambda fn, t: fn(t, one),
                    skipped=skipped,
                )
                self.choices[cls[0]] = choice
        self.path = choice.path if choice else autotune.BASELINE
        fn = self._paths.get(self.path) or self._keep(self.path, self.candidates()[0][self.path])
        return fn(x, style)

    def _keep(self, name, make):
        """The callable of path `name`, built once (by `make`) and kept."""
        if name not in self._paths:
            self._paths[name] = make()
        return self._paths[name]


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
        self.module, self.device, self.dtype = (
            module.to(device=device, dtype=dtype).eval(),
            device,
            dtype,
        )

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: callers may modify results in place
            x = x.to(device=self.device, dtype=self.dtype)
            if style is None:
                return self.module(x).float()
            return self.module(x, style.to(device=self.device, dtype=self.dtype)).float()


def _need_onnxruntime(path: Path) -> None:
    if not onnxruntime_available():
        raise FastNSTError(
            f"{path}: backend onnxruntime needs `pip install fastnst[onnx]` (onnxruntime is not installed)"
        )


def _need_cpu_fp32(path: Path, device: torch.device, dtype: torch.dtype, backend: str) -> None:
    if device.type != "cpu" or dtype != torch.float32:
        raise FastNSTError(
            f"{path}: backend {backend} runs on CPU in fp32 here (use backend=torch for {device}/{dtype})"
        )


def _onnx_meta(path: Path) -> dict:
    try:
        props = {p.key: p.value for p in _parsed_onnx(path).metadata_props}
        saved = json.loads(props.get("fastnst", "{}"))
    except Exception:  # foreign ONNX files carry no fastnst metadata (or onnx is not installed)
        return {}
    meta = dict(saved.get("meta", {}))
    if saved.get("config", {}).get("styles"):
        meta["styles"] = list(saved["config"]["styles"])
    return meta


def _script_styles(extra: dict) -> list[str] | None:
    """The style names stored beside a TorchScript file (export.py's fastnst.json)."""

    try:
        return json.loads(extra.get("fastnst.json") or "{}").get("config", {}).get("styles")
    except (ValueError, AttributeError):
        return None


def meta_json(net: TransformerNet, meta: dict) -> str:
    """The config and meta stored inside exported ONNX / TorchScript files (read back by open_network)."""
    return json.dumps({"config": net.config, "meta": meta}, default=str)


def example_image(height=64, width=64) -> torch.Tensor:
    """A fixed (seeded) input for tracing and parity checks."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))


def example_inputs(net: TransformerNet, height=64, width=64) -> tuple[torch.Tensor, ...]:
    """(image,) or, for a multi-style network, (image, style weights): a blend, so every style's
    rows take part."""
    if not net.styles:
        return (example_image(height, width),)
    w = torch.arange(1, len(net.styles) + 1, dtype=torch.float32)
    return example_image(height, width), w / w.sum()


class RowSplitConv(nn.Module):
    """The same valid convolution as `conv`, computed as a 1 x k conv to (cout * k) channels
    followed by a shift-and-add over the k rows (a fixed grouped k x 1 conv).

    Why: the output conv (32 -> 3 channels, 9 x 9) is 5% of the Johnson net's multiply-adds but
    took 16% of onnxruntime's time, since 3 output channels fill its 8-wide blocked kernels
    badly; 27 channels fill them well. Same result up to float rounding (~1e-7).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        w = conv.weight.detach()
        cout, cin, kh, kw = w.shape
        self.groups = cout
        self.register_buffer(
            "rows", w.permute(0, 2, 1, 3).reshape(cout * kh, cin, 1, kw).contiguous()
        )
        # shift[c, ky, ky', 0] = (ky == ky'): output row y sums row-conv ky at input row y + ky
        self.register_buffer("shift", torch.eye(kh).reshape(1, kh, kh, 1).repeat(cout, 1, 1, 1))
        self.register_buffer(
            "bias", conv.bias.detach().clone() if conv.bias is not None else torch.zeros(cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, self.rows), self.shift, self.bias, groups=self.groups)


def inference_copy(net: TransformerNet) -> TransformerNet:
    """A copy of `net` computing the same function, arranged to run faster in onnxruntime."""
    fast = copy.deepcopy(net).eval().float().cpu()
    conv = fast.out[1]
    if (
        isinstance(conv, nn.Conv2d)
        and conv.out_channels < 8
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
    ):
        fast.out[1] = RowSplitConv(conv)
    return fast


def onnx_bytes(net: TransformerNet, meta: dict | None = None, opset: int = ONNX_OPSET) -> bytes:
    """The network as an ONNX model (bytes) with dynamic batch/height/width."""
    import warnings

    net = inference_copy(net)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # instance-norm "training mode" and tracer warnings are expected: IN always uses input stats
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter keeps F.interpolate(size=skip.shape) dynamic (Shape->Resize).
        multi = bool(net.styles)
        torch.onnx.export(
            net,
            example_inputs(net),
            buf,
            opset_version=opset,
            input_names=[INPUT_NAME, STYLE_INPUT_NAME] if multi else [INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            dynamo=False,
        )
    try:
        import onnx
    except ImportError:
        return buf.getvalue()
    model = onnx.load_from_string(buf.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, meta_json(net, meta or {})
    model.doc_string = (
        "fastnst transformer: input float32 (B,3,H,W) RGB in [0,1] -> output same shape in [0,1]"
    )
    if net.styles:
        model.doc_string += f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},) weights of {', '.join(net.styles)}"
    return model.SerializeToString()


@dataclass
class OpenedNetwork:
    """A network file opened for inference: its runner, the torch network when there is one
    (tiling needs it), its meta and, for a multi-style network, its style names."""

    runner: TorchRunner | OnnxRunner | ScriptRunner
    net: TransformerNet | None
    source: str
    meta: dict = field(default_factory=dict)
    styles: list[str] | None = None


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise FastNSTError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    return PRECISIONS[precision]


def open_network(
    model: str | os.PathLike,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    trust_model_file: bool = False,
) -> OpenedNetwork:
    """Open a model argument for inference: an exported .pt, a Lightning .ckpt, a run directory,
    an .onnx or a TorchScript file (recognised by content), or the name of a bundled style
    (`fastnst.zoo`), and pick its runner: backend "auto" = for fastnst networks on CPU the path
    measured fastest on this machine (AutoRunner), torch elsewhere; the file's own runtime for
    ONNX and TorchScript files."""
    from fastnst.accel.cpu_tuning import keep_freed_memory
    from fastnst.zoo import resolve_model

    path = resolve_model(model)
    if backend not in BACKENDS:
        raise FastNSTError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    dev = resolve_device(device)
    if dev.type == "cpu":
        keep_freed_memory()  # feature maps reuse freed memory instead of page-faulting it in
    kind = model_kind(path)
    dtype = resolve_precision(precision, dev)
    if kind == "onnx":
        if backend not in ("auto", "onnxruntime"):
            raise FastNSTError(f"{path}: an ONNX file runs only with backend=onnxruntime")
        _need_onnxruntime(path)
        _need_cpu_fp32(path, dev, dtype, "onnxruntime")
        meta = _onnx_meta(path)
        return OpenedNetwork(OnnxRunner(str(path)), None, str(path), meta, meta.get("styles"))
    if kind == "torchscript":
        if backend not in ("auto", "torch", "torchscript"):
            raise FastNSTError(
                f"{path}: a TorchScript file runs only with backend=torchscript (or torch)"
            )
        extra = {f"{META_KEY}.json": ""}
        try:
            with jit_deprecation_silenced():
                module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as e:
            raise FastNSTError(
                f"{path}: cannot load TorchScript model ({type(e).__name__})"
            ) from None
        return OpenedNetwork(
            ScriptRunner(module, dev, dtype), None, str(path), {}, _script_styles(extra)
        )
    net, meta = load_network(path, trust_model_file=trust_model_file)
    styles = list(net.styles) if net.styles else None
    if backend == "torchscript":
        raise FastNSTError(
            f"{path}: backend=torchscript needs a TorchScript file (export.py format=torchscript)"
        )
    if backend == "onnxruntime":
        _need_onnxruntime(path)
        _need_cpu_fp32(path, dev, dtype, "onnxruntime")
        # the torch net stays on CPU for tiled runs (instance-norm statistics are handed in)
        return OpenedNetwork(
            OnnxRunner(onnx_bytes(net, meta)), accel.accelerate(net), str(path), meta, styles
        )
    runner = _torch_runner(net, meta, dev, dtype, backend, precision, compile)
    return OpenedNetwork(runner, runner.net, str(path), meta, styles)


def _torch_runner(net, meta, dev, dtype, backend, precision, compile) -> TorchRunner:
    """backend=auto on CPU: the path measured fastest here (AutoRunner; precision=fp32 keeps it to
    fp32 paths); precision=bf16 on CPU: bf16 convs, fp32 norms and output; else TorchRunner."""
    plain_cpu = dev.type == "cpu" and not compile
    if plain_cpu and backend == "auto" and precision in ("auto", "fp32"):
        return AutoRunner(net, meta, offer_bf16=precision == "auto")
    if plain_cpu and dtype == torch.bfloat16 and net.config["norm"] == "instance":
        return Bf16Runner(net)
    return TorchRunner(net, dev, dtype, compile=compile)
