#!/usr/bin/env python3
"""Download the public-domain style paintings of the presets from Wikimedia Commons.

    python scripts/data/download_styles.py                  # all public-domain presets
    python scripts/data/download_styles.py wave udnie --out my/styles

Files go to <data>/styles/<name>.jpg (<data>: $FASTNST_DATA if set, else the repo's data/).
Existing files are kept; the modern presets are not public domain: it says where to put your
own copy. Exit codes: 0 done, 1 a requested preset still has no file, 2 a download failed.
The logic lives in fastnst.apps.download_styles.
"""

import sys

from fastnst.apps.download_styles import main

if __name__ == "__main__":
    sys.exit(main())
