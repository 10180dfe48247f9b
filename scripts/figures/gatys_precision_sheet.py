"""fp32 and bf16 Gatys side by side (docs/gatys.md): the photo, `precision=32-true` and
`precision=bf16-mixed`, same loss, painting, size and L-BFGS steps; prints each result's loss
scored in fp32, the bf16 gap and the PSNR between the two, and the wall time of each run.

Usage: FASTNST_DATA=path/to/data .venv/bin/python scripts/figures/gatys_precision_sheet.py
       [--size 256] [--iterations 100] [--content chicago.jpg] [--style starry_night]
       [--out docs/images/gatys_precision.jpg] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import fastnst  # noqa: F401  (sets passive OpenMP waits before torch loads)

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--content", default="chicago.jpg")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "gatys_precision.jpg"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()

    import torch

    from fastnst.accel.autotune import describe_cpu
    from fastnst.config import compose, data_dir
    from fastnst.gatys import stylize_gatys
    from fastnst.images import check_output_path, load_image, save_image
    from fastnst.metrics import psnr
    from fastnst.style import build_loss

    out = check_output_path(Path(args.out), args.overwrite, option="--overwrite")
    content_path = data_dir() / "content" / args.content
    if not content_path.is_file():
        raise SystemExit(f"{content_path}: not found; set FASTNST_DATA to the data folder")
    cfg = compose("gatys", [f"style={args.style}", f"size={args.size}"])
    loss = build_loss(cfg.loss, cfg.style, style_size=args.size)
    photo = load_image(content_path, args.size)
    feats = loss.content_features(photo)
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        result = stylize_gatys(
            photo, loss, iterations=args.iterations, scales=[1], precision=precision
        )
        with torch.no_grad():
            scored = float(loss(result.image, feats)["total"])
        results[precision] = (result, scored)
    (fp32, fp32_loss), (bf16, _) = results["32-true"], results["bf16-mixed"]
    gap = 8  # white columns between the three pictures
    sheet = torch.ones(1, 3, photo.shape[-2], 3 * photo.shape[-1] + 2 * gap)
    for i, image in enumerate((photo, fp32.image, bf16.image)):
        left = i * (photo.shape[-1] + gap)
        sheet[..., left : left + photo.shape[-1]] = image
    save_image(sheet, out, overwrite=args.overwrite, jpeg_quality=85)
    print(f"CPU: {describe_cpu()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{args.content} x {args.style}, {args.size} px, {args.iterations} L-BFGS steps")
    print("| precision | final loss (scored in fp32) | vs fp32 | wall time (s) |")
    print("|---|---:|---:|---:|")
    for name, (result, scored) in results.items():
        print(
            f"| {name} | {scored:.5g} | {100 * (scored - fp32_loss) / fp32_loss:+.2f}% | "
            f"{result.wall_time_s:.1f} |"
        )
    print(f"PSNR bf16 vs fp32: {psnr(bf16.image, fp32.image):.1f} dB; wrote {out}")


if __name__ == "__main__":
    main()
