"""The steps of scripts/gpu_run.sh (run it, not this file): everything a GPU is for, in one
time budget, with the results packed into a few files.

    (a) inference check: batch-1 frames/s of `johnson` at 1920x1080 and 3840x2160, eager fp32
        against the Stylizer in fp16/bf16 (channels_last), PSNR of each against fp32;
    (b) training check: images/s at batch 4 and 16 (bf16, channels_last, decoded cache; batch 16
        also with torch.compile), then bf16 against fp32 validation loss after the same images;
    (c) the bundled styles trained with Johnson's recipe (160k images of 256 px: batch 16 x 10k
        steps, lr scaled by sqrt(16/4)), each for the time left divided among the styles still
        to train (at least --min-style-s each: fewer styles rather than useless ones).

Each step runs in its own process under a timeout taken from the budget, so one that hangs or
overruns costs its share and no more. --out receives at most 8 files of at most 16 MiB:
summary.md (all tables and each style's validation curve), log.txt (every step's output),
events.tar.gz (each style run's TensorBoard events and config), and the trained networks with
fp16 weights (<style>.pt, or models-N.tar when more than five).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from fastnst.config import REPO_ROOT as REPO  # the steps run the repo's scripts and train.py
from fastnst.styles import public_domain_styles

STYLES = tuple(public_domain_styles())  # the styles with a bundled painting (fastnst.styles)
MAX_FILE = 16 * 2**20
MAX_FILES = 8
JOHNSON_IMAGES = 160_000  # 40k steps x 4 images


def parse_args(argv=None):
    from fastnst.preflight import ArgumentParser, ensure_writable

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="scratch folder (runs, decoded cache)")
    p.add_argument(
        "--budget",
        type=float,
        default=540,
        help="seconds for all steps together (the device tool's calls end at 600 s)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="CPU, tiny sizes: checks the plumbing only"
    )
    p.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    p.add_argument("--skip-checks", action="store_true", help="only (c): train the styles")
    p.add_argument(
        "--batch", type=int, default=16, help="style training batch (lr scaled by sqrt(batch/4))"
    )
    p.add_argument(
        "--min-style-s", type=float, default=None, help="least seconds per trained style"
    )
    args = p.parse_args(argv)
    for option, folder in (("--out", args.out), ("--work", args.work)):
        p.check(ensure_writable, folder, option, folder=True)
    return args


class Clock:
    def __init__(self, budget: float):
        self.start, self.budget = time.monotonic(), budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)


class Log:
    """Everything each step prints goes to log.txt (and to our stdout, for the device tool)."""

    def __init__(self, path: Path):
        self.file = path.open("w")

    def write(self, text: str):
        self.file.write(text)
        self.file.flush()
        sys.stdout.write(text)
        sys.stdout.flush()

    def run(self, title: str, cmd: list[str], timeout: float, env=None) -> tuple[int, str, float]:
        """Run cmd with a timeout; returns (exit code, its stdout, seconds). 124 = timed out."""
        self.write(f"\n===== {title} (timeout {timeout:.0f} s)\n$ {shlex.join(cmd)}\n")
        t = time.monotonic()
        if timeout < 5:
            self.write("skipped: no time left\n")
            return 124, "", 0.0
        # its own process group: at the timeout its workers (data loaders, compile) go with it
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            code = 124
        seconds = time.monotonic() - t
        self.write(out)
        self.write(f"----- exit {code} after {seconds:.0f} s\n")
        return code, out, seconds


def markdown_tables(text: str) -> str:
    """The markdown table lines (and the line before each) of a benchmark's output."""
    lines = text.splitlines()
    keep = [i for i, line in enumerate(lines) if line.startswith("|")]
    out, prev = [], None
    for i in keep:
        if prev is None or i != prev + 1:
            out += ["", lines[i - 1] if i and lines[i - 1].strip() else ""]
        out.append(lines[i])
        prev = i
    return "\n".join(out).strip()


# ----------------------------------------------------------------------------- (a) and (b)


