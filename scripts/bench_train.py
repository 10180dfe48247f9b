#!/usr/bin/env python
"""Training throughput: fastnst's full training step (Lightning + data pipeline + logging) vs a
plain eager fp32 PyTorch step of the same network and loss, measured in the same process.

    python scripts/bench_train.py                        # CPU, johnson, 256 px, batch 4
    python scripts/bench_train.py --batch 4 16 --device cuda --data imagenet_mini
    python scripts/bench_train.py --device cpu --batch 4 --size 256 --json   # one JSON line

Prints median seconds per step, images/s, and the projected wall time of Johnson et al.'s
recipe (40k steps x batch 4 = 160k images of 256 px).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

JOHNSON_IMAGES = 160_000
MODELS = {"johnson": [32, 64, 128], "johnson_half": [16, 32, 64]}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def style_cfg():
    data = os.environ.get("FASTNST_DATA")
    image = Path(data) / "styles" / "starry_night.jpg" if data else None
    if image is None or not image.exists():
        image = Path(tempfile.mkdtemp()) / "style.png"
        from PIL import Image

        Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy()).save(image)
    return {"name": "bench", "image": str(image), "images": None, "weights": None, "images_dir": None,
            "size": 256, "beta_scale": 1.0}


def bench_eager(model, batch, size, steps, warmup, device):
    """The baseline: the textbook loop, eager fp32, tensors already on the device."""
    from omegaconf import OmegaConf

    from fastnst.style import build_loss
    from fastnst.transformer import TransformerNet

    net = TransformerNet(channels=MODELS[model]).to(device)
    loss = build_loss(OmegaConf.load(REPO / "conf/loss/seed.yaml"), OmegaConf.create(style_cfg()), device=device)
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


def bench_fastnst(model, batch, size, steps, warmup, device, data, extra):
    """The framework: train(cfg) with the real data module, logging and checkpoints."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    import fastnst.train as train_mod
    from fastnst.config import CONFIG_DIR

    times: list[float] = []

    class StepTimer(pl.Callback):
        def __init__(self):
            self.last = None

        def on_train_batch_end(self, trainer, pl_module, outputs, b, batch_idx):
            sync(device)
            now = time.perf_counter()
            if self.last is not None and trainer.global_step > warmup:
                times.append(now - self.last)
            self.last = now

    tmp = Path(tempfile.mkdtemp(prefix="fastnst-bench-"))
    if data == "synthetic":
        from PIL import Image

        photos = tmp / "photos"
        photos.mkdir()
        for i in range(max(64, batch * 4)):
            Image.fromarray((torch.rand(size + 64, size + 96, 3) * 255).byte().numpy()).save(photos / f"{i}.jpg")
        data_overrides = ["data=folder", f"data.root={photos}"]
    else:
        data_overrides = [f"data={data}"]
    style = style_cfg()
    overrides = [
        *data_overrides, f"model={model}", f"data.batch_size={batch}", f"data.image_size={size}",
        f"style.image={style['image']}", f"trainer.max_steps={warmup + steps + 1}",
        "trainer.val_check_interval=100000", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        "system.log_images_every_n_steps=0", "export=false", f"run_dir={tmp / 'run'}", "seed=0", *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    train_mod.train(cfg, callbacks=[StepTimer()])
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[4])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", choices=sorted(MODELS), default="johnson")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--data", default="synthetic", help="synthetic (random JPEGs) or a data preset, e.g. imagenet_mini")
    p.add_argument("--json", action="store_true", help="print one JSON line (first batch size) and nothing else")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for the fastnst run (e.g. trainer.precision=bf16-mixed)")
    args = p.parse_args()
    device = torch.device(args.device)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    rows = []
    for batch in args.batch:
        base = bench_eager(args.model, batch, args.size, args.steps, args.warmup, device)
        fast = bench_fastnst(args.model, batch, args.size, args.steps, args.warmup, device, args.data, args.overrides)
        b, f = statistics.median(base), statistics.median(fast)
        rows.append({"device": str(device), "model": args.model, "size": args.size, "batch": batch,
                     "baseline_step_s": b, "median_step_s": f, "images_per_s": batch / f,
                     "speedup": b / f, "johnson_recipe_h": JOHNSON_IMAGES / (batch / f) / 3600,
                     "peak_mem_gib": (torch.cuda.max_memory_allocated() / 2**30) if device.type == "cuda" else None})
    if args.json:
        print(json.dumps(rows[0]))
        return
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"\nTraining throughput on {name}, model={args.model}, {args.size} px, data={args.data}")
    print("| batch | eager fp32 baseline s/step | fastnst s/step | images/s | vs baseline | Johnson recipe (160k images) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['baseline_step_s']:.3f} | {r['median_step_s']:.3f} | {r['images_per_s']:.2f} | "
              f"{r['speedup']:.2f}x | {r['johnson_recipe_h']:.1f} h |")


if __name__ == "__main__":
    main()
