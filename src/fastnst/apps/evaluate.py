"""`python evaluate.py run=<dir>` or `run=[<dir>,<dir>]`: metrics of trained runs against a
cached Gatys reference (`fastnst.evaluate.evaluate_run`; conf/inference/evaluate.yaml)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from fastnst.config import required, resolve_user_path
from fastnst.evaluate import EVAL_FILE, default_cache_dir, evaluate_run, format_metrics, read_eval
from fastnst.preflight import ensure_writable


def evaluate_cli(cfg: DictConfig) -> list[dict]:
    """`python evaluate.py run=<dir>` or `run=[<dir>,<dir>]`."""
    required(
        cfg, "run", "(a run directory), e.g. `python evaluate.py run=outputs/starry_night/...`"
    )
    runs = list(cfg.run) if isinstance(cfg.run, ListConfig) else [cfg.run]
    if (
        cfg.gatys_iterations
    ):  # the reference is cached there (each run's folder is checked as it is read)
        ensure_writable(
            resolve_user_path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(),
            "cache_dir",
            folder=True,
        )
    results = []
    for run in runs:
        existed = read_eval(resolve_user_path(run)) is not None
        result = evaluate_run(
            run,
            photos=OmegaConf.to_container(cfg.photos)
            if isinstance(cfg.photos, ListConfig)
            else cfg.photos,
            num_photos=cfg.num_photos,
            size=cfg.size,
            gatys_iterations=cfg.gatys_iterations,
            cache_dir=cfg.cache_dir,
            backend=cfg.backend,
            device=cfg.device,
            tensorboard=cfg.tensorboard,
            overwrite=cfg.overwrite,
            progress=cfg.progress,
            trust_model_file=bool(cfg.trust_model_file),
        )
        note = (
            " (existing eval.json; overwrite=true re-evaluates)"
            if existed and not cfg.overwrite
            else ""
        )
        print(
            f"{result['style']} / {result['data']} / {result['model']}: {format_metrics(result)}{note}"
        )
        print(f"  -> {Path(result['run_dir']) / EVAL_FILE}")
        results.append(result)
    return results
