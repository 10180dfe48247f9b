"""ONNX / TorchScript export: parity with PyTorch on two sizes (one odd), dynamic batch/size,
loadable without fastnst, model-kind detection by content, and the export CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastnst import Stylizer
from fastnst.config import REPO_ROOT
from fastnst.errors import FastNSTError, OutputExistsError
from fastnst.export import export_model
from fastnst.formats import model_kind, save_exported
from fastnst.transformer import TransformerNet

SIZES = [(67, 45), (96, 128)]  # one odd size: F.interpolate(size=skip.shape) must stay dynamic


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=2).eval()
    with torch.no_grad():  # a fresh network's norms are all scale 1, shift 0: an export that
        for norm in net.instance_norms():  # dropped or swapped them would still match
            norm.weight.normal_(1.0, 0.5)
            norm.bias.normal_(0.0, 0.5)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory, net):
    folder = tmp_path_factory.mktemp("export")
    return {
        "onnx": export_model(net, folder / "m.onnx", "onnx"),
        "torchscript": export_model(net, folder / "m.ts", "torchscript"),
        "pt": save_exported(folder / "m.pt", net),
    }


def reference(net, x):
    with torch.no_grad():
        return net(x)


def test_onnx_parity_with_plain_onnxruntime(net, exported):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    for (h, w), batch in zip(SIZES, (1, 2)):
        x = torch.rand(batch, 3, h, w)
        out = session.run(None, {"image": x.numpy()})[0]
        assert out.shape == (batch, 3, h, w)
        assert float((torch.from_numpy(out) - reference(net, x)).abs().max()) < 1e-4


def test_torchscript_parity_with_plain_jit_load(net, exported):
    module = torch.jit.load(str(exported["torchscript"]))
    for (h, w), batch in zip(SIZES, (2, 1)):
        x = torch.rand(batch, 3, h, w)
        out = module(x)
        assert out.shape == (batch, 3, h, w)
        assert float((out - reference(net, x)).abs().max()) < 1e-4


def test_exports_load_in_a_process_without_fastnst(exported, tmp_path):
    """Plain onnxruntime and torch.jit.load, with fastnst made unimportable."""
    code = f"""
import sys
sys.modules["fastnst"] = None  # any import of fastnst now fails
import numpy as np, onnxruntime as ort, torch
x = np.random.rand(1, 3, 33, 41).astype(np.float32)
a = ort.InferenceSession({str(exported["onnx"])!r}, providers=["CPUExecutionProvider"]).run(None, {{"image": x}})[0]
b = torch.jit.load({str(exported["torchscript"])!r})(torch.from_numpy(x)).detach().numpy()
assert a.shape == b.shape == (1, 3, 33, 41)
print(float(np.abs(a - b).max()))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) < 1e-4


@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_stylizer_loads_exports(net, exported, kind):
    trusted = {"trust_model_file": True} if kind == "torchscript" else {}  # TorchScript is code
    s = Stylizer.load(exported[kind], **trusted)
    assert s.backend == ("onnxruntime" if kind == "onnx" else "torchscript")
    x = torch.rand(1, 3, 45, 67)
    assert float((s(x) - reference(net, x)).abs().max()) < 1e-4


def test_kind_is_judged_by_content_not_extension(exported, tmp_path):
    renamed = {}
    for kind, name in (("onnx", "a.pt"), ("torchscript", "b.onnx"), ("pt", "c.ts")):
        renamed[kind] = tmp_path / name
        renamed[kind].write_bytes(exported[kind].read_bytes())
    assert model_kind(renamed["onnx"]) == "onnx"
    assert model_kind(renamed["torchscript"]) == "torchscript"
    assert model_kind(renamed["pt"]) == "torch"
    assert model_kind(tmp_path) == "run_dir"
    with pytest.raises(FastNSTError, match="b.onnx: refused: a TorchScript file holds code"):
        Stylizer.load(renamed["torchscript"])
    assert Stylizer.load(renamed["torchscript"], trust_model_file=True).backend == "torchscript"


