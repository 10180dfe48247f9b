#!/usr/bin/env python3
"""Compare trained runs side by side: one PNG grid and one Markdown table of their evaluation.

    python scripts/figures/compare_runs.py --help

The logic lives in fastnst.apps.compare_runs.
"""

import sys

from fastnst.apps.compare_runs import main

if __name__ == "__main__":
    sys.exit(main())
