"""The CPU inference paths the autotuner chooses from, in one registry: each has a name, what it
does, a factory that builds it for a network and a rule saying where it is offered.

    accel          NNPACK convolutions + the fused forward, fp32 (the default path)
    onednn         plain eager PyTorch, fp32 (oneDNN's convolutions)
    channels_last  plain eager PyTorch on channels_last maps, fp32
    bf16           bf16 convolutions, fp32 instance-norm statistics and output, eager (`bf16.py`)
    compiled       the network in bf16 on channels_last maps under torch.compile (`compiled.py`)
    onnxruntime    our ONNX export run by onnxruntime, fp32

A factory takes the `Host` (the runner: the fp32 network, its meta, how to build an ONNX
runner) and returns a callable forward(x, style=None) -> fp32 output. `available(cpu, host)`
returns None where the path is offered and otherwise why not, in a few words: the autotuner
logs those reasons and benchmark tables print them (scripts/bench/bench_inference.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from fastnst.accel import autotune
from fastnst.accel import cpu as cpu_facts

DEFAULT = autotune.BASELINE  # "accel": the path every other must beat
# why the compiled path is not offered before it was compiled here (`compiled.hint_once`)
NOT_COMPILED = "not compiled on this machine yet"


class Host(Protocol):
    """What a path's factory and availability rule see of the runner that offers it."""

    net: torch.nn.Module  # the fp32 TransformerNet (accelerated in place: NNPACK, sub-pixel)
    offer_bf16: bool  # False with precision=fp32: only fp32 paths
    compile_pays: bool  # a compile may run now (compile=true, a folder, a video, the web app)

    def onnx_runner(self) -> Callable: ...


Forward = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class CpuPath:
    name: str
    description: str
    factory: Callable[[Host], Forward]
    available: Callable[[cpu_facts.CPU, Host], str | None]
    precision: str = "fp32"


def _always(cpu: cpu_facts.CPU, host: Host) -> str | None:
    return None


def _accel(host: Host) -> Forward:
    from fastnst.accel import fused

    def run(x, style=None):
        with torch.no_grad():
            return fused.forward(host.net, x.to(torch.float32), style).float()

    return run


def _onednn(host: Host) -> Forward:
    from fastnst.accel import fastconv

    def run(x, style=None):
        with torch.no_grad(), fastconv.disabled():  # plain eager: no NNPACK, sub-pixel or fusion
            return host.net(x.to(torch.float32), style)

    return run


def _channels_last(host: Host) -> Forward:
    from fastnst.accel import fastconv

    net = copy.deepcopy(host.net).to(memory_format=torch.channels_last)

    def run(x, style=None):
        with torch.no_grad(), fastconv.disabled():
            y = net(x.to(torch.float32, memory_format=torch.channels_last), style)
        return y.contiguous()

    return run


def _bf16(host: Host) -> Forward:
    from fastnst.accel import bf16

    return lambda x, style=None: bf16.forward(host.net, x.to(torch.float32), style)


def _bf16_available(cpu: cpu_facts.CPU, host: Host) -> str | None:
    if not host.offer_bf16:
        return "precision=fp32"
    if host.net.config["norm"] != "instance":
        return "needs instance norm"
    if not cpu.native_bf16:
        return "no amx_bf16/avx512_bf16 (emulated bf16)"
    return None


def _compiled(host: Host) -> Forward:
    from fastnst.accel import compiled

    return compiled.CompiledForward(host.net, fallback=_accel(host))


def _compiled_available(cpu: cpu_facts.CPU, host: Host) -> str | None:
    from fastnst.accel import compiled

    why = _bf16_available(cpu, host)
    if why:
        return why
    if not host.compile_pays and not compiled.is_cached(host.net):
        return NOT_COMPILED
    return None


def _onnxruntime(host: Host) -> Forward:
    return host.onnx_runner()


def _onnxruntime_available(cpu: cpu_facts.CPU, host: Host) -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "not installed"
    return None


PATHS: dict[str, CpuPath] = {
    p.name: p
    for p in (
        CpuPath(DEFAULT, "NNPACK + fused, fp32", _accel, _always),
        CpuPath("onednn", "plain eager fp32", _onednn, _always),
        CpuPath("channels_last", "eager fp32, channels_last", _channels_last, _always),
        CpuPath("bf16", "bf16 convs, fp32 norm stats + output", _bf16, _bf16_available, "bf16"),
        CpuPath(
            "compiled",
            "bf16 + channels_last under torch.compile, fp32 first conv + norm stats",
            _compiled,
            _compiled_available,
            "bf16",
        ),
        CpuPath("onnxruntime", "our ONNX export, fp32", _onnxruntime, _onnxruntime_available),
    )
}


def offered(
    host: Host, cpu: cpu_facts.CPU | None = None
) -> tuple[dict[str, Callable[[], Forward]], dict[str, str]]:
    """(name -> factory of the path's forward, name -> why not offered) for `host` on `cpu`
    (default: this machine's), in registry order; the default path is always offered."""
    cpu = cpu or cpu_facts.current()
    paths, skipped = {}, {}
    for name, path in PATHS.items():
        why = path.available(cpu, host)
        if why is None:
            paths[name] = lambda path=path: path.factory(host)
        else:
            skipped[name] = why
    return paths, skipped


def build(name: str, host: Host) -> Forward:
    """The forward of path `name` for `host`, whether offered or not (benchmarks show paths
    the autotuner would not offer here, e.g. emulated bf16)."""
    return PATHS[name].factory(host)
