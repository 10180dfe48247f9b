"""The compiled bf16 CPU path (accel/compiled.py) and the registry of CPU paths (accel/paths.py):
where it is offered (faked CPU flags), its numerics, when it compiles, and - slow - a real
AOTInductor compile of a tiny network, cached and reused across weights and sizes."""

from __future__ import annotations

import os

import pytest
import torch

from fastnst import Stylizer
from fastnst.accel import autotune, compiled, cpu, paths
from fastnst.formats import load_exported, save_exported
from fastnst.metrics import psnr
from fastnst.transformer import TransformerNet
from fastnst.zoo import bundled_styles

AVX2 = cpu.CPU("AMD EPYC 7B13", frozenset({"avx2", "fma"}))
AVX512 = cpu.CPU("Intel Xeon Gold 6148", frozenset({"avx2", "avx512f"}))  # no bf16 extension
ZEN4 = cpu.CPU("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_bf16"}))
AMX = cpu.CPU("Intel Xeon Platinum 8481C", frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"}))


class Host:
    def __init__(self, net, offer_bf16=True, compile_pays=False):
        self.net, self.offer_bf16, self.compile_pays = net, offer_bf16, compile_pays

    def onnx_runner(self):  # pragma: no cover - not built here
        raise AssertionError


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TransformerNet(channels=(8, 16, 32), num_residual=1).eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return tmp_path / "cache"


def test_every_path_is_described_once_in_the_registry():
    assert list(paths.PATHS)[0] == paths.DEFAULT == autotune.BASELINE
    assert {"accel", "onednn", "channels_last", "bf16", "compiled", "onnxruntime"} <= set(
        paths.PATHS
    )
    for name, path in paths.PATHS.items():
        assert path.name == name and path.description and path.precision in ("fp32", "bf16")


@pytest.mark.parametrize("machine", [AVX2, AVX512], ids=["avx2", "avx512-no-bf16"])
def test_no_bf16_path_on_a_cpu_without_native_bf16(tiny, cache, machine):
    """No regression without native bf16: only the fp32 paths are offered, even where a compile
    would pay."""
    offered, skipped = paths.offered(Host(tiny, compile_pays=True), machine)
    assert "bf16" not in offered and "compiled" not in offered
    assert "avx512_bf16" in skipped["compiled"] and "avx512_bf16" in skipped["bf16"]
    assert {"accel", "onednn", "channels_last"} <= set(offered)
    assert all(paths.PATHS[name].precision == "fp32" for name in offered)


@pytest.mark.parametrize("machine", [ZEN4, AMX], ids=["avx512_bf16", "amx"])
def test_compiled_path_where_the_cpu_has_native_bf16_and_the_compile_pays(tiny, cache, machine):
    offered, skipped = paths.offered(Host(tiny, compile_pays=True), machine)
    assert "compiled" in offered and "bf16" in offered
    # a one-image run with nothing compiled yet keeps today's paths
    offered, skipped = paths.offered(Host(tiny), machine)
    assert "compiled" not in offered and skipped["compiled"] == paths.NOT_COMPILED
    assert "bf16" in offered
    # precision=fp32: no bf16 path at all
    offered, skipped = paths.offered(Host(tiny, offer_bf16=False, compile_pays=True), machine)
    assert skipped["compiled"] == skipped["bf16"] == "precision=fp32"
    # once this machine holds the network shape's package, it is offered to every run
    package = compiled.package_file(tiny)
    package.parent.mkdir(parents=True)
    package.write_bytes(b"")
    assert "compiled" in paths.offered(Host(tiny), machine)[0]


def test_a_batch_norm_network_gets_no_bf16_path(cache):
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, norm="batch").eval()
    _, skipped = paths.offered(Host(net, compile_pays=True), ZEN4)
    assert skipped["compiled"] == skipped["bf16"] == "needs instance norm"


def test_package_names_the_cpu_torch_threads_and_network_shape(tiny, cache, monkeypatch):
    first = compiled.package_file(tiny)
    assert first.parent == cache / "compiled" and first.suffix == ".pt2"
    torch.manual_seed(1)
    other_weights = TransformerNet(channels=(8, 16, 32), num_residual=1)
    assert compiled.package_file(other_weights) == first  # weights are inputs, not constants
    wider = TransformerNet(channels=(8, 16, 48), num_residual=1)
    assert compiled.package_file(wider) != first
    monkeypatch.setattr(cpu, "cpu_info", lambda: (AMX.model, AMX.flags))
    assert compiled.package_file(tiny) != first


def _fake_compiled(monkeypatch, built: list):
    class Fake:
        def __init__(self, net, fallback=None):
            built.append(net)
            self.fallback = fallback

        def __call__(self, x, style=None):
            return self.fallback(x, style)

    monkeypatch.setattr(compiled, "CompiledForward", Fake)


def test_compile_true_on_a_cpu_without_bf16_keeps_the_fp32_paths(
    tiny, tmp_path, cache, monkeypatch
):
    monkeypatch.setattr(cpu, "cpu_info", lambda: (AVX2.model, AVX2.flags))
    built = []
    _fake_compiled(monkeypatch, built)
    s = Stylizer.load(save_exported(tmp_path / "m.pt", tiny), device="cpu", compile=True)
    s(torch.rand(1, 3, 128, 128))
    assert not built and s.runner.path == "accel"


