"""The compiled CPU path: a TransformerNet's inference forward in bf16 on channels_last maps,
compiled ahead of time by inductor (AOTInductor), the compiled code cached on disk per CPU and
network shape.

Why: in eager mode the bf16 path (`bf16.py`) pays for conversions between fp32 and bf16 around
every instance norm and for the memory-bound ops between convolutions; inductor fuses the norm,
its statistics, ReLU, the residual add and the next conv's reflection padding into a few loops,
so the oneDNN bf16 convolutions (AVX512-BF16 / AMX) are left to dominate.

Numerics: the first convolution reads the fp32 photo in fp32 (rounding the photo itself to bf16
costs ~10 dB), every instance norm computes its statistics and affine map in fp32 from the conv's
output and rounds the result to bf16 once (the next conv would round it anyway), residual adds
happen in fp32, and the last convolution's output goes through the sigmoid in fp32. The bundled
networks stay above 40 dB PSNR against the fp32 forward (tests/test_compiled.py).

Sizes: the graph is exported (torch.export) with a dynamic height and width (MIN_SIDE..MAX_SIDE
px), so every image size runs on the same compiled code, never recompiled; a batch runs image by
image. Smaller images take the default fp32 path.

The cache: `package_file(net)` = <fastnst cache dir>/compiled/<CPU, torch version, threads,
network shape>.pt2, an AOTInductor package (a shared library plus its metadata). The network's
weights are inputs of the compiled graph, not constants in it, so one package serves every
network of the same shape (all the single-style bundled networks share one) and no weight is
ever stale. Loading a package is a dlopen, a few milliseconds: a second process starts
on the compiled path at once. The alternative, torch.compile with inductor's FX graph cache
pointed at the same folder, also handles every size with one graph, but retraces the Python on
every start (about 10 s on 2 busy cores, see docs/benchmarks.md).

The package holds native code: it is built here, for this machine, and lives in the user's own
cache folder (as the autotune choices do); a package that does not load is built again.

Available only where the CPU computes bf16 natively (`cpu.CPU.native_bf16`); elsewhere bf16 is
emulated and slower than the fp32 paths (`paths.py` decides where it is offered).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fastnst.accel import cpu
from fastnst.transformer import ConditionalInstanceNorm2d, TransformerNet, upsample

BF16 = torch.bfloat16
CL = torch.channels_last
MIN_SIDE, MAX_SIDE = 32, 16384  # the compiled graph's range of heights and widths
PACKAGE_VERSION = 1  # bumped when the graph changes: older packages are not used


class Bf16Network:
    """A TransformerNet's inference forward as plain tensor ops, bf16 where it pays (see the
    module docstring): the graph AOTInductor compiles. The weights are not held by the graph:
    `tensors` (converted once: bf16 channels_last convs, fp32 norms) are handed in on every call,
    forward(x, [style,] *tensors): x the fp32 image (1, 3, H, W), style a multi-style network's
    weights (1, N); returns fp32 (1, 3, H, W), contiguous."""

    def __init__(self, net: TransformerNet):
        if net.config["norm"] != "instance":
            raise ValueError("the compiled path needs an instance-normalized network")
        self.multi = bool(net.styles)
        self.upsample = net.upsample_mode
        self.num_styles = len(net.styles) if net.styles else 0
        layers = [net.down1, net.down2, net.down3]
        for block in net.residuals:
            layers += list(block.body)
        layers += [net.up1.conv, net.up2.conv, net.out]
        self.num_residual = len(net.residuals)
        # per layer: (padding, stride, has bias, has norm, relu, eps)
        self.layers: list[tuple[int, int, bool, bool, bool, float]] = []
        tensors = []
        with torch.no_grad():
            for i, layer in enumerate(layers):
                pad, conv = layer[0], layer[1]
                norm = (
                    layer[2]
                    if len(layer) > 2
                    and isinstance(layer[2], torch.nn.modules.instancenorm._InstanceNorm)
                    else None
                )
                relu = any(isinstance(m, torch.nn.ReLU) for m in layer)
                dtype = torch.float32 if i == 0 else BF16  # the first conv reads the fp32 photo
                tensors.append(conv.weight.detach().to(dtype).contiguous(memory_format=CL))
                if conv.bias is not None:
                    tensors.append(conv.bias.detach().to(dtype))
                if norm is not None:
                    # plain: (C,); conditional: (N, C), mixed by the style weights
                    tensors += [norm.weight.detach().float(), norm.bias.detach().float()]
                self.layers.append(
                    (
                        pad.padding[0],
                        conv.stride[0],
                        conv.bias is not None,
                        norm is not None,
                        relu,
                        float(norm.eps) if norm is not None else 0.0,
                    )
                )
        self.tensors = tuple(tensors)
        if self.multi and not all(
            isinstance(m, ConditionalInstanceNorm2d) for m in net.instance_norms()
        ):
            raise ValueError("a multi-style network needs conditional instance norms")

    def shape_key(self) -> str:
        """What the compiled graph depends on besides the CPU: layers and tensor shapes."""
        shapes = ";".join("x".join(str(d) for d in t.shape) for t in self.tensors)
        mode = "" if self.upsample == "nearest" else f" {self.upsample}"  # keeps older keys
        return f"v{PACKAGE_VERSION} {self.layers} {self.multi}{mode} {shapes}"

    def __call__(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        return self.forward(x, *args)

    def forward(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        style = args[0].float() if self.multi else None
        tensors = list(args[1:] if self.multi else args)

        def layer(h, i, skip=None, size=None):
            pad, stride, has_bias, has_norm, relu, eps = self.layers[i]
            weight = tensors.pop(0)
            bias = tensors.pop(0) if has_bias else None
            if size is not None:  # the decoder's upsampling to the given size
                h = upsample(h, size, self.upsample)
            h = F.pad(h, (pad, pad, pad, pad), mode="reflect")
            y = F.conv2d(h.contiguous(memory_format=CL), weight, bias, stride=stride).float()
            if not has_norm:
                return y
            scale, shift = tensors.pop(0), tensors.pop(0)
            if self.multi:  # (1, N) @ (N, C)
                scale, shift = style @ scale, style @ shift
            else:
                scale, shift = scale.unsqueeze(0), shift.unsqueeze(0)
            var, mean = torch.var_mean(y, dim=(2, 3), keepdim=True, correction=0)
            out = (y - mean) * (torch.rsqrt(var + eps) * scale[..., None, None]) + shift[
                ..., None, None
            ]
            if skip is not None:
                out = out + skip.float()
            return (out.relu() if relu else out).to(BF16)

        h1 = layer(x.float(), 0)
        h2 = layer(h1, 1)
        h = layer(h2, 2)
        i = 3
        for _ in range(self.num_residual):
            h = layer(layer(h, i), i + 1, skip=h)
            i += 2
        h = layer(h, i, size=h2.shape[-2:])
        h = layer(h, i + 1, size=h1.shape[-2:])
        return torch.sigmoid(layer(h, i + 2)).contiguous()


class _Graph(torch.nn.Module):
    """Bf16Network as a module for torch.export (no parameters: the weights are inputs)."""

    def __init__(self, network: Bf16Network):
        super().__init__()
        self.network = network

    def forward(self, x, *args):
        return self.network.forward(x, *args)


def cache_dir() -> Path:
    """<fastnst cache dir>/compiled (beside autotune.json)."""
    from fastnst.accel import autotune

    return autotune.cache_file().parent / "compiled"


def package_key(network: Bf16Network) -> str:
    """The compiled code is specific to the CPU (its flags pick the kernels), the torch version,
    the thread count (inductor writes it into the code) and the network's shape."""
    facts = cpu.current()
    return (
        f"{facts.model} [{','.join(facts.relevant_flags)}] torch {torch.__version__} "
        f"{torch.get_num_threads()} threads | {network.shape_key()}"
    )


