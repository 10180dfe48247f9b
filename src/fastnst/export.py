"""Write a trained transformer as ONNX or TorchScript (reading network files: formats.py).

Exported files take float32 (B, 3, H, W) RGB in [0, 1] and return the same shape in [0, 1];
batch, height and width are dynamic (odd sizes included). A multi-style network also takes its
style weights, float32 (N,) (a second input, `style_weights`; one-hot = one style, else a blend),
and its metadata lists the style names (config.styles). They load with plain onnxruntime or
torch.jit.load, without fastnst, and reproduce stylize.py: a network that carries its own stroke
scale (meta["stroke_scale"], e.g. the_scream's 2) runs it inside the graph, exactly as Stylizer does
(fastnst.stroke.paint_at_scale: resize the photo down by the scale, the network, resize back up,
add back the photo's luminance detail the small size lost; antialiased bicubic resizes, ONNX
opset 18 Resize with antialias=1). The file's meta then records the scale under
`stroke_scale_in_graph` and a stroke_scale of 1 (nothing left for a reader to apply). A network's
mirrored margin (meta["margin"], fastnst.margin) goes into the graph the same way
(`margin_in_graph`, margin 0). A multi-style network that paints each style at its own scale
(meta["stroke_scales"]) keeps its scales and margin in the meta: the graph runs at scale 1, and
Stylizer (or a reader resizing by the scale) applies them.
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
    GRAPH_MARGIN,
    GRAPH_STROKE_SCALE,
    INPUT_NAME,
    META_KEY,
    OUTPUT_NAME,
    STYLE_INPUT_NAME,
    jit_deprecation_silenced,
    meta_json,
)
from fastnst.margin import network_margin, paint_with_margin, photo_margin
from fastnst.stroke import network_stroke_scale, paint_at_scale
from fastnst.transformer import TransformerNet

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
PARITY_TOLERANCE = 1e-4
ONNX_OPSET = 18  # Resize with antialias (the stroke scale in the graph) needs 18


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


class StrokeScaled(nn.Module):
    """`net` painting at stroke scale `scale` (fastnst.stroke.paint_at_scale) with a mirrored
    margin of `margin` network pixels (fastnst.margin), as one module to trace: what Stylizer
    runs for a network whose file carries that scale and margin."""

    def __init__(self, net: nn.Module, scale: float, margin: int = 0):
        super().__init__()
        self.net, self.scale = net, float(scale)
        self.margin = photo_margin(margin, self.scale)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        net = self.net if style is None else (lambda small: self.net(small, style))
        return paint_with_margin(x, self.margin, lambda p: paint_at_scale(p, self.scale, net))


def graph_network(net: nn.Module, stroke_scale: float = 1.0, margin: int = 0) -> nn.Module:
    """What goes into an exported graph: `net`, wrapped in StrokeScaled unless the scale is 1
    and there is no margin."""
    return net if stroke_scale == 1.0 and not margin else StrokeScaled(net, stroke_scale, margin)


def _antialiased_bicubic(g, input, output_size, align_corners, *scales):
    """ONNX for aten::_upsample_bicubic2d_aa (F.interpolate bicubic, antialias=True), which the
    TorchScript-based exporter lacks: Resize-18 with antialias, PIL's cubic (a = -0.5) and the
    taps outside the image left out, as torch computes it; the output size stays dynamic."""
    from torch.onnx._internal.torchscript_exporter import symbolic_helper

    shape = g.op("Shape", input)
    batch_channels = g.op(
        "Slice",
        shape,
        g.op("Constant", value_t=torch.tensor([0])),
        g.op("Constant", value_t=torch.tensor([2])),
    )
    sizes = g.op("Concat", batch_channels, g.op("Cast", output_size, to_i=7), axis_i=0)  # 7: INT64
    return g.op(
        "Resize",
        input,
        symbolic_helper._optional_input_placeholder_tensor(g),
        symbolic_helper._optional_input_placeholder_tensor(g),
        sizes,
        coordinate_transformation_mode_s="half_pixel",
        cubic_coeff_a_f=-0.5,
        mode_s="cubic",
        antialias_i=1,
        exclude_outside_i=1,
    )


def onnx_bytes(
    net: TransformerNet,
    meta: dict | None = None,
    opset: int = ONNX_OPSET,
    stroke_scale=1.0,
    margin: int = 0,
) -> bytes:
    """The network as an ONNX model (bytes) with dynamic batch/height/width; `stroke_scale` != 1
    or a `margin` runs it at that stroke scale with that margin inside the graph (`StrokeScaled`)."""
    module = graph_network(inference_copy(net), stroke_scale, margin)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # instance-norm "training mode" and tracer warnings are expected: IN always uses input stats
        warnings.simplefilter("ignore")
        torch.onnx.register_custom_op_symbolic(
            "aten::_upsample_bicubic2d_aa", _antialiased_bicubic, ONNX_OPSET
        )
        # The TorchScript-based exporter keeps F.interpolate(size=skip.shape) dynamic (Shape->Resize).
        multi = bool(net.styles)
        torch.onnx.export(
            module,
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
    if stroke_scale != 1.0:
        model.doc_string += (
            f"; painted at stroke scale {stroke_scale:g} inside the graph (resize down, network, "
            "resize up, the photo's luminance detail added back)"
        )
    if margin:
        model.doc_string += (
            f"; painted with a mirrored margin of {margin} network px inside the graph (the "
            "network's border effects fall in the margin, which is cut away)"
        )
    if net.styles:
        model.doc_string += f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},) weights of {', '.join(net.styles)}"
    return model.SerializeToString()


def torchscript_module(
    net: TransformerNet, stroke_scale: float = 1.0, margin: int = 0
) -> torch.jit.ScriptModule:
    """Traced TorchScript module; the shape reads feeding F.interpolate (and, with a stroke scale,
    the sizes computed from them) are traced as ops, so height and width stay dynamic (checked on
    odd sizes in the tests)."""
    net = net.eval().float().cpu()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarning about shape-to-int conversions
        return torch.jit.trace(
            graph_network(net, stroke_scale, margin), example_inputs(net), check_trace=False
        )


def scales_per_style(meta: dict | None) -> bool:
    """Whether a network file paints its styles at scales of their own (meta stroke_scales)."""
    return bool((meta or {}).get("stroke_scales"))


def exported_meta(meta: dict | None, stroke_scale: float, margin: int = 0) -> dict:
    """The meta an exported file stores: with the stroke scale inside the graph, the scale under
    `stroke_scale_in_graph` and stroke_scale 1 (what is left for a reader such as Stylizer); with
    the margin inside it, the margin under `margin_in_graph` and margin 0."""
    meta = dict(meta or {})
    if stroke_scale != 1.0:
        meta.update({"stroke_scale": 1.0, GRAPH_STROKE_SCALE: stroke_scale})
    if margin:
        meta.update({"margin": 0, GRAPH_MARGIN: margin})
    return meta


def export_model(
    net: TransformerNet,
    path: str | os.PathLike,
    fmt: str,
    meta: dict | None = None,
    overwrite: bool = False,
    check: bool = True,
    stroke_scale_in_graph: bool = True,
) -> Path:
    """Write `net` as ONNX or TorchScript to `path` (atomically); optionally verify parity.
    stroke_scale_in_graph: run the network's own stroke scale (meta["stroke_scale"]) and margin
    (meta["margin"], fastnst.margin) inside the graph, so the file alone reproduces stylize.py;
    false leaves them in the meta only. A multi-style file with a scale per style
    (meta["stroke_scales"]) leaves them in the meta always: a graph runs one scale."""
    if fmt not in FORMATS:
        raise FastNSTError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    refuse_to_overwrite(path, overwrite)
    stroke_scale_in_graph = stroke_scale_in_graph and not scales_per_style(meta)
    scale = network_stroke_scale(meta or {}, source=str(path)) if stroke_scale_in_graph else 1.0
    margin = network_margin(meta or {}, source=str(path)) if stroke_scale_in_graph else 0
    saved = exported_meta(meta, scale, margin)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            tmp.write_bytes(onnx_bytes(net, saved, stroke_scale=scale, margin=margin))
        else:
            module = torchscript_module(net, scale, margin)
            with jit_deprecation_silenced():
                torch.jit.save(
                    module, str(tmp), _extra_files={f"{META_KEY}.json": meta_json(net, saved)}
                )
        if check:
            check_parity(net, tmp, fmt, stroke_scale=scale, margin=margin)
    return path


def check_parity(
    net: TransformerNet,
    path: Path,
    fmt: str,
    sizes=((67, 45), (96, 128)),
    stroke_scale=1.0,
    margin: int = 0,
) -> float:
    """Max abs difference between the exported file and `net` (at `stroke_scale`, with `margin`,
    as Stylizer paints) on two sizes (one odd)."""
    worst = 0.0
    run = _runner(path, fmt)
    reference = graph_network(net.eval(), stroke_scale, margin)
    n = len(net.styles or [])
    # a multi-style network: one style (one-hot) and a blend
    mixes = [None] if not n else [torch.eye(n)[n - 1], example_inputs(net)[1]]
    for h, w in sizes:
        x = example_image(h, w)
        for mix in mixes:
            with torch.no_grad():
                expected = reference(x) if mix is None else reference(x, mix)
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
