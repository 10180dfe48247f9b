"""ONNX / TorchScript export: parity with PyTorch on two sizes (one odd), dynamic batch/size,
loadable without fastnst, model-kind detection by content, and the export CLI."""

from __future__ import annotations

import subprocess
import sys

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
