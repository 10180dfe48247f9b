"""Metric names and the one TensorBoard hparams dict of a training run.

Training (fastnst.callbacks.LogImagesAndHparams) declares these columns in the hparams view at
the start of a run; evaluate.py fills the `eval/` ones later. Both take the run's settings
from `hparams_of`, so the view shows the same keys whichever wrote it first (TensorBoard keeps
the first hparams summary of a run). Light: no torch, no VGG, no Lightning.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping

# the validation losses training logs as hparams columns (hp/val_<name>, from val/<name>)
VAL_METRICS = ("loss", "content", "style")
# the evaluation metrics, in table order; JSON and TensorBoard use them with an "eval/" prefix
METRICS = (
    "content",
    "style",
    "style_swd",
    "total",
    "gatys/content",
    "gatys/style",
    "gatys/style_swd",
    "gatys/total",
    "total_vs_gatys",
    "edge_ssim",
    "gatys/edge_ssim",
    "ms_per_image",
)
NORM_NAMES = {"instance": "IN", "batch": "BN", "none": "no norm"}


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB of two image tensors in [0, 1] (inf when equal)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else -10 * math.log10(mse)


def hparam_columns(eval_metrics: Mapping[str, float] | None = None) -> dict[str, float]:
    """The metric columns of the hparams view: hp/val_* and eval/* (NaN until known)."""
    columns = {f"hp/val_{k}": math.nan for k in VAL_METRICS}
    columns.update({f"eval/{k}": math.nan for k in METRICS})
    columns.update({f"eval/{k}": float(v) for k, v in (eval_metrics or {}).items()})
    return columns


@functools.cache
def model_presets() -> dict[tuple[tuple[int, ...], int], str]:
    """{(channels, num_residual): name} of the model presets shipped in conf/model/."""
    from omegaconf import OmegaConf

    from fastnst.config import CONFIG_DIR

    presets = {}
    for path in sorted((CONFIG_DIR / "model").glob("*.yaml")):
        m = OmegaConf.load(path)
        presets.setdefault((tuple(int(c) for c in m.channels), int(m.num_residual)), path.stem)
    return presets


def model_name(model) -> str:
    """The one name of a network's architecture, used by the hparams view, evaluate.py and
    compare_runs.py alike: the conf/model preset with the same channels and residual blocks
    (johnson_half), else its channels and blocks (c8-16-32 r1); then the normalization
    ("johnson_half (IN)"). `model`: the run's model config or a network file's model config
    (channels, num_residual, norm). From the architecture alone, so the same network has the
    same name whatever its run directory is called."""
    channels = tuple(int(c) for c in model["channels"])
    blocks = int(model["num_residual"])
    name = model_presets().get((channels, blocks))
    if name is None:
        name = "c" + "-".join(map(str, channels)) + f" r{blocks}"
    norm = str(model["norm"])
    upsample = str(model.get("upsample") or "nearest")
    extra = "" if upsample == "nearest" else f", {upsample}"
    return f"{name} ({NORM_NAMES.get(norm, norm)}{extra})"


def run_labels(run_dir: str | os.PathLike, cfg) -> dict[str, str]:
    """{"style", "data", "model"} of a run, from its train config (the model: `model_name`).
    `run_dir` is not read: a run named by hydra.run.dir= gets the same labels."""
    style = str(cfg.style.name or "custom")
    data = str(cfg.data.name or "images")
    return {"style": style, "data": data, "model": model_name(cfg.model)}


def effective_beta(cfg) -> float | str:
    """The style weight the loss trains with: loss.beta x style.beta_scale (fastnst.style.build_loss).
    A multi-style run: each style's (its preset's beta_scale x the list's), as "name=beta,..."
    when they differ."""
    beta = float(cfg.loss.beta)
    members = (
        cfg.style.get("members") if cfg.style.get("names") is not None else None
    )  # multi-style keys only
    if not members:
        scale = cfg.style.get("beta_scale")  # not every style preset sets it
        return beta * (1.0 if scale is None else float(scale))
    betas = {str(m["name"]): beta * float(m["beta_scale"] or 1.0) for m in members}
    values = set(betas.values())
    return values.pop() if len(values) == 1 else ",".join(f"{k}={v:g}" for k, v in betas.items())


def _teachers_label(teachers) -> str | None:
    """`teachers=` as one hparams string: the network, or style=network,... for a mapping."""
    if teachers is None:
        return None
    if isinstance(teachers, Mapping):  # a DictConfig is one too
        return ",".join(f"{k}={v}" for k, v in teachers.items())
    return str(teachers)


def hparams_of(cfg, labels: Mapping[str, str]) -> dict:
    """The run's settings as TensorBoard hparams, from its train config (config.yaml) and
    `run_labels`. The one place these keys are defined."""
    loss, model, data, style = cfg.loss, cfg.model, cfg.data, cfg.style
    names = style.get("names")  # multi-style configs only
    params = {
        "style": labels["style"],
        "styles": ",".join(str(n) for n in names) if names is not None else None,
        "data": labels["data"],
        "model": labels["model"],
        "model/channels": str(list(model.channels)),
        "model/num_residual": model.num_residual,
        "model/norm": model.norm,
        "loss/alpha": loss.alpha,
        "loss/beta": loss.beta,
        "loss/effective_beta": effective_beta(cfg),
        "loss/tv_weight": loss.tv_weight,
        "loss/chroma_tv_weight": loss.get("chroma_tv_weight") or 0.0,  # optional in a custom preset
        "loss/temporal_weight": loss.get("temporal_weight")
        or 0.0,  # optional in a custom loss preset
        "loss/content_layers": ",".join(loss.content_layers),
        "loss/style_layers": ",".join(loss.style_layers),
        "optimizer/lr": cfg.system.optimizer.lr,
        "batch_size": data.batch_size,
        "image_size": data.image_size,
        "max_steps": cfg.trainer.max_steps,
        "vgg_weights": cfg.vgg.weights,
        "teachers": _teachers_label(cfg.get("teachers")),
    }
    if cfg.get("teachers") is not None:  # the teachers' settings say nothing without teachers
        for key in ("teacher_weight", "teacher_grams", "teacher_content"):
            params[key] = cfg.get(key)
    return {
        k: (v if isinstance(v, bool | int | float | str) else str(v))
        for k, v in params.items()
        if v is not None
    }


__all__ = [
    "METRICS",
    "VAL_METRICS",
    "NORM_NAMES",
    "hparam_columns",
    "hparams_of",
    "run_labels",
    "model_name",
    "model_presets",
    "effective_beta",
]
