"""Multi-style networks (conditional instance norm, Dumoulin et al. 2017): the style list of
`style=multi style.names=[...]`, which style each photo of a batch trains, style weights from
`style=` / `mix=`, and starting a network from another one (`init_from=`, `finetune=`)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.errors import FastNSTError, as_real_number, check_weight

log = logging.getLogger(__name__)

# what one style of the list keeps from its preset (conf/style/<name>.yaml)
_MEMBER_KEYS = (
    "image",
    "images",
    "weights",
    "images_dir",
    "crops",
    "beta_scale",
    "size",
    "stroke_scale",
)
FINETUNE_MODES = (None, "all", "style_params")


def preset_stroke_scale(style: Mapping | DictConfig) -> float:
    """The scale a network trained on `style` paints at for stroke_scale=1: a single-style
    preset's `stroke_scale` (1.0 when it sets none); always 1.0 for a multi-style network, whose
    members are taken at their painted scale (expand_names)."""
    if is_multi(style):
        return 1.0
    return _own_stroke_scale(style)


def _own_stroke_scale(style: Mapping | DictConfig) -> float:
    """A style's `stroke_scale`: 1.0 when it sets none, else checked (fastnst.stroke)."""
    from fastnst.stroke import check_stroke_scale

    value = style.get("stroke_scale")
    return 1.0 if value is None else check_stroke_scale(value, source="style.stroke_scale")


def painted_size(style: Mapping | DictConfig) -> int | None:
    """The painting's size (px) at the scale a network trained on `style` paints it: `size` x
    `stroke_scale` (what its outputs are measured against); None when `size` is."""
    size = style.get("size")
    return round(float(size) * _own_stroke_scale(style)) if size else size


def is_multi(style: Mapping | DictConfig | None) -> bool:
    return style is not None and style.get("names") is not None


def expand_names(style: DictConfig, paths: DictConfig | Mapping | None = None) -> list[dict]:
    """One plain style config per entry of `style.names`: a preset (conf/style/<name>.yaml,
    resolved against `paths`) or an image path (named after the file). Each gets the list's
    `size`; `beta_scale` multiplies the preset's, and `beta_scales` one style's."""
    from fastnst.config import load_preset, preset_names

    names = style.get("names")
    if isinstance(names, str) or not names:
        raise FastNSTError(
            f"style.names must be a non-empty list of style presets or image paths, got {names!r}"
        )
    members: list[dict] = []
    for entry in names:
        entry = str(entry)
        presets = preset_names("style", skip=("multi", "custom"))
        if entry in presets:
            spec = OmegaConf.to_container(load_preset("style", entry, paths=paths))
            member = {
                "name": str(spec.get("name", entry)),
                **{k: spec.get(k) for k in _MEMBER_KEYS if k in spec},
            }
        else:
            path = Path(entry).expanduser()
            if not path.suffix:
                raise FastNSTError(
                    f"style.names: {entry!r} is neither a style preset ({', '.join(presets)}) "
                    "nor an image path"
                )
            member = {"name": path.stem, "image": str(path.resolve())}
        # the list's size for every member, or (size=null) each preset's own painting size at the
        # scale its strokes are painted (size x stroke_scale): one network paints every style at
        # stroke_scale 1
        own = painted_size(member)
        member.pop("stroke_scale", None)
        member["size"] = style.get("size") or own
        member["beta_scale"] = float(member.get("beta_scale") or 1.0) * float(
            style.get("beta_scale") or 1.0
        )
        members.append(member)
    seen = [m["name"] for m in members]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise FastNSTError(
            f"style.names: the style name(s) {', '.join(dupes)} appear more than once"
        )
    for name, factor in own_beta_scales(style.get("beta_scales"), seen).items():
        members[seen.index(name)]["beta_scale"] *= factor
    return members


def _per_style(option: str, values, names: Sequence[str], check, example: str) -> dict:
    """A {style name: value} option of a multi-style list (`style.beta_scales`,
    `style.stroke_scales`), checked: a mapping, known names, each value by `check`."""
    if not values:
        return {}
    if not isinstance(values, Mapping):
        raise FastNSTError(
            f"{option} must be a mapping of style names to {example}, e.g. "
            f"{option}={{{names[0]}: 1.5}}, got {_short(values)}"
        )
    checked = {}
    for name, value in values.items():
        if str(name) not in names:
            raise FastNSTError(
                f"{option}: {str(name)!r:.60} is not among style.names"
                f"{did_you_mean(str(name), names)} ({', '.join(names)})"
            )
        checked[str(name)] = check(f"{option}.{name}", value)
    return checked


