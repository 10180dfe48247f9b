#!/usr/bin/env python
"""Training throughput: fastnst's full training step (Lightning + data pipeline + logging) vs a
plain eager fp32 PyTorch step of the same network and loss, measured in the same process.

    python scripts/bench/bench_train.py                        # CPU, johnson, 256 px, batch 4
    python scripts/bench/bench_train.py --batch 4 16 --device cuda --data imagenet_mini
    python scripts/bench/bench_train.py --device cpu --batch 4 --size 256 --json   # one JSON line

Prints median seconds per step, images/s, peak memory, and the projected wall time of Johnson
et al.'s recipe (40k steps x batch 4 = 160k images of 256 px). The fastnst run uses the fast
settings for the device: on CUDA trainer=gpu (bf16 autocast, cuDNN autotune, channels_last,
no per-step syncs); everywhere the decoded data cache (data.cache=true); `--compile` adds
torch.compile. The eager baseline is measured before and after the fastnst run (the machine
may be shared: the median of both halves is used).

    python scripts/bench/bench_train.py --device cuda --batch 16 --compare-precision 2500
        # also trains bf16 and fp32 for 2500 steps each and prints both validation losses

    python scripts/bench/bench_train.py --bf16 --model johnson_half --size 128 --batch 4 --data imagenet_mini
        # the CPU, its bf16 flags and what trainer=cpu chooses; the fastnst step in fp32, under
        # bf16-mixed, and under bf16-mixed with compile=true (torch.compile; interleaved halves,
        # the first step - the compile - timed apart); then each trained for --compare-precision
        # steps (default 400) and their validation losses. Briefly: --steps 4 --compare-precision 20
        # (--no-compiled leaves the compiled row out)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

JOHNSON_IMAGES = 160_000
# the training-step variants of --bf16: name -> overrides
STEP_VARIANTS = {
    "32-true": ["trainer.precision=32-true", "compile=false"],
    "bf16-mixed": ["trainer.precision=bf16-mixed", "compile=false"],
    "bf16-mixed compiled": ["trainer.precision=bf16-mixed", "compile=true"],
}
# the first step of each fastnst run (s): a compiled run compiles there
FIRST_STEPS: list[float] = []
MODELS = {"johnson": [32, 64, 128], "johnson_half": [16, 32, 64]}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def style_cfg():
    from fastnst.bundled import painting_path
    from fastnst.config import data_dir

    image = Path(painting_path(data_dir(), "starry_night"))  # the user's, else the bundled one
    if not image.exists():
        image = Path(tempfile.mkdtemp()) / "style.png"
        from PIL import Image

        Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy()).save(image)
    return {
        "name": "bench",
        "image": str(image),
        "images": None,
        "weights": None,
        "images_dir": None,
        "size": 256,
        "beta_scale": 1.0,
    }


def bench_eager(model, batch, size, steps, warmup, device):
    """The baseline: the textbook loop, eager fp32, tensors already on the device."""
    from fastnst.accel import fastconv

    with fastconv.disabled():  # plain F.conv2d everywhere: no NNPACK, no sub-pixel rewrite
        return _eager_steps(model, batch, size, steps, warmup, device)


def _eager_steps(model, batch, size, steps, warmup, device):
    from omegaconf import OmegaConf

    from fastnst.style import build_loss
    from fastnst.transformer import TransformerNet

    net = TransformerNet(channels=MODELS[model]).to(device)
    loss = build_loss(
        OmegaConf.load(REPO / "conf/loss/seed.yaml"), OmegaConf.create(style_cfg()), device=device
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size, device=device)
    times = []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        with torch.no_grad():
            target = loss.content_features(x)
        total = loss(net(x), target)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def peak_memory_gib(device) -> float:
    """CUDA: peak allocated since the last reset; CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def fast_overrides(device, compile_: bool, cache_dir: Path) -> list[str]:
    out = [f"data.cache_dir={cache_dir}", "data.cache=true"]
    if device.type == "cuda":
        out += ["trainer=gpu", "data.num_workers=8"]
    else:
        # the cached crops cost ~nothing: a worker process would only compete for the cores
        out += ["data.num_workers=0"]
    if compile_:
        out.append("compile=true")
    return out


