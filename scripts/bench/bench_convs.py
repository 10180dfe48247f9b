"""Per-layer convolution timings: oneDNN direct (`F.conv2d`) vs `fastnst.accel.fastconv.conv2d`
(NNPACK Winograd/FFT where its rule says so), forward and input-gradient, on the shapes of the
VGG19 loss (Gatys at 256 px) and the Johnson transformer (inference at 512 px).

    .venv/bin/python scripts/bench/bench_convs.py [--repeats 5]

The rule in `fastconv._nnpack_faster` was set from this table on a 2-core AMD EPYC (AVX2).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch
import torch.nn.functional as F

from fastnst.accel import fastconv

# (what, batch, in, out, kernel, padding, map size)
SHAPES = [
    ("vgg block1_conv2 @256", 1, 64, 64, 3, 1, 256),
    ("vgg block2_conv2 @256", 1, 128, 128, 3, 1, 128),
    ("vgg block3_conv2 @256", 1, 256, 256, 3, 1, 64),
    ("vgg block4_conv2 @256", 1, 512, 512, 3, 1, 32),
    ("vgg block4_conv2 @512", 1, 512, 512, 3, 1, 64),
    ("johnson residual @512", 1, 128, 128, 3, 0, 130),
    ("johnson up1 sub-pixel @512", 1, 128, 256, 3, 0, 130),
    ("johnson up2 sub-pixel @512", 1, 64, 128, 3, 0, 258),
    ("johnson in 9x9 @512", 1, 3, 32, 9, 0, 520),
    ("johnson out 9x9 @512", 1, 32, 3, 9, 0, 520),
    ("training residual b4 @256", 4, 128, 128, 3, 0, 66),
]


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, NNPACK {fastconv.nnpack_ready()}"
    )
    print(
        "| layer | shape | direct fwd ms | fastconv fwd ms | fwd speedup | direct fwd+bwd ms | fastconv fwd+bwd ms | speedup |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, batch, cin, cout, k, pad, size in SHAPES:
        row = time_layer(batch, cin, cout, k, pad, size, args.repeats)
        print(
            f"| {name} | {batch}x{cin}x{size}x{size} -> {cout}, {k}x{k} | {row[0]:.1f} | {row[1]:.1f} | "
            f"{row[0] / row[1]:.2f}x | {row[2]:.1f} | {row[3]:.1f} | {row[2] / row[3]:.2f}x |",
            flush=True,
        )


def time_layer(batch, cin, cout, k, pad, size, repeats):
    """[direct fwd, fast fwd, direct fwd+bwd, fast fwd+bwd] median ms."""
    torch.manual_seed(0)
    x = torch.randn(batch, cin, size, size, requires_grad=True)
    w, b = torch.randn(cout, cin, k, k) * 0.05, torch.randn(cout)

    def forward(conv):
        with torch.no_grad():
            conv(x, w, b, padding=pad)

    def both(conv):  # forward + input gradient (the VGG-loss case: frozen weights)
        torch.autograd.grad(conv(x, w, b, padding=pad).sum(), x)

    pairs = [(run, conv) for run in (forward, both) for conv in (F.conv2d, fastconv.conv2d)]
    return [median_ms(functools.partial(run, conv), repeats) for run, conv in pairs]


if __name__ == "__main__":
    main()