def member_names(style: Mapping | DictConfig) -> list[str]:
    """The style names of a multi-style list whose `members` are filled in (train.py): an image
    path's style is named after the file, so these, not `style.names`, are what the per-style
    options name."""
    return [str(m["name"]) for m in style.get("members") or []]


def own_beta_scales(scales, names: Sequence[str]) -> dict[str, float]:
    """`style.beta_scales={udnie: 1.5}`: one style's weight multiplied within the list (a style
    that reads as a tint beside the others), checked: known names, finite factors >= 0."""
    return _per_style("style.beta_scales", scales, names, check_weight, "factors")


def own_stroke_scales(style: Mapping | DictConfig) -> dict[str, float]:
    """`style.stroke_scales={wave: 1.5}` of a multi-style list (its `members` filled in): the
    scale the network paints a style at for stroke_scale=1, stored in model.pt's meta (like a
    single preset's `stroke_scale`; training is unchanged). Checked: known names, in range."""
    from fastnst.stroke import check_stroke_scale

    if not is_multi(style):
        return {}
    return _per_style(
        "style.stroke_scales",
        style.get("stroke_scales"),
        member_names(style),
        lambda source, value: check_stroke_scale(value, source=source),
        "stroke scales",
    )


def expand_multi_style(cfg: DictConfig) -> None:
    """In place: fill `style.members` of a `style=multi` config (kept in the run's config.yaml)."""
    if not is_multi(cfg.get("style")):
        return
    cfg.style.members = expand_names(cfg.style, cfg.get("paths"))
    own_stroke_scales(cfg.style)  # known names, scales in range: before any work


def check_finetune_mode(finetune, init_from, multi: bool) -> None:
    """finetune= is a known mode, and style_params comes with init_from= and a multi-style config."""
    if finetune not in FINETUNE_MODES:
        raise FastNSTError(f"finetune={finetune}: use null (the whole network) or style_params")
    if finetune == "style_params" and (not init_from or not multi):
        raise FastNSTError(
            "finetune=style_params needs init_from=<run> and style=multi style.names=[...] "
            "(the network's styles plus the new ones)"
        )


def require_new_styles(new: Sequence[str], init_from, names: Sequence[str]) -> None:
    """finetune=style_params trains only new styles: refuse a style list the network already holds."""
    if not new:
        raise FastNSTError(
            f"finetune=style_params: init_from={init_from} already holds every style of "
            f"style.names ({', '.join(names)}); add the new style to style.names"
        )


def check_init_options(cfg: DictConfig, init_path=None) -> None:
    """init_from= / finetune= of a train config, checked before anything is built; `init_path`:
    the file init_from names, where it is a bundled network's name (fastnst.zoo.resolve_model)."""
    finetune, init_from = cfg.get("finetune"), cfg.get("init_from")
    check_finetune_mode(finetune, init_from, is_multi(cfg.get("style")))
    if init_from:
        from fastnst.formats import load_network

        # a missing or foreign file fails here, in one line (a bundled name: its file)
        old, _ = load_network(init_path or init_from)
        if finetune == "style_params":
            names = [m["name"] for m in cfg.style.members]
            require_new_styles(sorted(set(names) - set(old.styles or [])), init_from, names)


def members_of(style: Mapping | DictConfig) -> list[dict]:
    members = style.get("members")
    if members:
        return [dict(m) for m in members]
    return expand_names(OmegaConf.create(dict(style)))


def batch_styles(step: int, batch: int, active: Sequence[int]) -> list[int]:
    """The style index of each photo of a batch: round robin over `active` continued from step
    to step, so every style trains on the same number of photos (to within one per style)."""
    n = len(active)
    return [active[(step * batch + i) % n] for i in range(batch)]


def style_weights(
    styles: Sequence[str] | None,
    style: str | None = None,
    mix: Mapping | None = None,
    source: str = "the network",
) -> torch.Tensor | None:
    """Style weights (N,) of a multi-style network for `style=<name>` or `mix={name: weight}`
    (weights normalised to sum 1); None for a single-style network without either."""
    if style is not None and mix is not None:
        raise FastNSTError("give style=<name> or mix={name: weight, ...}, not both")
    if not styles:
        if style is not None or mix is not None:
            option = "style=" if style is not None else "mix="
            raise FastNSTError(
                f"{source}: a single-style network; {option} picks a style of a multi-style network"
            )
        return None
    if style is None and mix is None:
        return None
    if style is not None:
        mix = {str(style): 1.0}
    if not isinstance(mix, Mapping) or not mix:
        raise FastNSTError(
            f"mix must be a mapping of style names to weights, e.g. mix={{{styles[0]}: 0.7, ...}}, got {mix!r:.80}"
        )
    weights = [0.0] * len(styles)
    for name, value in mix.items():
        if str(name) not in styles:
            raise FastNSTError(
                f"{source}: no style {str(name)!r:.60}{did_you_mean(str(name), styles)}; "
                f"its styles: {', '.join(styles)}"
            )
        weights[styles.index(str(name))] += check_mix_weight(name, value)
    total = sum(weights)  # at most len(styles) * MAX_MIX_WEIGHT: finite
    if not total > 0:
        raise FastNSTError(
            f"mix: the weights must have a positive sum, got {_short(dict(mix))} (all zero)"
        )
    # normalised in double precision: tiny weights (1e-300) neither vanish nor divide to nan
    return torch.tensor([w / total for w in weights], dtype=torch.float32)


