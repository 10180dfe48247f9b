"""Training runs of the zoo pipeline (scripts/zoo/train_zoo.py) and the recipe study
(scripts/bench/bench_recipe.py): the train.py command line, resuming, the log and the wall time,
written once for both; and the study's variants, each one change of the recipe.

    overrides = zoo_overrides(steps=400, seed=0) + ["style=wave"]
    rc, seconds = run_training(train_command(overrides, run_dir), run_dir, "train_zoo.log", 2)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# the zoo's warm-up steps, or an eighth of a shorter run
WARMUP_STEPS = 50
# checkpoints per run (at least every MIN_CHECKPOINT_STEPS steps): an interrupted run loses little
CHECKPOINTS_PER_RUN = 8
MIN_CHECKPOINT_STEPS = 10
# the run's wall time in seconds, summed over every resumed piece
WALL_FILE = "wall_s.txt"


def warmup_steps(steps: int) -> int:
    return min(WARMUP_STEPS, max(1, steps // 8))


def checkpoint_every(steps: int) -> int:
    return max(MIN_CHECKPOINT_STEPS, steps // CHECKPOINTS_PER_RUN)


def zoo_overrides(steps: int, seed: int) -> list[str]:
    """experiment=zoo for `steps` steps: validation and images once at the end, a checkpoint
    every checkpoint_every(steps), no progress bar, data loaded in the training process."""
    return [
        "experiment=zoo",
        f"seed={seed}",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        f"system.scheduler.warmup_steps={warmup_steps(steps)}",
        "trainer.enable_progress_bar=false",
        "data.num_workers=0",
        f"callbacks.images.every_n_steps={steps}",
        f"callbacks.last_checkpoint.every_n_steps={checkpoint_every(steps)}",
    ]


def train_command(overrides: list[str], run_dir: Path) -> list[str]:
    """python train.py <overrides> in `run_dir`, resumed there when it holds a checkpoint."""
    from fastnst.config import REPO_ROOT

    command = [sys.executable, str(REPO_ROOT / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        command.append(f"resume={run_dir}")
    return command


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "model.pt").is_file()


def wall_seconds(run_dir: Path) -> float | None:
    """The run's training wall time over all its pieces, None when not recorded."""
    path = run_dir / WALL_FILE
    return float(path.read_text()) if path.is_file() else None


def run_training(
    command: list[str], run_dir: Path, log_name: str, threads: int
) -> tuple[int, float]:
    """Run a training command on `threads` CPU threads (OpenMP waiting passively: other runs
    share the cores), its output appended to run_dir/log_name after the command line. On
    success the seconds are added to the run's WALL_FILE (a resumed run sums its pieces).
    Returns (exit code, seconds)."""
    from fastnst.config import REPO_ROOT

    run_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    start = time.time()
    with open(run_dir / log_name, "a") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        rc = subprocess.call(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    took = time.time() - start
    if rc == 0:
        (run_dir / WALL_FILE).write_text(f"{(wall_seconds(run_dir) or 0.0) + took:.0f}\n")
    return rc, took


# -- the recipe study's variants ----------------------------------------------------------------

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
    """name -> {"overrides": [...], "steps": factor of the study's steps, "about": one line,
    "preset": keep the style preset's size and weight instead of BEFORE_PRESETS}."""
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
            about="pytorch/examples: content relu2_2 x1e5, style relu1_2..4_3 x1e10, Adam 1e-3 "
            "constant, painting at its file's size (1024 px here)",
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


def variant_overrides(
    style: str,
    spec: dict,
    steps: int,
    seed: int,
    precision: str,
    runs_dir: Path,
    start_from: str | None = None,
    extra: list[str] = (),
) -> list[str]:
    """train.py overrides of one variant of the recipe study (`spec`: an entry of variants())."""
    steps = max(1, round(steps * spec.get("steps", 1.0)))
    own_start = any(o.startswith("init_from=") for o in spec["overrides"])
    return [
        *zoo_overrides(steps, seed),
        f"style={style}",
        "trainer=cpu",
        f"trainer.precision={precision}",
        "trainer.log_every_n_steps=10",
        "trainer.enable_model_summary=false",
        f"paths.output_root={runs_dir}",
        *([f"init_from={start_from}"] if start_from and not own_start else []),
        *(spec["overrides"] if spec.get("preset") else pinned(spec["overrides"])),
        *extra,
    ]


__all__ = [
    "WALL_FILE",
    "checkpoint_every",
    "is_finished",
    "pinned",
    "run_training",
    "train_command",
    "variant_overrides",
    "variants",
    "wall_seconds",
    "zoo_overrides",
]