def test_backend_mismatch_is_a_clear_error(exported):
    with pytest.raises(FastNSTError, match="m.onnx"):
        Stylizer.load(exported["onnx"], backend="torch")
    with pytest.raises(FastNSTError, match="backend must be"):
        Stylizer.load(exported["pt"], backend="tensorrt")


def test_export_refuses_to_overwrite(net, exported):
    with pytest.raises(OutputExistsError):
        export_model(net, exported["onnx"], "onnx")


def test_export_cli_writes_next_to_run_dir_and_reports_bad_model(tmp_path, net):
    run = tmp_path / "run"
    save_exported(run / "model.pt", net)
    shim = str(REPO_ROOT / "export.py")
    proc = subprocess.run(
        [sys.executable, shim, f"model={run}", "format=onnx"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert (run / "model.onnx").is_file()
    assert not (tmp_path / "outputs").exists()


def test_export_cli_bad_model_exits_2_naming_it(tmp_path, capsys):
    from fastnst.apps.export import export_cli
    from fastnst.cli import INFERENCE_CONFIG_DIR, run_reporting_errors
    from tests.helpers import compose_config

    bad = tmp_path / "bad.ckpt"
    bad.write_text("not a checkpoint")
    cfg = compose_config(
        "export", f"model={bad}", "format=torchscript", config_dir=INFERENCE_CONFIG_DIR
    )
    with pytest.raises(SystemExit) as exit_info:
        run_reporting_errors(export_cli, cfg)
    assert exit_info.value.code == 2
    assert "bad.ckpt" in capsys.readouterr().err


# -- a network's own stroke scale runs inside the exported graph (what Stylizer does)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, net):
    """A network whose file carries stroke scale 2 (like udnie's), as .pt, ONNX and TorchScript."""
    folder = tmp_path_factory.mktemp("scaled")
    meta = {"stroke_scale": 2.0}
    return {
        "pt": save_exported(folder / "m.pt", net, meta),
        "onnx": export_model(net, folder / "m.onnx", "onnx", meta=meta),
        "torchscript": export_model(net, folder / "m.ts", "torchscript", meta=meta),
        "onnx_meta_only": export_model(
            net, folder / "meta_only.onnx", "onnx", meta=meta, stroke_scale_in_graph=False
        ),
    }


def test_exports_paint_at_the_networks_own_stroke_scale_without_fastnst(scaled):
    ort = pytest.importorskip("onnxruntime")
    x = torch.rand(1, 3, 75, 98)
    expected = Stylizer.load(scaled["pt"], backend="torch", precision="fp32")(x)
    plain = Stylizer.load(scaled["pt"], backend="torch", precision="fp32")(x, stroke_scale=0.5)
    assert float((expected - plain).abs().mean()) > 0.01  # the scale matters for this network
    session = ort.InferenceSession(str(scaled["onnx"]), providers=["CPUExecutionProvider"])
    raw_onnx = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        raw_script = torch.jit.load(str(scaled["torchscript"]))(x)
    for raw in (raw_onnx, raw_script):
        assert raw.shape == x.shape
        assert float((raw.clamp(0, 1) - expected).abs().max()) < 1e-4


def test_a_file_with_the_scale_in_its_graph_is_not_scaled_twice(scaled):
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(scaled["onnx"])).metadata_props}
    meta = json.loads(props["fastnst"])["meta"]
    assert meta["stroke_scale_in_graph"] == 2.0 and meta["stroke_scale"] == 1.0
    x = torch.rand(1, 3, 64, 80)
    expected = Stylizer.load(scaled["pt"], backend="torch", precision="fp32")(x)
    for kind, trust in (("onnx", False), ("torchscript", True), ("onnx_meta_only", False)):
        s = Stylizer.load(scaled[kind], trust_model_file=trust)
        assert float((s(x) - expected).abs().max()) < 1e-4, kind
    # the metadata-only file leaves the scale to the reader: raw onnxruntime paints at 1
    meta_only = {p.key: p.value for p in onnx.load(str(scaled["onnx_meta_only"])).metadata_props}
    assert json.loads(meta_only["fastnst"])["meta"]["stroke_scale"] == 2.0


