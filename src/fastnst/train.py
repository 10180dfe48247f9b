"""train(cfg): build data, system, callbacks, logger and trainer from a composed config, fit,
then export the transformer alone for inference. `python train.py` wraps it with Hydra."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import warnings
import zipfile
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.accel.cpu_tuning import keep_freed_memory
from fastnst.callbacks import LAST, PREVIOUS, DivergenceGuard, LogImagesAndHparams
from fastnst.checkpointing import AtomicCheckpointIO
from fastnst.errors import FastNSTError
from fastnst.formats import check_is_training_checkpoint, save_exported
from fastnst.margin import preset_margin
from fastnst.multistyle import (
    check_init_options,
    expand_multi_style,
    is_multi,
    members_of,
    own_stroke_scales,
    preset_stroke_scale,
)
from fastnst.preflight import check_train_setup
from fastnst.stroke import style_stroke_scale
from fastnst.style import instantiate_loss, style_image_paths
from fastnst.train_progress import quiet_lightning

log = logging.getLogger("fastnst.train")


def _instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group dict that has a _target_ (callbacks, loggers)."""
    if not group:
        return []
    if "_target_" in group:
        return [hydra.utils.instantiate(group)]
    return [
        hydra.utils.instantiate(c)
        for c in group.values()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


# system.optimizer keys that are not the optimizer's: how its lr follows the global batch
LR_SCALING_KEYS = ("scale_lr_with_batch", "base_batch_size")


def build_optimizer(optimizer_cfg: DictConfig):
    """(a partial optimizer, the lr-scaling settings) from system.optimizer: its `_target_`
    with `_partial_: true`, minus scale_lr_with_batch and base_batch_size."""
    settings = OmegaConf.to_container(optimizer_cfg, resolve=True)
    scaling = {key: settings.pop(key) for key in LR_SCALING_KEYS}
    return hydra.utils.instantiate(settings, _convert_="all"), scaling


def build_system(cfg: DictConfig) -> pl.LightningModule:
    """The LightningModule of a train config (`system._target_`), given its network (the model
    group's `_target_`, with the style names of a multi-style config), its loss (the loss
    group's `_target_`, partial: the module builds the frozen VGG) and a partial optimizer."""
    styles = [m["name"] for m in members_of(cfg.style)] if is_multi(cfg.style) else None
    net = hydra.utils.instantiate(cfg.model, styles=styles, _convert_="all")
    loss = instantiate_loss(cfg.loss, _partial_=True)
    optimizer, scaling = build_optimizer(cfg.system.optimizer)
    settings = OmegaConf.to_container(cfg.system, resolve=True)
    system_class = hydra.utils.get_class(settings.pop("_target_"))
    settings.pop("optimizer")
    return system_class(net=net, loss=loss, optimizer=optimizer, **scaling, **settings)


def absolute_user_paths(cfg: DictConfig) -> None:
    """Store the files a run reads as absolute paths (in place), so that config.yaml still
    finds them from another folder (evaluate.py, compare_runs.py, resume=)."""
    from fastnst.config import resolve_user_path

    def absolute(node: DictConfig | None, key: str, keep=()):
        value = node.get(key) if node is not None else None
        if value is not None and not OmegaConf.is_missing(node, key) and str(value) not in keep:
            node[key] = str(resolve_user_path(value))

    style = cfg.get("style")
    absolute(style, "image")
    absolute(style, "images_dir")
    if style is not None and style.get("images"):
        style.images = [str(resolve_user_path(p)) for p in style.images]
    absolute(cfg.get("data"), "root")
    absolute(cfg.get("vgg"), "weights", keep=("embedded", "torchvision"))
    init_from = cfg.get("init_from")
    if init_from is not None and not OmegaConf.is_missing(cfg, "init_from"):
        # a file or folder first, else a bundled network's name (init_from=six_styles), as model=;
        # a name close to a bundled one's is an unknown style with the suggestion. A bundled name
        # stays a name: the run's config says six_styles, not this machine's install path
        from fastnst.zoo import ZOO_DIR, resolve_model

        path = resolve_user_path(init_from)
        if not path.exists():
            path = resolve_model(init_from)
        cfg.init_from = str(init_from) if path.parent == ZOO_DIR else str(path)
    if cfg.get("teachers") is not None:
        from fastnst.distill import absolute_teachers

        cfg.teachers = absolute_teachers(cfg.teachers)  # a DictConfig is a Mapping


def init_path(init_from):
    """The file an init_from= reads: itself, or the bundled network it names (six_styles)."""
    if not init_from:
        return None
    from fastnst.zoo import resolve_model

    return resolve_model(init_from)


def check_required_options(cfg: DictConfig) -> None:
    """A mandatory option left unset (`???`, e.g. data=folder without data.root) is one line."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise FastNSTError(f"{', '.join(missing)}: required option not set (pass {missing[0]}=...)")


def check_can_create(folder: Path, what: str) -> None:
    """Fail before Hydra or training starts when `folder` cannot be created or written:
    a regular file on its path, or an ancestor without write permission."""
    from fastnst.preflight import ensure_writable

    ensure_writable(Path(str(folder)), what, folder=True)


def check_writable(run_dir: Path) -> None:
    """Fail before any training when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write_test.{os.getpid()}"  # per process: DDP ranks probe at once
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise FastNSTError(
            f"{run_dir}: run directory is not writable ({e.strerror or e})"
        ) from None


def checkpoint_is_intact(path: Path) -> bool:
    """torch.save files are zip archives: a truncated or corrupted one fails the CRC check."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def resolve_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint to start from: resume=<run dir> or ckpt_path=last -> its last.ckpt (or,
    when that one is damaged, the previous one LastCheckpoint kept)."""
    if cfg.resume:
        if not run_dir.is_dir():
            raise FastNSTError(f"{run_dir}: resume: no such run directory")
        return str(latest_good_checkpoint(run_dir))
    ckpt_path = cfg.ckpt_path
    if not ckpt_path:
        return None
    if str(ckpt_path) == "last":
        return str(latest_good_checkpoint(run_dir))
    path = Path(str(ckpt_path)).expanduser().resolve()
    if not path.is_file():
        raise FastNSTError(f"{path}: checkpoint not found")
    if not checkpoint_is_intact(path):
        raise FastNSTError(f"{path}: checkpoint is truncated or corrupt")
    check_is_training_checkpoint(path)
    return str(path)


def latest_good_checkpoint(run_dir: Path) -> Path:
    folder = run_dir / "checkpoints"
    candidates = [folder / LAST, folder / PREVIOUS]
    for path in candidates:
        if path.is_file():
            if checkpoint_is_intact(path):
                return path
            log.warning("%s is truncated or corrupt; trying the previous checkpoint", path)
            print(
                f"fastnst: warning: {path} is truncated or corrupt, using the previous checkpoint",
                file=sys.stderr,
            )
    raise FastNSTError(
        f"{run_dir}: no intact checkpoint to resume from (looked for {LAST} and {PREVIOUS} in {folder})"
    )


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """One live training process per run directory: two runs never write into the same one."""
    lock = run_dir / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left behind by a killed run
                continue
            except PermissionError:
                pass
            raise FastNSTError(
                f"{run_dir}: run directory is in use by another training process (pid {pid})"
            ) from None
    else:
        raise FastNSTError(f"{run_dir}: cannot lock the run directory")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _uses_cuda(trainer_cfg: DictConfig) -> bool:
    accelerator = str(trainer_cfg.accelerator)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _progress_bar(cfg: DictConfig, callbacks: list) -> list:
    """The step/total, images/s and ETA line (fastnst.train_progress): a bar on a terminal (or
    progress=true), a log line every log_every_n_steps steps otherwise. On CUDA the bar refreshes
    every log_every_n_steps steps: each refresh reads the logged loss, a host-device sync that
    would stall the GPU every step."""
    from pytorch_lightning.callbacks import ProgressBar

    from fastnst.progress import show_progress
    from fastnst.train_progress import StepProgressBar

    trainer_cfg = cfg.trainer
    if not _progress_enabled(cfg) or any(isinstance(c, ProgressBar) for c in callbacks):
        return []
    every = max(1, int(trainer_cfg.log_every_n_steps or 1))
    return [
        StepProgressBar(
            show_progress(cfg.get("progress")),
            refresh_every=every if _uses_cuda(trainer_cfg) else 1,
            line_every=every,
        )
    ]


def _progress_enabled(cfg: DictConfig) -> bool:
    from fastnst.progress import show_progress

    progress = cfg.get("progress")  # None (a run saved before the switch existed) = auto
    return bool(cfg.trainer.enable_progress_bar) and (
        progress is None or str(progress).lower() == "auto" or show_progress(progress)
    )


def _check_multirun_ddp(trainer: pl.Trainer) -> None:
    """Lightning's DDP launcher re-runs the command line for ranks > 0; with -m and Hydra's
    local launcher that would start the whole sweep again in every rank."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning_fabric.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher as FabricLauncher,
    )
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    # the Trainer uses pytorch_lightning's own launcher class (not a subclass of Fabric's)
    launcher = getattr(trainer.strategy, "launcher", None)
    if not (
        HydraConfig.initialized()
        and isinstance(launcher, (_SubprocessScriptLauncher, FabricLauncher))
        and trainer.world_size > 1
    ):
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and "BasicLauncher" in str(
        hydra_cfg.launcher.get("_target_", "")
    ):
        raise FastNSTError(
            "trainer=ddp with several devices cannot run inside a local multirun (-m): run one "
            "configuration per command, or send the sweep to a cluster with hydra/launcher=submitit_slurm"
        )


def train(cfg: DictConfig, callbacks: list | None = None) -> dict:
    """Train one style network; `callbacks` are added to the configured ones (for programmatic
    use). Returns {"run_dir", "model_path", "metrics", "global_step"}.

    Under DDP every rank runs this function (Lightning re-runs the command for ranks > 0 with
    the same hydra.run.dir, so all ranks share one run directory); only global rank zero saves
    the config, holds the run lock and writes logs, checkpoints and the exported model.

    A new run that stops before its first training step (a bad option, missing data...) leaves
    no run directory behind; neither does a fast_dev_run (debug=fdr)."""
    run_dir = Path(str(cfg.run_dir)).expanduser().resolve()
    resuming = bool(cfg.resume)
    state: dict = {"trainer": None}
    try:
        ckpt_path = resolve_checkpoint(cfg, run_dir)
        check_required_options(cfg)
        check_train_setup(cfg)  # the precision, the photo folder (train.py checked them already)
        style_stroke_scale(cfg.get("style"))  # finite, in range: before it reaches model.pt
        preset_margin(cfg.get("style"))  # a whole number of pixels, likewise
        absolute_user_paths(cfg)
        expand_multi_style(cfg)
        check_init_options(cfg, init_path(cfg.get("init_from")))
        check_writable(run_dir)
        result = _train(cfg, run_dir, ckpt_path, callbacks, state)
    except BaseException:
        if not resuming and _global_step(state["trainer"]) == 0:
            remove_untrained_run_dir(run_dir, cfg)
        raise
    if state["trainer"].fast_dev_run and not resuming:
        remove_untrained_run_dir(run_dir, cfg)  # "one batch, no outputs"
    return result


def _global_step(trainer: pl.Trainer | None) -> int:
    return 0 if trainer is None else int(trainer.global_step)


# what a new run writes before its first step; a directory holding anything else is kept
_RUN_DIR_SCAFFOLD = {".hydra", "config.yaml", "train.log", "hparams.yaml", "checkpoints", ".lock"}


def remove_untrained_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Remove a run directory that holds nothing trained (no checkpoint, no model), and the
    empty <style>/<data>/<model> folders above it, so it does not show up in TensorBoard."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0 or not run_dir.is_dir():
        return
    entries = list(run_dir.iterdir())
    if any(
        e.name not in _RUN_DIR_SCAFFOLD and not e.name.startswith("events.out.tfevents.")
        for e in entries
    ):
        return
    if any(run_dir.glob("checkpoints/**/*.ckpt")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    root = (
        Path(str(OmegaConf.select(cfg, "paths.output_root", default="") or "/"))
        .expanduser()
        .resolve()
    )
    parent = run_dir.parent
    while parent != root and root in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _train(
    cfg: DictConfig, run_dir: Path, ckpt_path: str | None, callbacks: list | None, state: dict
) -> dict:
    style_image_paths(cfg.style)  # a missing style image fails now, not after the data is scanned
    quiet_lightning()
    if cfg.seed is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    if not _uses_cuda(cfg.trainer):
        keep_freed_memory()  # batch-sized VGG maps stop page-faulting in: a CPU step ran 1.36x faster

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data)
    callbacks = _instantiate_group(cfg.get("callbacks")) + list(callbacks or [])
    for callback in callbacks:
        if isinstance(callback, LogImagesAndHparams) and callback.run_config is None:
            callback.run_config = cfg  # the hparams view: the run's settings
    callbacks += _progress_bar(cfg, callbacks)
    callbacks.append(_AnnounceRunDir(run_dir, at_start=bool(cfg.resume)))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer = state["trainer"] = _make_trainer(
        _short_run_intervals(cfg.trainer, _progress_enabled(cfg)), callbacks, loggers, run_dir
    )
    _check_multirun_ddp(trainer)
    system = build_system(cfg)
    config_file = run_dir / "config.yaml"
    # a resumed run keeps the config it was started with (the resume's changes are in train.log)
    if (
        trainer.is_global_zero
        and not trainer.fast_dev_run
        and not (cfg.resume and config_file.exists())
    ):
        OmegaConf.save(cfg, config_file, resolve=True)
    # Our EpochSampler skips the batches a mid-epoch checkpoint already consumed, so Lightning's
    # "dataloader is not resumable" warning does not apply.
    warnings.filterwarnings(
        "ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*"
    )
    with run_lock(run_dir) if trainer.is_global_zero else contextlib.nullcontext():
        try:
            trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path)
        except SystemExit:
            # Lightning turns Ctrl-C into a graceful stop (last.ckpt saved) and then sys.exit(1)
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise

    diverged_at = next(
        (
            c.diverged_at
            for c in trainer.callbacks
            if isinstance(c, DivergenceGuard) and c.diverged_at is not None
        ),
        None,
    )
    if diverged_at is not None:
        last = run_dir / "checkpoints" / "last.ckpt"
        raise FastNSTError(
            f"training diverged: non-finite loss at step {diverged_at}; last good checkpoint "
            f"{last if last.is_file() else '(none yet)'}. Lower system.optimizer.lr or the loss weights "
            "and resume with ckpt_path=..., or set callbacks.divergence.rollback=true"
        )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    model_path = None
    if trainer.is_global_zero and cfg.export and not trainer.fast_dev_run:
        model_path = save_exported(
            run_dir / "model.pt",
            system.net,
            meta={
                "style": str(cfg.style.name),
                **({"styles": list(system.net.styles)} if system.net.styles else {}),
                # the scale the network paints at for stroke_scale=1 (its preset's; Stylizer)
                "stroke_scale": preset_stroke_scale(cfg.style),
                # a multi-style list's own scale per style (style.stroke_scales), when set
                **({"stroke_scales": own} if (own := own_stroke_scales(cfg.style)) else {}),
                # the mirrored margin it paints with (network px; fastnst.margin)
                "margin": preset_margin(cfg.style),
                "data": str(cfg.data.name),
                "model": OmegaConf.to_container(cfg.model, resolve=True),
                "global_step": int(trainer.global_step),
                "val_loss": metrics.get("val/loss"),
            },
        )
        log.info("exported model: %s", model_path)
        if cfg.evaluate:
            from fastnst.evaluate import evaluate_run

            evaluate_run(run_dir, overwrite=True)
    if trainer.is_global_zero and not trainer.fast_dev_run:
        print(f"fastnst: run directory {run_dir}" + (f"; model {model_path}" if model_path else ""))
    return {
        "run_dir": run_dir,
        "model_path": model_path,
        "metrics": metrics,
        "global_step": trainer.global_step,
    }


class _AnnounceRunDir(pl.Callback):
    """Logs "run directory: ..." once a new run has done its first step: one that fails before
    it leaves no directory behind (remove_untrained_run_dir), so it names none. A resumed run
    is named at its start."""

    def __init__(self, run_dir: Path, at_start: bool):
        self.run_dir, self.at_start, self.done = run_dir, at_start, False

    def _announce(self, trainer: pl.Trainer) -> None:
        if not self.done and trainer.is_global_zero and not trainer.fast_dev_run:
            log.info("run directory: %s", self.run_dir)
        self.done = True

    def on_train_start(self, trainer, pl_module) -> None:
        if self.at_start:
            self._announce(trainer)

    def on_train_batch_end(self, trainer, *args) -> None:
        self._announce(trainer)


def _short_run_intervals(trainer_cfg: DictConfig, progress: bool) -> DictConfig:
    """The trainer settings with the logging and validation intervals at most max_steps, so that a
    run shorter than them still logs its train scalars and validates at its end (val/loss, hence
    best.ckpt); and without Lightning's own bar when progress=false."""
    trainer_cfg = trainer_cfg.copy()
    max_steps = trainer_cfg.max_steps if "max_steps" in trainer_cfg else None
    max_steps = -1 if max_steps is None else int(max_steps)  # null: no limit (Lightning's -1)
    if max_steps > 0:
        for key in ("log_every_n_steps", "val_check_interval"):
            value = trainer_cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > max_steps:
                trainer_cfg[key] = max_steps
    if not progress:
        trainer_cfg.enable_progress_bar = False
    return trainer_cfg


def resolve_precision(trainer_cfg: DictConfig) -> tuple[str, str | None]:
    """(trainer.precision with `auto` resolved, the one-line reason, or None when it was set).

    auto on CPU: bf16-mixed where the CPU computes bf16 natively (amx_bf16 / avx512_bf16), 32-true
    elsewhere: there bf16 convolutions are emulated and run several times slower than fp32. The
    Grams and the loss terms stay fp32 either way (fastnst.losses). auto on CUDA: 32-true (the
    gpu and ddp presets set bf16-mixed themselves)."""
    value = trainer_cfg.get("precision")
    if value is None or str(value) != "auto":  # None: Lightning's own default
        return (None if value is None else str(value)), None
    if _uses_cuda(trainer_cfg):
        return (
            "32-true",
            "precision 32-true (trainer.precision=auto on CUDA: fp32; trainer=gpu uses bf16-mixed)",
        )
    from fastnst.precision import cpu_auto_precision  # the one rule, shared with gatys.py

    return cpu_auto_precision("trainer.precision", "Grams and losses stay fp32")


def _make_trainer(
    trainer_cfg: DictConfig, callbacks: list, loggers: list, run_dir: Path
) -> pl.Trainer:
    """The Trainer; a setting this machine cannot run (trainer=gpu without a GPU, too many
    devices) is one line."""
    from hydra.errors import InstantiationException
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    precision, why = resolve_precision(trainer_cfg)
    if why:
        log.info(why)
        trainer_cfg = trainer_cfg.copy()
        trainer_cfg.precision = precision
    try:
        return hydra.utils.instantiate(
            trainer_cfg,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
            default_root_dir=str(run_dir),
        )
    except InstantiationException as e:
        if isinstance(e.__cause__, MisconfigurationException):
            raise FastNSTError(f"trainer: {' '.join(str(e.__cause__).split())}") from None
        raise


__all__ = [
    "train",
    "build_system",
    "resolve_precision",
    "build_optimizer",
    "check_writable",
    "check_can_create",
    "absolute_user_paths",
]
