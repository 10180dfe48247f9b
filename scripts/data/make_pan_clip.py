#!/usr/bin/env python3
"""Make a test video from one real photo: a slow simulated camera pan and zoom, with slight
sensor noise (the second clip of docs/benchmarks.md "Stable video", built offline from a photo we have).

    python scripts/data/make_pan_clip.py data/content/hoovertowernight.jpg --out pan.mp4 --frames 90 --size 512

The window (the photo's shorter side x `--zoom-start`, square) slides linearly from the left to
the right of the photo while zooming to `--zoom-end`, sampled bilinearly at sub-pixel positions;
Gaussian noise of std `--noise` (on 0..255) is added to every frame. H.264 at --fps, near-lossless.

The logic lives in fastnst.apps.make_pan_clip.
"""

import sys

from fastnst.apps.make_pan_clip import main

if __name__ == "__main__":
    sys.exit(main())
