#!/usr/bin/env python3
"""Build a frame data set from videos (e.g. an anime series) for `data=folder` / `style.images_dir`.

    python scripts/data/extract_frames.py episode01.mkv --out data/fate_zero            # a frame every 2 s
    python scripts/data/extract_frames.py episodes/ --out data/fate_zero --scenes       # one per scene change
    python scripts/data/extract_frames.py fox.mp4 --out frames --every 1 --max-side 512 --dup-threshold 10

Frames are decoded with PyAV (no ffmpeg binary needed), letterbox bars cropped, near-duplicates
dropped (64-bit difference hash, --dup-threshold bits), and written as <n>.jpg continuing the
folder's numbering. Rerunning the same command adds only what is missing. Exit code 2 on a bad
input (missing file, not a video). The logic lives in fastnst.frames.
"""

import sys

from fastnst.apps.frames import main

if __name__ == "__main__":
    sys.exit(main())
