"""Temporal stability of a stylized video: `python scripts/data/video_metrics.py --input clip.mp4
--output stylized.mp4 [--style the_scream | --run <run dir>] [--frames N] [--json]`.

Prints the temporal warping error (Lai et al. 2018; fastnst.flow.warping_error: lower = less
flicker) with the mean content and style losses of the output frames against their input frames
(the loss of --run's config, or conf/loss/<--loss> with the --style painting). Without a style
only the content loss is given. Exit code 2 on a bad input, with a one-line message.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from fastnst.config import load_preset, preset_names, resolve_user_path
from fastnst.errors import EXIT_USER_ERROR, FastNSTError, print_error
from fastnst.flow import warping_error
from fastnst.preflight import ArgumentParser
from fastnst.progress import add_progress_argument, bar
from fastnst.video import read_frames


def _loss_configs(run: str | None, style: str | None, loss: str):
    """(loss config, style config or None) from a run directory or from presets."""
    from fastnst.evaluate import load_run_config

    if run:
        cfg = load_run_config(resolve_user_path(run))
        return cfg.loss, cfg.style
    try:
        loss_cfg = load_preset("loss", loss)  # its defaults merged (loss=stable: johnson's terms)
    except FastNSTError as e:
        raise FastNSTError(f"--loss {loss}: {e}") from None
    if style is None:
        return loss_cfg, None
    if style in preset_names("style", skip=("multi", "custom")):
        return loss_cfg, load_preset("style", style)
    path = resolve_user_path(style)
    if not path.is_file():
        raise FastNSTError(
            f"--style {style}: neither a style preset (conf/style) nor an image file"
        )
    return loss_cfg, OmegaConf.create({"name": path.stem, "image": str(path), "size": 512})


def _frame_losses(loss_cfg, style_cfg, pairs) -> dict[str, float]:
    """Mean content (and style, with a style) loss of output frames vs their inputs."""
    from fastnst.style import build_loss
    from fastnst.vgg import VGG19Features

    if style_cfg is not None:
        perceptual = build_loss(loss_cfg, style_cfg)
    else:
        layers = list(loss_cfg.content_layers)
        perceptual = None
        vgg = VGG19Features(layers)
    content, style = [], []
    with torch.no_grad():
        for photo, out in pairs:
            if perceptual is not None:
                terms = perceptual(out, perceptual.content_features(photo))
                content.append(float(terms["content"]))
                style.append(float(terms["style"]))
            else:
                a, b = vgg(out), vgg(photo)
                content.append(
                    float(
                        sum(
                            float(w) * F.mse_loss(a[n], b[n])
                            for n, w in loss_cfg.content_layers.items()
                        )
                    )
                )
    result = {"content": float(np.mean(content))}
    if style:
        result["style"] = float(np.mean(style))
    return result


def _at_size(frame: torch.Tensor, size) -> torch.Tensor:
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    return F.interpolate(
        frame, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )


def measure(
    input_path,
    output_path,
    frames: int | None = None,
    run: str | None = None,
    style: str | None = None,
    loss: str = "johnson",
    loss_frames: int = 8,
    progress: bool | str | None = False,
) -> dict:
    """{"frames", "warping_error", "content", ["style"]} of a stylized video against its input.
    Losses are averaged over `loss_frames` frames evenly spread over the measured ones.
    progress: bars on stderr (true, false, or "auto"/None: only on a terminal)."""
    input_path, output_path = resolve_user_path(input_path), resolve_user_path(output_path)
    for path in (input_path, output_path):
        if not path.is_file():
            raise FastNSTError(f"{path}: video not found")
    if frames is not None and frames < 2:
        raise FastNSTError(f"--frames must be at least 2, got {frames}")
    loss_cfg, style_cfg = _loss_configs(run, style, loss)  # fail fast, before decoding
    inputs = list(read_frames(input_path, frames))
    outputs = list(read_frames(output_path, frames))
    if len(outputs) != len(inputs):
        raise FastNSTError(
            f"{output_path}: {len(outputs)} frames, but {input_path} has {len(inputs)}"
        )
    if len(inputs) < 2:
        raise FastNSTError(f"{input_path}: the warping error needs at least two frames")
    try:
        error = warping_error(
            inputs, bar(outputs, progress=progress, desc="warping error", unit="frame")
        )
    except ValueError as e:
        raise FastNSTError(f"{input_path}: {e}") from None
    picks = np.unique(np.linspace(0, len(inputs) - 1, max(1, loss_frames)).round().astype(int))
    pairs = [(_at_size(inputs[i], outputs[i].shape[-2:]), outputs[i]) for i in picks]
    return {
        "input": str(input_path),
        "output": str(output_path),
        "frames": len(inputs),
        "warping_error": error,
        **_frame_losses(
            loss_cfg, style_cfg, bar(pairs, progress=progress, desc="losses", unit="frame")
        ),
    }


def stylized_warping_error(
    stylizer, video, frames: int | None = 30, size: int | None = 256
) -> float:
    """Warping error of `stylizer` (a fastnst.Stylizer) on the first `frames` frames of `video`,
    resized so the longer side is `size`, stylized in memory (no codec in between)."""
    clip = list(read_frames(resolve_user_path(video), frames))
    if len(clip) < 2:
        raise FastNSTError(f"{video}: the warping error needs at least two frames")
    outputs = list(stylizer.stylize_many(iter(clip), size=size))
    return warping_error(clip, outputs)


def format_result(result: dict) -> str:
    lines = [
        f"frames: {result['frames']}",
        f"warping error: {result['warping_error']:.6f}",
        f"content loss: {result['content']:.6g}",
    ]
    if "style" in result:
        lines.append(f"style loss: {result['style']:.6g}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = ArgumentParser(
        description="Temporal warping error and frame losses of a stylized video."
    )
    parser.add_argument("--input", required=True, help="the original video")
    parser.add_argument("--output", required=True, help="its stylization (same frames)")
    parser.add_argument("--frames", type=int, default=None, help="measure the first N frames only")
    parser.add_argument(
        "--run", default=None, help="a training run dir: its loss and style score the frames"
    )
    parser.add_argument(
        "--style", default=None, help="a style preset name or painting file (without --run)"
    )
    parser.add_argument("--loss", default="johnson", help="loss preset for --style (conf/loss)")
    parser.add_argument("--loss-frames", type=int, default=8, help="frames the losses average over")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_progress_argument(parser)
    args = parser.parse_args(argv)
    try:
        if args.run and args.style:
            raise FastNSTError("give --run or --style, not both")
        result = measure(
            args.input,
            args.output,
            args.frames,
            args.run,
            args.style,
            args.loss,
            args.loss_frames,
            progress=args.progress,
        )
    except FastNSTError as e:
        print_error(e)
        return EXIT_USER_ERROR
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0


__all__ = ["measure", "stylized_warping_error", "format_result", "main"]
