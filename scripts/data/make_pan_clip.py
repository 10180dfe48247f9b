#!/usr/bin/env python3
"""Make a test video from one real photo: a slow simulated camera pan and zoom, with slight
sensor noise (the second clip of docs/benchmarks.md "Stable video", built offline from a
photo we have).

    python scripts/data/make_pan_clip.py --help

The logic lives in fastnst.apps.make_pan_clip.
"""

import sys

from fastnst.apps.make_pan_clip import main

if __name__ == "__main__":
    sys.exit(main())
