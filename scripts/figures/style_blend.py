#!/usr/bin/env python3
"""Blends between the styles of a multi-style network: a strip of one photo across k blend steps
between two styles, and/or a short video of the photo morphing from one style to the next.

    python scripts/figures/style_blend.py --model <run> --photo photo.jpg --out strip.jpg \
        [--styles starry_night wave] [--steps 5] [--size 256]
    python scripts/figures/style_blend.py --model <run> --photo photo.jpg --video morph.mp4 \
        [--styles starry_night the_scream wave] [--seconds 2] [--fps 24]

The strip: the photo, then `steps` stylizations from the first style (weight 1) to the second
(weight 1), weights evenly spaced (0.75/0.25 etc. in between: the scales and shifts of the
conditional instance norms interpolated). The video: `seconds` per transition between
consecutive --styles (default: all the network's styles in order). Outputs are never overwritten
without --overwrite; files are written atomically.

The logic lives in fastnst.apps.style_blend.
"""

import sys

from fastnst.apps.style_blend import main

if __name__ == "__main__":
    sys.exit(main())
