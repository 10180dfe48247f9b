"""The fused CPU inference forward (`fastnst.accel.fused.forward`, what the Stylizer opts into):
the same result as the layer-by-layer forward, used only where that holds (no gradient, instance
norm, sides divisible by 4, nothing hooked), and the allocator setting that CPU inference turns on."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from fastnst import accel
from fastnst.accel import fastconv, fused
from fastnst.tiling import tiled_forward
from fastnst.transformer import TransformerNet


def _net(channels=(8, 16, 32), num_residual=2, norm="instance", seed=0):
    torch.manual_seed(seed)
    net = TransformerNet(channels, num_residual, norm=norm).eval()
    with torch.no_grad():  # non-trivial affine parameters, so a wrong scale or shift shows
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


def _layer_by_layer(net, x, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(fused, "can_fuse", lambda *args: False)
        with torch.no_grad():
            return fused.forward(net, x)  # falls back to net(x)


@pytest.fixture
def fused_calls(monkeypatch):
    calls = []
    real = fused.fused_forward

    def spy(net, x, *args):
        calls.append(tuple(x.shape))
        return real(net, x, *args)

    monkeypatch.setattr(fused, "fused_forward", spy)
    return calls


@pytest.mark.parametrize(
    "channels, num_residual, shape",
    [
        ((8, 16, 32), 2, (1, 3, 64, 96)),
        ((8, 16, 32), 0, (1, 3, 48, 32)),  # no residual block: down3 feeds the upsampling directly
        ((12, 24, 48), 3, (2, 3, 40, 56)),  # batch of 2
        ((8, 16, 32), 1, (1, 3, 32, 36, "channels_last")),  # e.g. straight from an NHWC image array
    ],
)
def test_matches_the_layer_by_layer_forward(
    monkeypatch, fused_calls, channels, num_residual, shape
):
    net = _net(channels, num_residual)
    layout = torch.channels_last if shape[-1] == "channels_last" else torch.contiguous_format
    shape = shape[:4]
    x = torch.rand(shape).contiguous(memory_format=layout)
    expected = _layer_by_layer(net, x, monkeypatch)
    with torch.no_grad():
        got = fused.forward(net, x)
    assert fused_calls == [shape]
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-5


@pytest.mark.parametrize(
    "pad, mode", [(1, "reflect"), (1, "replicate"), (4, "reflect"), (3, "replicate")]
)
def test_border_fill_matches_f_pad(pad, mode):
    x = torch.randn(2, 3, 9, 12)
    buf = torch.full((2, 3, 9 + 2 * pad, 12 + 2 * pad), float("nan"))
    fused._interior(buf, pad).copy_(x)
    assert torch.equal(fused._fill_border(buf, pad, mode), F.pad(x, (pad,) * 4, mode=mode))


def test_statistics_stay_exact_when_the_mean_dwarfs_the_spread():
    # E[x^2] - E[x]^2 would lose every digit of this variance in fp32: the two-pass fallback runs
    norm = torch.nn.InstanceNorm2d(4, affine=True)
    x = 1000.0 + torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        scale, shift = fused._norm_coefficients(x, norm)
    y = x * scale[..., None, None] + shift[..., None, None]
    expected = F.instance_norm(x.double(), eps=norm.eps).float()
    assert float((y - expected).abs().max()) < 1e-3
    assert abs(float(y.std()) - 1.0) < 1e-2


def test_sub_pixel_kernels_follow_weight_changes():
    net = _net()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = fused.forward(net, x)
        net.up1.conv[1].weight.mul_(-1.0)  # in place: same storage, new version
        after = fused.forward(net, x)
        reference = TransformerNet(net.config["channels"], net.config["num_residual"]).eval()
        reference.load_state_dict(net.state_dict())
        expected = reference(x)
    assert float((after - before).abs().max()) > 1e-3
    assert float((after - expected).abs().max()) < 1e-5


def test_tiles_use_the_whole_image_statistics(monkeypatch, fused_calls):
    net = _net()
    image = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        got = tiled_forward(net, image, tile=64, overlap=16, stats_side=64, forward=fused.forward)
    assert fused_calls and set(fused_calls) == {
        (1, 3, 64, 64)
    }  # every tile; stats were recorded unfused
    with monkeypatch.context() as m:
        m.setattr(fused, "can_fuse", lambda *args: False)
        expected = tiled_forward(
            net, image, tile=64, overlap=16, stats_side=64, forward=fused.forward
        )
    assert float((got - expected).abs().max()) < 1e-5
    assert (
        float(
            (expected - tiled_forward(net, image, tile=64, overlap=16, stats_side=64)).abs().max()
        )
        < 1e-6
    )
    assert all(m.statistics is None for m in net.instance_norms())  # handed in for one call only
    # the statistics matter: without them each tile normalizes with its own
    with torch.no_grad():
        own_stats = fused.forward(net, image[..., :64, :64])
    assert float((own_stats - got[..., :64, :64]).abs().max()) > 1e-3


@pytest.mark.parametrize(
    "case", ["grad", "batch_norm", "odd_size", "disabled", "hooked", "replaced"]
)
def test_falls_back_where_fusing_would_be_wrong(fused_calls, case):
    net = _net(norm="batch" if case == "batch_norm" else "instance")
    x = torch.rand(1, 3, 34 if case == "odd_size" else 32, 32)
    if case == "grad":
        fused.forward(net, x).sum().backward()
        assert net.out[1].weight.grad is not None
    elif case == "disabled":
        with torch.no_grad(), fastconv.disabled():
            fused.forward(net, x)
    elif case == "hooked":  # e.g. tiling recording instance-norm statistics through forward hooks
        seen = []
        handles = [
            m.register_forward_hook(lambda *args: seen.append(1)) for m in net.instance_norms()
        ]
        with torch.no_grad():
            fused.forward(net, x)
        for handle in handles:
            handle.remove()
        assert len(seen) == len(net.instance_norms())
    elif case == "replaced":  # a forward swapped on the instance (e.g. torch.compile'd in place)
        net.down2.forward = lambda h, plain=net.down2.forward: plain(h)
        with torch.no_grad():
            fused.forward(net, x)
    else:
        with torch.no_grad():
            fused.forward(net, x)
    assert fused_calls == []


def test_fast_forward_is_the_fused_forward_and_the_model_alone_never_fuses(fused_calls):
    net = _net()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        plain = net(x)
        assert fused_calls == []  # TransformerNet.forward is plain PyTorch
        got = accel.fast_forward(net)(x)
    assert fused_calls == [(1, 3, 32, 32)]
    assert float((got - plain).abs().max()) < 1e-5


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only"
)
def test_keeping_freed_memory_stops_page_faults_in_repeated_forwards():
    # transparent huge pages off for the child (PR_SET_THP_DISABLE): with them (THP "always", or
    # glibc.malloc.hugetlb=1) a 32 MiB map faults in 2 MiB at a time and the count below drops ~10x
    child = """
import ctypes
assert ctypes.CDLL(None).prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE
import resource, torch
from fastnst.accel.cpu_tuning import keep_freed_memory
from fastnst.transformer import TransformerNet
applied = keep_freed_memory()
net, x = TransformerNet((32, 16, 16), num_residual=0).eval(), torch.rand(1, 3, 512, 512)
with torch.no_grad():
    net(x), net(x)  # warm-up: the heap grows to the working set
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    results = {}
    for setting in ("1", "0"):
        env = {**os.environ, "FASTNST_KEEP_FREED_MEMORY": setting}
        out = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, env=env, check=True
        )
        applied, faults = out.stdout.split()
        results[setting] = (applied == "True", int(faults))
    assert (
        not results["0"][0] and results["0"][1] > 20_000
    )  # 32 MiB maps, page-faulted in again each pass
    assert results["1"][0] and results["1"][1] < results["0"][1] / 10
