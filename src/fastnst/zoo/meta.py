"""The meta layout of a bundled network file (src/fastnst/zoo/<style>.pt), written and read here
only: scripts/zoo/bundle_network.py writes it, `stylize.py styles=list` and the docs table read it.

    {"style": name, "status": label, "stroke_scale": float,
     "recipe": {"summary", "command", "steps", "hours", "config"},
     "quality": {evaluate.py's metrics, "gatys_iterations", "photos",
                 "reference": {"ours", "published", "content_ratio", "style_ratio", ...},
                 "judge": {"style_swd", "johnson_style_swd", "photo_style_swd", "photo",
                           "judged_at", "by"}  (a multi-style network: {style: that dict})},
     "validation_curve": [(step, val loss), ...]}

The file itself is read and written by fastnst.formats (load_exported / save_exported).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from fastnst.formats import load_exported, save_exported

# the parts of a run's config that make its recipe (paths and machine settings left out)
RECIPE_KEYS = ("model", "loss", "style", "system", "seed")
# the judge numbers' source, stored with them
JUDGE_SOURCE = "scripts/zoo/judge_table.py"
TABLE_HEAD = (
    "| style | steps | wall h | photos | total / Gatys-100 | edge SSIM | Gatys edge SSIM "
    "| ours on Chicago: content / style | Johnson 2016 on Chicago: content / style |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


# -- write ------------------------------------------------------------------------------------


def recipe_of(cfg, step: int, hours: float | None, cpu: str | None = None, overrides=None) -> dict:
    """The recipe section of a run's bundled file: a one-line summary, the train.py command
    that reproduces it, steps, wall hours (on `cpu`) and the recipe's config sections.
    `overrides`: the run's own command line (its .hydra/overrides.yaml), which the command is
    then made of (every loss and data option as typed); without it the command is rebuilt from
    `cfg`'s style, steps, init_from and teachers."""
    from fastnst.multistyle import (
        member_names,
        own_beta_scales,
        own_stroke_scales,
        preset_stroke_scale,
    )

    styles = list(cfg.style.get("names") or [])
    beta_scale = cfg.style.get("beta_scale")
    beta = float(cfg.loss.beta) * float(1.0 if beta_scale is None else beta_scale)
    weight = f"style weight {beta:g}" if not styles else "each style's preset style weight"
    alone = not float(cfg.loss.get("alpha", 1.0)) and not beta  # no perceptual term: teachers alone
    if alone:
        weight = "no content or style term"
    painting = f"{cfg.style.size} px" if cfg.style.size else "each preset's size"
    stroke_scale = preset_stroke_scale(cfg.style)
    if stroke_scale != 1.0:  # the motifs learnt small, painted larger (Stylizer's stroke_scale)
        painting += f" and run at stroke scale {stroke_scale:g}"
    own = own_stroke_scales(cfg.style)  # a multi-style list's scale per style
    if own:
        painting += " and run at stroke scale " + ", ".join(f"{v:g} ({k})" for k, v in own.items())
    summary = (
        f"{cfg.model.get('channels')} channels, {cfg.data.name} {cfg.data.image_size} px crops x "
        f"{cfg.data.batch_size}, {step} steps, lr {cfg.system.optimizer.lr}, painting at "
        f"{painting}, {weight}"
    )
    base = cfg.get("init_from")
    if base:
        base = _short_name(base)
        summary += f", fine-tuned from {base}"
    teachers = _teachers_override(cfg)
    if teachers:  # it also learnt from finished networks' outputs (fastnst.distill)
        summary += f", taught by {teachers[0]}" + (" alone" if alone else "")
    if hours is not None:
        summary += f", {hours:.2f} h" + (f" on {cpu}" if cpu else "")
    if styles:
        command = (
            f"python train.py experiment=zoo style=multi style.names=[{','.join(styles)}] "
            f"style.size={'null' if cfg.style.size is None else cfg.style.size}"
        )
        # the list's per-style options, as the override that sets them
        weights = own_beta_scales(cfg.style.get("beta_scales"), member_names(cfg.style))
        for option, values in (("beta_scales", weights), ("stroke_scales", own)):
            if values:
                pairs = ", ".join(f"{k}: {v:g}" for k, v in values.items())
                command += f" 'style.{option}={{{pairs}}}'"
    else:
        command = f"python train.py experiment=zoo style={cfg.style.name}"
    command += f" trainer.max_steps={step}" + (f" init_from=<{base}>" if base else "")
    if teachers:
        command += f" {teachers[1]}"
    if alone:
        command += " loss.alpha=0 loss.beta=0"
    typed = typed_command(overrides, step, base, teachers)
    return {
        "summary": summary,
        "command": typed or command,
        "steps": step,
        "hours": hours,
        "config": {key: _plain(cfg[key]) for key in RECIPE_KEYS if key in cfg},
    }


