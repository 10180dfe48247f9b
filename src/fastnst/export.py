"""Read a trained transformer from any training artefact, and export it to ONNX or TorchScript.

Exported files take float32 (B, 3, H, W) RGB in [0, 1] and return the same shape in [0, 1];
batch, height and width are dynamic (odd sizes included). A multi-style network also takes its
style weights, float32 (N,) (a second input, `style_weights`; one-hot = one style, else a blend),
and its metadata lists the style names (config.styles). They load with plain onnxruntime or
torch.jit.load, without fastnst.
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from omegaconf import DictConfig

from fastnst.config import resolve_user_path
from fastnst.errors import FastNSTError, refuse_to_overwrite
from fastnst.transformer import EXPORT_FORMAT, TransformerNet, exported_network

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "stylized"
STYLE_INPUT_NAME = "style_weights"  # a multi-style network's second input, float32 (N,)
META_KEY = "fastnst"  # ONNX metadata_props key / TorchScript extra file holding config + meta
PARITY_TOLERANCE = 1e-4


def model_kind(path: str | os.PathLike) -> str:
    """What a model path holds, judged by content: "run_dir", "torch" (exported .pt or Lightning
    .ckpt), "torchscript" or "onnx". Raises FastNSTError naming the file otherwise."""
    path = Path(path)
    if path.is_dir():
        return "run_dir"
    if not path.exists():
        raise FastNSTError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise FastNSTError(f"{path}: empty model file (0 bytes)")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise FastNSTError(f"{path}: corrupt model archive ({e})") from None
        # TorchScript archives carry the serialized code; torch.save archives only data.pkl
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise FastNSTError(f"{path}: a zip archive but not a torch or TorchScript model")
    if _looks_like_onnx(path):
        return "onnx"
    raise FastNSTError(
        f"{path}: not a model file (expected an exported .pt, a Lightning .ckpt, a run directory, "
        "an .onnx or a TorchScript file; a truncated file also ends up here)"
    )


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx
    except ImportError:  # optional dependency: fall back to the extension
        return path.suffix.lower() == ".onnx"
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return False
    return len(model.graph.node) > 0


def load_network(path: str | os.PathLike, trust_model_file: bool = False) -> tuple[TransformerNet, dict]:
    """(TransformerNet in eval mode, meta) from an exported .pt, a Lightning .ckpt or a run
    directory (model.pt preferred, else checkpoints/last.ckpt). Files are read with
    weights_only=True; see `load_torch_file` for `trust_model_file`."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "run_dir":
        for candidate in (path / "model.pt", path / "checkpoints" / "last.ckpt", path / "checkpoints" / "best.ckpt"):
            if candidate.is_file():
                return load_network(candidate, trust_model_file)
        raise FastNSTError(f"{path}: run directory without model.pt or checkpoints/last.ckpt")
    if kind != "torch":
        raise FastNSTError(f"{path}: is a {kind} file; this needs a fastnst .pt, .ckpt or run directory")
    payload = load_torch_file(path, trust_model_file)
    if isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT:
        return exported_network(payload, path)
    if isinstance(payload, dict) and "fastnst_model_config" in payload and "state_dict" in payload:
        state = {k[len("net.") :]: v for k, v in payload["state_dict"].items() if k.startswith("net.")}
        if not state:
            raise FastNSTError(f"{path}: checkpoint has no 'net.' weights (not a fastnst transformer checkpoint)")
        try:
            net = TransformerNet(**dict(payload["fastnst_model_config"]))
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise FastNSTError(f"{path}: checkpoint weights do not fit its model config ({str(e).splitlines()[0]})") from None
        meta = {"source": str(path), "epoch": payload.get("epoch"), "global_step": payload.get("global_step")}
        return net.eval(), meta
    raise FastNSTError(f"{path}: a torch file but neither an exported fastnst model nor a fastnst checkpoint")


