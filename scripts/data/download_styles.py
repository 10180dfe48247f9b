#!/usr/bin/env python3
"""Download the public-domain style paintings of the presets (the style registry's sources,
fastnst.styles) from Wikimedia Commons.

    python scripts/data/download_styles.py --help

The logic lives in fastnst.apps.download_styles.
"""

import sys

from fastnst.apps.download_styles import main

if __name__ == "__main__":
    sys.exit(main())