# a run's overrides that say where it ran, not what it learnt; resume= continues the same run
_MACHINE_KEYS = ("paths.", "hydra.", "callbacks.", "logger", "resume", "trainer.accelerator")
_TEACHER_KEYS = ("teachers", "teacher_weight", "teacher_grams", "teacher_content")
_SHELL_QUOTE = set(" {}[]'\"$*?")


def typed_command(overrides, step: int, base: str | None, teachers) -> str | None:
    """`python train.py <the run's overrides>` without the machine's paths, with init_from= as
    `<short name>` and teachers= as `_teachers_override` writes it; None without overrides or
    when they name no recipe (a bare resume=)."""
    overrides = [str(o) for o in overrides or ()]
    if not any(o.startswith(("experiment=", "style=")) for o in overrides):
        return None
    words = []
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if key.startswith(_MACHINE_KEYS) or key in _TEACHER_KEYS:
            continue
        if key == "trainer.max_steps":
            override = f"trainer.max_steps={step}"
        elif key == "init_from" and base:
            override = f"init_from=<{base}>"
        words.append(f"'{override}'" if _SHELL_QUOTE & set(override) else override)
    if not any(w.startswith("trainer.max_steps=") for w in words):
        words.append(f"trainer.max_steps={step}")  # the steps the file was taken at
    if teachers:
        words.append(teachers[1])
    return " ".join(["python train.py", *words])


def _short_name(path) -> str:
    """A network's file name; a run's model.pt is named after its run folder."""
    path = Path(str(path))
    return f"{path.parent.name}/{path.name}" if path.name == "model.pt" else path.name


def _teachers_override(cfg) -> tuple[str, str] | None:
    """(the summary's words, the command's overrides) of a run's `teachers=`, or None."""
    teachers = cfg.get("teachers")
    if teachers is None:
        return None
    weight = f" teacher_weight={float(cfg.teacher_weight):g}"
    for flag in ("teacher_grams", "teacher_content"):
        if cfg.get(flag):
            weight += f" {flag}=true"
    if not isinstance(teachers, Mapping):  # a DictConfig is one too
        name = _short_name(teachers)  # zoo or a bundled name as it is
        words = "the bundled single networks of its styles" if name == "zoo" else name
        return words, f"teachers={name}{weight}"
    pairs = {str(k): _short_name(v) for k, v in teachers.items()}
    words = ", ".join(k if v in ("zoo", k) else f"{k} ({v})" for k, v in pairs.items())
    listed = ", ".join(f"{k}: {v}" for k, v in pairs.items())
    return f"the single networks of {words}", f"'teachers={{{listed}}}'{weight}"


def _plain(value):
    """A config value as plain Python (sub-configs resolved; numbers and strings as they are)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def bundled_meta(
    style: str,
    status: str,
    stroke_scale: float,
    recipe: dict,
    quality: dict,
    validation_curve: list,
    margin: int = 0,
    stroke_scales: Mapping[str, float] | None = None,
) -> dict:
    """A bundled file's meta; `margin` (fastnst.margin) and a multi-style network's scale per
    style (`stroke_scales`) are stored only when the network has them."""
    return {
        "style": style,
        "status": status,
        "stroke_scale": stroke_scale,
        **({"stroke_scales": dict(stroke_scales)} if stroke_scales else {}),
        **({"margin": margin} if margin else {}),
        "recipe": recipe,
        "quality": quality,
        "validation_curve": validation_curve,
    }


def judge_quality(rows: list[dict], style: str, label: str = "bundled (today)") -> dict | None:
    """The style judge's numbers for `style` from judge_table.py's JSON rows: this network's
    style_swd on Chicago and the published Johnson 2016 output's, judged alike."""
    by_row = {r["row"]: r for r in rows if r["style"] == style}
    if label not in by_row or "Johnson 2016" not in by_row:
        return None
    ours, johnson = by_row[label], by_row["Johnson 2016"]
    return {
        "style_swd": round(ours["style_swd"], 4),
        "johnson_style_swd": round(johnson["style_swd"], 4),
        "photo_style_swd": round(by_row["photo"]["style_swd"], 4) if "photo" in by_row else None,
        "photo": "chicago",
        "judged_at": ours["judged_at"],
        "by": JUDGE_SOURCE,
    }


