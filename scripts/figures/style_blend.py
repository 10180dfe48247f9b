#!/usr/bin/env python3
"""Blends between the styles of a multi-style network: a strip of one photo across k blend
steps between two styles, and/or a short video of the photo morphing from one style to the
next.

    python scripts/figures/style_blend.py --help

The logic lives in fastnst.apps.style_blend.
"""

import sys

from fastnst.apps.style_blend import main

if __name__ == "__main__":
    sys.exit(main())
