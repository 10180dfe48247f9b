"""The recipe study: variants of `experiment=zoo` trained at equal compute, side by side.

    python scripts/bench/bench_recipe.py --style starry_night --steps 400 --runs-dir ~/.cache/fastnst/recipe
    python scripts/bench/bench_recipe.py --style wave --variants base,style256,beta25 --report-only

Each variant is a list of Hydra overrides of `experiment=zoo style=<style>` (VARIANTS below):
style size, content layer, style/content weight, TV weight, crop size, steps, a warm start from a
bundled network of another style, and a peer row with pytorch/examples fast_neural_style's
published settings. All train from the same photos, seed and number of steps (the crop-size row
trains 256 px crops for a quarter of the steps: the same pixels through the loss network; the
steps rows train half and twice as long). Every run lives in
<runs-dir>/<style>/<variant>; a variant with a model.pt is finished and skipped, one with a
checkpoint is resumed, so the study can be stopped and started again.

Then every variant's network stylizes chicago and one more photo (--photos) at --size px, and
the script writes
 - <runs-dir>/<style>/recipe.md: one row per variant, all measured with the same rulers: the
   style judge (fastnst.judge, sliced Wasserstein distance of VGG features to the painting,
   lower = closer), the Gram loss of the bundled recipe's loss (conf/loss/johnson.yaml, painting
   at 512 px), its content loss and the edge SSIM to the photo (as evaluate.py computes them),
   plus the photo itself and Johnson et al. 2016's published output where the data folder holds one;
 - --picture (default docs/images/recipe_<style>.jpg): photos and painting, then one column per
   variant (rows: the photos).

Runs use trainer=cpu (bf16-mixed where the CPU has native bf16: --precision) and are started with
OMP_NUM_THREADS=--threads and OMP_WAIT_POLICY=PASSIVE; --jobs runs that
many variants at once. Start the script under `nice` to share the machine.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastnst  # noqa: F401  (imported first: it sets passive OpenMP waits before torch loads)

# isort: split

import torch

from fastnst.accel.autotune import cpu_info
from fastnst.zoo.recipe import (
    is_finished,
    run_training,
    train_command,
    variant_overrides,
    variants,
    wall_seconds,
)
from fastnst.zoo.scoring import recipe_table, reference_loss, score_row

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "src" / "fastnst" / "zoo"


def default_warm_from(style: str) -> str:
    others = sorted(p for p in ZOO.glob("*.pt") if p.stem != style)
    if not others:
        raise SystemExit(
            f"{ZOO}: no bundled network of another style to warm-start from (--warm-from)"
        )
    return str(others[-1])


# ----------------------------------------------------------------------------- training


def run_variant(args, name: str, spec: dict) -> str:
    run_dir = args.runs_dir / args.style / name
    if is_finished(run_dir):
        return f"{name}: finished before, skipped"
    overrides = variant_overrides(
        args.style,
        spec,
        args.steps,
        args.seed,
        args.precision,
        args.runs_dir,
        args.start_from,
        args.extra,
    )
    rc, took = run_training(
        train_command(overrides, run_dir), run_dir, "bench_recipe.log", args.threads
    )
    return f"{name}: {'done' if rc == 0 else f'FAILED (exit {rc}, see {run_dir}/bench_recipe.log)'} in {took:.0f} s"


# ----------------------------------------------------------------------------- measuring


def photo_paths(data_dir: Path, names: list[str]) -> list[Path]:
    paths = []
    for name in names:
        path = Path(name) if Path(name).suffix else data_dir / "content" / f"{name}.jpg"
        if not path.is_file():
            raise SystemExit(f"--photos: {path} not found")
        paths.append(path)
    return paths


def load_fit(path: Path, size: int) -> torch.Tensor:
    from fastnst.images import load_image

    return load_image(path, size)


def rulers(style: str, painting: Path):
    """The bundled recipe's loss (conf/loss/johnson.yaml, painting at 512 px) and the style
    judge."""
    from fastnst.judge import StyleJudge, painting_size

    return reference_loss(painting, preset="johnson"), StyleJudge(
        load_fit(painting, painting_size(style))
    )


def ruler_stamp(with_judge: bool) -> list:
    """Changes when the judge's or the loss's code changes: cached measurements are redone."""
    import fastnst.losses

    modules = [fastnst.losses]
    if with_judge:
        import fastnst.judge

        modules.append(fastnst.judge)
    return [Path(m.__file__).stat().st_mtime for m in modules]


def trained_steps(model: Path) -> int:
    from fastnst.artifacts import load_network

    return int(load_network(model)[1].get("global_step") or 0)


def val_loss(run_dir: Path) -> float | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run_dir.glob("events.out.tfevents.*"))
    if not events:
        return None
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    return acc.Scalars("val/loss")[-1].value if "val/loss" in acc.Tags()["scalars"] else None


def report(args, names: list[str], specs: dict) -> None:
    from fastnst.atomic import atomic_torch_save
    from fastnst.bundled import painting_path
    from fastnst.config import data_dir
    from fastnst.images import save_image
    from fastnst.styles import published_output
    from fastnst.stylize import Stylizer

    data = data_dir()
    painting = Path(painting_path(data, args.style))
    photos = photo_paths(data, args.photos)
    images = [load_fit(p, args.size) for p in photos]
    loss, judge = rulers(args.style, painting)
    rows, columns, reference = [], [], None

    def add(
        label: str,
        about: str,
        make_outputs,
        extra: dict | None = None,
        cache: Path | None = None,
        network: Path | None = None,
    ) -> list[torch.Tensor]:
        """Measure make_outputs() (cached in `cache` per network file, photos, size and rulers)."""
        key = {
            "size": args.size,
            "photos": [str(p) for p in photos],
            "rulers": ruler_stamp(judge is not None),
            "network": None if network is None else [str(network), network.stat().st_mtime],
        }
        saved = (
            torch.load(cache, weights_only=True) if cache is not None and cache.is_file() else None
        )
        if saved is not None and json.loads(saved["key"]) == key:
            outputs, per = saved["outputs"], json.loads(saved["per"])
        else:
            outputs = make_outputs()
            per = [score_row(loss, judge, o, i) for o, i in zip(outputs, images)]
            if cache is not None:
                atomic_torch_save(
                    {"key": json.dumps(key), "outputs": outputs, "per": json.dumps(per)}, cache
                )
        mean = {k: sum(r[k] for r in per) / len(per) for k in per[0]}
        rows.append({"variant": label, "about": about, **mean, **(extra or {})})
        return outputs

    def stylized(network: Path):
        with torch.no_grad():
            stylizer = Stylizer.load(network, device="cpu")
            return [stylizer(i).float().clamp(0, 1) for i in images]

    study = args.runs_dir / args.style
    add("photo", "the photo itself", lambda: images, cache=study / "recipe_photo_eval.pt")
    johnson = published_output(data, args.style, photos[0].stem)
    if (
        johnson is not None and johnson.is_file()
    ):  # first photo only: the published outputs are of chicago
        out = load_fit(johnson, args.size)
        out = torch.nn.functional.interpolate(
            out, size=images[0].shape[-2:], mode="bilinear", align_corners=False
        )
        reference = out
        per = score_row(loss, judge, out, images[0])
        rows.append(
            {"variant": "johnson2016", "about": f"published output ({photos[0].stem} only)", **per}
        )
    if args.start_from:  # the network every variant started from
        start = Path(args.start_from).resolve()
        outputs = add(
            "start",
            f"{start.name}, the network every variant was fine-tuned from",
            lambda: stylized(start),
            cache=study / "recipe_start_eval.pt",
            network=start,
        )
        columns.append(("start", outputs))
    for name in names:
        run_dir = args.runs_dir / args.style / name
        if not (run_dir / "model.pt").is_file():
            print(f"{name}: not trained yet, left out of the table", file=sys.stderr)
            continue
        model = run_dir / "model.pt"
        extra = {
            "val_loss": val_loss(run_dir),
            "steps": trained_steps(model),
            "wall_s": wall_seconds(run_dir),
        }
        outputs = add(
            name,
            specs[name]["about"],
            lambda m=model: stylized(m),
            extra,
            cache=run_dir / "recipe_eval.pt",
            network=model,
        )
        columns.append((name, outputs))
    table = recipe_table(rows, judge is not None)
    start = (
        f"each fine-tuned from {Path(args.start_from).name}" if args.start_from else "from scratch"
    )
    header = (
        f"Recipe study, {args.style}: {args.steps} steps x batch 4 (unless the row says otherwise), {start}, "
        f"seed {args.seed}, trainer.precision={args.precision}, on {cpu_info()[0]} ({args.threads} thread(s) per "
        f"run). Outputs at {args.size} px on "
        f"{', '.join(p.stem for p in photos)} (means). Rulers: style judge = sliced Wasserstein distance "
        "(fastnst.judge); Gram = style term of conf/loss/johnson.yaml (painting at 512 px); content = "
        "its relu2_2 term; edge SSIM as evaluate.py. val loss = the run's own loss (not comparable across "
        "rows with other losses).\n\n"
    )
    out = args.runs_dir / args.style / "recipe.md"
    out.write_text(header + table + "\n")
    (args.runs_dir / args.style / "recipe.json").write_text(json.dumps(rows, indent=1))
    print(header + table)
    if columns:
        picture = side_by_side(images, load_fit(painting, args.size), columns, reference)
        target = Path(args.picture or REPO / "docs" / "images" / f"recipe_{args.style}.jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_image(picture, target, overwrite=True)
        print(f"picture: {target}")


def side_by_side(
    images: list[torch.Tensor],
    painting: torch.Tensor,
    columns: list[tuple[str, list[torch.Tensor]]],
    reference: torch.Tensor | None = None,
):
    """Rows = photos; columns = photo, painting (first row only), the published reference output
    (first row only, when given), each variant; each panel labelled (fastnst.sheets)."""
    from fastnst.sheets import contact_sheet

    height = max(i.shape[-2] for i in images)
    fixed = [("painting", painting)] + (
        [("johnson2016", reference)] if reference is not None else []
    )
    rows = []
    for r, photo in enumerate(images):
        first = [(label, img, 0) if r == 0 else ("", None, 1) for label, img in fixed]
        rows.append(
            [("photo", photo, 0), *first, *((name, outputs[r], 0) for name, outputs in columns)]
        )
    return contact_sheet(rows, height)


def main(argv: list[str] | None = None) -> None:
    from fastnst.preflight import ArgumentParser

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="starry_night")
    parser.add_argument(
        "--steps", type=int, default=400, help="steps of the base row (default 400)"
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path.home() / ".cache" / "fastnst" / "recipe"
    )
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset, in this order (default: all)"
    )
    parser.add_argument(
        "--photos", default="chicago,stata", help="names in <data>/content or paths"
    )
    parser.add_argument(
        "--size", type=int, default=384, help="longer side of the judged outputs (px)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training run")
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once")
    parser.add_argument(
        "--precision",
        default="auto",
        help="trainer.precision of every run (default auto: "
        "bf16-mixed on CPUs with native bf16, else 32-true)",
    )
    parser.add_argument(
        "--warm-from",
        default=None,
        help="network of the warm-start row (default: a bundled network of another style)",
    )
    parser.add_argument(
        "--start-from",
        default=None,
        help="a network every variant is fine-tuned from (init_from=; "
        "the warm row keeps its own): a cheap study of which way each factor pulls a trained "
        "network. Default: every variant from scratch",
    )
    parser.add_argument(
        "--picture",
        default=None,
        help="side-by-side picture (default docs/images/recipe_<style>.jpg)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing; table and picture of what exists"
    )
    parser.add_argument(
        "--list", action="store_true", help="print the variants and their overrides, then exit"
    )
    parser.add_argument("extra", nargs="*", help="more Hydra overrides for every variant")
    args = parser.parse_args(argv)
    args.runs_dir = args.runs_dir.expanduser().resolve()
    args.photos = [p for p in args.photos.split(",") if p]
    specs = variants(args.style, args.warm_from or default_warm_from(args.style))
    names = list(specs) if not args.variants else [v for v in args.variants.split(",") if v]
    unknown = [n for n in names if n not in specs]
    if unknown:
        print(
            f"bench_recipe: --variants: unknown {', '.join(unknown)} (known: {', '.join(specs)})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if args.list:
        for name in names:
            print(
                f"{name}: {' '.join(specs[name]['overrides']) or '(none)'}  x{specs[name].get('steps', 1.0)} steps"
                f"  -- {specs[name]['about']}"
            )
        return
    torch.set_num_threads(max(1, args.threads))
    if not args.report_only:
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for line in pool.map(lambda n: run_variant(args, n, specs[n]), names):
                print(line, flush=True)
    report(args, names, specs)


if __name__ == "__main__":
    main()
