#!/usr/bin/env python3
"""A blind comparison sheet: which rendering looks painted in this painting's style, with the
scene still recognizable? Raters score lettered tiles without knowing what made them.

    python scripts/figures/blind_sheet.py --help

The logic lives in fastnst.apps.blind_sheet.
"""

import sys

from fastnst.apps.blind_sheet import main

if __name__ == "__main__":
    sys.exit(main())
