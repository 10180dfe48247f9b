"""A blind comparison sheet: which rendering looks painted in this painting's style, with the
scene still recognizable? Raters score lettered tiles without knowing what made them.

    python scripts/figures/blind_sheet.py --style udnie --network bundled=udnie \\
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
"""

from __future__ import annotations

import json
import random
import re
import string
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from fastnst.atomic import write_json
from fastnst.config import data_dir
from fastnst.errors import FastNSTError, one_line_errors, refuse_to_overwrite
from fastnst.images import load_image, resize_tensor, tensor_to_pil

# fixed close-ups from ImageNet-mini val: two people, two dogs, a lizard
CLOSEUPS = (
    "n02099849/n02099849_Chesapeake_Bay_retriever.JPEG",
    "n04591157/n04591157_Windsor_tie.JPEG",
    "n04487394/n04487394_trombone.JPEG",
    "n01692333/n01692333_Gila_monster.JPEG",
    "n02108089/n02108089_boxer.JPEG",
)
PHOTO_ENTRY = "photo"
JOHNSON_ENTRY = "johnson2016"
SCORE_RANGE = (1, 5)


def letters(n: int) -> list[str]:
    """A..Z, then AA, AB, ... (n labels)."""
    out, width = [], 1
    while len(out) < n:
        for i in range(26**width):
            label, k = "", i
            for _ in range(width):
                label = string.ascii_uppercase[k % 26] + label
                k //= 26
            out.append(label)
            if len(out) == n:
                break
        width += 1
    return out


def parse_network(spec: str) -> tuple[str, str]:
    label, sep, source = spec.partition("=")
    if not sep or not label or not source:
        raise FastNSTError(
            f"--network {spec!r}: expected LABEL=NETWORK (a bundled style name, a run directory, "
            "model.pt or .ckpt)"
        )
    if label in (PHOTO_ENTRY, JOHNSON_ENTRY):
        raise FastNSTError(f"--network {spec!r}: the label {label!r} is reserved; choose another")
    return label, source


def photo_paths(closeups: list[str]) -> list[tuple[str, Path]]:
    root = data_dir()
    photos = [("chicago", root / "content" / "chicago.jpg")]
    for rel in closeups:
        path = Path(rel) if Path(rel).is_absolute() else root / "imagenet-mini" / "val" / rel
        photos.append((Path(rel).stem, path))
    for _, path in photos:
        if not path.is_file():
            raise FastNSTError(f"{path}: photo not found (set FASTNST_DATA to the data folder)")
    return photos


def johnson_output(style: str) -> Path | None:
    from fastnst.styles import published_output

    path = published_output(data_dir(), style)
    return path if path is not None and path.is_file() else None


def stylize(source: str, photo: torch.Tensor, style: str) -> torch.Tensor:
    from fastnst.stylize import Stylizer

    stylizer = Stylizer.load(source)
    options = {"style": style} if stylizer.styles else {}
    with torch.no_grad():
        return stylizer(photo, **options).float().clamp(0, 1)