def _data() -> Path | None:
    import os

    value = os.environ.get("FASTNST_DATA")
    return Path(value) if value else None


needs_data = pytest.mark.skipif(_data() is None, reason="FASTNST_DATA is not set")


@needs_data
@pytest.mark.parametrize("style,fmt", [("the_scream", "onnx"), ("the_scream", "torchscript")])
def test_raw_export_reproduces_stylize_on_chicago(style, fmt, tmp_path):
    """`export.py model=<style>` run by bare onnxruntime / torch.jit.load (no fastnst code, in a
    process where fastnst cannot be imported) against `stylize.py style=<style>` on chicago:
    within 2/255 mean absolute difference (the bundled the_scream paints at stroke scale 2,
    which both graphs must carry)."""
    import numpy as np
    from PIL import Image

    chicago = _data() / "content" / "chicago.jpg"
    ext = ".onnx" if fmt == "onnx" else ".ts"
    exported, cli_out, raw_out = (
        tmp_path / f"{style}{ext}",
        tmp_path / "cli.png",
        tmp_path / "raw.npy",
    )
    for args in (
        ["export.py", f"model={style}", f"format={fmt}", f"output={exported}"],
        ["stylize.py", f"style={style}", f"input={chicago}", f"output={cli_out}"],
    ):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
    raw = f"""
import sys
sys.modules["fastnst"] = None  # any import of fastnst now fails
import numpy as np
from PIL import Image
x = np.asarray(Image.open({str(chicago)!r}).convert("RGB"), dtype=np.float32) / 255
x = x.transpose(2, 0, 1)[None].copy()
if {fmt!r} == "onnx":
    import onnxruntime as ort
    session = ort.InferenceSession({str(exported)!r}, providers=["CPUExecutionProvider"])
    y = session.run(None, {{"image": x}})[0]
else:
    import torch
    with torch.no_grad():
        y = torch.jit.load({str(exported)!r})(torch.from_numpy(x)).numpy()
np.save({str(raw_out)!r}, y[0].transpose(1, 2, 0))
"""
    proc = subprocess.run(
        [sys.executable, "-c", raw], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    raw_image = (np.clip(np.load(raw_out), 0, 1) * 255).round()
    cli_image = np.asarray(Image.open(cli_out).convert("RGB"), dtype=np.float32)
    assert raw_image.shape == cli_image.shape
    assert float(np.abs(raw_image - cli_image).mean()) <= 2.0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_scale_per_style_stays_in_the_meta_and_stylizer_applies_it(tmp_path, fmt):
    """A graph runs one scale; a multi-style file's per-style scales (meta stroke_scales) are
    left to the reader, and Stylizer reading the export paints as it paints the .pt."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = TransformerNet(channels=(8, 16, 32), num_residual=1, styles=["calm", "bold"])
    meta = {"styles": ["calm", "bold"], "stroke_scales": {"bold": 2.0}}
    pt = save_exported(tmp_path / "multi.pt", net, meta)
    path = export_model(net, tmp_path / f"multi.{fmt}", fmt, meta=meta)
    exported = Stylizer.load(path, trust_model_file=fmt == "torchscript")
    assert exported.meta["stroke_scales"] == {"bold": 2.0}
    assert "stroke_scale_in_graph" not in exported.meta
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    torch_side = Stylizer.load(pt, backend="torch", precision="fp32")
    for style in ("calm", "bold"):
        diff = (exported(x, style=style) - torch_side(x, style=style)).abs().max()
        assert diff < 1e-3, style
    # and the two styles do paint at different scales
    assert not torch.allclose(
        torch_side(x, style="bold"), torch_side(x, style="bold", stroke_scale=0.5)
    )