def checks(args, clock: Clock, log: Log, py: str) -> list[str]:
    """The inference and training checks; returns summary.md sections."""
    dry = args.dry_run
    sections = []
    if dry:
        infer = [
            "--device",
            "cpu",
            "--device-table",
            "--models",
            "johnson",
            "--sizes",
            "64",
            "--repeats",
            "1",
        ]
    else:
        infer = ["--device", "cuda", "--models", "johnson", "--repeats", "30"]
        if os.environ.get("INFER_COMPILE") == "1":
            infer.append("--compile")
    code, out, secs = log.run(
        "(a) inference check",
        [py, "scripts/bench/bench_inference.py", *infer],
        timeout=min(600 if dry else 0.16 * args.budget, clock.left()),
    )
    sections.append(
        f"## (a) Inference check ({secs:.0f} s, exit {code})\n\n"
        + (markdown_tables(out) or "(no table: see log.txt)")
    )

    cache = args.work / "cache"
    if dry:
        common = [
            "--device",
            "cpu",
            "--data",
            "imagenet_mini",
            "--size",
            "64",
            "--cache-dir",
            str(cache),
            "data.max_train_images=16",
            "data.val_size=2",
            "style.size=64",
        ]
        runs = [
            (
                "(b1) training throughput, batch 2",
                ["--batch", "2", "--steps", "2", "--warmup", "1"],
                700,
            ),
            (
                "(b2) bf16 vs fp32 validation loss",
                ["--batch", "2", "--steps", "1", "--warmup", "1", "--compare-precision", "2"],
                900,
            ),
        ]
    else:
        common = ["--device", "cuda", "--data", "imagenet_mini", "--cache-dir", str(cache)]
        # timeouts as shares of the budget (they are caps: a step that ends early leaves its
        # time to the styles)
        runs = [
            (
                "(b1) training throughput, batch 4 and 16",
                ["--batch", "4", "16", "--steps", "30", "--warmup", "15"],
                0.1 * args.budget,
            ),
            (
                "(b2) training throughput, batch 16 + torch.compile",
                ["--batch", "16", "--steps", "40", "--warmup", "25", "--compile"],
                0.17 * args.budget,
            ),
            (
                "(b3) bf16 vs fp32 validation loss",
                [
                    "--batch",
                    "16",
                    "--steps",
                    "5",
                    "--warmup",
                    "2",
                    "--compare-precision",
                    os.environ.get("PREC_STEPS", "400"),
                ],
                0.12 * args.budget,
            ),
        ]
    for title, extra, cap in runs:
        # the options go before the Hydra overrides (bench_train's positional arguments)
        opts, overrides = (
            common[: common.index("--cache-dir") + 2],
            common[common.index("--cache-dir") + 2 :],
        )
        code, out, secs = log.run(
            title,
            [py, "scripts/bench/bench_train.py", *opts, *extra, *overrides],
            timeout=min(cap, clock.left()),
        )
        sections.append(
            f"## {title} ({secs:.0f} s, exit {code})\n\n"
            + (markdown_tables(out) or "(no table: see log.txt)")
        )
    return sections


# ----------------------------------------------------------------------------- (c) the styles


def style_overrides(args, style: str, run_dir: Path, seconds: float) -> list[str]:
    common = [
        f"style={style}",
        "data=imagenet_mini",
        f"data.cache_dir={args.work / 'cache'}",
        "data.cache=true",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "seed=0",
        "export=true",
    ]
    if args.dry_run:
        # stopped by its time (as on the GPU), long before max_steps
        return [
            *common,
            "trainer.accelerator=cpu",
            "data.batch_size=2",
            "data.image_size=64",
            "style.size=64",
            "data.max_train_images=16",
            "data.val_size=2",
            "data.num_workers=0",
            "trainer.max_steps=1000",
            "+trainer.max_time=00:00:00:12",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "callbacks.images.every_n_steps=4",
        ]
    # Johnson's recipe at a larger batch: the same 160k images, Adam lr 1e-3 x sqrt(batch / 4)
    steps = JOHNSON_IMAGES // args.batch
    fit_s = max(10, int(seconds - 25))  # process start, style Grams and export lie outside fit()
    return [
        *common,
        "trainer=gpu",
        f"data.batch_size={args.batch}",
        "data.num_workers=8",
        "system.optimizer.scale_lr_with_batch=sqrt",
        f"trainer.max_steps={steps}",
        f"+trainer.max_time=00:00:{fit_s // 60:02d}:{fit_s % 60:02d}",
        "trainer.val_check_interval=500",
        "trainer.log_every_n_steps=50",
        "callbacks.images.every_n_steps=1000",
    ]


