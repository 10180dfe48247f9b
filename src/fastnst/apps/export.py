"""`python export.py model=... format=onnx|torchscript output=...` (conf/inference/export.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from fastnst import zoo
from fastnst.config import is_set, required, resolve_user_path
from fastnst.errors import FastNSTError, refuse_input_as_output, refuse_to_overwrite
from fastnst.export import FORMATS, export_model, scales_per_style
from fastnst.formats import STYLE_INPUT_NAME, load_network
from fastnst.preflight import ensure_writable
from fastnst.stroke import network_stroke_scale


def export_cli(cfg: DictConfig) -> Path:
    """`python export.py model=... format=onnx|torchscript output=...`"""
    model = str(
        required(
            cfg, "model", "(an exported .pt, a .ckpt, a run directory or a bundled style name)"
        )
    )
    source = zoo.resolve_model(model)  # a file or run dir, else a bundled style (`the_scream`)
    fmt = str(cfg.format).lower()
    if fmt not in FORMATS:
        raise FastNSTError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if source.is_dir():
        base = source / "model"
    elif source.parent == zoo.ZOO_DIR and not resolve_user_path(model).exists():
        base = resolve_user_path(source.stem)  # a bundled network: into the current folder
    else:
        base = source.with_suffix("")
    output = base.with_suffix(
        FORMATS[fmt]
    )  # default: next to the model (<run_dir>/model.onnx, <name>.onnx)
    if is_set(cfg, "output"):
        given = str(cfg.output)
        output = resolve_user_path(given)
        if given.endswith(("/", os.sep)) or output.is_dir():  # a folder: the default name inside it
            output = output / base.with_suffix(FORMATS[fmt]).name
    refuse_input_as_output(output, source, "input model")
    refuse_to_overwrite(output, bool(cfg.overwrite))
    ensure_writable(output)  # before the network loads
    net, meta = load_network(source, trust_model_file=bool(cfg.trust_model_file))
    # a scale per style (a multi-style file's meta stroke_scales) stays with the reader
    in_graph = bool(cfg.stroke_scale_in_graph) and not scales_per_style(meta)
    path = export_model(
        net,
        output,
        fmt,
        meta=meta,
        overwrite=bool(cfg.overwrite),
        check=bool(cfg.check),
        stroke_scale_in_graph=in_graph,
    )
    scale = network_stroke_scale(meta, source=str(source))
    styles = (
        f"; input {STYLE_INPUT_NAME} float32 ({len(net.styles)},): {', '.join(net.styles)}"
        if net.styles
        else ""
    )
    if scales_per_style(meta):
        own = ", ".join(f"{k} {v:g}" for k, v in meta["stroke_scales"].items())
        styles += f"; stroke scales per style ({own}) left to the reader (meta stroke_scales)"
    elif scale != 1.0:
        styles += (
            f"; the network's stroke scale {scale:g} runs inside the graph"
            if in_graph
            else f"; stroke scale {scale:g} left to the reader (meta stroke_scale)"
        )
    print(
        f"wrote {path} ({fmt}; input float32 (B,3,H,W) RGB in [0,1] -> same shape in [0,1]{styles})"
    )
    return path
