"""Model files that can hold code are refused unless the user vouches for them with
trust_model_file=true: a TorchScript archive (whatever its name: it is recognised by content),
pickled Python objects (torch.save's zip and legacy formats), an ONNX graph with custom operator
domains. Each is refused in one line naming the file and why, exit 2, by stylize.py, the Python
API and the web app, and the code inside never runs (a marker file it would create stays
absent)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastnst.errors import FastNSTError
from fastnst.export import export_model
from fastnst.formats import code_risk, model_kind, save_exported
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet
from tests.helpers import CodeRunningPickle

REPO = Path(__file__).resolve().parents[1]
TINY = {"channels": (8, 16, 16), "num_residual": 1}


class Payload(torch.nn.Module):
    """A TorchScript module whose __setstate__ (run by torch.jit.load) maps `marker` into memory
    with torch.from_file(shared=True) and writes to it: a crafted file writing outside itself."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]):
        self.marker = state[0]
        written = torch.from_file(self.marker, shared=True, size=1, dtype=torch.float32)
        self.w = state[1] * written.fill_(1.0)[0]  # used, so TorchScript keeps the write
        self.training = state[2]


def _script_pt(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "crafted.pt"  # named like an exported model.pt
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(Payload(str(marker))), str(path))
    return path


def _custom_op_onnx(tmp_path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Stylize", ["image"], ["stylized"], domain="evil.ops")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)]
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    return path


HOSTILE = {
    # kind -> (builder, the reason the one line gives)
    "torchscript_named_pt": (_script_pt, "a TorchScript file holds code"),
    "pickle_zip": (
        lambda tmp, marker: _saved(tmp / "pickle.pt", {"x": CodeRunningPickle(marker)}),
        "Python objects besides tensors",
    ),
    "pickle_legacy": (
        lambda tmp, marker: _saved(
            tmp / "legacy.pt", {"x": CodeRunningPickle(marker)}, zipped=False
        ),
        "Python objects besides tensors",
    ),
    "raw_pickle": (
        lambda tmp, marker: _pickled(tmp / "raw.ckpt", CodeRunningPickle(marker)),
        "Python objects besides tensors",
    ),
    "onnx_custom_op": (lambda tmp, marker: _custom_op_onnx(tmp), "custom operator domains"),
}


def _saved(path: Path, obj, zipped: bool = True) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zipped)
    return path


def _pickled(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request, tmp_path, marker) -> tuple[Path, str]:
    build, reason = HOSTILE[request.param]
    path = build(tmp_path, marker)
    assert not marker.exists()  # writing the file ran nothing
    return path, reason


def one_line(err: str, path: Path, reason: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert path.name in lines[0] and reason in lines[0] and "trust_model_file=true" in lines[0]
    return lines[0]


def test_the_python_api_refuses_files_that_can_run_code(hostile, marker):
    path, reason = hostile
    with pytest.raises(FastNSTError, match="trust_model_file=true") as info:
        Stylizer.load(path)
    one_line(str(info.value), path, reason)
    assert code_risk(path) is not None
    assert not marker.exists()


def test_stylize_command_line_refuses_them_in_one_line_exit_2(hostile, marker, tmp_path):
    from tests.helpers import make_image

    path, reason = hostile
    photo = make_image(tmp_path / "photo.png")
    result = subprocess.run(
        [sys.executable, str(REPO / "stylize.py"), f"model={path}", f"input={photo}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    one_line(result.stderr, path, reason)
    assert not marker.exists() and not list(tmp_path.glob("photo_*"))


def test_the_web_app_refuses_them(hostile, marker, tmp_path, capsys):
    pytest.importorskip("gradio")
    from fastnst.apps.web import WebApp, model_catalog, without_code_files

    path, reason = hostile
    # loading on first use (a catalog built by hand) refuses it
    app = WebApp(catalog={"crafted": path}, device="cpu", output_dir=tmp_path / "out")
    with pytest.raises(FastNSTError) as info:
        app.stylizer("crafted")
    one_line(str(info.value), path, reason)
    # app.py models=<that file>: one line at start-up
    with pytest.raises(FastNSTError) as info:
        without_code_files(model_catalog(path), path, trust_model_file=False)
    one_line(str(info.value), path, reason)
    # app.py models=<folder holding it>: left out with a note, the rest offered
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    save_exported(folder / "plain.pt", TransformerNet(**TINY))
    offered = without_code_files(model_catalog(folder), folder, trust_model_file=False)
    assert "plain.pt" in offered and path.name not in offered
    assert "not offered" in capsys.readouterr().err
    assert not marker.exists()


def test_app_command_line_refuses_a_code_file_in_one_line_exit_2(marker, tmp_path):
    pytest.importorskip("gradio")
    path = _script_pt(tmp_path, marker)
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py"), f"models={path}", "port=1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    one_line(result.stderr, path, "a TorchScript file holds code")
    assert not marker.exists()


def test_trusted_torchscript_export_still_loads(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(**TINY).eval()
    ts = export_model(net, tmp_path / "net.pt", "torchscript")  # TorchScript named .pt
    assert model_kind(ts) == "torchscript"
    with pytest.raises(FastNSTError, match="net.pt: refused: a TorchScript file holds code"):
        Stylizer.load(ts)
    s = Stylizer.load(ts, trust_model_file=True)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert float((s(x) - net(x)).abs().max()) < 1e-4


def test_trusted_torchscript_through_the_command_line(tmp_path):
    from tests.helpers import make_image

    torch.manual_seed(0)
    ts = export_model(TransformerNet(**TINY).eval(), tmp_path / "net.ts", "torchscript")
    photo = make_image(tmp_path / "photo.png")
    out = tmp_path / "out.png"
    base = [sys.executable, str(REPO / "stylize.py"), f"model={ts}", f"input={photo}"]
    refused = subprocess.run(
        [*base, f"output={out}"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert refused.returncode == 2 and not out.exists()
    one_line(refused.stderr, ts, "a TorchScript file holds code")
    trusted = subprocess.run(
        [*base, f"output={out}", "trust_model_file=true"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert trusted.returncode == 0, trusted.stderr
    assert out.is_file()


def test_plain_files_are_not_flagged(tmp_path):
    """What fastnst writes itself opens without trust_model_file."""
    torch.manual_seed(0)
    net = TransformerNet(**TINY).eval()
    pt = save_exported(tmp_path / "m.pt", net, {"stroke_scale": 2.0})
    onnx_file = export_model(net, tmp_path / "m.onnx", "onnx")
    run = tmp_path / "run"
    save_exported(run / "model.pt", net)
    for path in (pt, onnx_file, run):
        assert code_risk(path) is None
        Stylizer.load(path)
