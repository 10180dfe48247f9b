"""`python gatys.py style=... content=photo.jpg output=out.png`: files, style presets,
intermediate images and the JSON loss log around the tensor API `fastnst.gatys.stylize_gatys`
(conf/gatys.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.atomic import write_json
from fastnst.config import required, resolve_user_path
from fastnst.errors import (
    FastNSTError,
    refuse_input_as_output,
    refuse_to_overwrite,
    user_errors_unwrapped,
)
from fastnst.gatys import INITS, MIN_SIDE, OPTIMIZERS, GatysResult, scale_sizes, stylize_gatys
from fastnst.images import check_output_path, fit_image, fit_size, load_image, open_rgb, save_image
from fastnst.preflight import ensure_writable
from fastnst.runners import resolve_device


def intermediate_path(output: Path, iteration: int) -> Path:
    """out.png -> out_iter0200.png (beside the output)."""
    return output.with_name(f"{output.stem}_iter{iteration:04d}{output.suffix}")


def log_path(output: Path) -> Path:
    """out.png -> out.png.json (the loss log; the extension stays, so out.jpg and out.webp
    keep separate logs)."""
    return output.with_name(f"{output.name}.json")


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
    iterations, save_every = int(cfg.iterations), int(cfg.save_every or 0)

    # Refuse before any work: the output, its log and every intermediate that would be written.
    check_output_path(output, overwrite)
    refuse_input_as_output(output, content_path, "content image")
    ensure_writable(output)  # the log and intermediates go beside it
    refuse_to_overwrite(log_path(output), overwrite, "loss log")
    if save_every:
        for it in range(save_every, iterations + 1, save_every):
            check_output_path(intermediate_path(output, it), overwrite)
    if cfg.optimizer not in OPTIMIZERS:
        raise FastNSTError(f"optimizer must be lbfgs or adam, got {cfg.optimizer!r}")
    if cfg.init not in INITS:
        raise FastNSTError(f"init must be one of {', '.join(INITS)}, got {cfg.init!r}")

    device = resolve_device(cfg.device)
    style_paths, style_weights = style_image_paths(cfg.style)  # fails fast on a missing painting
    style_weights = [float(w) for w in style_weights] if style_weights is not None else None
    photo = open_rgb(content_path)
    size = cfg.size
    if size is not None and int(size) < MIN_SIDE:
        raise FastNSTError(
            f"size must be at least {MIN_SIDE} px (or null for the photo's size), got {size}"
        )
    h, w = fit_size(photo.height, photo.width, int(size) if size is not None else None)
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
        style_size = cfg.style.get("size") or max(h, w)
        style_images = [load_image(p, style_size).to(device) for p in style_paths]

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
        lr=float(cfg.lr),
        init=str(cfg.init),
        noise=float(cfg.noise),
        seed=cfg.seed,
        scales=[max(s) for s in sizes],
        style_images=style_images,
        style_weights=style_weights,
        save_every=save_every,
        on_save=on_save,
        progress=bool(cfg.progress),
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