def write_bundled(path: str | os.PathLike, net, meta: dict) -> Path:
    """A bundled file: the network in fp16 (half the file; the loader casts back to fp32),
    readable by everyone."""
    path = save_exported(path, net.half(), meta)
    Path(path).chmod(0o644)
    return Path(path)


def restamp(path: str | os.PathLike, judge: dict | None, status: str | None) -> dict:
    """Rewrite a bundled file's meta (judge numbers, status), the weights unchanged."""
    net, meta = load_exported(path)
    if judge:
        meta["quality"] = {**meta.get("quality", {}), "judge": judge}
    if status is not None:
        meta["status"] = status
    write_bundled(path, net, meta)
    return meta


def stamp_judge(rows: list[dict], files: dict, status: str | None = None) -> list[str]:
    """Store judge_table.py's numbers (its JSON rows) in every bundled file they cover (`files`:
    {name: path}, fastnst.zoo.bundled_styles()); a multi-style network's rows are labelled with
    its name, one judge entry per style inside. `status` relabels every file. Lines saying what
    changed."""
    done = []
    for name, path in files.items():
        inside = read_meta(path)[1]
        judge = (
            ({s: q for s in inside if (q := judge_quality(rows, s, label=name))} or None)
            if inside
            else judge_quality(rows, name)
        )
        if judge or status:
            restamp(path, judge, status or None)
            done.append(
                f"{Path(path).name}: style judge {judge}"
                if judge
                else f"{Path(path).name}: status updated"
            )
    return done


# -- read -------------------------------------------------------------------------------------


def read_meta(path: str | os.PathLike) -> tuple[dict, list[str]]:
    """(meta, the styles inside a multi-style network or []) of a bundled file."""
    net, meta = load_exported(path)
    return meta, list(net.styles or [])


def judged_on(judge: dict) -> str:
    """Where the judge numbers were taken: "chicago at 512 px"."""
    return f"{judge.get('photo', '?')} at {judge.get('judged_at', '?')} px"


def quality_line(quality: dict) -> str:
    """The quality line of `styles=list`."""
    parts = []
    if "total_vs_gatys" in quality:
        parts.append(
            f"total/Gatys-{quality.get('gatys_iterations', '?')} {quality['total_vs_gatys']:.2f}"
        )
    if "edge_ssim" in quality:
        parts.append(f"edge SSIM {quality['edge_ssim']:.2f}")
    judge = quality.get("judge")
    if judge and "style_swd" in judge:  # the stroke-aware measure (fastnst.judge)
        parts.append(
            f"style judge on {judged_on(judge)}: {judge['style_swd']:.3f}, Johnson 2016 "
            f"{judge['johnson_style_swd']:.3f} (lower = closer to the painting)"
        )
    elif judge:  # a multi-style network: {style: judge numbers}
        first = next(iter(judge.values()))
        parts.append(
            f"style judge on {judged_on(first)}, ours / Johnson 2016 (lower = closer): "
            + ", ".join(
                f"{s} {q['style_swd']:.3f} / {q['johnson_style_swd']:.3f}" for s, q in judge.items()
            )
        )
    ref = quality.get("reference")
    if ref:
        parts.append(f"content vs Johnson 2016 on chicago {ref['content_ratio']:.2f}x")
    return "; ".join(parts) or "not measured"


def table_row(style: str, meta: dict) -> str:
    """One row of the bundled networks' table (docs/inference.md); "-" for what a file lacks."""
    q, recipe = meta.get("quality", {}), meta.get("recipe", {})
    r = q.get("reference")
    ref = (
        (
            f"{r['ours']['content']:.3g} / {r['ours']['style']:.4g} | "
            f"{r['published']['content']:.3g} / {r['published']['style']:.4g}"
        )
        if r
        else "- | -"
    )

    def number(value, form=".2f"):
        return "-" if value is None else format(value, form)

    return (
        f"| {style} | {recipe.get('steps', '-')} | {number(recipe.get('hours'))} | "
        f"{q.get('photos', '-').split()[0]} | {number(q.get('total_vs_gatys'))} | "
        f"{number(q.get('edge_ssim'))} | {number(q.get('gatys/edge_ssim'))} | {ref} |"
    )


__all__ = [
    "RECIPE_KEYS",
    "TABLE_HEAD",
    "bundled_meta",
    "judge_quality",
    "judged_on",
    "quality_line",
    "read_meta",
    "recipe_of",
    "restamp",
    "stamp_judge",
    "table_row",
    "write_bundled",
]