def measures(image: torch.Tensor, photo: torch.Tensor, scene) -> dict[str, float]:
    from fastnst.judge import hatch_measure, texture_fineness

    values = dict(hatch_measure(image))
    values["fineness"] = texture_fineness(image)
    values.update(scene(image, photo))
    return {k: round(v, 4) for k, v in values.items()}


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _label(tile: Image.Image, text: str) -> Image.Image:
    tile = tile.copy()
    draw = ImageDraw.Draw(tile)
    size = max(14, tile.height // 12)
    font = _font(size)
    box = draw.textbbox((0, 0), text, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    draw.rectangle((0, 0, w + 12, h + 12), fill="white")
    draw.text((6 - box[0], 6 - box[1]), text, fill="black", font=font)
    return tile


def compose(painting: Image.Image, rows: list[list[Image.Image]], gap: int = 8) -> Image.Image:
    width = max(sum(t.width for t in row) + gap * (len(row) - 1) for row in rows)
    p = painting.copy()
    if p.width > width:
        p = p.resize((width, round(p.height * width / p.width)), Image.LANCZOS)
    height = p.height + sum(row[0].height + gap for row in rows) + gap
    sheet = Image.new("RGB", (width, height), "white")
    sheet.paste(p, ((width - p.width) // 2, 0))
    y = p.height + gap
    for row in rows:
        x = 0
        for tile in row:
            sheet.paste(tile, (x, y))
            x += tile.width + gap
        y += row[0].height + gap
    return sheet


def make_sheet(args) -> int:
    from fastnst.judge import SceneJudge

    out = Path(args.out)
    sheet_path, key_path = out / "sheet.jpg", out / "key.json"
    for target in (sheet_path, key_path):
        refuse_to_overwrite(target, args.overwrite, option="--overwrite")
    networks = [parse_network(s) for s in args.network]
    if not networks:
        raise FastNSTError("--network LABEL=NETWORK: at least one network to rate")
    labels = [label for label, _ in networks]
    if len(set(labels)) != len(labels):
        raise FastNSTError(f"--network labels must differ, got {labels}")
    painting_path = data_dir() / "styles" / f"{args.style}.jpg"
    if not painting_path.is_file():
        raise FastNSTError(f"{painting_path}: painting not found (--style {args.style})")
    photos = photo_paths(args.closeups.split(",") if args.closeups else list(CLOSEUPS))
    johnson = johnson_output(args.style)
    rng = random.Random(args.seed)
    scene = SceneJudge(side=args.scene_side)

    rows, entries = [], []  # entries: (row, entry, image, photo) in sheet order
    for name, path in photos:
        side = args.size
        if name == "chicago":
            side = args.chicago_size
            if not side:
                # the published output's pixel scale (--size without one)
                side = max(load_image(johnson).shape[-2:]) if johnson is not None else args.size
        photo = load_image(path, side)
        row = [(label, stylize(source, photo, args.style)) for label, source in networks]
        row.append((PHOTO_ENTRY, photo))
        if name == "chicago" and johnson is not None:
            row.append((JOHNSON_ENTRY, resize_tensor(load_image(johnson), photo.shape[-2:])))
        rng.shuffle(row)
        entries.extend((name, label, image, photo) for label, image in row)
        rows.append(row)
        print(f"{name}: {len(row)} tiles", file=sys.stderr)

    names = letters(len(entries))
    key = {
        "style": args.style,
        "seed": args.seed,
        "photos": [name for name, _ in photos],
        "networks": dict(networks),
        "tiles": {},
    }
    tiles, k = [], 0
    for row in rows:
        shown = []
        for _ in row:
            photo_name, label, image, photo = entries[k]
            tile = tensor_to_pil(image)
            tile = tile.resize(
                (round(tile.width * args.tile / tile.height), args.tile), Image.LANCZOS
            )
            shown.append(_label(tile, names[k]))
            key["tiles"][names[k]] = {
                "entry": label,
                "photo": photo_name,
                "measures": measures(image, photo, scene),
            }
            k += 1
        tiles.append(shown)
    painting = Image.open(painting_path).convert("RGB")
    painting.thumbnail((10_000, args.tile * 2))
    out.mkdir(parents=True, exist_ok=True)
    compose(painting, tiles).save(sheet_path, quality=args.quality)
    write_json(key_path, key, indent=2)
    print(f"sheet: {sheet_path}\nkey:   {key_path} (keep it from the raters)")
    return 0


# ----------------------------------------------------------------------------- scoring

_LINE = re.compile(r"^\s*([A-Za-z]+)\s*[:=\s]\s*(\d+(?:\.\d+)?)\s*$")


def read_scores(path: Path) -> dict[str, float]:
    """A rater's file: JSON {letter: score} or `<letter> <score>` lines; `#` comments and lines
    of more than two words (a rater's remarks) are skipped."""
    if not path.is_file():
        raise FastNSTError(f"{path}: rating file not found")
    text = path.read_text()
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise FastNSTError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        items = list(raw.items())
    else:
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0]
            if not line.strip():
                continue
            match = _LINE.match(line)
            if not match and len(line.split()) > 2:
                continue  # a rater's remark ("Row A-D: C keeps the towers ..."), not a score
            if not match:
                raise FastNSTError(
                    f"{path}:{number}: {line.strip()!r} is not `<letter> <score>` (e.g. `A 4`)"
                )
            items.append(match.groups())
    scores = {}
    for letter, value in items:
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise FastNSTError(f"{path}: score of {letter!r} is not a number: {value!r}") from None
        if not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
            raise FastNSTError(
                f"{path}: score of {letter!r} is {value}, outside {SCORE_RANGE[0]}-{SCORE_RANGE[1]}"
            )
        scores[str(letter).upper()] = score
    return scores


def score_means(key: dict, ratings: list[dict[str, float]]) -> dict[str, dict]:
    """{entry: {"mean", "chicago", "closeups" (means, None without ratings), "ones", "n"}}."""
    tiles = key["tiles"]
    collected: dict[str, dict[str, list[float]]] = {}
    for scores in ratings:
        unknown = sorted(set(scores) - set(tiles))
        if unknown:
            raise FastNSTError(f"scores for letters not on the sheet: {', '.join(unknown)}")
        for letter, score in scores.items():
            tile = tiles[letter]
            where = "chicago" if tile["photo"] == "chicago" else "closeups"
            slot = collected.setdefault(tile["entry"], {"chicago": [], "closeups": []})
            slot[where].append(score)

    def mean(values):
        return round(sum(values) / len(values), 3) if values else None

    table = {}
    for entry in sorted(collected):
        c, u = collected[entry]["chicago"], collected[entry]["closeups"]
        table[entry] = {
            "mean": mean(c + u),
            "chicago": mean(c),
            "closeups": mean(u),
            "ones": sum(1 for s in c + u if s <= 1),
            "n": len(c + u),
        }
    return table


def score(args) -> int:
    key_path = Path(args.score)
    if not key_path.is_file():
        raise FastNSTError(f"{key_path}: key file not found")
    try:
        key = json.loads(key_path.read_text())
        key["tiles"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise FastNSTError(f"{key_path}: not a blind-sheet key (no tiles)") from None
    if not args.ratings:
        raise FastNSTError("--score KEY needs one or more rating files")
    table = score_means(key, [read_scores(Path(p)) for p in args.ratings])
    print(f"{key.get('style', '?')}: {len(args.ratings)} rater(s)")
    print(f"{'entry':<24} {'mean':>6} {'chicago':>8} {'close-ups':>10} {'1s':>4} {'n':>4}")
    for entry, row in table.items():
        cells = [
            ("-" if row[k] is None else f"{row[k]:.2f}") for k in ("mean", "chicago", "closeups")
        ]
        print(
            f"{entry:<24} {cells[0]:>6} {cells[1]:>8} {cells[2]:>10} {row['ones']:>4} {row['n']:>4}"
        )
    if args.json:
        refuse_to_overwrite(args.json, args.overwrite, option="--overwrite")
        summary = {"style": key.get("style"), "raters": len(args.ratings), "entries": table}
        write_json(Path(args.json), summary, indent=2)
    return 0


@one_line_errors
def main(argv=None) -> int:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", help="the painting (data folder styles/<style>.jpg)")
    parser.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="LABEL=NETWORK",
        help="a network to rate: a bundled style name, run directory, model.pt or .ckpt (repeat)",
    )
    parser.add_argument("--out", help="folder for sheet.jpg and key.json")
    parser.add_argument(
        "--closeups", help="comma-separated ImageNet-mini val files (default: CLOSEUPS)"
    )
    parser.add_argument("--size", type=int, default=512, help="close-ups' longer side (px)")
    parser.add_argument(
        "--chicago-size",
        type=int,
        default=0,
        help="Chicago's longer side (px); 0 = the published output's (else --size)",
    )
    parser.add_argument(
        "--scene-side", type=int, default=256, help="side (px) of the scene measure's VGG pass"
    )
    parser.add_argument("--tile", type=int, default=320, help="tile height on the sheet (px)")
    parser.add_argument("--quality", type=int, default=88, help="JPEG quality of the sheet")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle's seed")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--score", metavar="KEY", help="score mode: the sheet's key.json")
    parser.add_argument("ratings", nargs="*", help="score mode: one rating file per rater")
    parser.add_argument("--json", help="score mode: also write the means here")
    args = parser.parse_args(argv)
    if args.score:
        return score(args)
    if args.ratings:
        raise FastNSTError(f"rating files ({args.ratings[0]}, ...) are read in --score mode only")
    if not args.style or not args.out:
        raise FastNSTError("a sheet needs --style and --out (or --score KEY ratings...)")
    return make_sheet(args)