def plan_styles(left: float, styles: list[str], least: float) -> int:
    """How many styles get trained: all when each gets `least` seconds, else as many as do."""
    return max(0, min(len(styles), int(left // least)))


def train_styles(args, clock: Clock, log: Log, py: str) -> list[dict]:
    least = args.min_style_s or (5 if args.dry_run else 75)
    todo = list(args.styles)
    n = plan_styles(clock.left() - (5 if args.dry_run else 20), todo, least)  # keep time to pack
    if n < len(todo):
        log.write(f"\n{len(todo) - n} style(s) left out for lack of time: {' '.join(todo[n:])}\n")
    todo = todo[:n]
    results = []
    for i, style in enumerate(todo):
        seconds = (clock.left() - (5 if args.dry_run else 20)) / (len(todo) - i)
        run_dir = args.work / "runs" / style
        cmd = [py, "train.py", *style_overrides(args, style, run_dir, seconds)]
        # a hang is cut short within the time kept for packing, so the run ends inside its budget
        code, out, secs = log.run(
            f"(c) train {style} ({seconds:.0f} s)",
            cmd,
            timeout=seconds + (5 if args.dry_run else 15),
        )
        results.append(
            {
                "style": style,
                "exit": code,
                "wall_s": secs,
                "budget_s": seconds,
                "run_dir": run_dir,
                **run_metrics(run_dir),
            }
        )
    return results


def run_metrics(run_dir: Path) -> dict:
    """What the run reached: steps, validation curve (from its TensorBoard events), model meta."""
    out: dict = {"val_curve": [], "train_loss": None}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags().get("scalars", [])
        if "val/loss" in tags:
            out["val_curve"] = [(e.step, e.value) for e in acc.Scalars("val/loss")]
        train_tag = next(
            (t for t in ("train/loss", "train/total", "loss/total") if t in tags), None
        )
        if train_tag:
            out["train_loss"] = acc.Scalars(train_tag)[-1].value
    except Exception as e:  # a run that never wrote events
        out["events_error"] = f"{type(e).__name__}: {e}"
    model = run_dir / "model.pt"
    if model.is_file():
        from fastnst.formats import load_exported

        meta = load_exported(model)[1]
        out["global_step"] = meta.get("global_step")
        out["val_loss"] = meta.get("val_loss")
    return out


def half_model(src: Path, recipe: dict) -> bytes:
    """The exported model with fp16 weights (half the size; the loader casts back to fp32) and
    the recipe it was trained with in its meta."""
    import tempfile

    from fastnst.formats import load_exported, save_exported

    net, meta = load_exported(src)
    meta = {**meta, "weights_dtype": "float16", "recipe": recipe}
    with tempfile.TemporaryDirectory() as tmp:
        return save_exported(Path(tmp) / src.name, net.half(), meta).read_bytes()


def recipe_of(args, result: dict) -> dict:
    steps = result.get("global_step") or 0
    return {
        "trained_by": "scripts/gpu_run.sh" + (" --dry-run" if args.dry_run else ""),
        "batch": 2 if args.dry_run else args.batch,
        "steps": steps,
        "images": steps * (2 if args.dry_run else args.batch),
        "wall_s": round(result["wall_s"], 1),
        "lr": "1e-3 x sqrt(batch/4)",
        "loss": "seed",
        "data": "imagenet_mini",
        "image_size": 64 if args.dry_run else 256,
    }


# ----------------------------------------------------------------------------- packing


def tar_size(members: list[bytes]) -> int:
    """Bytes of an uncompressed tar of these files: a 512-byte header each, data padded to 512,
    two zero blocks at the end, all padded to tarfile's 10240-byte records."""
    raw = sum(512 + -(-len(m) // 512) * 512 for m in members) + 1024
    return -(-raw // 10240) * 10240


def pack(args, results: list[dict], sections: list[str], log: Log, clock: Clock) -> list[Path]:
    out = args.out
    models = {}
    for r in results:
        model = r["run_dir"] / "model.pt"
        if model.is_file():
            models[r["style"]] = half_model(model, recipe_of(args, r))
    written = []
    if len(models) <= MAX_FILES - 3:
        for style, data in models.items():
            (out / f"{style}.pt").write_bytes(data)
            written.append(out / f"{style}.pt")
    else:  # as few tars of at most 16 MiB as they fit in
        chunks = [[]]
        for style, data in models.items():
            if chunks[-1] and tar_size([*(d for _, d in chunks[-1]), data]) > MAX_FILE:
                chunks.append([])
            chunks[-1].append((style, data))
        for i, chunk in enumerate(chunks, 1):
            with tarfile.open(out / f"models-{i}.tar", "w") as tar:
                for style, data in chunk:
                    info = tarfile.TarInfo(f"{style}.pt")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            written.append(out / f"models-{i}.tar")
    with tarfile.open(out / "events.tar.gz", "w:gz") as tar:
        for r in results:
            for f in sorted(r["run_dir"].rglob("events.out.tfevents.*")) + sorted(
                r["run_dir"].glob(".hydra/*.yaml")
            ):
                tar.add(f, arcname=f"{r['style']}/{f.relative_to(r['run_dir'])}")
    written.append(out / "events.tar.gz")
    (out / "summary.md").write_text(summary(args, results, sections, clock))
    written.append(out / "summary.md")
    log.write(f"\npacked {len(written) + 1} files into {out}\n")
    return written


def summary(args, results: list[dict], sections: list[str], clock: Clock) -> str:
    head = [
        f"# fastnst GPU run{' (dry run: CPU, tiny sizes; no figure here means anything)' if args.dry_run else ''}",
        "",
        f"{machine()}",
        "",
        f"Budget {args.budget:.0f} s, used {args.budget - clock.left():.0f} s.",
    ]
    rows = [
        "## (c) Styles: Johnson's recipe (160k images of 256 px), for the time each got",
        "",
        "| style | budget | wall | steps | images | images/s | val/loss | model |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        steps = r.get("global_step") or 0
        batch = 2 if args.dry_run else args.batch
        rate = steps * batch / r["wall_s"] if r["wall_s"] else 0
        val = f"{r['val_loss']:.4g}" if r.get("val_loss") is not None else "-"
        model = "yes" if (r["run_dir"] / "model.pt").is_file() else f"no (exit {r['exit']})"
        rows.append(
            f"| {r['style']} | {r['budget_s']:.0f} s | {r['wall_s']:.0f} s | {steps} | {steps * batch} | "
            f"{rate:.0f} | {val} | {model} |"
        )
    for r in results:
        if r["val_curve"]:
            rows += [
                "",
                f"{r['style']} validation curve (step: val/loss): "
                + ", ".join(f"{s}: {v:.4g}" for s, v in r["val_curve"]),
            ]
    return "\n\n".join(["\n".join(head), *sections, "\n".join(rows)]) + "\n"


def machine() -> str:
    try:
        import torch

        dev = (
            torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else f"CPU ({os.cpu_count()} cores)"
        )
        return f"{dev}, torch {torch.__version__}, Python {sys.version.split()[0]}"
    except Exception as e:
        return f"unknown machine ({e})"


def main(argv=None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "log.txt")
    log.write(f"{machine()}\nbudget {args.budget:.0f} s\n")
    py = sys.executable
    sections = [] if args.skip_checks else checks(args, clock, log, py)
    results = train_styles(args, clock, log, py)
    pack(args, results, sections, log, clock)
    files = sorted(p for p in args.out.iterdir() if p.is_file())
    too_big = [p.name for p in files if p.stat().st_size > MAX_FILE]
    log.write(
        f"{len(files)} files, largest {max(p.stat().st_size for p in files) / 2**20:.1f} MiB; "
        f"{args.budget - clock.left():.0f} s used of {args.budget:.0f}\n"
    )
    if len(files) > MAX_FILES or too_big:
        log.write(
            f"error: the output breaks the limits (at most {MAX_FILES} files of 16 MiB): {too_big}\n"
        )
        return 1
    return 0
