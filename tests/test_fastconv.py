"""The NNPACK and sub-pixel fast paths (`fastnst.accel`): same numbers as F.conv2d and
upsample-then-conv (forward and every gradient), used where faster, never where the plain graph is
needed (tracing, export, disabled()); opting a built network in leaves its state_dict alone."""

import pytest
import torch
import torch.nn.functional as F

from fastnst import accel
from fastnst.accel import fastconv
from fastnst.accel.subpixel import SubPixelUpsampleConv
from fastnst.transformer import TransformerNet, UpsampleConv

needs_nnpack = pytest.mark.skipif(
    not fastconv.nnpack_ready(), reason="this torch build has no NNPACK"
)


@pytest.fixture
def nnpack_calls(monkeypatch):
    calls = []
    real = fastconv._nnpack

    def spy(x, weight, bias, padding):
        calls.append(tuple(weight.shape))
        return real(x, weight, bias, padding)

    monkeypatch.setattr(fastconv, "_nnpack", spy)
    return calls


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@needs_nnpack
@pytest.mark.parametrize(
    "batch, cin, cout, kernel, padding, size",
    [(1, 64, 64, 3, 1, 96), (2, 32, 128, 3, 0, 66), (1, 16, 3, 9, 0, 72), (2, 3, 16, 9, 4, 64)],
)
def test_matches_conv2d_forward_and_gradients(
    nnpack_calls, batch, cin, cout, kernel, padding, size
):
    torch.manual_seed(0)
    x = torch.randn(batch, cin, size, size + 3, requires_grad=True)
    w = torch.randn(cout, cin, kernel, kernel, requires_grad=True)
    b = torch.randn(cout, requires_grad=True)
    y = fastconv.conv2d(x, w, b, padding=padding)
    assert nnpack_calls, "the NNPACK path was not taken"
    reference = F.conv2d(x, w, b, padding=padding)
    assert y.shape == reference.shape
    assert _rel(y, reference) < 1e-4
    g = torch.randn_like(y)
    for fast, plain in zip(
        torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(reference, (x, w, b), g)
    ):
        assert _rel(fast, plain) < 1e-4


@needs_nnpack
def test_frozen_weights_get_no_gradient_and_input_grad_is_right(nnpack_calls):
    # the VGG case: weights frozen, only the image needs a gradient
    torch.manual_seed(0)
    x = torch.randn(1, 128, 72, 72, requires_grad=True)
    w, b = torch.randn(128, 128, 3, 3), torch.randn(128)
    y = fastconv.conv2d(x, w, b, padding=1)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    (ref,) = torch.autograd.grad(F.conv2d(x, w, b, padding=1).square().sum(), x)
    assert _rel(gx, ref) < 1e-4
    assert len(nnpack_calls) == 2  # forward, and the input gradient as a full conv


def test_small_maps_strided_and_thin_convs_use_plain_conv(nnpack_calls):
    cases = [
        (
            torch.randn(1, 64, 32, 32),
            torch.randn(64, 64, 3, 3),
            1,
        ),  # 32x32 map: direct conv is faster
        (torch.randn(1, 512, 21, 32), torch.randn(512, 512, 3, 3), 1),  # VGG block 4 at 256 px
        (torch.randn(1, 3, 128, 128), torch.randn(64, 3, 3, 3), 1),  # RGB input
        (torch.randn(1, 32, 128, 128), torch.randn(32, 32, 3, 3), 1),  # thin
        (torch.randn(1, 128, 72, 72).double(), torch.randn(128, 128, 3, 3).double(), 1),  # not fp32
    ]
    for x, w, padding in cases:
        torch.testing.assert_close(
            fastconv.conv2d(x, w, None, padding=padding), F.conv2d(x, w, None, padding=padding)
        )
    assert nnpack_calls == []


def test_disabled_restores_plain_conv_and_then_the_previous_state(nnpack_calls):
    x, w = torch.randn(1, 128, 72, 72), torch.randn(128, 128, 3, 3)
    with fastconv.disabled():
        fastconv.conv2d(x, w, None, padding=1)
        assert nnpack_calls == []
    fastconv.conv2d(x, w, None, padding=1)
    assert len(nnpack_calls) == (1 if fastconv.nnpack_ready() else 0)


def test_tracing_sees_the_plain_graph(nnpack_calls):
    net = accel.accelerate(TransformerNet(channels=(8, 16, 64), num_residual=1).eval())
    traced = torch.jit.trace(net, torch.rand(1, 3, 64, 64), check_trace=False)
    graph = str(traced.graph)
    assert "nnpack" not in graph and "pixel_shuffle" not in graph
    assert nnpack_calls == []


def _with_random_norms(module):
    torch.manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    return module


@pytest.mark.parametrize("size", [(16, 20), (2, 1), (7, 3)])
def test_subpixel_upsample_conv_equals_upsample_then_conv(size):
    torch.manual_seed(0)
    layer = accel.accelerate(_with_random_norms(UpsampleConv(24, 12)))
    assert type(layer) is SubPixelUpsampleConv
    x = torch.randn(2, 24, *size, requires_grad=True)
    target = (2 * size[0], 2 * size[1])
    y = layer(x, target)
    with fastconv.disabled():
        reference = layer(x, target)
    assert y.shape == reference.shape == (2, 12, *target)
    assert _rel(y, reference) < 1e-5
    g = torch.randn_like(y)
    params = [x, layer.conv[1].weight]
    for fast, plain in zip(
        torch.autograd.grad(y, params, g), torch.autograd.grad(reference, params, g)
    ):
        assert _rel(fast, plain) < 1e-4


def test_transformer_output_matches_plain_path_at_even_and_odd_sizes():
    net = accel.accelerate(_with_random_norms(TransformerNet()).eval())
    for h, w in [(64, 96), (67, 45)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            fast = accel.fast_forward(net)(x)  # fused at 64x96, the accelerated layers at 67x45
            layers = net(x)  # NNPACK convs and sub-pixel upsampling
            with fastconv.disabled():
                plain = net(x)
        assert float((fast - plain).abs().max()) < 1e-4
        assert float((layers - plain).abs().max()) < 1e-4


def test_accelerate_keeps_the_modules_parameters_and_state_dict():
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["a", "b"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    assert not any(
        isinstance(m, (fastconv.Conv2d, SubPixelUpsampleConv)) for m in net.modules()
    )  # plain model
    assert accel.accelerate(net) is net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(m) is fastconv.Conv2d for m in convs)
    assert type(net.up1) is type(net.up2) is SubPixelUpsampleConv
    assert list(net.parameters()) == params
    after = net.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)
    fresh = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["a", "b"])
    fresh.load_state_dict(after)  # an accelerated network's weights load into a plain one
    assert accel.accelerate(net) is net and type(net.down1[1]) is fastconv.Conv2d  # idempotent


def test_channels_last_input_keeps_onednn_and_its_layout(nnpack_calls):
    x = torch.randn(1, 128, 72, 72).to(memory_format=torch.channels_last)
    y = fastconv.conv2d(x, torch.randn(128, 128, 3, 3), None, padding=1)
    assert nnpack_calls == []
    assert y.is_contiguous(memory_format=torch.channels_last)