def test_one_image_hints_in_one_line_and_many_images_compile(
    tiny, tmp_path, cache, monkeypatch, capsys
):
    """Nothing compiled yet: a single image keeps today's path and says once how to get the
    compiled one; a folder or video (stylize_many) offers it to the autotuner, compile=true takes
    it."""
    monkeypatch.setattr(cpu, "cpu_info", lambda: (ZEN4.model, ZEN4.flags))
    monkeypatch.setattr(compiled, "_hinted", False)
    built = []
    _fake_compiled(monkeypatch, built)
    monkeypatch.setenv("FASTNST_AUTOTUNE", "1")
    monkeypatch.setattr(autotune, "busy", lambda: "load 9.0 on 2 CPUs")  # nothing is measured
    file = save_exported(tmp_path / "m.pt", tiny)
    x = torch.rand(1, 3, 128, 128)
    one = Stylizer.load(file, device="cpu")
    one(x)
    one(torch.rand(1, 3, 300, 200))  # another size class: still one line
    err = capsys.readouterr().err
    assert err.count("compile=true") == 1 and len(err.strip().splitlines()) == 1
    assert not built and one.runner.path == "accel"
    # many images: the compiled path is a candidate now (on a busy CPU the default path runs)
    list(one.stylize_many([x, x]))
    assert "compiled" in one.runner.candidates()[0]
    # compile=true: taken (unmeasured on a busy CPU), built once
    asked = Stylizer.load(file, device="cpu", compile=True)
    asked(x)
    asked(x)
    assert asked.runner.path == "compiled" and len(built) == 1
    monkeypatch.setenv("FASTNST_AUTOTUNE", "0")  # autotuning off: compile=true still takes it
    off = Stylizer.load(file, device="cpu", compile=True)
    off(x)
    assert off.runner.path == "compiled"


@pytest.mark.parametrize("style", sorted(bundled_styles()))
def test_bf16_graph_keeps_40db_on_every_bundled_network(style):
    """The graph the compiler gets, run eagerly: >= 40 dB PSNR against fp32 on every network
    shipped (compiled, the same arithmetic fused: tests below and scripts/bench)."""
    net, _ = load_exported(bundled_styles()[style])
    network = compiled.Bf16Network(net)
    x = autotune.timing_image(96, 124)
    style_input = [torch.eye(len(net.styles))[:1]] if net.styles else []
    with torch.no_grad():
        reference = net(x)
        out = network(x, *style_input, *network.tensors)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert psnr(out, reference) >= 40


def test_bf16_graph_blends_styles_like_the_network():
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["a", "b"]).eval()
    network = compiled.Bf16Network(net)
    x = autotune.timing_image(64, 80)
    mix = torch.tensor([[0.3, 0.7]])
    with torch.no_grad():
        assert psnr(network(x, mix, *network.tensors), net(x, mix[0])) >= 40


@pytest.mark.slow
def test_real_compile_is_cached_and_serves_other_weights_and_sizes(tiny, cache, capsys):
    """A real AOTInductor compile of a tiny network (a minute or more on 2 cores): close to fp32,
    one package for every network of this shape, every size without recompiling, a batch, and
    images below the compiled range on the fallback."""
    first = compiled.CompiledForward(tiny, fallback=lambda x, style=None: tiny(x))
    assert not first.cached and first.seconds > 0 and compiled.is_cached(tiny)
    assert "compiling the bf16 CPU path" in capsys.readouterr().err
    torch.manual_seed(1)
    other = TransformerNet(channels=(8, 16, 32), num_residual=1).eval()
    second = compiled.CompiledForward(other, fallback=lambda x, style=None: other(x))
    assert second.cached and second.seconds == 0.0
    assert "compiling" not in capsys.readouterr().err
    with torch.no_grad():
        for net, forward in ((tiny, first), (other, second)):
            for h, w in ((96, 128), (75, 101), (40, 200)):
                x = autotune.timing_image(h, w)
                assert psnr(forward(x), net(x)) >= 40, (h, w)
        batch = torch.rand(2, 3, 64, 64)
        assert psnr(second(batch), other(batch)) >= 40
        small = torch.rand(1, 3, 20, 50)
        assert torch.equal(second(small), other(small))


def test_a_package_that_does_not_load_is_built_again(tiny, cache, monkeypatch, capsys):
    """The package is only a file in the user's cache: a damaged one (or one a FIFO replaced)
    is compiled again, said in one line, never waited on."""
    package = compiled.package_file(tiny)
    package.parent.mkdir(parents=True)
    package.write_bytes(b"not a package")
    built, loads = [], []
    real_load = compiled.load_package

    def load(path):
        loads.append(path)
        if len(loads) == 1:
            return real_load(path)  # the damaged file: raises
        return lambda inputs: [torch.zeros(1, 3, *inputs[0].shape[-2:])]

    monkeypatch.setattr(compiled, "load_package", load)
    monkeypatch.setattr(
        compiled, "compile_package", lambda network, path: built.append(path) or 1.0
    )
    forward = compiled.CompiledForward(tiny)
    assert built == [package] and not forward.cached
    err = capsys.readouterr().err
    assert "does not load" in err and "compiling" in err
    assert forward(torch.rand(1, 3, 40, 48)).shape == (1, 3, 40, 48)
    package.unlink()
    os.mkfifo(package)  # not a regular file: not taken for a package, compiled (replaced)
    built.clear()
    compiled.CompiledForward(tiny)
    assert built == [package]
