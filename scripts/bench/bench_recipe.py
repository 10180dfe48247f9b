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

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastnst.accel.cpu_tuning import passive_openmp_waits

passive_openmp_waits()  # before torch loads: its OpenMP reads the wait policy only then

import torch  # noqa: E402

from fastnst.accel.autotune import cpu_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zoo"))  # scripts/zoo/ (when imported)
from train_zoo import run_logged  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "src" / "fastnst" / "zoo"

# content-layer weights that give the same content term as relu2_2 x 0.1 on a stylized chicago
# (measured: relu2_2 4.5e4, relu3_3 1.4e5, relu4_2 3.6e5), so only the layer changes
# (Hydra merges a dict value into the preset's: relu2_2 is deleted, the other layer added)
CONTENT_RELU3_3 = ["~loss.content_layers.block2_conv2", "+loss.content_layers.block3_conv3=0.033"]
CONTENT_RELU4_2 = ["~loss.content_layers.block2_conv2", "+loss.content_layers.block4_conv2=0.0125"]


# The study's variants change one thing of the recipe that came before the per-style presets
# (painting at 512 px, style weight loss.beta alone); the `preset` row is the style's own preset.
BEFORE_PRESETS = ["style.size=512", "style.beta_scale=1.0"]


def pinned(overrides: list[str]) -> list[str]:
    """BEFORE_PRESETS, less the keys `overrides` sets, then `overrides`."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [o for o in BEFORE_PRESETS if o.split("=", 1)[0] not in keys] + list(overrides)


def variants(style: str, warm_from: str) -> dict[str, dict]:
    """name -> {"overrides": [...], "steps": factor of --steps, "about": one line, "preset": keep the
    style preset's size and weight instead of BEFORE_PRESETS}."""
    return {
        "base": dict(
            overrides=[],
            about="experiment=zoo before the presets: painting at 512 px, content relu2_2, "
            "beta 5, TV 0, 128 px crops",
        ),
        "preset": dict(
            overrides=[],
            preset=True,
            about="the style's preset (conf/style): its painting size and style weight",
        ),
        "style256": dict(
            overrides=["style.size=256"], about="painting at 256 px (2x the crop, not 4x)"
        ),
        "content3_3": dict(
            overrides=CONTENT_RELU3_3,
            about="content relu3_3 (Johnson's code), same content term size",
        ),
        "content4_2": dict(
            overrides=CONTENT_RELU4_2,
            about="content relu4_2 (texture_nets), same content term size",
        ),
        "beta25": dict(overrides=["loss.beta=25"], about="style weight x5"),
        "tv5e3": dict(
            overrides=["loss.tv_weight=5e3"],
            about="TV weight 5e3 (~10% of the loss on a grainy output)",
        ),
        "warm": dict(
            overrides=[f"init_from={warm_from}"],
            about=f"warm start from the bundled {Path(warm_from).stem} network",
        ),
        "peer": dict(
            overrides=[
                "loss=pytorch_examples",
                "system.optimizer.lr=1e-3",
                "system.scheduler=null",
                "style.size=null",
            ],
            about="pytorch/examples: content relu2_2 x1e5, style relu1_2..4_3 x1e10, Adam 1e-3 constant, "
            "painting at its file's size (1024 px here)",
        ),
        "crop256": dict(
            overrides=["data.image_size=256"],
            steps=0.25,
            about="256 px crops, 1/4 of the steps (same pixels)",
        ),
        "style256_beta25": dict(
            overrides=["style.size=256", "loss.beta=25"],
            about="painting at 256 px and style weight x5",
        ),
        "steps_half": dict(overrides=[], steps=0.5, about="half the steps (half the compute)"),
        "steps2x": dict(overrides=[], steps=2.0, about="twice the steps (2x the compute)"),
    }


def default_warm_from(style: str) -> str:
    others = sorted(p for p in ZOO.glob("*.pt") if p.stem != style)
    if not others:
        raise SystemExit(
            f"{ZOO}: no bundled network of another style to warm-start from (--warm-from)"
        )
    return str(others[-1])


# ----------------------------------------------------------------------------- training


def overrides_for(args, name: str, spec: dict, run_dir: Path) -> list[str]:
    steps = max(1, round(args.steps * spec.get("steps", 1.0)))
    # the zoo's 50 warm-up steps, or an eighth of a shorter run
    warmup = min(50, max(1, steps // 8))
    own_start = any(o.startswith("init_from=") for o in spec["overrides"])
    return [
        "experiment=zoo",
        f"style={args.style}",
        f"seed={args.seed}",
        "trainer=cpu",
        f"trainer.precision={args.precision}",
        f"system.scheduler.warmup_steps={warmup}",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.log_every_n_steps=10",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.num_workers=0",
        f"paths.output_root={args.runs_dir}",
        f"callbacks.images.every_n_steps={steps}",
        f"callbacks.last_checkpoint.every_n_steps={max(10, steps // 4)}",
        *([f"init_from={args.start_from}"] if args.start_from and not own_start else []),
        *(spec["overrides"] if spec.get("preset") else pinned(spec["overrides"])),
        *args.extra,
        f"hydra.run.dir={run_dir}",
    ]


def run_variant(args, name: str, spec: dict) -> str:
    run_dir = args.runs_dir / args.style / name
    if (run_dir / "model.pt").is_file():
        return f"{name}: finished before, skipped"
    command = [sys.executable, str(REPO / "train.py"), *overrides_for(args, name, spec, run_dir)]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        command.append(f"resume={run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    rc, took = run_logged(command, run_dir / "bench_recipe.log", args.threads)
    (run_dir / "wall_s.txt").write_text(f"{took:.0f}\n") if rc == 0 else None
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
    """The bundled recipe's loss (painting at 512 px) and the style judge (None when absent)."""
    from omegaconf import OmegaConf

    from fastnst.losses import PerceptualLoss
    from fastnst.style import mean_style_grams

    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "loss" / "johnson.yaml"))
    loss = PerceptualLoss(
        cfg["content_layers"], cfg["style_layers"], alpha=cfg["alpha"], beta=cfg["beta"]
    )
    loss.set_style_targets(mean_style_grams(loss, [painting], None, 512))
    try:
        from fastnst.judge import StyleJudge, painting_size
    except ImportError:
        return loss, None
    return loss, StyleJudge(load_fit(painting, painting_size(style)))


def measure(loss, judge, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    from fastnst.evaluate import edge_ssim

    with torch.no_grad():
        terms = loss(output.float(), loss.content_features(photo))
    row = {
        "gram": float(terms["style"]),
        "content": float(terms["content"]),
        "edge_ssim": edge_ssim(output, photo),
    }
    if judge is not None:
        row["swd"] = float(judge(output)["style_swd"])
    return row


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
            per = [measure(loss, judge, o, i) for o, i in zip(outputs, images)]
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
        per = measure(loss, judge, out, images[0])
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
        wall = run_dir / "wall_s.txt"
        extra = {
            "val_loss": val_loss(run_dir),
            "steps": trained_steps(model),
            "wall_s": float(wall.read_text()) if wall.is_file() else None,
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
    table = format_table(rows, judge is not None)
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


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: list[dict], with_judge: bool) -> str:
    head = "| variant | style judge (SWD) | Gram loss | content loss | edge SSIM | val loss | steps | wall s | what |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {_fmt(r.get('swd'), '.4f') if with_judge else '(no judge)'} | "
            f"{r['gram']:.0f} | {r['content']:.0f} | {r['edge_ssim']:.3f} | {_fmt(r.get('val_loss'), '.0f')} | "
            f"{_fmt(r.get('steps'), 'd')} | {_fmt(r.get('wall_s'), '.0f')} | {r['about']} |"
        )
    return "\n".join(lines)


def side_by_side(
    images: list[torch.Tensor],
    painting: torch.Tensor,
    columns: list[tuple[str, list[torch.Tensor]]],
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows = photos; columns = photo, painting (first row only), the published reference output
    (first row only, when given), each variant; with labels."""
    from PIL import Image, ImageDraw

    from fastnst.images import pil_to_tensor, tensor_to_pil

    cell_h, cell_w = max(i.shape[-2] for i in images), max(i.shape[-1] for i in images)
    label_h = 14
    fixed = ["photo", "painting"] + (["johnson2016"] if reference is not None else [])
    n_cols = len(fixed) + len(columns)
    sheet = Image.new("RGB", (n_cols * cell_w, label_h + len(images) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate([*fixed, *[name for name, _ in columns]]):
        draw.text((c * cell_w + 3, 1), title, fill="black")

    def paste(t: torch.Tensor, row: int, col: int):
        img = tensor_to_pil(t.clamp(0, 1))
        img.thumbnail((cell_w, cell_h))
        sheet.paste(
            img,
            (
                col * cell_w + (cell_w - img.width) // 2,
                label_h + row * cell_h + (cell_h - img.height) // 2,
            ),
        )

    for r, photo in enumerate(images):
        paste(photo, r, 0)
        if r == 0:
            paste(painting, r, 1)
            if reference is not None:
                paste(reference, r, 2)
        for c, (_, outputs) in enumerate(columns):
            paste(outputs[r], r, len(fixed) + c)
    return pil_to_tensor(sheet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
