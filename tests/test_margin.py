"""The mirrored margin (fastnst.margin): a network's border effects are painted into a margin that
is cut away; the margin travels in network files, presets and exported graphs, checked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastnst.artifacts import save_exported
from fastnst.errors import FastNSTError
from fastnst.export import export_model
from fastnst.margin import mirror_pad, paint_with_margin
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet
from tests.helpers import texture, train_tiny

TINY = {"channels": (8, 16, 32), "num_residual": 1}


def band_under_top_edge(x: torch.Tensor) -> torch.Tensor:
    """A stand-in for the_scream's fault: the network paints its top 6 rows white, whatever is
    there."""
    y = x.clone()
    y[..., :6, :] = 1.0
    return y


def test_mirror_pad_is_reflect_padding_and_works_beyond_the_side():
    x = torch.rand(1, 3, 20, 31)
    assert torch.equal(mirror_pad(x, 7), F.pad(x, (7,) * 4, mode="reflect"))
    tiny = mirror_pad(torch.rand(1, 3, 5, 4), 12)  # F.pad's reflect refuses this
    assert tiny.shape == (1, 3, 29, 28)


def test_a_border_band_falls_in_the_margin_and_is_cut_away():
    photo = texture(40, 56, seed=3)
    banded = paint_with_margin(photo, 0, band_under_top_edge)
    assert float(banded[..., :6, :].mean()) == 1.0  # without a margin the band is in the picture
    kept = paint_with_margin(photo, 8, band_under_top_edge)
    assert kept.shape == photo.shape
    assert torch.equal(kept, photo)  # with one, the picture is what the painter made of it


def _tiny_file(folder, margin, stroke_scale=1.0, name="m.pt"):
    torch.manual_seed(0)
    net = TransformerNet(**TINY).eval()
    path = save_exported(folder / name, net, {"stroke_scale": stroke_scale, "margin": margin})
    return net, path


@pytest.mark.parametrize("stroke_scale", [1.0, 1.5])
def test_stylize_paints_with_the_networks_margin_in_network_pixels(stroke_scale, tmp_path):
    net, path = _tiny_file(tmp_path, margin=10, stroke_scale=stroke_scale)
    photo = texture(48, 60, seed=2)
    stylizer = Stylizer.load(path, backend="torch", precision="fp32")
    assert stylizer.margin == 10
    out = stylizer(photo)
    margin = 10 if stroke_scale == 1.0 else 15  # ceil(10 x 1.5) photo pixels
    stylizer.margin = 0
    by_hand = stylizer(mirror_pad(photo, margin))[..., margin:-margin, margin:-margin]
    assert out.shape == photo.shape
    assert float((out - by_hand).abs().max()) < 1e-5
    assert float((out - stylizer(photo)).abs().max()) > 1e-3  # the margin changes the border


def test_the_memory_estimate_counts_the_margin(tmp_path):
    _, plain = _tiny_file(tmp_path, margin=0, name="plain.pt")
    _, wide = _tiny_file(tmp_path, margin=64, name="wide.pt")
    small, big = (Stylizer.load(p).memory_estimate(256, 256) for p in (plain, wide))
    assert big > small * 1.5  # (256 + 128)^2 / 256^2 = 2.25 times the pixels


@pytest.mark.parametrize("value", [-1, 1.5, "48", float("nan"), float("inf"), 10**6, True])
def test_a_crafted_margin_is_refused_in_one_line_naming_the_file(value, tmp_path):
    net, path = _tiny_file(tmp_path, margin=0)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["margin"] = value
    torch.save(payload, path)
    with pytest.raises(FastNSTError, match=r"^\S*m.pt: meta margin must be a whole number"):
        Stylizer.load(path)
    with pytest.raises(FastNSTError, match="meta margin must be"):
        save_exported(tmp_path / "written.pt", net, {"margin": value})
    assert not (tmp_path / "written.pt").exists()


def test_exports_carry_the_margin_in_their_graph(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net, path = _tiny_file(tmp_path, margin=20, stroke_scale=1.5)
    onnx_path = export_model(
        net, tmp_path / "m.onnx", "onnx", meta={"stroke_scale": 1.5, "margin": 20}
    )
    script_path = export_model(
        net, tmp_path / "m.ts", "torchscript", meta={"stroke_scale": 1.5, "margin": 20}
    )
    x = torch.rand(1, 3, 27, 90)  # shorter than the margin of 30 photo px: still mirrored
    expected = Stylizer.load(path, backend="torch", precision="fp32")(x)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    raw_onnx = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        raw_script = torch.jit.load(str(script_path))(x)
    for raw in (raw_onnx, raw_script):
        assert raw.shape == x.shape
        assert float((raw.clamp(0, 1) - expected).abs().max()) < 1e-4
    # read back by fastnst, the margin is not applied twice
    again = Stylizer.load(onnx_path)
    assert again.margin == 0 and again.meta["margin_in_graph"] == 20
    assert float((again(x) - expected).abs().max()) < 1e-4


def test_a_run_stores_its_presets_margin_and_refuses_a_bad_one(tmp_path):
    run = train_tiny(tmp_path, "++style.margin=12", run_dir=tmp_path / "run")
    assert Stylizer.load(run).margin == 12
    with pytest.raises(FastNSTError, match="style.margin must be a whole number"):
        train_tiny(tmp_path, "++style.margin=-4", run_dir=tmp_path / "bad")


def test_the_bundled_scream_paints_no_band_under_the_top_edge():
    """The bundled the_scream network painted a flat orange band under the top edge of every
    picture (also of a plain grey one); its file's margin puts the band outside the picture."""
    stylizer = Stylizer.load("the_scream", backend="torch", precision="fp32")
    assert stylizer.margin > 0
    grey = torch.full((1, 3, 256, 256), 0.5)

    def band(out):  # how much more orange (red minus blue) the top rows are than the rest
        red_minus_blue = out[:, 0] - out[:, 2]
        return float(red_minus_blue[:, :40].mean() - red_minus_blue[:, 96:].mean())

    with torch.no_grad():
        kept = band(stylizer(grey))
        stylizer.margin = 0
        banded = band(stylizer(grey))
    assert banded > 0.2  # the fault, without the margin (measured 0.30)
    assert kept < 0.05  # measured -0.05
