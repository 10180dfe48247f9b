"""train(cfg): build data, system, callbacks, logger and trainer from a composed config, fit,
then export the transformer alone for inference. `python train.py` wraps it with Hydra."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from fastnst.checkpointing import AtomicCheckpointIO
from fastnst.errors import FastNSTError
from fastnst.style import style_image_paths
from fastnst.transformer import save_exported

log = logging.getLogger("fastnst.train")


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group dict that has a _target_ (callbacks, loggers)."""
    if not group:
        return []
    if "_target_" in group:
        return [hydra.utils.instantiate(group)]
    return [hydra.utils.instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def check_writable(run_dir: Path) -> None:
    """Fail before any training when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise FastNSTError(f"{run_dir}: run directory is not writable ({e.strerror or e})") from None


def train(cfg: DictConfig) -> dict:
    """Train one style network. Returns {"run_dir", "model_path", "metrics"}."""
    run_dir = Path(str(cfg.run_dir)).expanduser().resolve()
    check_writable(run_dir)
    style_image_paths(cfg.style)  # a missing style image fails now, not after the data is scanned
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    system = hydra.utils.instantiate(cfg.system, _recursive_=False)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
    )
    log.info("run directory: %s", run_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and ckpt_path != "last" and not Path(str(ckpt_path)).is_file():
        raise FastNSTError(f"{ckpt_path}: checkpoint not found")
    trainer.fit(system, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    model_path = None
    if trainer.is_global_zero and cfg.get("export", True) and not trainer.fast_dev_run:
        model_path = save_exported(
            run_dir / "model.pt",
            system.net,
            meta={
                "style": str(cfg.style.get("name")),
                "data": str(cfg.data.get("name")),
                "model": OmegaConf.to_container(cfg.model, resolve=True),
                "global_step": int(trainer.global_step),
                "val_loss": metrics.get("val/loss"),
            },
        )
        log.info("exported model: %s", model_path)
    if trainer.is_global_zero:
        print(f"fastnst: run directory {run_dir}" + (f"; model {model_path}" if model_path else ""))
    return {"run_dir": run_dir, "model_path": model_path, "metrics": metrics, "global_step": trainer.global_step}


__all__ = ["train", "check_writable"]