def bench_fastnst(model, batch, size, steps, warmup, device, data, extra):
    """The framework: train(cfg) with the real data module, logging and checkpoints."""
    import pytorch_lightning as pl

    import fastnst.train as train_mod
    from fastnst.config import compose

    times: list[float] = []

    class StepTimer(pl.Callback):
        def __init__(self):
            self.last = None

        def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
            if self.last is None:
                self.first = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, b, batch_idx):
            sync(device)
            now = time.perf_counter()
            if self.last is None:
                FIRST_STEPS.append(now - self.first)
            if self.last is not None and trainer.global_step > warmup:
                times.append(now - self.last)
            self.last = now

    tmp = Path(tempfile.mkdtemp(prefix="fastnst-bench-"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if data == "synthetic":
        from PIL import Image

        photos = tmp / "photos"
        photos.mkdir()
        for i in range(max(64, batch * 4)):
            Image.fromarray((torch.rand(size + 64, size + 96, 3) * 255).byte().numpy()).save(
                photos / f"{i}.jpg"
            )
        data_overrides = ["data=folder", f"data.root={photos}"]
    else:
        data_overrides = [f"data={data}"]
    style = style_cfg()
    overrides = [
        *data_overrides,
        f"model={model}",
        f"data.batch_size={batch}",
        f"data.image_size={size}",
        f"style.image={style['image']}",
        f"trainer.max_steps={warmup + steps + 1}",
        "trainer.val_check_interval=100000",
        "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        "callbacks.images.every_n_steps=0",
        "export=false",
        f"run_dir={tmp / 'run'}",
        "seed=0",
        *extra,
    ]
    cfg = compose("train", overrides)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is for the table / the JSON line
        train_mod.train(cfg, callbacks=[StepTimer()])
    return times


def compare_precision(model, batch, size, steps, device, data, extra, variants=None):
    """Train bf16-mixed and 32-true (or each of `variants`: name -> overrides) for the same
    steps (same seed and data), return their validation losses: the fast path must reach the
    same quality."""
    import fastnst.train as train_mod
    from fastnst.config import compose

    if data == "synthetic":
        raise SystemExit("--compare-precision needs a real data preset (--data imagenet_mini)")
    style = style_cfg()
    out = {}
    variants = variants or {p: [f"trainer.precision={p}"] for p in ("bf16-mixed", "32-true")}
    for precision, variant in variants.items():
        tmp = Path(tempfile.mkdtemp(prefix="fastnst-prec-"))
        overrides = [
            f"data={data}",
            f"model={model}",
            f"data.batch_size={batch}",
            f"data.image_size={size}",
            f"style.image={style['image']}",
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={steps}",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
            "callbacks.images.every_n_steps=0",
            "export=false",
            f"run_dir={tmp / 'run'}",
            "seed=0",
            *extra,
            *variant,
        ]
        cfg = compose("train", overrides)
        t = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            result = train_mod.train(cfg)
        out[precision] = {
            "val_loss": result["metrics"].get("val/loss"),
            "wall_s": time.perf_counter() - t,
        }
    return out


def bf16_vs_fp32(args, device, extra) -> None:
    """The fastnst step in fp32 and bf16-mixed on this CPU (median over interleaved halves), then
    the validation loss of each after the same --compare-precision steps."""
    from omegaconf import OmegaConf

    from fastnst.train import resolve_precision

    batch = args.batch[0]
    chosen, why = resolve_precision(
        OmegaConf.create({"accelerator": device.type, "precision": "auto"})
    )
    variants = {
        k: v for k, v in STEP_VARIANTS.items() if not (args.no_compiled and "compile=true" in v)
    }
    extra = [o for o in extra if o != "compile=true"]  # the variants say where it is on
    times: dict[str, list[float]] = {name: [] for name in variants}
    first: dict[str, list[float]] = {name: [] for name in variants}
    half = max(1, (args.steps + 1) // 2)
    for _ in range(2):  # fp32, bf16, compiled, fp32, ...: a shared machine's drift hits all alike
        for name, overrides in variants.items():
            times[name] += bench_fastnst(
                args.model,
                batch,
                args.size,
                half,
                args.warmup,
                device,
                args.data,
                [*extra, *overrides],
            )
            first[name].append(FIRST_STEPS[-1])
    fp32 = statistics.median(times["32-true"])
    eager = statistics.median(times["bf16-mixed"])
    print(
        f"\nTraining step on {device_name(device)}, model={args.model}, {args.size} px, batch {batch} "
        f"(median of {2 * half} steps each after {args.warmup} warm-up steps, interleaved halves)"
    )
    print(f"trainer=cpu (precision auto) chooses: {why}")
    print("| variant | ms/step | steps/s | images/s | vs fp32 | vs bf16 eager | first step (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ts in times.items():
        t = statistics.median(ts)
        firsts = " / ".join(f"{f:.1f}" for f in first[name])
        print(
            f"| {name} | {1000 * t:.0f} | {1 / t:.2f} | {batch / t:.2f} | {fp32 / t:.2f}x | "
            f"{eager / t:.2f}x | {firsts} |"
        )
    if "bf16-mixed compiled" in times:
        print(
            "(first step: a compiled run compiles there, once per run - the second run's compile "
            "reuses inductor's on-disk cache)"
        )
    steps = args.compare_precision or 400
    if args.data == "synthetic":
        print(
            f"\n(validation losses need real photos: add --data imagenet_mini for the {steps}-step comparison)"
        )
        return
    res = compare_precision(
        args.model, batch, args.size, steps, device, args.data, extra, variants=variants
    )
    print_precision_losses(res, steps, batch)


def print_precision_losses(res: dict, steps: int, batch: int) -> None:
    bf16, fp32 = res["bf16-mixed"]["val_loss"], res["32-true"]["val_loss"]
    print(f"\nValidation loss after {steps} steps x batch {batch} ({steps * batch} images):")
    print("| variant | val/loss | vs fp32 | wall time |")
    print("|---|---:|---:|---:|")
    for name, r in res.items():
        gap = f"{100 * (r['val_loss'] - fp32) / fp32:+.2f}%" if r["val_loss"] and fp32 else "-"
        print(f"| {name} | {r['val_loss']:.4g} | {gap} | {r['wall_s'] / 60:.1f} min |")
    if bf16 and fp32:
        print(f"bf16 vs fp32: {100 * (bf16 - fp32) / fp32:+.2f}% (target: within 3%)")
    compiled = res.get("bf16-mixed compiled", {}).get("val_loss")
    if compiled and bf16:
        print(
            f"bf16 compiled vs bf16 eager: {100 * (compiled - bf16) / bf16:+.2f}% (target: within 3%)"
        )


def main():
    from fastnst.preflight import ArgumentParser

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[4, 16])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", choices=sorted(MODELS), default="johnson")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--data",
        default="synthetic",
        help="synthetic (random JPEGs) or a data preset, e.g. imagenet_mini",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the transformer and the VGG (compile=true)",
    )
    p.add_argument(
        "--no-fast",
        action="store_true",
        help="fastnst run with the plain settings (measures framework overhead)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="decoded-cache folder (default: a temp folder)"
    )
    p.add_argument(
        "--compare-precision",
        type=int,
        default=0,
        metavar="STEPS",
        help="also train bf16-mixed and 32-true for STEPS steps and compare validation losses",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="fp32 vs bf16-mixed: step time, then validation losses "
        "after --compare-precision steps (default 400)",
    )
    p.add_argument(
        "--no-compiled",
        action="store_true",
        help="--bf16 without the compiled (compile=true) row",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (first batch size) and nothing else",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for the fastnst run (e.g. trainer.precision=bf16-mixed)",
    )
    args = p.parse_args()
    device = torch.device(args.device)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.json:
        args.batch = args.batch[:1]
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="fastnst-cache-")).resolve()
    extra = ([] if args.no_fast else fast_overrides(device, args.compile, cache_dir)) + list(
        args.overrides
    )

    if args.bf16:
        bf16_vs_fp32(args, device, extra)
        return
    rows = []
    for batch in args.batch:
        half = max(1, (args.steps + 1) // 2)
        base = bench_eager(args.model, batch, args.size, half, args.warmup, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fast = bench_fastnst(
            args.model, batch, args.size, args.steps, args.warmup, device, args.data, extra
        )
        peak = peak_memory_gib(device)
        base += bench_eager(args.model, batch, args.size, half, 1, device)
        b, f = statistics.median(base), statistics.median(fast)
        rows.append(
            {
                "device": device_name(device),
                "model": args.model,
                "size": args.size,
                "batch": batch,
                "baseline_step_s": b,
                "median_step_s": f,
                "ms_per_step": 1000 * f,
                "images_per_s": batch / f,
                "baseline_images_per_s": batch / b,
                "speedup": b / f,
                "johnson_recipe_h": JOHNSON_IMAGES / (batch / f) / 3600,
                "johnson_recipe_min": JOHNSON_IMAGES / (batch / f) / 60,
                "peak_mem_gib": peak,
                "settings": extra,
            }
        )
    if args.json:
        print(json.dumps(rows[0]))
        return
    print(
        f"\nTraining throughput on {device_name(device)}, model={args.model}, {args.size} px, data={args.data}"
    )
    print(f"fastnst settings: {' '.join(extra) or '(defaults)'}")
    print(
        "| batch | eager fp32 baseline ms/step | fastnst ms/step | images/s | vs baseline | peak memory | Johnson recipe (160k images) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        recipe = (
            f"{r['johnson_recipe_min']:.1f} min"
            if r["johnson_recipe_h"] < 1
            else f"{r['johnson_recipe_h']:.1f} h"
        )
        mem = "GPU" if device.type == "cuda" else "RSS"
        print(
            f"| {r['batch']} | {1000 * r['baseline_step_s']:.1f} | {r['ms_per_step']:.1f} | {r['images_per_s']:.2f} | "
            f"{r['speedup']:.2f}x | {r['peak_mem_gib']:.2f} GiB {mem} | {recipe} |"
        )
    if args.compare_precision:
        res = compare_precision(
            args.model, args.batch[-1], args.size, args.compare_precision, device, args.data, extra
        )
        print_precision_losses(res, args.compare_precision, args.batch[-1])


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from fastnst.accel.autotune import describe_cpu

    return f"{describe_cpu()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
