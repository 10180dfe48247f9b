"""Running a network: the runner classes (eager torch, CPU bf16, the measured-fastest CPU path,
onnxruntime, TorchScript), device and inference-dtype resolution, and `open_network`, the path
from a model argument to a runner.

`open_network(path, ...)` asks `fastnst.formats` what the file holds and whether it may be
opened (trust), then picks the runner; `Stylizer.load` calls it. Bundled networks are resolved
by name in `fastnst.zoo`. fastnst.accel (CPU fast paths) is opted into here, never inside the
network itself.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fastnst import accel
from fastnst.errors import FastNSTError
from fastnst.export import onnx_bytes
from fastnst.formats import (
    load_network,
    load_script_module,
    model_kind,
    onnx_meta,
    onnx_risks,
    refuse_untrusted,
)
from fastnst.transformer import TransformerNet

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
    CPU for the network's shape and the input's size class (cached per machine), from the
    registry `accel.paths`: the default path (`accel`: NNPACK + fused fp32, also for small inputs
    or FASTNST_AUTOTUNE=0), plain oneDNN fp32, channels_last fp32, bf16 and the compiled bf16
    path (`offer_bf16` and a CPU with native bf16) or onnxruntime.

    The compiled path is offered once its code is cached on this machine, or where compiling
    pays: `compile=True` (then it is also taken unmeasured on a busy CPU) or `allow_compile()`
    (folders, videos and the web app call it: many images follow)."""

    def __init__(
        self,
        net: TransformerNet,
        meta: dict | None = None,
        offer_bf16: bool = True,
        compile: bool = False,
    ):
        super().__init__(net, torch.device("cpu"), torch.float32)
        self.meta, self.offer_bf16 = dict(meta or {}), offer_bf16
        self.compile_asked = self.compile_pays = bool(compile)
        self.path = accel.paths.DEFAULT  # the path the last call took
        self.choices: dict[int, accel.autotune.Choice] = {}  # size class -> choice
        self._paths: dict[str, object] = {}

    @property
    def name(self) -> str:
        return "onnxruntime" if self.path == "onnxruntime" else "torch"

    def candidates(self) -> tuple[dict, dict]:
        """(path -> factory of a callable (x, style) -> fp32 output, path -> why not offered here)."""
        return accel.paths.offered(self)

    def onnx_runner(self):
        runner = OnnxRunner(onnx_bytes(self.net, self.meta))
        return lambda x, style=None: runner(x, style)

    def allow_compile(self) -> None:
        """Many images follow (a folder, a video, the web app): compiling the compiled path now
        pays, so the next choice per size class considers it."""
        if not self.compile_pays:
            self.compile_pays = True
            self.choices.clear()

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        from fastnst.accel import autotune, compiled
        from fastnst.transformer import one_hot

        if self.net.styles and style is None:
            style = one_hot(0, len(self.net.styles), x)
        choice = None
        if x.device.type == "cpu" and autotune.enabled():
            cls = autotune.size_class(*x.shape[-2:])
            choice = self.choices.get(cls[0]) if cls else None
            if cls and choice is None:
                paths, skipped = self.candidates()
                if skipped.get("compiled") == accel.paths.NOT_COMPILED:
                    compiled.hint_once()
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
                    prefer="compiled" if self.compile_asked else None,
                )
                self.choices[cls[0]] = choice
        elif self.compile_asked and autotune.size_class(*x.shape[-2:]):  # autotuning off
            offered = self.candidates()[0]
            choice = autotune.Choice("compiled", "compile=true") if "compiled" in offered else None
        self.path = choice.path if choice else accel.paths.DEFAULT
        fn = self._paths.get(self.path) or self._keep(
            self.path, lambda: accel.paths.build(self.path, self)
        )
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


@dataclass
class OpenedNetwork:
    """A network file opened for inference: its runner, the torch network when there is one
    (tiling needs it), its meta and, for a multi-style network, its style names."""

    runner: TorchRunner | OnnxRunner | ScriptRunner
    net: TransformerNet | None
    source: str
    meta: dict = field(default_factory=dict)
    styles: list[str] | None = None


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype a network runs in for an inference `precision` (auto: fp16 on CUDA, else fp32).
    Not `fastnst.train.resolve_precision`, which picks a Lightning Trainer's precision."""
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
    dtype = inference_dtype(precision, dev)
    if kind == "onnx":
        if backend not in ("auto", "onnxruntime"):
            raise FastNSTError(f"{path}: an ONNX file runs only with backend=onnxruntime")
        _need_onnxruntime(path)
        _need_cpu_fp32(path, dev, dtype, "onnxruntime")
        risk = onnx_risks(path)
        if risk:
            refuse_untrusted(path, risk, trust_model_file)
        meta = onnx_meta(path)
        return OpenedNetwork(OnnxRunner(str(path)), None, str(path), meta, meta.get("styles"))
    if kind == "torchscript":
        if backend not in ("auto", "torch", "torchscript"):
            raise FastNSTError(
                f"{path}: a TorchScript file runs only with backend=torchscript (or torch)"
            )
        module, meta = load_script_module(path, trust_model_file)
        return OpenedNetwork(
            ScriptRunner(module, dev, dtype), None, str(path), meta, meta.get("styles")
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
    if dev.type == "cpu" and backend == "auto" and precision in ("auto", "fp32"):
        # compile=true on CPU: the compiled bf16 path (accel.compiled) where the CPU has native
        # bf16, compiled now unless cached; elsewhere the autotuner's fp32 paths
        return AutoRunner(net, meta, offer_bf16=precision == "auto", compile=compile)
    plain_cpu = dev.type == "cpu" and not compile
    if plain_cpu and dtype == torch.bfloat16 and net.config["norm"] == "instance":
        return Bf16Runner(net)
    return TorchRunner(net, dev, dtype, compile=compile)
