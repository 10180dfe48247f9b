#!/usr/bin/env python3
"""

from __future__ import annotations

import sys

from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()  # before torch loads: its OpenMP reads the wait policy only then

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fastnst.errors import one_line_errors  # noqa: E402
from fastnst.images import load_image  # noqa: E402
from fastnst.preflight import ArgumentParser, check_new_output  # noqa: E402
from fastnst.progress import add_progress_argument, bar  # noqa: E402
from fastnst.video import write_video  # noqa: E402


def pan_frames(
    photo: torch.Tensor,
    frames: int,
    size: int,
    zoom_start: float,
    zoom_end: float,
    noise: float,
    seed: int = 0,
):

The logic lives in fastnst.apps.make_pan_clip.
"""

import sys

from fastnst.apps.make_pan_clip import main

if __name__ == "__main__":
    sys.exit(main())
