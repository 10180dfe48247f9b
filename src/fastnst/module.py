"""The LightningModule ("the system"): a TransformerNet trained against frozen-VGG19
perceptual losses. The VGG is rebuilt from config and never stored in checkpoints."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid

from fastnst import accel, multistyle
from fastnst.errors import FastNSTError
from fastnst.images import load_image
from fastnst.losses import PerceptualLoss, _keep_float32
from fastnst.style import build_loss, stacked_style_grams, style_image_paths
from fastnst.temporal import TransformRange, temporal_loss
from fastnst.transformer import TransformerNet

log = logging.getLogger("fastnst.train")


def _plain(cfg) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


LR_SCALING_RULES = ("sqrt", "linear")


def scaled_lr(base_lr: float, batch_size: int, base_batch_size: int = 4, rule: str | bool = "sqrt") -> float:
    """Learning rate for a global batch of `batch_size` when `base_lr` was tuned for
    `base_batch_size`: sqrt (the usual rule for Adam: the gradient noise scales with
    1/sqrt(batch)) or linear (Goyal et al., for SGD). rule=True means sqrt, False/None no scaling."""
    if rule is True:
        rule = "sqrt"
    if not rule:
        return float(base_lr)
    if rule not in LR_SCALING_RULES:
        raise FastNSTError(f"system.optimizer.scale_lr_with_batch={rule!r}: use false, true, sqrt or linear")
    ratio = batch_size / base_batch_size
    return float(base_lr) * (math.sqrt(ratio) if rule == "sqrt" else ratio)


def resolve_channels_last(value: str | bool, device: torch.device) -> bool:
    """system.channels_last: true/false, or auto = on for CUDA only (on this project's CPUs it
    measured ~10% slower; README "Training speed and scale")."""
    if value == "auto":
        return torch.device(device).type == "cuda"
    if isinstance(value, bool):
        return value
    raise FastNSTError(f"system.channels_last={value!r}: use auto, true or false")


def resolve_check_interval(value: str | int | None, device: torch.device, log_every_n_steps: int) -> int:
    """divergence.check_every_n_steps: a number (0 = never) or auto = every step on CPU (the
    check costs nothing there) and every log_every_n_steps on CUDA, where reading the flag is a
    host-device sync that would stall the GPU every step."""
    if value == "auto":
        return 1 if torch.device(device).type != "cuda" else max(1, int(log_every_n_steps))
    if value is None:
        return 0
    return int(value)


class StyleTransferModule(pl.LightningModule):
    """Args (all plain config, saved as hyperparameters):
        model: TransformerNet kwargs (channels, num_residual, norm).
        loss: a conf/loss preset (PerceptualLoss kwargs with _target_).
        style: a conf/style preset (image(s), size, beta_scale).
        vgg_weights: embedded | torchvision | path.
        optimizer: {lr, betas, weight_decay, scale_lr_with_batch, base_batch_size}:
            scale_lr_with_batch (false | true = sqrt | sqrt | linear) rescales lr, tuned for
            base_batch_size, to the global batch (batch_size x devices x nodes x accumulation).
        scheduler: null or {name: cosine|step, warmup_steps, step_size, gamma, min_lr_ratio}.
        log_images_every_n_steps: how often a grid of validation photos is logged.
        num_log_images: how many validation photos are in the grid.
        divergence: {check_every_n_steps, rollback, lr_factor, max_rollbacks}: a non-finite loss
            skips its update and stops the run (diverged_at is set), or with rollback=true
            reloads last.ckpt and continues with the learning rate times lr_factor.
            check_every_n_steps: auto = 1 on CPU, trainer.log_every_n_steps on CUDA (the first
            non-finite step is recorded on the device without a sync and read at the checks).
        channels_last: auto (CUDA only) | true | false, for the transformer, the VGG and the photos.
        compile: torch.compile the transformer's and the VGG's forward (false | true | a dict of
            torch.compile kwargs, e.g. {mode: max-autotune}).
        init_from: null or a network (run dir, model.pt, .ckpt) whose weights the transformer
            starts from (styles matched by name; a new style starts from the mean of the others).
        finetune: null (train everything) | style_params (only the scales and shifts of the
            styles init_from lacks; needs a multi-style style config and init_from).

    A style config with `names` (conf/style/multi.yaml) trains a multi-style network: each photo
    of a batch is paired with one style, round robin (balanced); the Gram targets of all styles
    are computed once; losses are logged per style (train/style/<name>, val/<name>/...).
    """

    def __init__(
        self,
        model: dict,
        loss: dict,
        style: dict,
        vgg_weights: str = "embedded",
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        log_images_every_n_steps: int = 500,
        num_log_images: int = 4,
        divergence: dict | None = None,
        channels_last: str | bool = "auto",
        compile: bool | dict = False,
        init_from: str | None = None,
        finetune: str | None = None,
    ):
        super().__init__()
        model, loss, style = _plain(model), _plain(loss), _plain(style)
        optimizer, scheduler = _plain(optimizer) or {}, _plain(scheduler)
        # logger=False: the hparams are written once, with their metrics, in on_fit_start
        self.save_hyperparameters(
            {
                "model": model,
                "loss": loss,
                "style": style,
                "vgg_weights": vgg_weights,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "log_images_every_n_steps": log_images_every_n_steps,
                "num_log_images": num_log_images,
                "divergence": _plain(divergence) or {},
                "channels_last": channels_last,
                "compile": _plain(compile),
                "init_from": None if init_from is None else str(init_from),
                "finetune": finetune,
            },
            logger=False,
        )
        self.members = multistyle.members_of(style) if multistyle.is_multi(style) else None
        self.style_names = [m["name"] for m in self.members] if self.members else None
        self.net = TransformerNet(**{k: v for k, v in model.items() if not k.startswith("_")}, styles=self.style_names)
        accel.accelerate(self.net)  # on CPU: NNPACK convs and sub-pixel upsampling (fastnst.accel)
        self.active_styles = list(range(len(self.style_names or [])))  # the styles photos are paired with
        self._setup_init(init_from, finetune)
        # Not a registered submodule: keeps the frozen VGG out of state_dict, checkpoints and
        # the optimizer. _apply below moves it with the module.
        # (a multi-style network applies each style's beta_scale per photo)
        first = OmegaConf.create({**self.members[0], "beta_scale": 1.0} if self.members else style)
        perceptual = build_loss(OmegaConf.create(loss), first, vgg_weights=vgg_weights)
        object.__setattr__(self, "_perceptual", perceptual)
        # multi-style: every style's target Grams {layer: (N, C, C)} and beta_scale (N,), computed once
        self._style_grams: dict[str, torch.Tensor] | None = None
        self._style_scales: torch.Tensor | None = None
        if self.members:
            self._style_grams = stacked_style_grams(perceptual, self.members)
            self._style_scales = torch.tensor([float(m.get("beta_scale") or 1.0) for m in self.members])
        # loss.temporal_weight > 0: penalise stylize(T(x)) != T(stylize(x)) (fastnst.temporal)
        self.temporal_weight = float(loss.get("temporal_weight") or 0.0)
        if self.temporal_weight < 0:
            raise FastNSTError(f"loss.temporal_weight must be >= 0 (0 = off), got {self.temporal_weight}")
        try:
            self.temporal_limits = TransformRange.from_config(loss.get("temporal_transform"))
        except ValueError as e:
            raise FastNSTError(str(e)) from None
        # its own generator: the transforms do not shift the data order or the network's init
        self._temporal_generator = torch.Generator().manual_seed(0)
        self._log_photos: torch.Tensor | None = None
        self._last_batch_time: float | None = None
        self.skipped_files = torch.zeros((), dtype=torch.long)
        self.diverged_at: int | None = None
        self.rollbacks = 0
        self.use_channels_last = False
        self._check_every = 1
        # first step with a non-finite loss since the last check, -1 = none (a device tensor)
        self._first_bad_step: torch.Tensor | None = None
        self._compiled = False

    @property
    def perceptual(self) -> PerceptualLoss:
        return self._perceptual

    def _setup_init(self, init_from, finetune) -> None:
        if finetune not in multistyle.FINETUNE_MODES:
            raise FastNSTError(f"finetune={finetune}: use null (the whole network) or style_params")
        if finetune == "style_params" and (not init_from or not self.style_names):
            raise FastNSTError("finetune=style_params needs init_from=<run> and style=multi style.names=[...] "
                               "(the network's styles plus the new ones)")
        if not init_from:
            return
        new = multistyle.init_network(self.net, init_from)
        if finetune == "style_params":
            if not new:
                raise FastNSTError(f"finetune=style_params: init_from={init_from} already holds every style of "
                                   f"style.names ({', '.join(self.style_names)}); add the new style to style.names")
            self.active_styles = [self.style_names.index(name) for name in new]
            multistyle.freeze_for_style_params(self.net, self.active_styles)
            log.info("finetune=style_params: training the scales and shifts of %s only", ", ".join(new))

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._perceptual._apply(fn, recurse)
        if self._style_grams is not None:
            self._style_grams = {k: _keep_float32(fn(v), v) for k, v in self._style_grams.items()}
            self._style_scales = self._style_scales.to(next(iter(self._style_grams.values())).device)
        return self

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, style)

    def _one_hot(self, indices: list[int], like: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(len(indices), len(self.style_names), device=like.device)
        w[torch.arange(len(indices)), torch.tensor(indices)] = 1.0
        return w

    # -- speed settings (need the device, so they are applied once the trainer exists) -----
    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device
        self.use_channels_last = resolve_channels_last(self.hparams.channels_last, device)
        if self.use_channels_last:
            # in place (the same Parameter objects): optimizer references stay valid
            self.net.to(memory_format=torch.channels_last)
            self._perceptual.vgg.to(memory_format=torch.channels_last)
        self._check_every = resolve_check_interval(
            self.hparams.divergence.get("check_every_n_steps", 1), device, self.trainer.log_every_n_steps
        )
        self.compile_networks(self.hparams.compile)

    def compile_networks(self, options: bool | dict | None) -> None:
        """torch.compile the transformer's and the VGG trunk's forward in place: module structure,
        state_dict, checkpoints and exports are unchanged."""
        if not options or self._compiled:
            return
        kwargs = dict(options) if isinstance(options, dict) else {}
        for module in (self.net, self._perceptual.vgg):
            module.forward = torch.compile(module.forward, **kwargs)
        self._compiled = True

    def _to_memory_format(self, photos: torch.Tensor) -> torch.Tensor:
        return photos.contiguous(memory_format=torch.channels_last) if self.use_channels_last else photos

    # -- training -------------------------------------------------------------------------
    def _losses(self, photos: torch.Tensor, styles: list[int] | None = None,
                temporal: bool = False) -> dict[str, torch.Tensor]:
        """The loss terms; for a multi-style network each photo trains style `styles[i]`;
        `temporal` adds the stability term when loss.temporal_weight > 0."""
        content = self._perceptual.content_features(photos)
        if styles is None:
            weights = None
            stylized = self.net(photos)
            terms = self._perceptual(stylized, content)
        else:
            index = torch.tensor(styles, device=photos.device)
            targets = {k: v[index] for k, v in self._style_grams.items()}
            weights = self._one_hot(styles, photos)
            stylized = self.net(photos, weights)
            terms = self._perceptual(stylized, content, targets=targets, style_scales=self._style_scales[index])
        if temporal and self.temporal_weight:
            net = self.net if weights is None else (lambda x: self.net(x, weights))
            term = temporal_loss(net, photos, stylized, self.temporal_limits, self._temporal_generator)
            terms["total"] = terms["total"] + self.temporal_weight * term
            terms["temporal"] = term.detach()
        return terms

    def training_step(self, batch, batch_idx):
        photos = batch["image"]
        skipped = batch.get("skipped")
        if skipped is not None:
            # a running tensor sum: no host-device sync until the logger flushes
            self.skipped_files = self.skipped_files.to(skipped.device) + skipped
            self.log("data/skipped_files", self.skipped_files.float(), on_step=True, on_epoch=False)
        if photos.shape[0] == 0:
            return None  # every file of this batch was unreadable
        styles = (multistyle.batch_styles(self.global_step, photos.shape[0], self.active_styles)
                  if self.style_names else None)
        terms = self._losses(self._to_memory_format(photos), styles, temporal=True)
        if self._divergence_detected(terms["total"]):
            self._on_divergence()
            return None  # no update from a non-finite loss: the weights stay good
        per_image = terms.pop("style_per_image", None)
        if per_image is not None:
            for i in sorted(set(styles)):
                mine = [j for j, s in enumerate(styles) if s == i]
                self.log(f"train/style/{self.style_names[i]}", per_image[mine].mean(), on_step=True, on_epoch=False,
                         batch_size=len(mine))
        for name, value in terms.items():
            # the global-batch mean under DDP for the headline loss (one small all-reduce)
            self.log(f"train/{'loss' if name == 'total' else name}", value, on_step=True, on_epoch=False,
                     prog_bar=name == "total", batch_size=photos.shape[0], sync_dist=name == "total")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        now = time.perf_counter()
        if self._last_batch_time is not None:
            self.log("train/images_per_s", photos.shape[0] / max(now - self._last_batch_time, 1e-9),
                     on_step=True, on_epoch=False)
        self._last_batch_time = now
        every = self.hparams.log_images_every_n_steps
        if every and self.global_step % every == 0:
            self.log_image_grid()
        return terms["total"]

    def validation_step(self, batch, batch_idx):
        photos = batch["image"]
        if photos.shape[0] == 0:
            return
        photos = self._to_memory_format(photos)
        if not self.style_names:
            terms = self._losses(photos)
            for name in ("total", "content", "style", "tv"):
                self.log(f"val/{'loss' if name == 'total' else name}", terms[name], on_step=False, on_epoch=True,
                         batch_size=photos.shape[0], sync_dist=True)
            return
        # every photo in each trained style; val/loss etc. = the mean over those styles
        sums: dict[str, torch.Tensor] = {}
        for i in self.active_styles:
            terms = self._losses(photos, [i] * photos.shape[0])
            for name in ("total", "content", "style", "tv"):
                key = "loss" if name == "total" else name
                self.log(f"val/{self.style_names[i]}/{key}", terms[name], on_step=False, on_epoch=True,
                         batch_size=photos.shape[0], sync_dist=True)
                sums[key] = sums.get(key, 0) + terms[name] / len(self.active_styles)
        for key, value in sums.items():
            self.log(f"val/{key}", value, on_step=False, on_epoch=True, batch_size=photos.shape[0], sync_dist=True)

    def on_validation_epoch_end(self):
        metrics = self.trainer.callback_metrics
        for name in ("loss", "content", "style"):
            if f"val/{name}" in metrics:
                self.log(f"hp/val_{name}", metrics[f"val/{name}"])

    # -- logging --------------------------------------------------------------------------
    def _tensorboard(self):
        from torch.utils.tensorboard import SummaryWriter

        for logger in self.loggers:
            if isinstance(getattr(logger, "experiment", None), SummaryWriter):
                return logger
        return None

    def on_fit_start(self):
        self._last_batch_time = None
        tb = self._tensorboard()
        if tb is None or self.trainer.global_rank != 0:
            return
        h = self.hparams
        datamodule = getattr(self.trainer, "datamodule", None)
        params = {
            "style": h.style.get("name", "custom") if not self.style_names else ",".join(self.style_names),
            "data": getattr(datamodule, "name", type(datamodule).__name__),
            "model/channels": str(h.model.get("channels")),
            "model/num_residual": h.model.get("num_residual", 5),
            "model/norm": h.model.get("norm", "instance"),
            "loss/alpha": h.loss.get("alpha"),
            "loss/beta": h.loss.get("beta"),
            "loss/tv_weight": h.loss.get("tv_weight"),
            "loss/temporal_weight": h.loss.get("temporal_weight") or 0.0,
            "loss/content_layers": ",".join(h.loss.get("content_layers", {})),
            "loss/style_layers": ",".join(h.loss.get("style_layers", {})),
            "optimizer/lr": h.optimizer.get("lr", 1e-3),
            "batch_size": getattr(datamodule, "batch_size", None),
            "image_size": getattr(datamodule, "image_size", None),
            "vgg_weights": h.vgg_weights,
        }
        params = {k: v for k, v in params.items() if v is not None}
        from fastnst.evaluate import METRICS as EVAL_METRICS  # columns evaluate.py fills in later

        tb.log_hyperparams(params, metrics={"hp/val_loss": math.nan, "hp/val_content": math.nan, "hp/val_style": math.nan,
                                            **{f"eval/{k}": math.nan for k in EVAL_METRICS}})
        paths, _ = style_image_paths(OmegaConf.create(h.style))
        style_images = [load_image(p, 256)[0] for p in paths[:4]]
        for i, img in enumerate(style_images):
            tb.experiment.add_image("style" if i == 0 else f"style_{i}", img, self.global_step)

    def on_train_end(self):
        # the grid of the final network (the periodic ones are logged before a step)
        if self.hparams.log_images_every_n_steps:
            self.log_image_grid()

    @torch.no_grad()
    def log_image_grid(self):
        tb = self._tensorboard()
        if tb is None or self.trainer.global_rank != 0:
            return
        if self._log_photos is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is None or not hasattr(datamodule, "val_images"):
                return
            self._log_photos = datamodule.val_images(self.hparams.num_log_images)
        photos = self._log_photos.to(self.device)
        was_training = self.net.training
        self.net.eval()
        for i in self.active_styles or [None]:
            style = None if i is None else self._one_hot([i] * photos.shape[0], photos)
            stylized = self.net(photos, style).float()
            # top row: photos; bottom row: their stylized versions
            grid = make_grid(torch.cat([photos.float(), stylized]).cpu(), nrow=photos.shape[0], padding=2)
            tag = "val/stylized" if i is None else f"val/{self.style_names[i]}/stylized"
            tb.experiment.add_image(tag, grid, self.global_step)
        self.net.train(was_training)

    # -- divergence guard -----------------------------------------------------------------
    def _divergence_detected(self, total: torch.Tensor) -> bool:
        """Records the first non-finite step on the device every step (no sync); reads it on the
        host only every check_every_n_steps steps. Sets diverged_at to that first step."""
        every = self._check_every
        if every <= 0:
            return False
        if every == 1:  # the plain check: the flag would only add work
            if torch.isfinite(total):
                return False
            self._bad_step = self.global_step
            return True
        flag = self._first_bad_step
        if flag is None or flag.device != total.device:
            flag = torch.full((), -1, dtype=torch.long, device=total.device)
        step = torch.full((), self.global_step, dtype=torch.long, device=total.device)
        self._first_bad_step = torch.where(~torch.isfinite(total) & (flag < 0), step, flag)
        if self.global_step % every != 0:
            return False
        first = int(self._first_bad_step)  # the one host-device sync, every `every` steps
        self._first_bad_step = None
        if first < 0:
            return False
        self._bad_step = first
        return True

    def _last_checkpoint_path(self):
        from fastnst.callbacks import LastCheckpoint

        for cb in self.trainer.callbacks:
            if isinstance(cb, LastCheckpoint) and cb.path.is_file():
                return cb.path
        return None

    def _on_divergence(self):
        cfg = self.hparams.divergence
        step = getattr(self, "_bad_step", self.global_step)
        last = self._last_checkpoint_path()
        if cfg.get("rollback") and self.rollbacks < int(cfg.get("max_rollbacks", 3)) and last is not None:
            self.rollbacks += 1
            ckpt = torch.load(last, map_location=self.device, weights_only=True)
            self.load_state_dict(ckpt["state_dict"])
            optimizer = self.optimizers().optimizer
            optimizer.load_state_dict(ckpt["optimizer_states"][0])
            factor = float(cfg.get("lr_factor", 0.5)) ** self.rollbacks
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * factor
            log.warning("non-finite loss at step %d: rolled back to %s (step %d), learning rate x%g",
                        step, last, ckpt["global_step"], factor)
            return
        self.diverged_at = step
        self.trainer.should_stop = True

    # -- optimization ---------------------------------------------------------------------
    def configure_optimizers(self):
        opt_cfg = dict(self.hparams.optimizer)
        rule = opt_cfg.pop("scale_lr_with_batch", False)
        base_batch = int(opt_cfg.pop("base_batch_size", 4))
        lr = scaled_lr(float(opt_cfg.pop("lr", 1e-3)), self.global_batch_size(), base_batch, rule)
        if rule:
            log.info("learning rate %.3g for a global batch of %d (%s scaling from batch %d)",
                     lr, self.global_batch_size(), "sqrt" if rule is True else rule, base_batch)
        opt = torch.optim.Adam([p for p in self.net.parameters() if p.requires_grad], lr=lr, **opt_cfg)
        sched = self.hparams.scheduler
        if not sched:
            return opt
        total = self.trainer.max_steps if self.trainer.max_steps and self.trainer.max_steps > 0 else 40000
        warmup = int(sched.get("warmup_steps", 0))
        name = sched.get("name", "cosine")
        min_ratio = float(sched.get("min_lr_ratio", 0.0))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if name == "cosine":
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
                return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
            if name == "step":
                return float(sched.get("gamma", 0.1)) ** ((step - warmup) // int(sched.get("step_size", 10000)))
            raise ValueError(f"unknown scheduler {name!r} (cosine or step)")

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def global_batch_size(self) -> int:
        """Photos per optimizer step over all processes: batch_size x world size x accumulation."""
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        batch = int(getattr(datamodule, "batch_size", 4) or 4)
        if trainer is None:
            return batch
        return batch * int(trainer.world_size) * int(trainer.accumulate_grad_batches)

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        # lets fastnst.stylize rebuild the network from a Lightning checkpoint alone
        checkpoint["fastnst_model_config"] = dict(self.net.config)
        # resume= continues the stability term's random transforms where they were (exact resume)
        checkpoint["fastnst_temporal_generator"] = self._temporal_generator.get_state()

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("fastnst_temporal_generator")
        if state is not None:
            self._temporal_generator.set_state(state)
