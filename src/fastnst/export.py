"""Write a trained transformer as ONNX or TorchScript (reading model files: artifacts.py).

Exported files take float32 (B, 3, H, W) RGB in [0, 1] and return the same shape in [0, 1];
batch, height and width are dynamic (odd sizes included). A multi-style network also takes its
style weights, float32 (N,) (a second input, `style_weights`; one-hot = one style, else a blend),
and its metadata lists the style names (config.styles). They load with plain onnxruntime or
torch.jit.load, without fastnst.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from fastnst.artifacts import (
    META_KEY,
    OnnxRunner,
    ScriptRunner,
    example_image,
    example_inputs,
    jit_deprecation_silenced,
    meta_json,
    onnx_bytes,
)
from fastnst.atomic import atomic_path
from fastnst.errors import FastNSTError, refuse_to_overwrite
from fastnst.transformer import TransformerNet

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
PARITY_TOLERANCE = 1e-4


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
    if fmt == "onnx":
        return OnnxRunner(str(path))
    with jit_deprecation_silenced():
        module = torch.jit.load(str(path), map_location="cpu")
    return ScriptRunner(module, torch.device("cpu"), torch.float32)
