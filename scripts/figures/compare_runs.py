#!/usr/bin/env python3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fastnst.config import data_dir, resolve_user_path
from fastnst.errors import FastNSTError, one_line_errors
from fastnst.evaluate import (
    evaluate_run,
    evaluation_photo_paths,
    load_photo,
    load_run_config,
    read_eval,
    run_labels,
)
from fastnst.images import load_image, save_image, tensor_to_pil
from fastnst.preflight import ArgumentParser, ensure_writable
from fastnst.probes import PROBE_SIZE, missing_note, probe_photos
from fastnst.progress import add_progress_argument, bar
from fastnst.style import style_image_paths
from fastnst.stylize import Stylizer
from fastnst.video_metrics import stylized_warping_error

PAD = 4  # px between cells and around the grid
HEADER = 52  # px of the column headers (three lines of the default font)
LINE = 14
# table columns: (header, metric key, format)
COLUMNS = (
    ("content", "content", "{:.4g}"),
    ("style", "style", "{:.4g}"),
    ("style SWD", "style_swd", "{:.3f}"),
    ("Gatys style SWD", "gatys/style_swd", "{:.3f}"),
    ("total", "total", "{:.4g}"),
    ("Gatys total", "gatys/total", "{:.4g}"),
    ("total / Gatys", "total_vs_gatys", "{:.2f}"),
    ("edge SSIM", "edge_ssim", "{:.3f}"),
    ("Gatys edge SSIM", "gatys/edge_ssim", "{:.3f}"),
    ("ms / image", "ms_per_image", "{:.1f}"),
)
# with --video: the temporal warping error of each run on that clip (lower = less flicker)
VIDEO_COLUMN = ("warping error", "warping_error", "{:.5f}")


def grid_size(rows: int, columns: int, cell: int) -> tuple[int, int]:

The logic lives in fastnst.apps.compare_runs.
"""

import sys

from fastnst.apps.compare_runs import main

if __name__ == "__main__":
    sys.exit(main())