# largest weight of one style in mix= (weights are normalised: 70/30 and 0.7/0.3 blend alike)
MAX_MIX_WEIGHT = 1e6


def check_mix_weight(name, value) -> float:
    """One weight of mix=: a finite number in [0, MAX_MIX_WEIGHT], or a one-line FastNSTError.
    Infinities, nan and overflowing pairs (1e308 + 1e308) would normalise to nan: an all-black
    image; booleans and strings are refused as in any other numeric option."""
    shown = f"{str(name):.60}"
    number = as_real_number(value)
    if number is None:
        raise FastNSTError(f"mix: the weight of {shown} must be a number, got {_short(value)}")
    if not math.isfinite(number) or not 0 <= number <= MAX_MIX_WEIGHT:
        raise FastNSTError(
            f"mix: the weight of {shown} must be a number between 0 and {MAX_MIX_WEIGHT:g}, "
            f"got {_short(value)}"
        )
    return number


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """ " (did you mean 'wave'?)" for a near miss of one of `choices`, else ""."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _short(value, limit: int = 80) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def init_network(net, source: str | os.PathLike) -> list[str]:
    """Copy the weights of the network at `source` (run dir, model.pt, .ckpt) into `net`, in
    place; a narrower source is widened first (fastnst.widen). Conditional-norm rows are copied
    by style name; a style `source` lacks starts from the mean of its rows (a single-style
    source: its instance-norm scale and shift). Returns the names of `net`'s styles that
    `source` lacks."""
    from fastnst.formats import load_network
    from fastnst.widen import can_widen, widen

    old, _ = load_network(source)
    old_styles = old.styles or []
    new_styles = net.styles or []
    old_channels, channels = list(old.config["channels"]), list(net.config["channels"])
    same_body = all(old.config[k] == net.config[k] for k in ("num_residual", "norm"))
    if same_body and can_widen(old_channels, channels):
        # a wider model= starts as the same painting (fastnst.widen)
        log.info("init_from: widening %s channels to %s", old_channels, channels)
        old = widen(old, channels)
    elif not same_body or old_channels != channels:
        raise FastNSTError(
            f"init_from={source}: its network ({old_channels}, {old.config['num_residual']} "
            f"residual blocks) differs from model= ({channels}, "
            f"{net.config['num_residual']}); pass the model= it was trained with or a wider one"
        )
    old_state = old.state_dict()
    state = net.state_dict()
    for key, value in state.items():
        src = old_state[key]
        if src.shape == value.shape and (value.dim() != 2 or not _is_style_param(net, key)):
            state[key] = src.clone()
            continue
        # a conditional norm's (N, C) scale or shift
        rows = src if src.dim() == 2 else src[None]
        mean = rows.mean(0)
        for i, name in enumerate(new_styles):
            state[key][i] = rows[old_styles.index(name)] if name in old_styles else mean
    net.load_state_dict(state)
    return [name for name in new_styles if name not in old_styles]


def _is_style_param(net, key: str) -> bool:
    module_name, _, param = key.rpartition(".")
    from fastnst.transformer import ConditionalInstanceNorm2d

    return param in ("weight", "bias") and isinstance(
        net.get_submodule(module_name), ConditionalInstanceNorm2d
    )


def freeze_for_style_params(net, trainable: Sequence[int]) -> None:
    """finetune=style_params: only the scales and shifts of the styles `trainable` learn; every
    other weight (convolutions, the other styles' rows) is frozen."""
    for p in net.parameters():
        p.requires_grad_(False)
    mask = torch.zeros(len(net.styles), 1)
    mask[list(trainable)] = 1.0
    for norm in net.conditional_norms():
        for p in (norm.weight, norm.bias):
            p.requires_grad_(True)
            p.register_hook(lambda g, m=mask: g * m.to(g))


__all__ = [
    "expand_names",
    "preset_stroke_scale",
    "painted_size",
    "expand_multi_style",
    "batch_styles",
    "style_weights",
    "check_mix_weight",
    "did_you_mean",
    "MAX_MIX_WEIGHT",
    "init_network",
    "freeze_for_style_params",
    "is_multi",
    "members_of",
]
