"""Training progress (`StepProgressBar`: the global step out of the total, images/s, ETA) and
Lightning's start-up chatter filtered out at its source (`quiet_lightning`)."""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings

import torch
from pytorch_lightning.callbacks.progress import ProgressBar

log = logging.getLogger("fastnst.train")


# Lightning's lines that say nothing about this run: an advert, a note that the default is in use,
# a deprecation inside Lightning itself, and a warning that a resumed run's checkpoint folder
# (ours, on purpose) is not empty
_NOISE_INFO = re.compile(
    r"💡 Tip: |`Trainer\((limit_val_batches|val_check_interval)=1(\.0)?\)` was configured so "
)
_NOISE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Checkpoint directory .* exists and is not empty",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE_INFO.match(str(record.msg))


def quiet_lightning() -> None:
    """Drop exactly those lines (see _NOISE_INFO / _NOISE_WARNINGS); everything else still shows."""
    for pattern in _NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    from lightning_utilities.core import rank_zero

    loggers = {
        rank_zero.log,
        logging.getLogger("pytorch_lightning.utilities.rank_zero"),
        logging.getLogger("lightning_fabric.utilities.rank_zero"),
    }
    for logger in loggers:
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())


def _batch_size(batch) -> int:
    """Images in one (per-device) batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    items = (
        batch.values()
        if isinstance(batch, dict)
        else batch
        if isinstance(batch, (list, tuple))
        else ()
    )
    for item in items:
        n = _batch_size(item)
        if n:
            return n
    return 0


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StepProgressBar(ProgressBar):
    """Training progress as the global step out of the run's total, images/s and an ETA
    (also after a resume: the step continues from the checkpoint's). On a terminal (or
    progress=true) a bar refreshed every `refresh_every` steps; otherwise one log line every
    `line_every` steps and at the end, e.g.
    `step 120/400 (30%)  4.1 img/s  ETA 0:04:33  loss 3.1e+04`.
    The loss is read only at a refresh/line: on CUDA each read is a host-device sync."""

    def __init__(self, bar: bool, refresh_every: int = 1, line_every: int = 50):
        super().__init__()
        self.draw_bar, self.refresh_every, self.line_every = (
            bool(bar),
            max(1, int(refresh_every)),
            max(1, int(line_every)),
        )
        self._enabled = True
        self._bar = None
        self._redirect = None
        self._start = (0.0, 0)
        self._images_per_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _total(self, trainer) -> int:
        if trainer.max_steps and trainer.max_steps > 0:
            return int(trainer.max_steps)
        try:
            return int(trainer.estimated_stepping_batches)
        except Exception:  # an epoch-based run without a known length
            return 0

    def on_train_start(self, trainer, pl_module):
        if not (self._enabled and trainer.is_global_zero):
            return
        self._start = (time.monotonic(), int(trainer.global_step))
        if self.draw_bar:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            total = self._total(trainer)
            self._bar = tqdm(
                total=total or None,
                initial=trainer.global_step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                leave=True,
                smoothing=0.1,
            )
            # console log lines (checkpoints, ...) print above the bar instead of through it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()

    def _rate(self, step: int) -> float:
        start_time, start_step = self._start
        elapsed = time.monotonic() - start_time
        return (step - start_step) / elapsed if elapsed > 0 and step > start_step else 0.0

    def _loss(self, trainer) -> str:
        value = trainer.progress_bar_metrics.get(
            "train/loss", trainer.callback_metrics.get("train/loss")
        )
        return "" if value is None else f"{float(value):.3g}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not (self._enabled and trainer.is_global_zero):
            return
        if not self._images_per_step:
            self._images_per_step = _batch_size(batch) * max(1, trainer.world_size)
        step, total = int(trainer.global_step), self._total(trainer)
        last = bool(total) and step >= total
        if self._bar is not None:
            if step % self.refresh_every == 0 or last:
                postfix = {"img/s": f"{self._rate(step) * self._images_per_step:.1f}"}
                loss = self._loss(trainer)
                if loss:
                    postfix["loss"] = loss
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(step - self._bar.n)  # redrawn at most every 0.1 s
        elif step % self.line_every == 0 or last:
            log.info(self.line(trainer, step, total))

    def line(self, trainer, step: int, total: int) -> str:
        rate = self._rate(step)
        text = f"step {step}/{total or '?'}" + (f" ({100 * step // total}%)" if total else "")
        text += f"  {rate * self._images_per_step:.1f} img/s"
        if total and rate:
            text += f"  ETA {_clock((total - step) / rate)}"
        loss = self._loss(trainer)
        return text + (f"  loss {loss}" if loss else "")

    def on_validation_start(self, trainer, pl_module):
        if self._bar is not None and not trainer.sanity_checking:
            self._bar.set_description_str("train (validating)")

    def on_validation_end(self, trainer, pl_module):
        if self._bar is not None:
            self._bar.set_description_str("train")

    def teardown(self, trainer, pl_module, stage):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
