"""Training callbacks that keep work safe: a `last.ckpt` written every N steps, every N
minutes, at the end and on SIGTERM, never with non-finite weights."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

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

    def __init__(self, dirpath: str, every_n_steps: int | None = 500, every_minutes: float | None = 10.0):
        self.path = Path(dirpath) / LAST
        self.previous = Path(dirpath) / PREVIOUS
        self.every_n_steps = every_n_steps or None
        self.every_seconds = every_minutes * 60 if every_minutes else None
        self._last_time = time.monotonic()
        self._last_step = -1

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str) -> bool:
        if trainer.fast_dev_run:  # a wiring check (debug=fdr) writes no outputs, like Lightning's own
            return False
        if trainer.global_step == self._last_step:
            return False
        if not parameters_finite(pl_module):
            log.warning("not writing %s at step %d: the weights are not finite", self.path, trainer.global_step)
            return False
        if trainer.is_global_zero and self.path.exists():
            self._keep_previous()
        trainer.save_checkpoint(str(self.path))
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
                raise FastNSTError(f"callbacks.warping_error: frames must be >= 2 and size >= 16 px, "
                                   f"got frames={self.frames}, size={self.size}")
            self._inputs = self._decode()

    def _decode(self) -> list[torch.Tensor]:
        """The clip's first frames at the validation size, decoded once (a bad clip fails here,
        before training, rather than at the first validation)."""
        from fastnst.errors import FastNSTError
        from fastnst.images import fit_size, resize_tensor
        from fastnst.video import read_frames

        frames = [resize_tensor(f, fit_size(f.shape[-2], f.shape[-1], self.size))
                  for f in read_frames(self.clip, self.frames)]
        if len(frames) < 2:
            raise FastNSTError(f"{self.clip}: callbacks.warping_error.clip: the warping error needs at least "
                               f"two frames, the video has {len(frames)}")
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
