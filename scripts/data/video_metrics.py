#!/usr/bin/env python3
"""Flicker of a stylized video: the temporal warping error (Lai et al. 2018) over the input's
optical flow, with the frames' mean content and style losses.

    python scripts/data/video_metrics.py --input clip.mp4 --output clip_stylized.mp4
    python scripts/data/video_metrics.py --input clip.mp4 --output out.mp4 --run runs/<run> --frames 60 --json

The logic lives in fastnst.video_metrics. Exit code 2 on a bad input.
"""

import sys

from fastnst.video_metrics import main

if __name__ == "__main__":
    sys.exit(main())
