"""Training callbacks (conf/callbacks/default.yaml): a `last.ckpt` written every N steps, every N
minutes, at the end and on SIGTERM, never with non-finite weights (LastCheckpoint); the guard
against a non-finite loss (DivergenceGuard); TensorBoard image grids and hparams
(LogImagesAndHparams); the warping error on a fixed clip (WarpingErrorOnClip)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fastnst.atomic import atomic_path

log = logging.getLogger("fastnst.train")

LAST = "last.ckpt"
PREVIOUS = "previous.ckpt"  # the checkpoint before last.ckpt, in case last.ckpt gets damaged


def parameters_finite(module: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in module.parameters())


class LastCheckpoint(pl.Callback):
    """Keeps `<dirpath>/last.ckpt` fresh so a killed run loses at most N steps / N minutes.

    Writes go through the trainer's checkpoint IO (atomic: temp file + rename), and a state
    with non-finite weights is never written over a good one.
    """

    def __init__(
        self, dirpath: str, every_n_steps: int | None = 500, every_minutes: float | None = 10.0
    ):
        self.path = Path(dirpath) / LAST
        self.previous = Path(dirpath) / PREVIOUS
        self.every_n_steps = every_n_steps or None
        self.every_seconds = every_minutes * 60 if every_minutes else None
        self._last_time = time.monotonic()
        self._last_step = -1

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str) -> bool:
        if (
            trainer.fast_dev_run
        ):  # a wiring check (debug=fdr) writes no outputs, like Lightning's own
            return False
        if trainer.global_step == self._last_step:
            return False
        if not parameters_finite(pl_module):
            log.warning(
                "not writing %s at step %d: the weights are not finite",
                self.path,
                trainer.global_step,
            )
            return False
        if trainer.is_global_zero and self.path.exists():
            self._keep_previous()
        # a full, resumable checkpoint (optimizer and loop state); saying so also silences
        # Lightning's "weights_only was not set" line after every save
        trainer.save_checkpoint(str(self.path), weights_only=False)
        self._last_time, self._last_step = time.monotonic(), trainer.global_step
        log.info("checkpoint (%s) step %d: %s", reason, trainer.global_step, self.path)
        return True

    def _keep_previous(self) -> None:
        """previous.ckpt := the current last.ckpt, to fall back on. A hard link swapped in
        atomically, not a rename: a kill between a rename and the next save would leave the run
        with no last.ckpt (the new last.ckpt then replaces the link's name, not its file)."""
        try:
            with atomic_path(self.previous) as tmp:
                os.link(self.path, tmp)
        except OSError:  # a file system without hard links
            os.replace(self.path, self.previous)

    def on_train_start(self, trainer, pl_module):
        self._last_time = time.monotonic()
        self._last_step = trainer.global_step  # a resumed run already has this state on disk

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0:
            self.save(trainer, pl_module, "every_n_steps")
        elif self.every_seconds and time.monotonic() - self._last_time >= self.every_seconds:
            self.save(trainer, pl_module, "every_minutes")

    def on_train_end(self, trainer, pl_module):
        self.save(trainer, pl_module, "end")

    def on_exception(self, trainer, pl_module, exception):
        # Lightning turns SIGTERM (sent by schedulers before a kill) into SIGTERMException
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            self.save(trainer, pl_module, type(exception).__name__)


class WarpingErrorOnClip(pl.Callback):
    """Logs `val/warping_error` (fastnst.flow: flicker, lower = steadier) of the network on the
    first `frames` frames of a fixed video `clip`, resized to `size` px, after each validation.
    `clip: null` (the default) turns it off. A multi-style network is measured in its first style."""

    def __init__(self, clip: str | None = None, frames: int = 16, size: int = 128):
        from fastnst.config import resolve_user_path
        from fastnst.errors import FastNSTError

        self.clip = resolve_user_path(clip) if clip else None
        self.frames, self.size = int(frames), int(size)
        self._inputs: list[torch.Tensor] = []
        if self.clip is not None:
            if not self.clip.is_file():  # before training starts, not at the first validation
                raise FastNSTError(f"{self.clip}: callbacks.warping_error.clip: video not found")
            if self.frames < 2 or self.size < 16:
                raise FastNSTError(
                    f"callbacks.warping_error: frames must be >= 2 and size >= 16 px, "
                    f"got frames={self.frames}, size={self.size}"
                )
            self._inputs = self._decode()

    def _decode(self) -> list[torch.Tensor]:
        """The clip's first frames at the validation size, decoded once (a bad clip fails here,
        before training, rather than at the first validation)."""
        from fastnst.errors import FastNSTError
        from fastnst.images import fit_size, resize_tensor
        from fastnst.video import read_frames

        frames = [
            resize_tensor(f, fit_size(f.shape[-2], f.shape[-1], self.size))
            for f in read_frames(self.clip, self.frames)
        ]
        if len(frames) < 2:
            raise FastNSTError(
                f"{self.clip}: callbacks.warping_error.clip: the warping error needs at least "
                f"two frames, the video has {len(frames)}"
            )
        return frames

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.clip is None or trainer.sanity_checking:
            return
        from fastnst.flow import warping_error

        inputs = self._inputs
        net = pl_module.net
        was_training = net.training
        net.eval()
        with torch.no_grad():
            device = next(net.parameters()).device
            outputs = [net(x.to(device)).float().clamp(0, 1).cpu() for x in inputs]
        net.train(was_training)
        try:
            value = warping_error(inputs, outputs)
        except ValueError as e:  # e.g. a still clip: no reliable flow; the run goes on without it
            log.warning("val/warping_error not logged: %s: %s", self.clip, e)
            return
        pl_module.log("val/warping_error", value, rank_zero_only=True)


def resolve_check_interval(
    value: str | int | None, device: torch.device, log_every_n_steps: int
) -> int:
    """divergence.check_every_n_steps: a number (0 = never) or auto = every step on CPU (the
    check costs nothing there) and every log_every_n_steps on CUDA, where reading the flag is a
    host-device sync that would stall the GPU every step."""
    if value == "auto":
        return 1 if torch.device(device).type != "cuda" else max(1, int(log_every_n_steps))
    if value is None:
        return 0
    return int(value)


class DivergenceGuard(pl.Callback):
    """A non-finite training loss skips its update and stops the run (`diverged_at` is set;
    fastnst.train turns it into a message naming the step), or with rollback=true reloads
    last.ckpt (LastCheckpoint) and continues with the learning rate times lr_factor ** n at the
    n-th rollback, at most max_rollbacks times in a run (the count is kept in checkpoints).

    check_every_n_steps: auto = 1 on CPU, trainer.log_every_n_steps on CUDA: the first
    non-finite step is recorded on the device without a sync every step and read on the host
    at the checks; the step found is the first bad one. 0 or null = never checked.
    """

    def __init__(
        self,
        check_every_n_steps: Literal["auto"] | int | None = "auto",
        rollback: bool = False,
        lr_factor: float = 0.5,
        max_rollbacks: int = 3,
    ):
        self.check_every_n_steps = check_every_n_steps
        self.rollback, self.lr_factor, self.max_rollbacks = (
            bool(rollback),
            float(lr_factor),
            int(max_rollbacks),
        )
        self.rollbacks = 0
        self.diverged_at: int | None = None
        self._every = 1
        self._bad_step: int | None = None  # a non-finite step found at this step's check
        # first step with a non-finite loss since the last check, -1 = none (a device tensor)
        self._first_bad_step: torch.Tensor | None = None

    def setup(self, trainer, pl_module, stage):
        self._every = resolve_check_interval(
            self.check_every_n_steps, trainer.strategy.root_device, trainer.log_every_n_steps
        )

    def on_before_backward(self, trainer, pl_module, loss):
        """The loss of this step: checked (every step) or recorded on the device (no sync)."""
        every, step = self._every, trainer.global_step
        if every <= 0:
            return
        if every == 1:  # the plain check: the flag would only add work
            if not torch.isfinite(loss):
                self._bad_step = step
            return
        flag = self._first_bad_step
        if flag is None or flag.device != loss.device:
            flag = torch.full((), -1, dtype=torch.long, device=loss.device)
        here = torch.full((), step, dtype=torch.long, device=loss.device)
        self._first_bad_step = torch.where(~torch.isfinite(loss.detach()) & (flag < 0), here, flag)
        if step % every == 0:
            first = int(self._first_bad_step)  # the one host-device sync, every `every` steps
            self._first_bad_step = None
            if first >= 0:
                self._bad_step = first

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self._bad_step is None:
            return
        step, self._bad_step = self._bad_step, None
        if getattr(trainer.precision_plugin, "scaler", None) is None:
            # no update from a non-finite loss: the weights stay good (a GradScaler skips a step
            # with non-finite gradients itself, and needs them to see it)
            for p in pl_module.parameters():
                p.grad = None
        last = self._last_checkpoint_path(trainer)
        if self.rollback and self.rollbacks < self.max_rollbacks and last is not None:
            self.rollbacks += 1
            ckpt = torch.load(last, map_location=pl_module.device, weights_only=True)
            pl_module.load_state_dict(ckpt["state_dict"])
            optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper
            optimizer.load_state_dict(ckpt["optimizer_states"][0])
            factor = self.lr_factor**self.rollbacks
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * factor
            log.warning(
                "non-finite loss at step %d: rolled back to %s (step %d), learning rate x%g",
                step,
                last,
                ckpt["global_step"],
                factor,
            )
            return
        self.diverged_at = step
        trainer.should_stop = True

    @staticmethod
    def _last_checkpoint_path(trainer) -> Path | None:
        for cb in trainer.callbacks:
            if isinstance(cb, LastCheckpoint) and cb.path.is_file():
                return cb.path
        return None

    def state_dict(self) -> dict:
        return {"rollbacks": self.rollbacks}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rollbacks = int(state_dict["rollbacks"])


class LogImagesAndHparams(pl.Callback):
    """TensorBoard: a grid of `num_images` validation photos over their stylized versions every
    `every_n_steps` steps (before that step's update) and at the end (0 = never); at the start
    the run's settings as hparams (fastnst.metrics.hparams_of, with the hp/val_* and eval/*
    columns) and the style image(s). After each validation: hp/val_loss, hp/val_content,
    hp/val_style (the validation losses, as the hparams view's columns).

    The probe set (fastnst.probes: the same photos for every run, whatever its data): after each
    validation and at the end, the network's output on each probe photo under `probe/<name>`
    (`probe/<style>/<name>` for a multi-style network), so two runs line up in the Images tab;
    the photos themselves once, as `probe/photos`. `probe_size`: their width in px (0 = off).

    `run_config`: the run's train config; fastnst.train sets it (without one no hparams and no
    style image are written; the probe photos then come from fastnst.config.data_dir())."""

    def __init__(self, every_n_steps: int = 500, num_images: int = 4, probe_size: int = 256):
        self.every_n_steps = int(every_n_steps or 0)
        self.num_images = int(num_images)
        self.probe_size = int(probe_size or 0)
        if self.probe_size and self.probe_size < 16:
            from fastnst.errors import FastNSTError

            raise FastNSTError(
                f"callbacks.images.probe_size={probe_size}: use 0 (off) or at least 16 px"
            )
        self.run_config = None
        self._photos: torch.Tensor | None = None
        self._probes: tuple[list[str], torch.Tensor] | None = None
        self._probe_step = -1

    @staticmethod
    def _tensorboard(trainer):
        from torch.utils.tensorboard import SummaryWriter

        if trainer.global_rank != 0:
            return None
        for logger in trainer.loggers:
            if isinstance(getattr(logger, "experiment", None), SummaryWriter):
                return logger
        return None

    def on_fit_start(self, trainer, pl_module):
        tb = self._tensorboard(trainer)
        if tb is None:
            return
        self._load_probes(tb, trainer.global_step)
        if self.run_config is None:
            return
        from omegaconf import OmegaConf

        from fastnst.images import load_image
        from fastnst.metrics import hparam_columns, hparams_of, run_labels
        from fastnst.style import style_image_paths

        cfg = self.run_config
        tb.log_hyperparams(hparams_of(cfg, run_labels(cfg.run_dir, cfg)), metrics=hparam_columns())
        paths, _ = style_image_paths(OmegaConf.create(cfg.style))
        for i, path in enumerate(paths[:4]):
            tb.experiment.add_image(
                "style" if i == 0 else f"style_{i}", load_image(path, 256)[0], trainer.global_step
            )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.log_image_grid(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        # the grid of the final network (the periodic ones are logged before a step)
        if self.every_n_steps:
            self.log_image_grid(trainer, pl_module)
        if self._probe_step != trainer.global_step:  # no validation at the last step
            self.log_probes(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        from fastnst.metrics import VAL_METRICS

        if not trainer.sanity_checking:
            self.log_probes(trainer, pl_module)

        metrics = trainer.callback_metrics
        for name in VAL_METRICS:
            if f"val/{name}" in metrics:
                pl_module.log(f"hp/val_{name}", metrics[f"val/{name}"])

    @torch.no_grad()
    def log_image_grid(self, trainer, pl_module) -> None:
        from torchvision.utils import make_grid

        tb = self._tensorboard(trainer)
        if tb is None:
            return
        if self._photos is None:
            datamodule = getattr(trainer, "datamodule", None)
            if datamodule is None or not hasattr(datamodule, "val_images"):
                return
            self._photos = datamodule.val_images(self.num_images)
        photos = self._photos.to(pl_module.device)
        for name, stylized in pl_module.stylize_each_style(photos):
            # top row: photos; bottom row: their stylized versions
            grid = make_grid(
                torch.cat([photos.float(), stylized.float()]).cpu(), nrow=photos.shape[0], padding=2
            )
            tb.experiment.add_image(
                "val/stylized" if name is None else f"val/{name}/stylized",
                grid,
                trainer.global_step,
            )

    def _load_probes(self, tb, step: int) -> None:
        """Read the probe set once (a missing photo is named once in the log) and log the photos
        as `probe/photos`."""
        if not self.probe_size or self._probes is not None:
            return
        from torchvision.utils import make_grid

        from fastnst.config import data_dir
        from fastnst.probes import missing_note, probe_photos, probe_tag

        cfg = self.run_config
        paths = cfg.get("paths") if cfg is not None else None
        root = paths.get("data_dir") if paths is not None else None
        root = root if root is not None else data_dir()
        names, photos, missing = probe_photos(root, self.probe_size)
        if missing:
            log.warning(missing_note(missing, root))
        self._probes = names, photos
        tb.experiment.add_image(
            probe_tag("photos"), make_grid(photos, nrow=len(names), padding=2), step
        )

    @torch.no_grad()
    def log_probes(self, trainer, pl_module) -> None:
        """The network's output on each probe photo, one image per tag (probe/<name>)."""
        if not self.probe_size or trainer.fast_dev_run:
            return
        tb = self._tensorboard(trainer)
        if tb is None:
            return
        self._load_probes(tb, trainer.global_step)
        from fastnst.probes import probe_tag

        names, photos = self._probes
        for style, stylized in pl_module.stylize_each_style(photos.to(pl_module.device)):
            stylized = stylized.float().clamp(0, 1).cpu()
            for name, image in zip(names, stylized, strict=True):
                tb.experiment.add_image(probe_tag(name, style), image, trainer.global_step)
        self._probe_step = trainer.global_step
