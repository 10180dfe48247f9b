#!/usr/bin/env python3
"""The steps of scripts/gpu_run.sh (run it, not this file): the inference and training checks
and the bundled styles trained with Johnson's recipe in one time budget, results packed into a
few files. The logic lives in fastnst.apps.gpu_run; docs/gpu-run.md says what it measures."""

import sys

from fastnst.apps.gpu_run import main

if __name__ == "__main__":
    sys.exit(main())