def package_file(net: TransformerNet | Bf16Network) -> Path:
    network = net if isinstance(net, Bf16Network) else Bf16Network(net)
    digest = hashlib.sha256(package_key(network).encode()).hexdigest()[:20]
    return cache_dir() / f"{digest}.pt2"


def is_cached(net: TransformerNet) -> bool:
    """Whether this network's shape was compiled on this machine before (its package is in
    `cache_dir()`), so that the compiled path starts at once."""
    try:
        return net.config["norm"] == "instance" and package_file(net).is_file()
    except (OSError, ValueError):
        return False


def _inductor_scratch() -> None:
    """Inductor's scratch files go under the fastnst cache too (unless the user chose a folder)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))


def compile_package(network: Bf16Network, path: Path) -> float:
    """Export `network` with a dynamic height and width, compile it with AOTInductor and write
    the package to `path` atomically. Returns the seconds it took."""
    from fastnst.atomic import atomic_path

    start = time.perf_counter()
    _inductor_scratch()
    h = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    w = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    example = [torch.rand(1, 3, 64, 96)]
    if network.multi:
        n = network.num_styles
        example.append(torch.full((1, n), 1.0 / n))
    example += network.tensors
    dynamic = ({2: h, 3: w}, (None,) * (len(example) - 1))  # (x, *args)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.export.export(_Graph(network), tuple(example), dynamic_shapes=dynamic)
        with atomic_path(path, tag="building") as tmp:
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
    return time.perf_counter() - start


def load_package(path: Path):
    """A callable run(list of tensors) -> list of tensors for an AOTInductor package."""
    try:  # the bare loader: no import of inductor's compiler (about 5 s on a busy machine)
        loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        return loader.run
    except (AttributeError, TypeError):  # another torch: the public loader
        model = torch._inductor.aoti_load_package(str(path))
        return lambda inputs: [model(*inputs)]


_hinted = False


def hint_once() -> None:
    """The one line a single-image run prints where the compiled path could run but was never
    compiled here (once per process)."""
    global _hinted
    if not _hinted:
        _hinted = True
        print(
            "fastnst: a faster compiled bf16 CPU path exists here; compile=true (or a folder, a "
            "video, the web app) compiles it once (a few minutes), then every run starts on it",
            file=sys.stderr,
        )


class CompiledForward:
    """The compiled path for `net`: loads this machine's package for the network's shape, or
    compiles it first (one line on stderr says so; `seconds` holds what it took, `cached` whether
    it was there). Call as forward(x, style=None) -> fp32 (B, 3, H, W). `fallback(x, style)`
    runs images smaller than MIN_SIDE."""

    def __init__(self, net: TransformerNet, fallback=None):
        self.net, self.fallback = net, fallback
        self.network = Bf16Network(net)
        path = package_file(self.network)
        self.cached, self.seconds = path.is_file(), 0.0
        run = None
        if self.cached:
            try:
                run = load_package(path)
            except Exception as e:  # a damaged package (or another build's): built again
                print(
                    f"fastnst: {path} does not load ({type(e).__name__}); compiling it again",
                    file=sys.stderr,
                )
                self.cached = False
        if run is None:
            print(
                "fastnst: compiling the bf16 CPU path for this network shape (once on this "
                f"machine, a few minutes; kept in {cache_dir()})",
                file=sys.stderr,
            )
            self.seconds = compile_package(self.network, path)
            run = load_package(path)
        self._run = run

    def __call__(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if min(x.shape[-2:]) < MIN_SIDE or max(x.shape[-2:]) > MAX_SIDE:
            if self.fallback is None:
                raise ValueError(f"the compiled path runs {MIN_SIDE}..{MAX_SIDE} px sides")
            return self.fallback(x, style)
        x = x.to("cpu", torch.float32).contiguous()
        if self.network.multi:
            if style is None:
                style = torch.zeros(len(self.net.styles))
                style[0] = 1.0
            style = style.float().reshape(-1, style.shape[-1]).expand(x.shape[0], -1)
        outputs = []
        with torch.no_grad():
            for i in range(x.shape[0]):  # the graph takes one image: a batch runs image by image
                inputs = [x[i : i + 1]]
                if self.network.multi:
                    inputs.append(style[i : i + 1].contiguous())
                outputs.append(self._run(inputs + list(self.network.tensors))[0])
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def available(facts: cpu.CPU) -> str | None:
    """None where the CPU may run the compiled path, else why not."""
    if not facts.native_bf16:
        return "no amx_bf16/avx512_bf16 (emulated bf16)"
    return None
