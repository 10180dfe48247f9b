#!/usr/bin/env python3
"""Compare trained runs side by side: one PNG grid and one Markdown table of their evaluation.

    python scripts/figures/compare_runs.py outputs/starry_night/imagenet_mini/johnson_half/<date> \
        outputs/starry_night/anime_standin/johnson_half/<date> --out report/

Writes <out>/grid.png (rows: evaluation photos; columns: the photo, the style image(s), then
each run's output, headed by style, dataset and model) and <out>/metrics.md (+ metrics.json).
Runs without an eval.json, or evaluated on other photos/size/budget, are evaluated first
(fastnst.evaluate.evaluate_run), so the table compares like with like. Exit code 2 on a bad run.

--tensorboard DIR also writes the comparison as a TensorBoard run (`tensorboard --logdir DIR`,
or a folder above it): images `compare/<probe>` (each probe photo of fastnst.probes, the photos
every training run logs under probe/<probe>, then each run's output on it, labelled),
`compare/grid` (grid.png) and the table as text `compare/metrics`; and under DIR/runs/<run> each
run's settings and evaluation as hparams and eval/<metric> scalars (the HParams tab's table).

The logic lives in fastnst.apps.compare_runs.
"""

import sys

from fastnst.apps.compare_runs import main

if __name__ == "__main__":
    sys.exit(main())