def load_torch_file(path: str | os.PathLike, trust_model_file: bool = False):
    """torch.load a model file or checkpoint with weights_only=True: tensors and plain containers
    only, so a file from elsewhere cannot run code while it is read (what fastnst writes, model.pt
    and Lightning .ckpt files, is plain). Anything else is refused with one line naming the file,
    unless `trust_model_file`: then it is unpickled fully, which runs whatever code it holds."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:
        if "weights_only" not in str(first) and "Unsupported global" not in str(first):
            raise FastNSTError(f"{path}: cannot read model file, truncated or corrupt ({type(first).__name__})") from None
    if not trust_model_file:
        raise FastNSTError(
            f"{path}: refused: the file holds Python objects besides tensors and plain values, and "
            "loading those can run code; if you trust where it came from, pass trust_model_file=true"
        )
    print(f"fastnst: warning: {path}: loaded with trust_model_file=true (full unpickling, which can run code "
          "from the file)", file=sys.stderr)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise FastNSTError(f"{path}: cannot read model file ({type(e).__name__}: {e})") from None


def _meta_json(net: TransformerNet, meta: dict) -> str:
    return json.dumps({"config": net.config, "meta": meta}, default=str)


def _example(height=64, width=64) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))


def _example_inputs(net: TransformerNet, height=64, width=64) -> tuple[torch.Tensor, ...]:
    """(image,) or, for a multi-style network, (image, style weights): a blend, so every style's
    rows take part."""
    if not net.styles:
        return (_example(height, width),)
    w = torch.arange(1, len(net.styles) + 1, dtype=torch.float32)
    return _example(height, width), w / w.sum()


class RowSplitConv(nn.Module):
    """The same valid convolution as `conv`, computed as a 1 x k conv to (cout * k) channels
    followed by a shift-and-add over the k rows (a fixed grouped k x 1 conv).

    Why: the output conv (32 -> 3 channels, 9 x 9) is 5% of the Johnson net's multiply-adds but
    took 16% of onnxruntime's time, since 3 output channels fill its 8-wide blocked kernels
    badly; 27 channels fill them well. Same result up to float rounding (~1e-7).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        w = conv.weight.detach()
        cout, cin, kh, kw = w.shape
        self.groups = cout
        self.register_buffer("rows", w.permute(0, 2, 1, 3).reshape(cout * kh, cin, 1, kw).contiguous())
        # shift[c, ky, ky', 0] = (ky == ky'): output row y sums row-conv ky at input row y + ky
        self.register_buffer("shift", torch.eye(kh).reshape(1, kh, kh, 1).repeat(cout, 1, 1, 1))
        self.register_buffer("bias", conv.bias.detach().clone() if conv.bias is not None else torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, self.rows), self.shift, self.bias, groups=self.groups)


def inference_copy(net: TransformerNet) -> TransformerNet:
    """A copy of `net` computing the same function, arranged to run faster in onnxruntime."""
    fast = copy.deepcopy(net).eval().float().cpu()
    conv = fast.out[1]
    if isinstance(conv, nn.Conv2d) and conv.out_channels < 8 and conv.stride == (1, 1) and conv.padding == (0, 0):
        fast.out[1] = RowSplitConv(conv)
    return fast


def onnx_bytes(net: TransformerNet, meta: dict | None = None, opset: int = ONNX_OPSET) -> bytes:
    """The network as an ONNX model (bytes) with dynamic batch/height/width."""
    import warnings

    net = inference_copy(net)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # instance-norm "training mode" and tracer warnings are expected: IN always uses input stats
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter keeps F.interpolate(size=skip.shape) dynamic (Shape->Resize).
        multi = bool(net.styles)
        torch.onnx.export(
            net,
            _example_inputs(net),
            buf,
            opset_version=opset,
            input_names=[INPUT_NAME, STYLE_INPUT_NAME] if multi else [INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            dynamo=False,
        )
    try:
        import onnx
    except ImportError:
        return buf.getvalue()
    model = onnx.load_from_string(buf.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, _meta_json(net, meta or {})
    model.doc_string = "fastnst transformer: input float32 (B,3,H,W) RGB in [0,1] -> output same shape in [0,1]"
    if net.styles:
        model.doc_string += f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},) weights of {', '.join(net.styles)}"
    return model.SerializeToString()


