"""`python gatys.py style=... content=photo.jpg output=out.png`: files, style presets,
intermediate images and the JSON loss log around the tensor API `fastnst.gatys.stylize_gatys`
(conf/gatys.yaml)."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.atomic import write_json
from fastnst.config import required, resolve_user_path
from fastnst.errors import (
    FastNSTError,
    os_error_reason,
    refuse_input_as_output,
    refuse_to_overwrite,
    user_errors_unwrapped,
)
from fastnst.gatys import (
    INITS,
    MIN_SIDE,
    OPTIMIZERS,
    GatysResult,
    resolve_precision,
    scale_sizes,
    stylize_gatys,
)
from fastnst.images import check_output_path, fit_image, fit_size, load_image, open_rgb, save_image
from fastnst.precision import check_choice
from fastnst.preflight import ensure_writable
from fastnst.runners import resolve_device

# the largest `size` and `style.size` taken (px, longer side): beyond it the VGG's first maps
# alone need gigabytes (64 channels x the pixels x 4 bytes, several alive for the backward)
MAX_SIDE = 4096


def intermediate_path(output: Path, iteration: int) -> Path:
    """out.png -> out_iter0200.png (beside the output)."""
    return output.with_name(f"{output.stem}_iter{iteration:04d}{output.suffix}")


def log_path(output: Path) -> Path:
    """out.png -> out.png.json (the loss log; the extension stays, so out.jpg and out.webp
    keep separate logs)."""
    return output.with_name(f"{output.name}.json")


def check_log_path(path: Path, overwrite: bool) -> None:
    """The loss log `path` before any work: not there unless `overwrite`, not a folder, and a
    file of its name can be created beside it (a name too long for the file system, a read-only
    folder). A symbolic link there is replaced by the atomic writer, never written through."""
    refuse_to_overwrite(path, overwrite, "loss log")
    if path.is_dir() and not path.is_symlink():
        raise FastNSTError(
            f"{path}: the loss log's path is a folder; move it away or choose another output name"
        )
    # the temp file the atomic writer will create (the longest name it uses), created and removed
    probe = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    if not path.parent.is_dir():  # created with the output: its name must fit the file system
        existing = path.parent
        while not existing.is_dir() and existing != existing.parent:
            existing = existing.parent
        try:
            limit = os.pathconf(existing, "PC_NAME_MAX")
        except (OSError, ValueError):
            limit = 255
        if len(os.fsencode(probe.name)) > limit:
            raise FastNSTError(
                f"{path}: the loss log cannot be written (its name is too long for {existing})"
            )
        return
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise FastNSTError(
            f"{path}: the loss log cannot be written ({os_error_reason(e)})"
        ) from None
    probe.unlink(missing_ok=True)


def check_positive_number(name: str, value, hint: str = "") -> float:
    """`value` as a finite float > 0, or one line naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FastNSTError(f"{name} must be a finite number > 0{hint}, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise FastNSTError(f"{name} must be a finite number > 0{hint}, got {value!r}")
    return number


def check_side(name: str, value, allow_null: str = "", low: int = MIN_SIDE) -> int | None:
    """A size in px (longer side): a whole number in [low, MAX_SIDE], or None where
    `allow_null` says what null means."""
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SIDE:
        null = f", or null for {allow_null}" if allow_null else ""
        raise FastNSTError(
            f"{name} must be a whole number of px from {low} to {MAX_SIDE}{null}, got {value!r}"
        )
    return value


def _whole(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FastNSTError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


def _scales_option(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return [value]
    return list(value)


def run_gatys(cfg: DictConfig) -> GatysResult:
    """`python gatys.py style=... content=photo.jpg output=out.png [options]`: see conf/gatys.yaml."""
    from fastnst.style import build_loss, style_image_paths

    example = "style=starry_night content=photo.jpg output=out.png"
    content_path = resolve_user_path(required(cfg, "content", f"e.g. `python gatys.py {example}`"))
    output = resolve_user_path(required(cfg, "output", f"e.g. `python gatys.py {example}`"))
    if str(cfg.output).endswith(("/", os.sep)):
        raise FastNSTError(
            f"{output}: is a folder, expected an output file name (e.g. {output / 'out.png'})"
        )
    overwrite = bool(cfg.overwrite)
    # Every value, then every file written, is checked before any work (loading the VGG, the
    # optimization): a mistake costs one line, not a run.
    iterations = _whole("iterations", cfg.iterations, 1)
    save_every = _whole("save_every", cfg.save_every or 0, 0)
    lr = check_positive_number("lr", cfg.lr, " (Adam's step, in [0, 1] pixel units)")
    size = check_side("size", cfg.size, "the photo's own size")
    # a painting may be tiny (the VGG extends a side below its poolings' minimum)
    style_size = check_side("style.size", cfg.style.get("size"), "the output's size", low=1)
    precision = check_choice(cfg.precision, "precision")
    if cfg.optimizer not in OPTIMIZERS:
        raise FastNSTError(f"optimizer must be lbfgs or adam, got {cfg.optimizer!r}")
    if cfg.init not in INITS:
        raise FastNSTError(f"init must be one of {', '.join(INITS)}, got {cfg.init!r}")

    # the output, its loss log and every intermediate that would be written
    check_output_path(output, overwrite)
    refuse_input_as_output(output, content_path, "content image")
    ensure_writable(output)  # the log and intermediates go beside it
    check_log_path(log_path(output), overwrite)
    if save_every:
        for it in range(save_every, iterations + 1, save_every):
            check_output_path(intermediate_path(output, it), overwrite)

    device = resolve_device(cfg.device)
    precision, why = resolve_precision(precision, device)
    if why:
        print(why)
    style_paths, style_weights = style_image_paths(cfg.style)  # fails fast on a missing painting
    style_weights = [float(w) for w in style_weights] if style_weights is not None else None
    photo = open_rgb(content_path)
    h, w = fit_size(photo.height, photo.width, size)
    content = fit_image(photo, max(h, w)).to(device)  # the photo is decoded once
    sizes = scale_sizes(h, w, _scales_option(cfg.scales))

    with user_errors_unwrapped():  # e.g. a missing vgg.weights file, raised inside instantiate
        loss = build_loss(
            cfg.loss,
            cfg.style,
            vgg_weights=str(cfg.vgg.weights),
            device=device,
            style_size=max(h, w),
        )
    style_images = None
    if len(sizes) > 1:
        style_images = [load_image(p, style_size or max(h, w)).to(device) for p in style_paths]

    preserve_color = bool(cfg.preserve_color)
    if preserve_color:
        from fastnst.color import transfer_luminance

    def finish(image: torch.Tensor) -> torch.Tensor:
        return transfer_luminance(image, content) if preserve_color else image

    def on_save(it: int, image: torch.Tensor) -> None:
        save_image(finish(image).cpu(), intermediate_path(output, it), overwrite=overwrite)

    result = stylize_gatys(
        content,
        loss,
        iterations=iterations,
        optimizer=str(cfg.optimizer),
        lr=lr,
        init=str(cfg.init),
        noise=float(cfg.noise),
        seed=cfg.seed,
        scales=[max(s) for s in sizes],
        style_images=style_images,
        style_weights=style_weights,
        save_every=save_every,
        on_save=on_save,
        progress=bool(cfg.progress),
        precision=precision,
    )
    save_image(finish(result.image).cpu(), output, overwrite=overwrite)
    _write_log(
        log_path(output), cfg, result, content_path, style_paths, style_weights, device, overwrite
    )
    print(
        f"wrote {output} (best loss {result.best_loss:.6g} at iteration {result.best_iteration}, "
        f"{result.wall_time_s:.1f}s; loss log {log_path(output).name})"
    )
    return result


def _write_log(
    path: Path,
    cfg: DictConfig,
    result: GatysResult,
    content_path: Path,
    style_paths,
    style_weights,
    device,
    overwrite: bool,
) -> None:
    settings = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in (
            "size",
            "iterations",
            "optimizer",
            "lr",
            "init",
            "noise",
            "seed",
            "scales",
            "save_every",
            "preserve_color",
            "precision",
            "vgg",
            "loss",
        )
        if k in cfg
    }
    log = {
        "content": str(content_path),
        "style": [str(p) for p in style_paths],
        "style_weights": style_weights,
        "device": str(device),
        "precision": result.precision,
        "settings": settings,
        "sizes": [list(s) for s in result.sizes],
        "iterations_per_scale": result.iterations_per_scale,
        "wall_time_s": round(result.wall_time_s, 3),
        "best_iteration": result.best_iteration,
        "best_loss": result.best_loss,
        "history": result.history,
    }
    refuse_to_overwrite(path, overwrite, "loss log")
    write_json(path, log, indent=1)
