"""Evaluate trained runs on a fixed set of content photos, so runs (datasets, styles, models)
compare on the same footing.

    metrics = evaluate_run("outputs/starry_night/imagenet_mini/johnson/2025-01-01_12-00-00")

For each photo (resized so its shorter side is `size`, center-cropped square, as in validation)
the run's network stylizes it and the run's own PerceptualLoss (config.yaml: loss, style, vgg)
scores the result: content, style and total loss. The Gatys reference optimizes the same photos
under the same loss for a fixed L-BFGS budget; it depends only on (style, loss, photos, size,
budget), so it is computed once and cached as JSON under `cache_dir`. Speed is the network's
time per image: the median of at least 5 calls after a warm-up call. Content fidelity ("edge SSIM") is the SSIM between the
Sobel edge maps of output and photo: 1 = every edge of the photo kept where it was.
`style_swd` (fastnst.judge) is the distance between the distributions of VGG feature vectors of
output and painting (lower = closer); unlike the Gram loss it is not fooled by a tint plus a
fine grain. The painting is taken at the judge's size for the style (`painting_size`), whatever
the run trained with, so runs of one style compare on one ruler.

Results go to <run>/eval.json and into the run's TensorBoard events as hparams metrics
(`eval/...`), next to the training settings. `python evaluate.py run=<dir>` is the CLI.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.atomic import write_json
from fastnst.config import (
    check_own_targets,
    data_dir,
    default_root,
    resolve_user_path,
    upgrade_saved_targets,
)
from fastnst.data import spread_subset
from fastnst.errors import FastNSTError
from fastnst.gatys import reference_rendering
from fastnst.images import (
    center_square,
    find_images,
    fit_image,
    is_image_file,
    open_rgb,
    pil_to_tensor,
)
from fastnst.judge import JUDGE_LAYERS, StyleJudge, painting_size
from fastnst.losses import PerceptualLoss
from fastnst.metrics import METRICS, hparam_columns, hparams_of, run_labels
from fastnst.multistyle import painted_size, preset_stroke_scale
from fastnst.preflight import ensure_writable
from fastnst.progress import bar
from fastnst.runners import resolve_device
from fastnst.stroke import shown, style_stroke_scale
from fastnst.style import build_loss, style_image_paths
from fastnst.stylize import Stylizer
from fastnst.vgg import VGG19Features

EVAL_FILE = "eval.json"
EVAL_VERSION = 1


# ----------------------------------------------------------------------------- run and photos


def default_data_dir() -> Path:
    return data_dir()  # fastnst.config: FASTNST_DATA when set and not empty, else data/


def default_photos() -> Path:
    """The validation split of data=imagenet_mini."""
    return default_data_dir() / "imagenet-mini" / "val"


def default_cache_dir() -> Path:
    return default_root() / "outputs" / ".cache" / "gatys"


def load_run_overrides(run_dir: str | os.PathLike) -> list[str] | None:
    """The command-line overrides a run was launched with (Hydra's record), None if absent
    or unreadable (the recipe is then rebuilt from the config)."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        overrides = OmegaConf.load(path) if path.is_file() else None
    except Exception:
        return None
    return [str(o) for o in overrides] if OmegaConf.is_list(overrides) else None


def load_run_config(run_dir: str | os.PathLike) -> DictConfig:
    """The resolved training config train() wrote into the run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FastNSTError(f"{run_dir}: no such run directory")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FastNSTError(f"{run_dir}: not a training run directory (no config.yaml)")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:
        raise FastNSTError(f"{path}: cannot read the run's config ({type(e).__name__})") from None
    upgrade_saved_targets(cfg)  # a class that moved since the run was saved
    # the sections the evaluation builds objects from: the network and the loss
    check_own_targets(cfg, ("model", "loss", "style"), path)
    check_painting_sizes(cfg.get("style"), path)
    return cfg


# the largest painting side (px) an evaluation builds: a run's config.yaml is user input, and a
# crafted style.size x stroke_scale must not make it allocate gigabytes
MAX_PAINTING_SIDE = 8192


def check_painting_sizes(style, path) -> None:
    """The style section of a run's config.yaml: stroke_scale a number in range, every painting
    size (the style's, each multi-style member's) a whole number of px whose painted size
    (size x stroke_scale) is at most MAX_PAINTING_SIDE; else one line naming the file."""
    if not hasattr(style, "get"):
        raise FastNSTError(f"{path}: style must be a mapping")
    members = style.get("members") or []
    if not isinstance(members, (list, tuple)) and not OmegaConf.is_list(members):
        raise FastNSTError(f"{path}: style.members must be a list")
    for where, entry in [
        ("style", style),
        *((f"style.members[{i}]", m) for i, m in enumerate(members)),
    ]:
        if not hasattr(entry, "get"):
            raise FastNSTError(f"{path}: {where} must be a mapping")
        scale = style_stroke_scale(entry, source=f"{path}: {where}.stroke_scale")
        size = entry.get("size")
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise FastNSTError(
                f"{path}: {where}.size must be a whole number of px, got {shown(size)}"
            )
        if size * scale > MAX_PAINTING_SIDE:
            raise FastNSTError(
                f"{path}: {where}.size {size} x stroke_scale {scale:g} is over "
                f"{MAX_PAINTING_SIDE} px (the largest painting an evaluation builds)"
            )


def evaluation_photo_paths(photos=None, num_photos: int | None = 8) -> list[Path]:
    """The evaluation set: a folder (searched recursively), an image file or a list of them,
    `num_photos` evenly spread over the sorted files (None = all)."""
    if photos is None:
        photos = default_photos()
    if isinstance(photos, str | os.PathLike):
        photos = [photos]
    paths: list[Path] = []
    for entry in photos:
        path = resolve_user_path(entry)
        if path.is_dir():
            found = find_images(path)
            if not found:
                raise FastNSTError(f"{path}: no images in the evaluation photo folder")
            paths += found
        elif path.is_file() and is_image_file(path):
            paths.append(path)
        else:
            raise FastNSTError(f"{path}: evaluation photos: no such image or folder")
    if num_photos is not None and int(num_photos) < 1:
        raise FastNSTError(f"num_photos must be at least 1 (or null for all), got {num_photos}")
    if num_photos is not None and int(num_photos) > len(paths):
        print(
            f"fastnst: note: num_photos={num_photos} but there are only {len(paths)} evaluation photos: "
            f"using all {len(paths)}",
            file=sys.stderr,
        )
    return spread_subset(paths, None if num_photos is None else int(num_photos))


def load_photo(path: Path, size: int) -> torch.Tensor:
    """(1, 3, size, size): shorter side resized to `size`, center crop (like validation)."""
    return pil_to_tensor(center_square(open_rgb(path), size))


# ----------------------------------------------------------------------------- metrics


def edge_map(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the luminance, scaled to [0, 1] per image."""
    import kornia

    edges = kornia.filters.sobel(kornia.color.rgb_to_grayscale(image.float().clamp(0, 1)))
    return edges / edges.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


def edge_ssim(output: torch.Tensor, photo: torch.Tensor) -> float:
    """Structural similarity of the edge maps (content fidelity): 1 = the photo's edges kept."""
    import kornia

    if output.shape[-2:] != photo.shape[-2:]:
        output = torch.nn.functional.interpolate(
            output, size=photo.shape[-2:], mode="bilinear", align_corners=False
        )
    return float(kornia.metrics.ssim(edge_map(output), edge_map(photo), window_size=11).mean())


def loss_terms(loss: PerceptualLoss, output: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        terms = loss(output.float(), loss.content_features(photo))
    return {k: float(terms[k]) for k in ("content", "style", "total")}


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


# ----------------------------------------------------------------------------- Gatys reference


def _file_digest(path: Path) -> str:
    """A file's content digest: a data set copied again or moved (new paths, names or mtimes, as
    a re-provisioned shared folder has) still hits the cache; an edited photo does not."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def gatys_cache_key(cfg: DictConfig, photo_paths: list[Path], size: int, iterations: int) -> str:
    """What the reference depends on: the style (settings and files), the loss, the VGG weights,
    the photos, the size and the iteration budget."""
    style_paths, _ = style_image_paths(cfg.style)
    material = {
        "version": EVAL_VERSION,
        "style": OmegaConf.to_container(cfg.style, resolve=True),
        "style_files": [_file_digest(p) for p in style_paths],
        "loss": OmegaConf.to_container(cfg.loss, resolve=True),
        "vgg": str(cfg.vgg.weights),
        "photos": [_file_digest(p) for p in photo_paths],
        "size": int(size),
        "iterations": int(iterations),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[
        :20
    ]


def gatys_reference(
    loss: PerceptualLoss,
    cfg: DictConfig,
    photo_paths: list[Path],
    photos: list[torch.Tensor],
    size: int,
    iterations: int,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    judge: StyleJudge | None = None,
) -> dict[str, float]:
    """Mean content/style/total loss, edge SSIM and (with a `judge`) style_swd of Gatys (L-BFGS
    from the photo, single scale, `iterations` loss evaluations) on the photos; cached per cache
    key (an entry written before the judge existed is kept: it lacks gatys/style_swd)."""
    cache_dir = resolve_user_path(cache_dir) if cache_dir else default_cache_dir()
    cache = cache_dir / f"{gatys_cache_key(cfg, photo_paths, size, iterations)}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text())["metrics"]
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache entry is recomputed
    rows = []
    for photo in bar(photos, progress=progress, desc="gatys reference", unit="photo"):
        result = reference_rendering(photo, loss, iterations)
        rows.append(
            {
                **loss_terms(loss, result.image, photo),
                "edge_ssim": edge_ssim(result.image, photo),
                **({"style_swd": judge(result.image)["style_swd"]} if judge else {}),
            }
        )
    metrics = {
        f"gatys/{k}": _mean(rows, k)
        for k in ("content", "style", "style_swd", "total", "edge_ssim")
        if k in rows[0]
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            cache,
            {
                "metrics": metrics,
                "style": str(cfg.style.get("name")),
                "iterations": iterations,
                "size": size,
                "photos": [str(p) for p in photo_paths],
            },
            indent=1,
        )
    except OSError as e:
        print(
            f"fastnst: warning: cannot write the Gatys cache {cache} ({e.strerror or e})",
            file=sys.stderr,
        )
    return metrics


# ----------------------------------------------------------------------------- TensorBoard


def log_to_tensorboard(
    run_dir: Path, cfg: DictConfig, labels: dict[str, str], metrics: dict[str, float], step: int = 0
) -> None:
    """hparams (settings + eval metrics) and the metrics as scalars, into the run's own events,
    so TensorBoard's hparams view lists each run's settings with its evaluation."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    tagged = {f"eval/{k}": v for k, v in metrics.items()}
    # the same columns training declared (the validation metrics it logs stay columns of the view)
    experiment, session_start, session_end = hparams(
        hparams_of(cfg, labels), hparam_columns(metrics)
    )
    with SummaryWriter(log_dir=str(run_dir)) as writer:
        for summary in (experiment, session_start, session_end):
            writer.file_writer.add_summary(summary)
        for tag, value in tagged.items():
            writer.add_scalar(tag, value, step)


# ----------------------------------------------------------------------------- one run


def _write_json(path: Path, payload: dict) -> None:
    try:
        write_json(path, payload, indent=1)
    except OSError as e:
        raise FastNSTError(f"{path}: cannot write the evaluation ({e.strerror or e})") from None


def read_eval(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError):
        return None


def load_run_stylizer(
    run_dir: Path,
    cfg,
    *,
    device: str = "auto",
    backend: str = "auto",
    trust_model_file: bool = False,
) -> Stylizer:
    """The run's network painting at its config's stroke scale (`style.stroke_scale`), against
    which its painting is measured: the run's model.pt carries the scale it was trained with,
    and a later edit of the config (a bundled network painted larger) must be what is judged.
    Only the options that open the file are taken: the network is opened once, and a Stylizer
    rebuilt at another scale would not carry per-call defaults along."""
    stylizer = Stylizer.load(
        run_dir, device=device, backend=backend, trust_model_file=trust_model_file
    )
    wanted = preset_stroke_scale(cfg.style)
    if stylizer.styles or wanted == stylizer.native_stroke_scale:
        return stylizer
    # the same opened network (runner, file's meta), painting at the config's scale
    return Stylizer(
        stylizer.runner,
        stylizer.net,
        source=stylizer.source,
        meta=stylizer.meta,
        stroke_scale=wanted / stylizer.native_stroke_scale,
    )


def evaluate_run(
    run_dir: str | os.PathLike,
    photos=None,
    num_photos: int | None = 8,
    size: int = 256,
    gatys_iterations: int = 50,
    cache_dir: str | os.PathLike | None = None,
    backend: str = "auto",
    device: str = "auto",
    tensorboard: bool = True,
    overwrite: bool = False,
    progress: bool | str | None = False,
    trust_model_file: bool = False,
) -> dict:
    """Evaluate one run (see the module docstring); returns what it writes to <run>/eval.json.

    An existing eval.json is returned as is unless `overwrite`. photos: a folder, an image or a
    list (default: the imagenet-mini validation split of $FASTNST_DATA). gatys_iterations=0
    skips the reference. trust_model_file: see `Stylizer.load`. progress: bars on stderr (true,
    false, or "auto": only on a terminal).
    """
    run_dir = resolve_user_path(run_dir)
    cfg = load_run_config(run_dir)
    existing = read_eval(run_dir)
    if existing is not None and not overwrite:
        return existing
    size, gatys_iterations = int(size), int(gatys_iterations)
    if size < 16:
        raise FastNSTError(f"size must be at least 16 px, got {size}")
    if gatys_iterations < 0:
        raise FastNSTError(
            f"gatys_iterations must be >= 0 (0 = no Gatys reference), got {gatys_iterations}"
        )
    ensure_writable(
        run_dir, "run directory", folder=True
    )  # eval.json and TensorBoard events go there
    dev = resolve_device(device)
    # the run's network first: a run without one is named in the error, whatever the photos
    stylizer = load_run_stylizer(
        run_dir, cfg, device=str(dev), backend=backend, trust_model_file=trust_model_file
    )
    photo_paths = evaluation_photo_paths(photos, num_photos)
    images = [load_photo(p, size).to(dev) for p in photo_paths]
    stylizer(images[0])  # warm-up: first-call allocations and lazy initialisation are not speed
    if not stylizer.styles:
        metrics, rows = _evaluate_style(
            stylizer,
            None,
            cfg,
            photo_paths,
            images,
            size,
            gatys_iterations,
            cache_dir,
            progress,
            dev,
        )
        per_style = None
    else:  # a multi-style network: each style against its own targets; metrics = the mean over styles
        from fastnst.multistyle import members_of

        per_style, rows = {}, []
        for member in members_of(cfg.style):
            style_cfg = cfg.copy()
            style_cfg.style = OmegaConf.create(member)
            per_style[member["name"]], style_rows = _evaluate_style(
                stylizer,
                member["name"],
                style_cfg,
                photo_paths,
                images,
                size,
                gatys_iterations,
                cache_dir,
                progress,
                dev,
            )
            rows += [{"style": member["name"], **row} for row in style_rows]
        metrics = {
            k: sum(m[k] for m in per_style.values()) / len(per_style)
            for k in next(iter(per_style.values()))
        }

    labels = run_labels(run_dir, cfg)
    step = int(stylizer.meta.get("global_step") or 0)
    result = {
        "version": EVAL_VERSION,
        "run_dir": str(run_dir),
        **labels,
        "global_step": step,
        "settings": {
            "photos": [str(p) for p in photo_paths],
            "size": size,
            "gatys_iterations": gatys_iterations,
            "backend": stylizer.backend,
            "device": str(dev),
        },
        "metrics": metrics,
        **({"per_style": per_style} if per_style else {}),
        "per_photo": rows,
    }
    _write_json(run_dir / EVAL_FILE, result)
    if tensorboard:
        log_to_tensorboard(run_dir, cfg, labels, metrics, step)
    return result


def _evaluate_style(
    stylizer, style, cfg, photo_paths, images, size, gatys_iterations, cache_dir, progress, dev
):
    """(metrics, per-photo rows) of one style (`style`: a multi-style network's style name)."""
    # the painting at the scale the network paints (a preset with stroke_scale 2 learns its
    # motifs at half size): the Gram loss and Gatys see the same strokes as the output
    painted = OmegaConf.create(
        {
            **OmegaConf.to_container(cfg.style, resolve=True),
            "size": painted_size(cfg.style),
            "stroke_scale": 1.0,
        }
    )
    loss = build_loss(
        cfg.loss, painted, vgg_weights=str(cfg.vgg.weights), device=dev, style_size=size
    )
    judge = style_judge(cfg.style, str(cfg.vgg.weights), dev)
    rows = []
    for path, photo in bar(
        list(zip(photo_paths, images)),
        progress=progress,
        unit="photo",
        desc="evaluate" if style is None else f"evaluate {style}",
    ):
        output, ms = _timed_call(stylizer, photo, style, dev)
        output = output.to(dev).float()
        rows.append(
            {
                "photo": str(path),
                **loss_terms(loss, output, photo),
                "style_swd": judge(output)["style_swd"],
                "edge_ssim": edge_ssim(output, photo),
                "ms": ms,
            }
        )
    metrics = {k: _mean(rows, k) for k in ("content", "style", "style_swd", "total", "edge_ssim")}
    metrics["ms_per_image"] = _median_ms(stylizer, images, style, dev, [row["ms"] for row in rows])
    if gatys_iterations:
        metrics.update(
            gatys_reference(
                loss, cfg, photo_paths, images, size, gatys_iterations, cache_dir, progress, judge
            )
        )
        metrics["total_vs_gatys"] = (
            metrics["total"] / metrics["gatys/total"] if metrics["gatys/total"] else math.nan
        )
    return {k: metrics[k] for k in METRICS if k in metrics}, rows


# a collection style (images_dir: thousands of frames) is judged against this many of its images
JUDGE_MAX_PAINTINGS = 8


def style_judge(style: DictConfig, vgg_weights: str = "embedded", device="cpu") -> StyleJudge:
    """fastnst.judge's measure against the style's painting(s), each at the judge's size for the
    style (`painting_size`: its motifs at the pixel scale a good network paints them)."""
    paths, _ = style_image_paths(style)
    paintings = []
    for path in spread_subset(paths, JUDGE_MAX_PAINTINGS):
        image = open_rgb(path)
        paintings.append(
            fit_image(image, painting_size(style.get("name"), max(image.size))).to(device)
        )
    return StyleJudge(paintings, vgg=VGG19Features(JUDGE_LAYERS, weights=vgg_weights).to(device))


def _timed_call(
    stylizer, photo: torch.Tensor, style: str | None, dev: torch.device
) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    output = stylizer(photo) if style is None else stylizer(photo, style=style)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return output, (time.perf_counter() - start) * 1000


# ms/image is the median of at least this many warm calls: one call slowed by another job on the
# machine moves a mean, not a median
MIN_TIMED_CALLS = 5


def _median_ms(
    stylizer, images: list[torch.Tensor], style: str | None, dev: torch.device, times: list[float]
) -> float:
    """The median time of the warm calls made while scoring, topped up to MIN_TIMED_CALLS."""
    times = list(times)
    while len(times) < MIN_TIMED_CALLS:
        times.append(_timed_call(stylizer, images[len(times) % len(images)], style, dev)[1])
    return statistics.median(times)


def format_metrics(result: dict) -> str:
    m = result["metrics"]
    text = f"content {m['content']:.4g}  style {m['style']:.4g}"
    if "style_swd" in m:
        text += f"  style_swd {m['style_swd']:.3f}"
    text += f"  total {m['total']:.4g}"
    if "gatys/total" in m:
        text += f"  (Gatys total {m['gatys/total']:.4g}, x{m['total_vs_gatys']:.2f})"
    return text + f"  edge SSIM {m['edge_ssim']:.3f}  {m['ms_per_image']:.1f} ms/image"


__all__ = [
    "evaluate_run",
    "evaluation_photo_paths",
    "gatys_reference",
    "edge_ssim",
    "run_labels",
    "style_judge",
    "load_run_config",
    "read_eval",
    "format_metrics",
    "METRICS",
    "EVAL_FILE",
]
