#!/usr/bin/env python3
"""A blind comparison sheet: which rendering looks painted in this painting's style, with the
scene still recognizable? Raters score lettered tiles without knowing what made them.

    python scripts/figures/blind_sheet.py --style udnie --network bundled=udnie \
        --network new=runs/udnie/.../model.pt --out sheets/udnie [--seed 0] [--overwrite]
    python scripts/figures/blind_sheet.py --score sheets/udnie/key.json rater1.txt rater2.txt

Sheet mode writes <out>/sheet.jpg and <out>/key.json. The sheet: the painting on top, then one
row per photo (Chicago, then the close-ups: ImageNet-mini val photos of people and animals,
CLOSEUPS), each row's tiles in a shuffled order, each tile marked with a letter only. A row holds
every --network's rendering, the photo itself, and on Chicago Johnson et al. 2016's published
output where the data folder has one. The key (letter -> entry, photo; plus each tile's hatch and
scene measures, fastnst.judge) goes in its own file: give raters the sheet alone.

Networks run on Chicago at the published output's size (so strokes are at the published pixel
scale, as scripts/zoo/judge_table.py does) and on the close-ups at --size px (longer side); every
tile is then shown --tile px high.

Score mode reads one or more rating files (one per rater) and prints the mean per entry (all
photos, Chicago, the close-ups), the number of 1s ("scene destroyed") and the ratings' count; with
--json it writes the same as JSON. A rating file is JSON ({"A": 4, ...}) or text, one
`<letter> <1-5>` per line (`A 4`, `A: 4`, `A=4`; # starts a comment). A letter missing from a
file is not counted for that rater.

The logic lives in fastnst.apps.blind_sheet.
"""

import sys

from fastnst.apps.blind_sheet import main

if __name__ == "__main__":
    sys.exit(main())
