"""Write a trained transformer as ONNX or TorchScript (reading network files: formats.py).

Exported files take float32 (B, 3, H, W) RGB in [0, 1] and return the same shape in [0, 1];
batch, height and width are dynamic (odd sizes included). A multi-style network also takes its
style weights, float32 (N,) (a second input, `style_weights`; one-hot = one style, else a blend),
and its metadata lists the style names (config.styles). They load with plain onnxruntime or
torch.jit.load, without fastnst.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastnst.atomic import atomic_path
from fastnst.errors import FastNSTError, refuse_to_overwrite
from fastnst.formats import (
    INPUT_NAME,
    META_KEY,
    OUTPUT_NAME,
    STYLE_INPUT_NAME,
    jit_deprecation_silenced,
    meta_json,
)
from fastnst.transformer import TransformerNet

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
PARITY_TOLERANCE = 1e-4
ONNX_OPSET = 17


def example_image(height=64, width=64) -> torch.Tensor:
    """A fixed (seeded) input for tracing and parity checks."""
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))


def example_inputs(net: TransformerNet, height=64, width=64) -> tuple[torch.Tensor, ...]:
    """(image,) or, for a multi-style network, (image, style weights): a blend, so every style's
    rows take part."""
    if not net.styles:
        return (example_image(height, width),)
    w = torch.arange(1, len(net.styles) + 1, dtype=torch.float32)
    return example_image(height, width), w / w.sum()


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
        self.register_buffer(
            "rows", w.permute(0, 2, 1, 3).reshape(cout * kh, cin, 1, kw).contiguous()
        )
        # shift[c, ky, ky', 0] = (ky == ky'): output row y sums row-conv ky at input row y + ky
        self.register_buffer("shift", torch.eye(kh).reshape(1, kh, kh, 1).repeat(cout, 1, 1, 1))
        self.register_buffer(
            "bias", conv.bias.detach().clone() if conv.bias is not None else torch.zeros(cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, self.rows), self.shift, self.bias, groups=self.groups)


def inference_copy(net: TransformerNet) -> TransformerNet:
    """A copy of `net` computing the same function, arranged to run faster in onnxruntime."""
    fast = copy.deepcopy(net).eval().float().cpu()
    conv = fast.out[1]
    if (
        isinstance(conv, nn.Conv2d)
        and conv.out_channels < 8
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
    ):
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
            example_inputs(net),
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
    entry.key, entry.value = META_KEY, meta_json(net, meta or {})
    model.doc_string = (
        "fastnst transformer: input float32 (B,3,H,W) RGB in [0,1] -> output same shape in [0,1]"
    )
    if net.styles:
        model.doc_string += f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},) weights of {', '.join(net.styles)}"
    return model.SerializeToString()


def torchscript_module(net: TransformerNet) -> torch.jit.ScriptModule:
    """Traced TorchScript module; the shape reads feeding F.interpolate are traced as ops, so
    height and width stay dynamic (checked on odd sizes in the tests)."""
    net = net.eval().float().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarning about shape-to-int conversions
        return torch.jit.trace(net, example_inputs(net), check_trace=False)


def export_model(
    net: TransformerNet,
    path: str | os.PathLike,
    fmt: str,
    meta: dict | None = None,
    overwrite: bool = False,
    check: bool = True,
) -> Path:
    """Write `net` as ONNX or TorchScript to `path` (atomically); optionally verify parity."""
    if fmt not in FORMATS:
        raise FastNSTError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    refuse_to_overwrite(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            tmp.write_bytes(onnx_bytes(net, meta))
        else:
            module = torchscript_module(net)
            with jit_deprecation_silenced():
                torch.jit.save(
                    module, str(tmp), _extra_files={f"{META_KEY}.json": meta_json(net, meta or {})}
                )
        if check:
            check_parity(net, tmp, fmt)
    return path


def check_parity(net: TransformerNet, path: Path, fmt: str, sizes=((67, 45), (96, 128))) -> float:
    """Max abs difference between the exported file and `net` on two sizes (one odd)."""
    worst = 0.0
    run = _runner(path, fmt)
    n = len(net.styles or [])
    # a multi-style network: one style (one-hot) and a blend
    mixes = [None] if not n else [torch.eye(n)[n - 1], example_inputs(net)[1]]
    for h, w in sizes:
        x = example_image(h, w)
        for mix in mixes:
            with torch.no_grad():
                expected = net(x) if mix is None else net(x, mix)
                worst = max(worst, float((run(x, mix) - expected).abs().max()))
    if worst > PARITY_TOLERANCE:
        raise FastNSTError(
            f"{path}: exported model differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})"
        )
    return worst


def _runner(path: Path, fmt: str):
    """The written file run the way a user without fastnst runs it: a bare onnxruntime session or
    torch.jit.load; (x, style) -> float32 output."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run_onnx(x, style=None):
            feeds = {names[0]: x.numpy()}
            if style is not None:
                feeds[names[1]] = style.numpy()
            return torch.from_numpy(session.run(None, feeds)[0])

        return run_onnx
    with jit_deprecation_silenced():
        module = torch.jit.load(str(path), map_location="cpu")  # the file just written here

    def run_script(x, style=None):
        with torch.no_grad():
            return (module(x) if style is None else module(x, style)).float()

    return run_script
