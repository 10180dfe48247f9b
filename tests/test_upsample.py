"""model.upsample: the decoder's upsampling (nearest | bilinear). A sign flip between
neighbouring bottleneck cells, copied into 2x2 blocks by nearest upsampling, is the diagonal
hatch locked to the network's 4 px lattice; bilinear keeps less of it. Every CPU path, the
export formats, the network file and the training CLI carry the mode."""

from __future__ import annotations

import pytest
import torch

from fastnst import Stylizer
from fastnst.accel import compiled, fused
from fastnst.errors import FastNSTError
from fastnst.export import export_model
from fastnst.formats import load_exported, save_exported
from fastnst.judge import hatch_measure
from fastnst.metrics import model_name, psnr
from fastnst.transformer import TransformerNet, upsample
from tests.helpers import train_tiny


def bilinear_net(**kwargs) -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, upsample="bilinear", **kwargs)
    with torch.no_grad():  # non-trivial norms, so a path that skipped them would not match
        for norm in net.instance_norms():
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    return net.eval()


def test_bilinear_keeps_less_of_a_bottleneck_checkerboard_than_nearest():
    """The cause of the hatch, in isolation: a checkerboard on the quarter-resolution grid,
    enlarged twice to full size, is a diagonal grating (peaks at 1/8 cycle per pixel)."""
    cells = torch.arange(64)
    checker = ((cells[:, None] + cells[None, :]) % 2).float()
    bottleneck = (0.5 + 0.2 * (checker - 0.5)).expand(1, 3, 64, 64)

    def to_full(mode):
        return upsample(upsample(bottleneck, (128, 128), mode), (256, 256), mode)

    nearest, bilinear = hatch_measure(to_full("nearest")), hatch_measure(to_full("bilinear"))
    assert nearest["hatch"] > 0.5
    assert bilinear["hatch_rms"] < 0.5 * nearest["hatch_rms"]


def test_default_is_nearest_and_a_bad_mode_is_one_clear_error():
    assert TransformerNet(channels=(8, 16, 32), num_residual=1).upsample_mode == "nearest"
    assert "upsample" not in TransformerNet(channels=(8, 16, 32), num_residual=1).config
    with pytest.raises(FastNSTError, match="model.upsample must be one of nearest, bilinear"):
        TransformerNet(upsample="cubic")


def test_the_network_file_keeps_the_mode_and_refuses_an_unknown_one(tmp_path):
    net = bilinear_net()
    loaded, _ = load_exported(save_exported(tmp_path / "m.pt", net))
    assert loaded.upsample_mode == "bilinear"
    x = torch.rand(1, 3, 37, 50)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"]["upsample"] = "lanczos"
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(FastNSTError, match=r"bad\.pt.*upsample must be one of"):
        load_exported(tmp_path / "bad.pt")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_cpu_path_upsamples_like_the_network(tmp_path, precision):
    net = bilinear_net()
    file = save_exported(tmp_path / "m.pt", net)
    stylizer = Stylizer.load(file, device="cpu", backend="torch", precision=precision)
    x = torch.rand(1, 3, 64, 96)  # sides divisible by 4: where the fused path would run
    assert not fused.can_fuse(net, x)  # its kernels copy 2x2 blocks (nearest only)
    with torch.no_grad():
        assert psnr(stylizer(x), net(x)) >= 40


def test_the_compiled_graph_upsamples_like_the_network_and_has_its_own_package():
    net = bilinear_net()
    network = compiled.Bf16Network(net)
    x = torch.rand(1, 3, 75, 101)
    with torch.no_grad():
        assert psnr(network(x, *network.tensors), net(x)) >= 40
    torch.manual_seed(0)
    nearest = TransformerNet(channels=(8, 16, 32), num_residual=1).eval()
    assert compiled.package_file(net) != compiled.package_file(nearest)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exports_upsample_like_the_network(tmp_path, fmt):
    net = bilinear_net()
    out = export_model(net, tmp_path / f"m.{fmt}", fmt)
    stylizer = Stylizer.load(out, device="cpu", trust_model_file=True)  # our own export
    for h, w in ((67, 45), (96, 128)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            assert psnr(stylizer(x), net(x)) >= 40, (fmt, h, w)


def test_the_model_name_says_bilinear():
    assert model_name(bilinear_net().config) == "c8-16-32 r1 (IN, bilinear)"
    assert model_name({"channels": [16, 32, 64], "num_residual": 5, "norm": "instance"}) == (
        "johnson_half (IN)"
    )


def test_model_upsample_trains_and_is_stored(tmp_path):
    run_dir = train_tiny(
        tmp_path,
        "model.upsample=bilinear",
        "callbacks.images.every_n_steps=0",
        run_dir=tmp_path / "run",
    )
    net, _ = load_exported(f"{run_dir}/model.pt")
    assert net.upsample_mode == "bilinear"


def test_the_training_forward_keeps_bilinear():
    """Training routes upsamplings through the sub-pixel path (nearest's phase kernels): a
    bilinear network must not be trained as a nearest one there."""
    import copy

    from fastnst import accel

    net = bilinear_net()
    fast = accel.accelerate(copy.deepcopy(net))
    x = torch.rand(2, 3, 48, 64)
    assert torch.allclose(fast(x), net(x), atol=1e-5)
