"""Network files: what a path holds, whether it may be opened, reading it safely, and the meta
layout every kind carries.

Kinds, judged by content (never by extension): a run directory, an exported `model.pt` or a
Lightning `.ckpt` ("torch": a torch.save archive, or a legacy pickle), an `.onnx` graph, a
TorchScript archive (whatever its name). Trust: every file a user hands in is untrusted.
A torch file is read with weights_only=True (tensors and plain values; anything else is refused),
a TorchScript file always holds code, an ONNX graph may name custom operators or external data:
those are refused in one line naming the file and why, unless `trust_model_file=true`.
`fastnst.runners.open_network` turns a checked file into a runner; export.py writes the
ONNX / TorchScript files read here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from fastnst.atomic import atomic_torch_save
from fastnst.errors import FastNSTError
from fastnst.margin import check_margin
from fastnst.stroke import check_stroke_scale, check_stroke_scales, shown
from fastnst.transformer import UPSAMPLE_MODES, TransformerNet

EXPORT_FORMAT = "fastnst.transformer"
EXPORT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "image", "stylized"
STYLE_INPUT_NAME = "style_weights"  # a multi-style network's second input, float32 (N,)
META_KEY = "fastnst"  # ONNX metadata_props key / TorchScript extra file holding config + meta
# the meta key an exported ONNX / TorchScript file records the stroke scale its graph applies
# under (its "stroke_scale" is then what remains to apply: 1)
GRAPH_STROKE_SCALE = "stroke_scale_in_graph"
# ... and its mirrored margin (fastnst.margin; network pixels), whose "margin" is then 0
GRAPH_MARGIN = "margin_in_graph"
# ONNX operator domains whose kernels ship inside onnxruntime itself (no library is loaded)
BUILTIN_ONNX_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"}
)
TRUST_HINT = "if you trust where it came from, pass trust_model_file=true"
# why each kind of file can run code (the refusal names the file and one of these)
SCRIPT_RISK = "a TorchScript file holds code that loading it runs"
PICKLE_RISK = (
    "the file holds Python objects besides tensors and plain values, and loading those can "
    "run code (full unpickling)"
)
# what a run directory's network is read from, in order of preference
RUN_DIR_FILES = ("model.pt", "checkpoints/last.ckpt", "checkpoints/best.ckpt")
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ (torch.save's legacy, non-zip format)


@contextlib.contextmanager
def jit_deprecation_silenced():
    """TorchScript is the exported format users asked for: torch's FutureWarning that
    torch.jit.save/load are deprecated (in favour of torch.export) is noise to them. Only that
    warning is ignored, only inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.(save|load)` is deprecated", category=FutureWarning
        )
        yield


# -- meta: the one layout, checked on every read ------------------------------------------------


def check_meta(meta, path: str | os.PathLike) -> dict:
    """A network file's meta as a plain dict, or a one-line FastNSTError naming the file: it must
    be a mapping with string keys, a `stroke_scale` in it a finite number in range (and the
    `stroke_scales` of a multi-style file, {style: scale}, each one) and a `margin` a whole
    number of pixels in range."""
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise FastNSTError(f"{path}: meta must be a mapping, got {type(meta).__name__}")
    if not all(isinstance(k, str) for k in meta):
        raise FastNSTError(f"{path}: meta keys must be strings")
    meta = dict(meta)
    for key in ("stroke_scale", GRAPH_STROKE_SCALE):
        if key in meta and meta[key] is not None:
            meta[key] = check_stroke_scale(meta[key], source=f"{path}: meta {key}")
    if meta.get("stroke_scales") is not None:
        meta["stroke_scales"] = check_stroke_scales(
            meta["stroke_scales"], source=f"{path}: meta stroke_scales"
        )
    for key in ("margin", GRAPH_MARGIN):
        if key in meta and meta[key] is not None:
            meta[key] = check_margin(meta[key], source=f"{path}: meta {key}")
    styles = meta.get("styles")
    if styles is not None and (
        not isinstance(styles, list) or not all(isinstance(n, str) for n in styles)
    ):
        raise FastNSTError(f"{path}: meta styles must be a list of names, got {shown(styles)}")
    for key in ("epoch", "global_step"):
        value = meta.get(key)
        if value is not None and not (_whole(value) and 0 <= value < 2**63):
            raise FastNSTError(
                f"{path}: meta {key} must be a whole number >= 0, got {shown(value)}"
            )
    return meta


def meta_json(net: TransformerNet, meta: dict) -> str:
    """The config and meta stored inside exported ONNX / TorchScript files (read back by
    `onnx_meta` / `script_meta`)."""
    return json.dumps({"config": net.config, "meta": meta}, default=str)


def _saved_meta(text: str, path: Path) -> dict:
    """(meta with `styles` from config.styles) from the JSON an export stored; {} for none."""
    if not text:
        return {}
    try:
        saved = json.loads(text)
    except ValueError:
        raise FastNSTError(f"{path}: its fastnst metadata is not valid JSON") from None
    if not isinstance(saved, dict):
        raise FastNSTError(f"{path}: its fastnst metadata must be a JSON object")
    meta = check_meta(saved.get("meta"), path)
    config = saved.get("config")
    styles = config.get("styles") if isinstance(config, dict) else None
    if styles:
        if not isinstance(styles, list) or not all(isinstance(s, str) for s in styles):
            raise FastNSTError(f"{path}: its metadata's config.styles must be a list of names")
        meta["styles"] = list(styles)
    return meta


# -- exported model.pt ---------------------------------------------------------------------------


def save_exported(path: str | os.PathLike, net: TransformerNet, meta: dict | None = None) -> Path:
    """Write the transformer alone (weights + config to rebuild it + format version), atomically."""
    payload = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "config": dict(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": check_meta(meta, path),
    }
    return atomic_torch_save(payload, path)


def load_exported(path: str | os.PathLike, map_location="cpu") -> tuple[TransformerNet, dict]:
    """Rebuild a TransformerNet from an exported file; returns (net in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise FastNSTError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise FastNSTError(
            f"{path}: cannot read model file, truncated or not a torch file ({type(e).__name__})"
        ) from None
    return exported_network(payload, path)


def _build(config, state, path: Path, what: str) -> TransformerNet:
    """TransformerNet(**config) with `state` loaded; one line naming the file for any mismatch."""
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise FastNSTError(f"{path}: {what} config must be a mapping, got {type(config).__name__}")
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise FastNSTError(f"{path}: {what} weights must be a mapping of names to tensors")
    _check_model_config(config, path, what)
    try:
        with torch.device("meta"):  # shapes only: a crafted config allocates nothing
            shapes = {
                k: tuple(v.shape) for k, v in TransformerNet(**dict(config)).state_dict().items()
            }
    except FastNSTError as e:
        raise FastNSTError(f"{path}: {what} config: {e}") from None
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, OverflowError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise FastNSTError(
            f"{path}: {what} config is not a transformer config ({reason})"
        ) from None
    given = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != given:
        wrong = sorted(set(shapes) ^ set(given)) or sorted(
            k for k in shapes if shapes[k] != given[k]
        )
        raise FastNSTError(
            f"{path}: {what} weights do not fit its model config ({len(wrong)} tensors differ, "
            f"e.g. {wrong[0][:60]!r})"
        )
    try:
        net = TransformerNet(**dict(config))
        net.load_state_dict(dict(state))
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise FastNSTError(
            f"{path}: {what} weights do not fit its model config ({reason})"
        ) from None
    return net.eval()


# TransformerNet's own defaults (its signature), for a config that leaves a key out
NET_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(TransformerNet.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}
# bounds of a network config read from a file (fastnst's own networks are far inside them)
MAX_CHANNELS, MAX_RESIDUAL, MAX_STYLES = 4096, 64, 4096


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_model_config(config: Mapping, path: Path, what: str) -> None:
    """The types and bounds of a transformer config from a file, before anything is built."""
    config = {**NET_DEFAULTS, **config}  # a key the file leaves out: TransformerNet's default
    channels, residual = config.get("channels"), config["num_residual"]
    norm, styles = config["norm"], config.get("styles")
    problem = None
    if not isinstance(channels, (list, tuple)) or len(channels) != 3:
        problem = f"channels must be a list of 3 widths, got {shown(channels)}"
    elif not all(_whole(c) and 1 <= c <= MAX_CHANNELS for c in channels):
        problem = f"channels must be whole numbers in 1..{MAX_CHANNELS}, got {shown(channels)}"
    elif not _whole(residual) or not 0 <= residual <= MAX_RESIDUAL:
        problem = f"num_residual must be a whole number in 0..{MAX_RESIDUAL}, got {shown(residual)}"
    elif not isinstance(norm, str):
        problem = f"norm must be a name, got {shown(norm)}"
    elif config["upsample"] not in UPSAMPLE_MODES:
        problem = (
            f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {shown(config['upsample'])}"
        )
    elif styles is not None and (
        not isinstance(styles, (list, tuple))
        or len(styles) > MAX_STYLES
        or not all(isinstance(n, str) for n in styles)
    ):
        problem = f"styles must be a list of names, got {shown(styles)}"
    if problem:
        raise FastNSTError(f"{path}: {what} config: {problem}")


def exported_network(payload, path: str | os.PathLike) -> tuple[TransformerNet, dict]:
    """(net in eval mode, meta) from the loaded contents of an exported file."""
    path = Path(path)
    if not isinstance(payload, dict) or payload.get("format") != EXPORT_FORMAT:
        raise FastNSTError(
            f"{path}: not an exported fastnst transformer (no '{EXPORT_FORMAT}' format tag)"
        )
    version = payload.get("version", EXPORT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FastNSTError(f"{path}: format version must be a whole number, got {shown(version)}")
    if version > EXPORT_VERSION:
        raise FastNSTError(
            f"{path}: exported with format version {version}, this fastnst reads up to {EXPORT_VERSION}"
        )
    meta = check_meta(payload.get("meta"), path)
    net = _build(payload.get("config"), payload.get("state_dict"), path, "exported")
    return net, meta


# -- what a path holds ---------------------------------------------------------------------------


def model_kind(path: str | os.PathLike) -> str:
    """What a model path holds, judged by content: "run_dir", "torch" (exported .pt or Lightning
    .ckpt, or a legacy pickled torch file), "torchscript" or "onnx". Raises FastNSTError naming
    the file otherwise."""
    path = Path(path)
    if path.is_dir():
        return "run_dir"
    if not path.exists():
        raise FastNSTError(f"{path}: model file not found")
    if not path.is_file():
        raise FastNSTError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise FastNSTError(f"{path}: empty model file (0 bytes)")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise FastNSTError(f"{path}: corrupt model archive ({e})") from None
        # TorchScript archives carry the serialized code; torch.save archives only data.pkl
        if any(n.endswith("/constants.pkl") or "/code/" in n or n.endswith(".py") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise FastNSTError(f"{path}: a zip archive but not a torch or TorchScript model")
    with open(path, "rb") as f:
        if f.read(1) == PICKLE_MAGIC:
            return "torch"  # torch.save's legacy format: a pickle, read with weights_only=True
    if _looks_like_onnx(path):
        return "onnx"
    raise FastNSTError(
        f"{path}: not a model file (expected an exported .pt, a Lightning .ckpt, a run directory, "
        "an .onnx or a TorchScript file; a truncated file also ends up here)"
    )


def _looks_like_onnx(path: Path) -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:  # optional dependency: fall back to the extension
        return path.suffix.lower() == ".onnx"
    model = parsed_onnx(path)
    return model is not None and len(model.graph.node) > 0


def parsed_onnx(path: Path):
    """The file's ONNX ModelProto, or None. Parsed once per file version: detecting the kind,
    checking it and reading the metadata share the parse."""
    stat = path.stat()
    return _parse_onnx(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _parse_onnx(path: str, mtime_ns: int, size: int):
    import onnx

    try:
        return onnx.load_model(path, load_external_data=False)
    except Exception:
        return None


# -- trust ---------------------------------------------------------------------------------------


def refuse_untrusted(path: Path, why: str, trust_model_file: bool) -> None:
    """One line naming the file and why it can run code, unless the user vouched for it (then
    one warning line)."""
    if not trust_model_file:
        raise FastNSTError(f"{path}: refused: {why}; {TRUST_HINT}")
    print(f"fastnst: warning: {path}: loaded with trust_model_file=true ({why})", file=sys.stderr)


def onnx_risks(path: Path) -> str | None:
    """Why an ONNX graph is not plain (custom operator domains, external data), else None."""
    model = parsed_onnx(path)
    if model is None:
        return "cannot check the graph for custom operators (the onnx package is not installed)"
    domains = {op.domain for op in model.opset_import}
    graphs = [model.graph, *(f for f in model.functions)]
    local = {f.domain for f in model.functions}
    for graph in graphs:
        domains.update(node.domain for node in graph.node)
    custom = sorted(domains - BUILTIN_ONNX_DOMAINS - local)
    if custom:
        return (
            f"it uses custom operator domains ({', '.join(custom)[:80]}), "
            "which load native code into onnxruntime"
        )
    if any(t.data_location == 1 for t in model.graph.initializer):  # onnx.TensorProto.EXTERNAL
        return "it reads its weights from external files"
    return None


def code_risk(path: str | os.PathLike) -> tuple[Path, str] | None:
    """(the file, why) when opening the network at `path` (a file or run directory) could run
    code from it, else None; nothing from the file runs here. A file that is not a network at all
    is left to the loaders' own one-line errors (None)."""
    path = Path(path)
    try:
        kind = model_kind(path)
    except FastNSTError:
        return None
    if kind == "run_dir":
        for candidate in RUN_DIR_FILES:
            if (path / candidate).is_file():
                return code_risk(path / candidate)
        return None
    if kind == "torchscript":
        return path, SCRIPT_RISK
    if kind == "onnx":
        risk = onnx_risks(path)
        return (path, risk) if risk else None
    try:
        _torch_load(path, weights_only=True)
    except Exception as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            return path, PICKLE_RISK
    return None


def refuse_code(path: str | os.PathLike, trust_model_file: bool = False) -> None:
    """A one-line FastNSTError when opening `path` could run code from it (see `code_risk`),
    unless trust_model_file."""
    risk = code_risk(path)
    if risk:
        refuse_untrusted(*risk, trust_model_file)


def load_script_module(path: Path, trust_model_file: bool) -> tuple[torch.jit.ScriptModule, dict]:
    """(module, meta) of a TorchScript file: it always holds code (torch.jit.load runs it), so
    only with trust_model_file=true."""
    refuse_untrusted(path, SCRIPT_RISK, trust_model_file)
    extra = {f"{META_KEY}.json": ""}
    try:
        with jit_deprecation_silenced():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        raise FastNSTError(f"{path}: cannot load TorchScript model ({type(e).__name__})") from None
    raw = extra[f"{META_KEY}.json"]
    return module, _saved_meta(raw.decode() if isinstance(raw, bytes) else raw, path)


def onnx_meta(path: Path) -> dict:
    """The meta an exported ONNX file stores (with `styles` for a multi-style network); {} for a
    foreign file (or without the onnx package)."""
    model = parsed_onnx(path)
    if model is None:
        return {}
    props = {p.key: p.value for p in model.metadata_props}
    return _saved_meta(props.get(META_KEY, ""), path)


# -- torch files ---------------------------------------------------------------------------------


def load_network(
    path: str | os.PathLike, trust_model_file: bool = False
) -> tuple[TransformerNet, dict]:
    """(TransformerNet in eval mode, meta) from an exported .pt, a Lightning .ckpt or a run
    directory (model.pt preferred, else checkpoints/last.ckpt). Files are read with
    weights_only=True; see `load_torch_file` for `trust_model_file`."""
    path = Path(path)
    kind = model_kind(path)
    if kind == "run_dir":
        for candidate in RUN_DIR_FILES:
            if (path / candidate).is_file():
                return load_network(path / candidate, trust_model_file)
        raise FastNSTError(f"{path}: run directory without model.pt or checkpoints/last.ckpt")
    if kind != "torch":
        raise FastNSTError(
            f"{path}: is a {kind} file; this needs a fastnst .pt, .ckpt or run directory"
        )
    payload = load_torch_file(path, trust_model_file)
    if isinstance(payload, dict) and payload.get("format") == EXPORT_FORMAT:
        return exported_network(payload, path)
    if isinstance(payload, dict) and "fastnst_model_config" in payload and "state_dict" in payload:
        weights = payload["state_dict"]
        if not isinstance(weights, Mapping):
            raise FastNSTError(
                f"{path}: checkpoint state_dict must be a mapping, got {type(weights).__name__}"
            )
        state = {
            k[len("net.") :]: v
            for k, v in weights.items()
            if isinstance(k, str) and k.startswith("net.")
        }
        if not state:
            raise FastNSTError(
                f"{path}: checkpoint has no 'net.' weights (not a fastnst transformer checkpoint)"
            )
        net = _build(payload["fastnst_model_config"], state, path, "checkpoint")
        meta = {"source": str(path)}
        for key in ("epoch", "global_step"):
            value = payload.get(key)
            meta[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
        return net, meta
    raise FastNSTError(
        f"{path}: a torch file but neither an exported fastnst model nor a fastnst checkpoint"
    )


def load_torch_file(path: str | os.PathLike, trust_model_file: bool = False):
    """torch.load a model file or checkpoint with weights_only=True: tensors and plain containers
    only, so a file from elsewhere cannot run code while it is read (what fastnst writes, model.pt
    and Lightning .ckpt files, is plain). Anything else is refused with one line naming the file,
    unless `trust_model_file`: then it is unpickled fully, which runs whatever code it holds."""
    path = Path(path)
    try:
        return _torch_load(path, weights_only=True)
    except Exception as first:
        if "weights_only" not in str(first) and "Unsupported global" not in str(first):
            raise FastNSTError(
                f"{path}: cannot read model file, truncated or corrupt ({type(first).__name__})"
            ) from None
    refuse_untrusted(path, PICKLE_RISK, trust_model_file)
    try:
        return _torch_load(path, weights_only=False)
    except Exception as e:
        raise FastNSTError(f"{path}: cannot read model file ({type(e).__name__}: {e})") from None


def _torch_load(path: Path, weights_only: bool):
    """torch.load on CPU; torch's warnings about the file (its pickle protocol, ...) are not the
    user's concern: the outcome is a result or one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def check_is_training_checkpoint(path: Path) -> None:
    """A Lightning checkpoint of this system (not an exported model.pt or another project's file)."""

    ckpt = load_torch_file(path)  # weights_only=True: a foreign file cannot run code here
    if (
        not isinstance(ckpt, dict)
        or "fastnst_model_config" not in ckpt
        or "optimizer_states" not in ckpt
    ):
        hint = (
            " (an exported model.pt: use it with stylize.py)"
            if isinstance(ckpt, dict) and "format" in ckpt
            else ""
        )
        raise FastNSTError(f"{path}: not a fastnst training checkpoint{hint}")