def torchscript_module(net: TransformerNet) -> torch.jit.ScriptModule:
    """Traced TorchScript module; the shape reads feeding F.interpolate are traced as ops, so
    height and width stay dynamic (checked on odd sizes in the tests)."""
    import warnings

    net = net.eval().float().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarning about shape-to-int conversions
        return torch.jit.trace(net, _example_inputs(net), check_trace=False)


def export_model(net: TransformerNet, path: str | os.PathLike, fmt: str, meta: dict | None = None,
                 overwrite: bool = False, check: bool = True) -> Path:
    """Write `net` as ONNX or TorchScript to `path` (atomically); optionally verify parity."""
    if fmt not in FORMATS:
        raise FastNSTError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    refuse_to_overwrite(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "onnx":
            tmp.write_bytes(onnx_bytes(net, meta))
        else:
            module = torchscript_module(net)
            torch.jit.save(module, str(tmp), _extra_files={f"{META_KEY}.json": _meta_json(net, meta or {})})
        if check:
            check_parity(net, tmp, fmt)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_parity(net: TransformerNet, path: Path, fmt: str, sizes=((67, 45), (96, 128))) -> float:
    """Max abs difference between the exported file and `net` on two sizes (one odd)."""
    worst = 0.0
    run = _runner(path, fmt)
    n = len(net.styles or [])
    # a multi-style network: one style (one-hot) and a blend
    mixes = [None] if not n else [torch.eye(n)[n - 1], _example_inputs(net)[1]]
    for h, w in sizes:
        x = _example(h, w)
        for mix in mixes:
            with torch.no_grad():
                expected = net(x) if mix is None else net(x, mix)
                worst = max(worst, float((run(x, mix) - expected).abs().max()))
    if worst > PARITY_TOLERANCE:
        raise FastNSTError(f"{path}: exported model differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})")
    return worst


def _runner(path: Path, fmt: str):
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(x, mix=None):
            feeds = {INPUT_NAME: x.numpy()} if mix is None else {INPUT_NAME: x.numpy(), STYLE_INPUT_NAME: mix.numpy()}
            return torch.from_numpy(session.run(None, feeds)[0])

        return run
    module = torch.jit.load(str(path), map_location="cpu")
    return lambda x, mix=None: module(x) if mix is None else module(x, mix)


def export_cli(cfg: DictConfig) -> Path:
    """`python export.py model=... format=onnx|torchscript output=...`"""
    if cfg.get("model") in (None, "", "???"):
        raise FastNSTError("model=... is required (an exported .pt, a .ckpt or a run directory)")
    fmt = str(cfg.get("format", "onnx")).lower()
    if fmt not in FORMATS:
        raise FastNSTError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    source = resolve_user_path(cfg.model)
    net, meta = load_network(source, trust_model_file=bool(cfg.get("trust_model_file", False)))
    base = source / "model" if source.is_dir() else source.with_suffix("")
    output = base.with_suffix(FORMATS[fmt])  # default: next to the model (<run_dir>/model.onnx, <name>.onnx)
    if cfg.get("output"):
        given = str(cfg.output)
        output = resolve_user_path(given)
        if given.endswith(("/", os.sep)) or output.is_dir():  # a folder: the default name inside it
            output = output / base.with_suffix(FORMATS[fmt]).name
    if output == source:
        raise FastNSTError(f"{output}: output would overwrite the input model")
    path = export_model(net, output, fmt, meta=meta, overwrite=bool(cfg.get("overwrite", False)),
                        check=bool(cfg.get("check", True)))
    styles = f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},): {', '.join(net.styles)}" if net.styles else ""
    print(f"wrote {path} ({fmt}; input float32 (B,3,H,W) RGB in [0,1] -> same shape in [0,1]{styles})")
    return path
