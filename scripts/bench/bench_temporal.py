#!/usr/bin/env python3
"""The table of docs/benchmarks.md "Stable video": flicker (temporal warping error), frame losses
and per-frame time of a network trained without and with loss.temporal_weight, and of the plain
network with temporal=flow smoothing, on real clips at 512 px.

    python scripts/bench/bench_temporal.py --plain <run dir> --stable <run dir> \\
        --clip fox=$FASTNST_DATA/video/fox.mp4 --clip hoover_pan=pan.mp4 --frames 60 --size 512 \\
        [--strength 0.5] [--picture docs/images/stable_video.jpg]

Each clip's first --frames frames are resized so the longer side is --size, stylized in memory
(batch 4; no video codec between the network and the metric) and scored: warping error
(fastnst.flow.warping_error), mean content and style loss over --loss-frames frames under the
plain run's own loss and style, and ms per frame (network, plus flow and blending for
temporal=flow). Ratios are to the plain network on the same clip, measured in this one run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from fastnst.config import resolve_user_path
from fastnst.evaluate import load_run_config
from fastnst.flow import FlowEstimator, TemporalSmoother, to_gray, warp_by_flow, warping_error
from fastnst.images import fit_size, tensor_to_pil
from fastnst.preflight import ArgumentParser, ensure_writable
from fastnst.stylize import Stylizer
from fastnst.video import read_frames
from fastnst.video_metrics import _frame_losses


def run_and_model(path: str):
    """(run dir, network file): a run dir, or a checkpoint inside one (<run>/checkpoints/x.ckpt),
    e.g. to compare two runs at the same step."""
    path = resolve_user_path(path)
    return (path.parent.parent, path) if path.is_file() else (path, path)


def load_clip(path, frames: int, size: int) -> list[torch.Tensor]:
    clip = []
    for frame in read_frames(resolve_user_path(path), frames):
        h, w = fit_size(*frame.shape[-2:], size)
        clip.append(
            F.interpolate(frame, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        )
    return clip


def stylize(
    stylizer: Stylizer, clip: list[torch.Tensor], strength: float | None
) -> tuple[list[torch.Tensor], float]:
    """(outputs, ms per frame); strength: None = plain, else temporal=flow at that strength."""
    stylizer(clip[0])  # warm-up
    smoother = TemporalSmoother(strength) if strength is not None else None
    start = time.perf_counter()
    outputs = []
    for frame, out in zip(clip, stylizer.stylize_many(iter(clip), batch_size=4)):
        outputs.append(smoother(frame, out) if smoother else out)
    return outputs, (time.perf_counter() - start) * 1000 / len(clip)


def score(clip, outputs, loss_cfg, style_cfg, loss_frames: int) -> dict:
    picks = np.unique(np.linspace(0, len(clip) - 1, loss_frames).round().astype(int))
    losses = _frame_losses(loss_cfg, style_cfg, [(clip[i], outputs[i]) for i in picks])
    return {"warping_error": warping_error(clip, outputs), **losses}


def cached(cache, key: dict, compute):
    """compute() once per key, kept as JSON under `cache` (None: no cache) so a later run with
    more networks reuses the rows already measured (the timings then come from that earlier run)."""
    if cache is None:
        return compute()
    path = cache / (
        hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json"
    )
    if path.is_file():
        return json.loads(path.read_text())["result"]
    result = compute()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": result}))
    return result


def picture(clip, plain, stable, path, t: int, cell: int = 256, label: int | None = None) -> None:
    """Rows plain / stable: frame t, frame t+1, and |frame t+1 - frame t warped by the input's
    flow| x4 (the change motion does not explain: flicker)."""
    back, mask = FlowEstimator().backward_with_mask(to_gray(clip[t]), to_gray(clip[t + 1]))
    canvas = Image.new("RGB", (3 * cell, 2 * cell + 16), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (name, outs) in enumerate((("plain", plain), ("stable", stable))):
        diff = ((outs[t + 1] - warp_by_flow(outs[t], back)).abs() * 4 * mask).clamp(0, 1)
        for col, image in enumerate((outs[t], outs[t + 1], diff)):
            canvas.paste(
                tensor_to_pil(image).resize((cell, cell), Image.LANCZOS),
                (col * cell, 16 + row * cell),
            )
        draw.text((4, 18 + row * cell), name, fill="white")
    first = t if label is None else label
    for col, text in enumerate((f"frame {first}", f"frame {first + 1}", "|t+1 - warp(t)| x4")):
        draw.text((col * cell + 4, 2), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=85)


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--plain", required=True, help="run dir (or a checkpoint in one) trained without the term"
    )
    parser.add_argument(
        "--stable",
        action="append",
        required=True,
        help="the same, trained with it (same recipe, steps, seed); repeat to compare weights",
    )
    parser.add_argument("--clip", action="append", required=True, help="name=path of a video")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument(
        "--strength", type=float, default=0.5, help="temporal_strength of the temporal=flow row"
    )
    parser.add_argument("--loss-frames", type=int, default=8)
    parser.add_argument(
        "--picture", default=None, help="write the plain-vs-stable picture of the first clip here"
    )
    parser.add_argument(
        "--cache", default=None, help="keep each row's result here (JSON) and reuse it"
    )
    args = parser.parse_args(argv)
    for option, path in (("--picture", args.picture), ("--cache", args.cache)):
        if path:
            parser.check(ensure_writable, resolve_user_path(path), option)
    torch.manual_seed(0)
    cfg = load_run_config(run_and_model(args.plain)[0])
    models = {"plain": run_and_model(args.plain)[1]}
    for run in args.stable:
        stable_cfg = load_run_config(run_and_model(run)[0])
        models[f"stable (loss.temporal_weight={stable_cfg.loss.get('temporal_weight', 0):g})"] = (
            run_and_model(run)[1]
        )
    cache = resolve_user_path(args.cache) if args.cache else None
    rows = [
        f"| clip (first {args.frames} frames, {args.size} px) | network | warping error | vs plain | content | "
        "vs plain | style | vs plain | ms / frame | vs plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, spec in enumerate(args.clip):
        name, _, path = spec.partition("=")
        clip = load_clip(path, args.frames, args.size)
        results, outputs = {}, {}
        variants = [(label, model, None) for label, model in models.items()]
        variants.append(
            (f"plain + temporal=flow ({args.strength})", models["plain"], args.strength)
        )
        for label, model, strength in variants:
            key = {
                "clip": str(resolve_user_path(path)),
                "frames": args.frames,
                "size": args.size,
                "model": str(model),
                "mtime": model.stat().st_mtime,
                "strength": strength,
                "loss_frames": args.loss_frames,
            }

            def compute(model=model, strength=strength, label=label, clip=clip, outputs=outputs):
                outputs[label], ms = stylize(Stylizer.load(model, device="cpu"), clip, strength)
                return {
                    **score(clip, outputs[label], cfg.loss, cfg.style, args.loss_frames),
                    "ms": ms,
                }

            results[label] = cached(cache, key, compute)
            print(f"{name} {label}: {results[label]}", file=sys.stderr, flush=True)
        base = results["plain"]
        for label, r in results.items():
            rows.append(
                f"| {name} | {label} | {r['warping_error']:.5f} | {r['warping_error'] / base['warping_error']:.2f}x"
                f" | {r['content']:.4g} | {r['content'] / base['content']:.2f}x | {r['style']:.4g} | "
                f"{r['style'] / base['style']:.2f}x | {r['ms']:.0f} | {r['ms'] / base['ms']:.2f}x |"
            )
        if args.picture and i == 0:
            path = resolve_user_path(args.picture)
            t = len(clip) // 2
            pair = clip[t : t + 2]  # only the two frames shown are stylized again
            plain_pair = stylize(Stylizer.load(models["plain"], device="cpu"), pair, None)[0]
            stable_pair = stylize(
                Stylizer.load(models[list(models)[-1]], device="cpu"), pair, None
            )[0]
            picture(pair, plain_pair, stable_pair, path, t=0, label=t)
            print(f"wrote {path}", file=sys.stderr)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
