"""The LightningModule ("the system"): a TransformerNet trained against frozen-VGG19
perceptual losses. The VGG is rebuilt from config and never stored in checkpoints."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fastnst import accel, multistyle
from fastnst.distill import Teachers, distill_loss, teacher_specs
from fastnst.errors import FastNSTError, check_weight
from fastnst.losses import PerceptualLoss, _keep_float32
from fastnst.style import loss_with_style_targets, stacked_style_grams
from fastnst.temporal import TransformRange, temporal_loss
from fastnst.transformer import TransformerNet

log = logging.getLogger("fastnst.train")


def _plain(cfg) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


LR_SCALING_RULES = ("sqrt", "linear")
# compile=auto compiles a bf16 CPU run of at least this many steps: compiling costs about 1.5 min
# (a busy 2-core AMD EPYC Zen 4) to 10 min (a 2-core Zen 3) once, and a compiled bf16 step ran
# 1.14x (load ~2) to 1.43x (load ~15) the eager one (docs/benchmarks.md): repaid within ~600 steps
COMPILE_AUTO_MIN_STEPS = 2000


def resolve_compile(
    value, device: torch.device, precision: str | None, max_steps: int | None
) -> tuple[bool | dict, str | None]:
    """system.compile: false | true | a dict of torch.compile kwargs, or auto = on for bf16 training
    on CPU (inductor fuses the conversions and memory-bound ops around oneDNN's bf16 convolutions)
    when the run has at least COMPILE_AUTO_MIN_STEPS steps (max_steps -1: unbounded, on), off
    elsewhere (GPUs: the gpu preset decides; fp32 on CPU: NNPACK's eager convolutions are faster).
    Returns (the setting, a one-line reason when auto decided, else None)."""
    if isinstance(value, str):
        if value != "auto":
            raise FastNSTError(
                f"system.compile={value!r}: use auto, true, false or a dict of torch.compile options"
            )
        steps = -1 if max_steps is None else int(max_steps)
        bf16_cpu = torch.device(device).type == "cpu" and str(precision or "").startswith("bf16")
        if bf16_cpu and (steps < 0 or steps >= COMPILE_AUTO_MIN_STEPS):
            return True, (
                "compile=auto: on (bf16 on CPU, a run of "
                f"{'unbounded' if steps < 0 else steps} steps: the compile pays for itself)"
            )
        if bf16_cpu:
            return False, (
                f"compile=auto: off (a run under {COMPILE_AUTO_MIN_STEPS} steps; compile=true forces it)"
            )
        return False, None
    return value, None


def scaled_lr(
    base_lr: float, batch_size: int, base_batch_size: int = 4, rule: str | bool = "sqrt"
) -> float:
    """Learning rate for a global batch of `batch_size` when `base_lr` was tuned for
    `base_batch_size`: sqrt (the usual rule for Adam: the gradient noise scales with
    1/sqrt(batch)) or linear (Goyal et al., for SGD). rule=True means sqrt, False/None no scaling."""
    if rule is True:
        rule = "sqrt"
    if not rule:
        return float(base_lr)
    if rule not in LR_SCALING_RULES:
        raise FastNSTError(
            f"system.optimizer.scale_lr_with_batch={rule!r}: use false, true, sqrt or linear"
        )
    ratio = batch_size / base_batch_size
    return float(base_lr) * (math.sqrt(ratio) if rule == "sqrt" else ratio)


def resolve_channels_last(
    value: str | bool, device: torch.device, precision: str | None = None
) -> bool:
    """system.channels_last: true/false, or auto = on for CUDA and for CPU training in bf16
    (oneDNN's AMX / AVX512-BF16 kernels work on NHWC maps: without it every convolution reorders
    its input, and the bf16 step was 1.3x slower); off for fp32 on CPU, where it measured no
    faster (docs/speed-and-scale.md)."""
    if value == "auto":
        return torch.device(device).type == "cuda" or str(precision or "").startswith("bf16")
    if isinstance(value, bool):
        return value
    raise FastNSTError(f"system.channels_last={value!r}: use auto, true or false")


class StyleTransferModule(pl.LightningModule):
    """A TransformerNet trained against a frozen-VGG19 perceptual loss (built in train.py from
    the run's config: fastnst.train.build_system).

    Args:
        net: the TransformerNet to train (the model group's `_target_`; for a multi-style config
            built with styles=<style.names>).
        loss: a partial PerceptualLoss (the loss group's `_target_` with `_partial_`): the
            module calls it with the effective beta (loss.beta x style.beta_scale) and
            `vgg_weights`, so the frozen VGG is built here and kept out of state_dict,
            checkpoints and the optimizer.
        optimizer: a partial optimizer (system.optimizer with `_partial_: true`), called with the
            trainable parameters; its lr is rescaled by `scale_lr_with_batch`.
        style: a conf/style preset (image(s), size, beta_scale), or a multi-style one (names).
        vgg_weights: embedded | torchvision | path.
        scale_lr_with_batch: false | true = sqrt | sqrt | linear: rescale the optimizer's lr,
            tuned for base_batch_size, to the global batch (batch_size x devices x nodes x
            accumulation).
        scheduler: null or {name: cosine|step, warmup_steps, step_size, gamma, min_lr_ratio}.
        temporal_weight, temporal_transform: the stability term (loss.temporal_weight > 0,
            fastnst.temporal).
        channels_last: auto (CUDA, and bf16 on CPU) | true | false, for the transformer, the VGG and the photos.
        compile: torch.compile the transformer's and the VGG's forward (false | true | a dict of
            torch.compile kwargs, e.g. {mode: max-autotune}), or auto (`resolve_compile`: on for
            bf16 training on CPU of at least COMPILE_AUTO_MIN_STEPS steps).
        init_from: null or a network (run dir, model.pt, .ckpt; train.py also takes a bundled
            network's name) whose weights the transformer starts from (styles matched by name;
            a new style starts from the mean of the others).
        finetune: null (train everything) | style_params (only the scales and shifts of the
            styles init_from lacks; needs a multi-style style config and init_from).

    The divergence guard and the image/hparams logging are callbacks (fastnst.callbacks
    DivergenceGuard, LogImagesAndHparams). The plain arguments are saved as hyperparameters;
    the network, the loss and the optimizer are not (the checkpoint holds the network's
    weights and config, fastnst_model_config).

    A style config with `names` (conf/style/multi.yaml) trains a multi-style network: each photo
    of a batch is paired with one style, round robin (balanced); the Gram targets of all styles
    are computed once; losses are logged per style (train/style/<name>, val/<name>/...).
    """

    def __init__(
        self,
        net: TransformerNet,
        loss: Callable[..., PerceptualLoss],
        optimizer: Callable[..., torch.optim.Optimizer],
        style: dict,
        vgg_weights: str = "embedded",
        scale_lr_with_batch: str | bool = False,
        base_batch_size: int = 4,
        scheduler: dict | None = None,
        temporal_weight: float = 0.0,
        temporal_transform: dict | None = None,
        channels_last: str | bool = "auto",
        compile: bool | str | dict = False,
        init_from: str | None = None,
        finetune: str | None = None,
        teachers: str | dict | None = None,
        teacher_weight: float = 0.0,
        teacher_grams: bool = False,
        teacher_content: bool = False,
    ):
        super().__init__()
        style = _plain(style)
        # logger=False: the hparams are written once, with their metrics, by LogImagesAndHparams
        self.save_hyperparameters(
            {
                "style": style,
                "vgg_weights": vgg_weights,
                "scale_lr_with_batch": scale_lr_with_batch,
                "base_batch_size": int(base_batch_size),
                "scheduler": _plain(scheduler),
                "temporal_weight": float(temporal_weight or 0.0),
                "temporal_transform": _plain(temporal_transform),
                "channels_last": channels_last,
                "compile": _plain(compile),
                "init_from": None if init_from is None else str(init_from),
                "finetune": finetune,
                "teachers": _plain(teachers),
                "teacher_weight": float(teacher_weight or 0.0),
                "teacher_grams": bool(teacher_grams),
                "teacher_content": bool(teacher_content),
            },
            logger=False,
        )
        self.members = multistyle.members_of(style) if multistyle.is_multi(style) else None
        self.style_names = [m["name"] for m in self.members] if self.members else None
        if list(net.styles or []) != list(self.style_names or []):
            raise FastNSTError(
                f"the network's styles ({net.styles}) are not the style config's ({self.style_names}): "
                "build it with styles=<style.names>"
            )
        self.net = accel.accelerate(
            net
        )  # on CPU: NNPACK convs and sub-pixel upsampling (fastnst.accel)
        self.optimizer_factory = optimizer
        self.active_styles = list(
            range(len(self.style_names or []))
        )  # the styles photos are paired with
        self._setup_init(init_from, finetune)
        # Not a registered submodule: keeps the frozen VGG out of state_dict, checkpoints and
        # the optimizer. _apply below moves it with the module.
        # (a multi-style network applies each style's beta_scale per photo)
        first = OmegaConf.create({**self.members[0], "beta_scale": 1.0} if self.members else style)
        perceptual = loss_with_style_targets(loss, first, vgg_weights=vgg_weights)
        object.__setattr__(self, "_perceptual", perceptual)
        # multi-style: every style's target Grams {layer: (N, C, C)} and beta_scale (N,), computed once
        self._style_grams: dict[str, torch.Tensor] | None = None
        self._style_scales: torch.Tensor | None = None
        if self.members:
            self._style_grams = stacked_style_grams(perceptual, self.members)
            self._style_scales = torch.tensor([float(m["beta_scale"] or 1.0) for m in self.members])
        # temporal_weight > 0: penalise stylize(T(x)) != T(stylize(x)) (fastnst.temporal)
        self.temporal_weight = self.hparams.temporal_weight
        if self.temporal_weight < 0:
            raise FastNSTError(
                f"loss.temporal_weight must be >= 0 (0 = off), got {self.temporal_weight}"
            )
        try:
            self.temporal_limits = TransformRange.from_config(self.hparams.temporal_transform)
        except ValueError as e:
            raise FastNSTError(str(e)) from None
        # teachers: each style's output is also pulled toward a finished network's (fastnst.distill)
        self.teacher_weight = check_weight("teacher_weight", teacher_weight or 0.0)
        self.teacher_grams = bool(teacher_grams)
        if self.teacher_grams and not perceptual.beta:
            # the teachers' Grams would replace the targets of a style term that is off
            log.warning("teacher_grams=true does nothing with loss.beta=0 (no style term): ignored")
            self.teacher_grams = False
        self.teacher_content = bool(teacher_content)
        if self.teacher_content and not perceptual.alpha:
            log.warning(
                "teacher_content=true does nothing with loss.alpha=0 (no content term): ignored"
            )
            self.teacher_content = False
        specs = teacher_specs(self.hparams.teachers, self.style_names, style.get("name"))
        self._teachers = Teachers(specs, self._student_stroke_scales(style))
        if not perceptual.reads_features and not (self._teachers and self.teacher_weight):
            raise FastNSTError(
                "loss.alpha and loss.beta are both 0 and no teachers= with a teacher_weight: "
                "the network has nothing to learn from"
            )
        # its own generator: the transforms do not shift the data order or the network's init
        self._temporal_generator = torch.Generator().manual_seed(0)
        self._last_batch_time: float | None = None
        self.skipped_files = torch.zeros((), dtype=torch.long)
        self.use_channels_last = False
        self._compiled = False

    def _student_stroke_scales(self, style: dict) -> dict[int | None, float]:
        """The stroke scale this network will paint each style at (its file's meta): what its
        teachers paint relative to (fastnst.distill)."""
        if not self.style_names:
            return {None: multistyle.preset_stroke_scale(style)}
        own = multistyle.own_stroke_scales(style)
        return {i: own.get(name, 1.0) for i, name in enumerate(self.style_names)}

    @property
    def perceptual(self) -> PerceptualLoss:
        return self._perceptual

    def _setup_init(self, init_from, finetune) -> None:
        multistyle.check_finetune_mode(finetune, init_from, bool(self.style_names))
        if not init_from:
            return
        from fastnst.zoo import resolve_model  # init_from=six_styles: a bundled network's name

        new = multistyle.init_network(self.net, resolve_model(init_from))
        if finetune == "style_params":
            multistyle.require_new_styles(new, init_from, self.style_names)
            self.active_styles = [self.style_names.index(name) for name in new]
            multistyle.freeze_for_style_params(self.net, self.active_styles)
            log.info(
                "finetune=style_params: training the scales and shifts of %s only", ", ".join(new)
            )

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._perceptual._apply(fn, recurse)
        if self._style_grams is not None:
            self._style_grams = {k: _keep_float32(fn(v), v) for k, v in self._style_grams.items()}
            self._style_scales = self._style_scales.to(
                next(iter(self._style_grams.values())).device
            )
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
        precision = getattr(self.trainer, "precision", None)
        self.use_channels_last = resolve_channels_last(
            self.hparams.channels_last, device, precision
        )
        if self.use_channels_last and self.hparams.channels_last == "auto" and device.type == "cpu":
            log.info(
                "channels_last memory format (system.channels_last=auto): bf16 on CPU runs oneDNN's NHWC kernels"
            )
        if self.use_channels_last:
            # in place (the same Parameter objects): optimizer references stay valid
            self.net.to(memory_format=torch.channels_last)
            self._perceptual.vgg.to(memory_format=torch.channels_last)
        compile_, why = resolve_compile(
            self.hparams.compile, device, precision, getattr(self.trainer, "max_steps", None)
        )
        if why:
            log.info(why)
        self.compile_networks(compile_)

    def compile_networks(self, options: bool | dict | None) -> None:
        """torch.compile the transformer's and the VGG trunk's forward in place: module structure,
        state_dict, checkpoints and exports are unchanged."""
        if not options or self._compiled:
            return
        kwargs = dict(options) if isinstance(options, dict) else {}
        for module in (self.net, self._perceptual.vgg):
            module.forward = torch.compile(module.forward, **kwargs)
        self._compiled = True
        self._compile_clock: float | None = None
        log.info(
            "compile: the transformer and the VGG are compiled (torch.compile%s) during the first "
            "training step and the first validation, once per run; later steps reuse the code",
            f" {kwargs}" if kwargs else "",
        )

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self._compiled and getattr(self, "_compile_clock", 0) is None:
            self._compile_clock = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self._compiled and getattr(self, "_compile_clock", None):
            log.info(
                "compile: the first step took %.1f s (compiling, paid once per run)",
                time.perf_counter() - self._compile_clock,
            )
            self._compile_clock = 0.0  # said once

    def _to_memory_format(self, photos: torch.Tensor) -> torch.Tensor:
        return (
            photos.contiguous(memory_format=torch.channels_last)
            if self.use_channels_last
            else photos
        )

    # -- training -------------------------------------------------------------------------
    def _losses(
        self,
        photos: torch.Tensor,
        styles: list[int] | None = None,
        temporal: bool = False,
        teach: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The loss terms; for a multi-style network each photo trains style `styles[i]`;
        `temporal` adds the stability term when loss.temporal_weight > 0, `teach` the teachers'
        term when the run has teachers."""
        teacher = None
        if (
            teach
            and self._teachers
            and (self.teacher_weight or self.teacher_grams or self.teacher_content)
        ):
            teacher = self._teachers.targets(photos, styles)
        content = self._content_targets(teacher, photos)
        if styles is None:
            weights = None
            stylized = self.net(photos)
            targets = self._teacher_grams(teacher, None, photos)
            terms = self._perceptual(stylized, content, targets=targets)
        else:
            index = torch.tensor(styles, device=photos.device)
            targets = {k: v[index] for k, v in self._style_grams.items()}
            targets = self._teacher_grams(teacher, targets, photos)
            weights = self._one_hot(styles, photos)
            stylized = self.net(photos, weights)
            terms = self._perceptual(
                stylized, content, targets=targets, style_scales=self._style_scales[index]
            )
        if temporal and self.temporal_weight:
            net = self.net if weights is None else (lambda x: self.net(x, weights))
            term = temporal_loss(
                net, photos, stylized, self.temporal_limits, self._temporal_generator
            )
            terms["total"] = terms["total"] + self.temporal_weight * term
            terms["temporal"] = term.detach()
        if teacher is not None and self.teacher_weight:
            term = distill_loss(stylized, *teacher)
            terms["total"] = terms["total"] + self.teacher_weight * term
            terms["distill"] = term.detach()
        return terms

    def _content_targets(self, teacher, photos):
        """The content term's target features: the photo's; with teacher_content, each taught
        photo's teacher output instead (its features at the content layers: where the teacher's
        strokes and edges fall, which a pixel term can only average)."""
        if teacher is None or not self.teacher_content:
            return self._perceptual.content_features(photos)
        output, mask = teacher
        source = torch.where(mask.view(-1, 1, 1, 1), output.to(photos.dtype), photos)
        return self._perceptual.content_features(source)

    def _teacher_grams(self, teacher, targets, photos):
        """With teacher_grams: each taught photo's style target is the Grams of its teacher's
        output (the texture the teacher paints on that photo), not the painting's. `targets`:
        the batch's {layer: (B, C, C)}, None for a single style (the loss's own, then)."""
        if teacher is None or not self.teacher_grams:
            return targets
        output, mask = teacher
        own = self._perceptual.style_grams_each(output)
        keep = mask.view(-1, 1, 1)
        base = self._perceptual.style_targets if targets is None else targets
        return {
            k: torch.where(keep, own[k], v.expand(photos.shape[0], *v.shape[1:]).float())
            for k, v in base.items()
        }

    def training_step(self, batch, batch_idx):
        photos = batch["image"]
        skipped = batch.get("skipped")
        if skipped is not None:
            # a running tensor sum: no host-device sync until the logger flushes
            self.skipped_files = self.skipped_files.to(skipped.device) + skipped
            self.log("data/skipped_files", self.skipped_files.float(), on_step=True, on_epoch=False)
        if photos.shape[0] == 0:
            return None  # every file of this batch was unreadable
        styles = (
            multistyle.batch_styles(self.global_step, photos.shape[0], self.active_styles)
            if self.style_names
            else None
        )
        # a non-finite total skips its update (fastnst.callbacks.DivergenceGuard)
        terms = self._losses(self._to_memory_format(photos), styles, temporal=True, teach=True)
        per_image = terms.pop("style_per_image", None)
        if per_image is not None and styles is not None:
            for i in sorted(set(styles)):
                mine = [j for j, s in enumerate(styles) if s == i]
                self.log(
                    f"train/style/{self.style_names[i]}",
                    per_image[mine].mean(),
                    on_step=True,
                    on_epoch=False,
                    batch_size=len(mine),
                )
        for name, value in terms.items():
            # the global-batch mean under DDP for the headline loss (one small all-reduce)
            self.log(
                f"train/{'loss' if name == 'total' else name}",
                value,
                on_step=True,
                on_epoch=False,
                prog_bar=name == "total",
                batch_size=photos.shape[0],
                sync_dist=name == "total",
            )
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False)
        now = time.perf_counter()
        if self._last_batch_time is not None:
            self.log(
                "train/images_per_s",
                photos.shape[0] / max(now - self._last_batch_time, 1e-9),
                on_step=True,
                on_epoch=False,
            )
        self._last_batch_time = now
        return terms["total"]

    def validation_step(self, batch, batch_idx):
        photos = batch["image"]
        if photos.shape[0] == 0:
            return
        photos = self._to_memory_format(photos)
        if not self.style_names:
            terms = self._losses(photos)
            for name in ("total", "content", "style", "tv"):
                self.log(
                    f"val/{'loss' if name == 'total' else name}",
                    terms[name],
                    on_step=False,
                    on_epoch=True,
                    batch_size=photos.shape[0],
                    sync_dist=True,
                )
            return
        # every photo in each trained style; val/loss etc. = the mean over those styles
        sums: dict[str, torch.Tensor] = {}
        for i in self.active_styles:
            terms = self._losses(photos, [i] * photos.shape[0])
            for name in ("total", "content", "style", "tv"):
                key = "loss" if name == "total" else name
                self.log(
                    f"val/{self.style_names[i]}/{key}",
                    terms[name],
                    on_step=False,
                    on_epoch=True,
                    batch_size=photos.shape[0],
                    sync_dist=True,
                )
                sums[key] = sums.get(key, 0) + terms[name] / len(self.active_styles)
        for key, value in sums.items():
            self.log(
                f"val/{key}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=photos.shape[0],
                sync_dist=True,
            )

    def on_fit_start(self):
        self._last_batch_time = None

    @torch.no_grad()
    def stylize_each_style(self, photos: torch.Tensor) -> list[tuple[str | None, torch.Tensor]]:
        """(style name or None, the network's output in eval mode) for every trained style."""
        was_training = self.net.training
        self.net.eval()
        out = []
        for i in self.active_styles or [None]:
            style = None if i is None else self._one_hot([i] * photos.shape[0], photos)
            out.append((None if i is None else self.style_names[i], self.net(photos, style)))
        self.net.train(was_training)
        return out

    # -- optimization ---------------------------------------------------------------------
    def configure_optimizers(self):
        rule, base_batch = self.hparams.scale_lr_with_batch, self.hparams.base_batch_size
        settings = getattr(self.optimizer_factory, "keywords", {})  # a functools.partial from Hydra
        kwargs = {}
        if rule:
            if "lr" not in settings:
                raise FastNSTError("system.optimizer.scale_lr_with_batch needs system.optimizer.lr")
            kwargs["lr"] = scaled_lr(
                float(settings["lr"]), self.global_batch_size(), base_batch, rule
            )
            log.info(
                "learning rate %.3g for a global batch of %d (%s scaling from batch %d)",
                kwargs["lr"],
                self.global_batch_size(),
                "sqrt" if rule is True else rule,
                base_batch,
            )
        opt = self.optimizer_factory(
            [p for p in self.net.parameters() if p.requires_grad], **kwargs
        )
        sched = self.hparams.scheduler
        if not sched:
            return opt
        total = (
            self.trainer.max_steps
            if self.trainer.max_steps and self.trainer.max_steps > 0
            else 40000
        )
        # its keys are optional (conf/train.yaml leaves system.scheduler null): defaults here
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
                return float(sched.get("gamma", 0.1)) ** (
                    (step - warmup) // int(sched.get("step_size", 10000))
                )
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
