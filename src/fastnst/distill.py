"""Teacher networks: pull a network's output toward finished networks' outputs of the same photo
(knowledge distillation, Hinton et al. 2015; for style transfer Wang et al. 2020).

A multi-style network learns each style from a network trained for that style alone
(`teachers=zoo`: the bundled ones), and a smaller or faster network learns from a larger one
(`model=johnson_half teachers=the_scream`). The term is the mean squared difference of the two
outputs in [0, 1] pixel units, next to the perceptual losses, weighted by `teacher_weight`.
Teachers paint with their own margin, and at their own stroke scale relative to the student's:
a student that will paint a style at stroke scale s (its preset's `stroke_scale`, or the multi-style
list's `style.stroke_scales`) learns the teacher's output at 1/s of the teacher's own scale, so that
at s the two paint alike. With equal scales that is the teacher network's own output of the photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from fastnst.errors import FastNSTError

# teachers=zoo: each style's bundled network
ZOO = "zoo"


def teacher_specs(
    teachers: str | Mapping | None, style_names: Sequence[str] | None, style_name: str | None
) -> dict[int | None, str]:
    """The teacher network of each style: {style index: network} for a multi-style run,
    {None: network} for a single-style one. `teachers` is a network (a bundled style name, a run
    directory, a model.pt or .ckpt), `zoo` (each style's bundled network) or, for a multi-style
    run, a mapping {style: network or zoo}; styles left out learn without a teacher."""
    if teachers is None:
        return {}
    if isinstance(teachers, Mapping):
        if not style_names:
            raise FastNSTError(
                "teachers: a mapping {style: network} needs a multi-style run (style=multi); "
                "give one network for a single-style run"
            )
        unknown = sorted(str(k) for k in teachers if str(k) not in style_names)
        if unknown:
            raise FastNSTError(
                f"teachers: {', '.join(unknown)} is not among the run's styles "
                f"({', '.join(style_names)})"
            )
        return {
            style_names.index(str(name)): _spec(spec, str(name)) for name, spec in teachers.items()
        }
    spec = str(teachers)
    if style_names:
        if spec != ZOO:
            raise FastNSTError(
                f"teachers={spec}: a multi-style run needs teachers=zoo or a mapping "
                "{style: network}, one per style"
            )
        return {i: _spec(ZOO, name) for i, name in enumerate(style_names)}
    return {None: _spec(spec, style_name)}


def _spec(spec, style: str | None) -> str:
    spec = str(spec)
    if spec != ZOO:
        return spec
    from fastnst.zoo import is_bundled

    if not style or not is_bundled(style):
        raise FastNSTError(f"teachers=zoo: no bundled network for the style {style!r}")
    return style


def absolute_teachers(teachers):
    """`teachers=` with its file and folder paths made absolute (relative to the launch
    directory), so a resumed run finds them; `zoo` and bundled style names stay as they are."""
    from fastnst.config import resolve_user_path
    from fastnst.zoo import is_bundled

    def absolute(spec):
        spec = str(spec)
        return spec if spec == ZOO or is_bundled(spec) else str(resolve_user_path(spec))

    if teachers is None:
        return None
    if isinstance(teachers, Mapping):
        return {str(k): absolute(v) for k, v in teachers.items()}
    return absolute(teachers)


class Teachers:
    """The teacher networks of a run, opened on first use on the photos' device (frozen, fp32,
    PyTorch backend: the same numbers on every machine). `student_scales`: {key: the stroke scale
    the student will paint that style at}; 1.0 where left out."""

    def __init__(
        self,
        specs: Mapping[int | None, str],
        student_scales: Mapping[int | None, float] | None = None,
    ):
        self.specs = dict(specs)
        self.student_scales = dict(student_scales or {})
        self._opened: dict[int | None, object] = {}

    def __bool__(self) -> bool:
        return bool(self.specs)

    def _teacher(self, key: int | None, device: torch.device):
        if key not in self._opened:
            from fastnst.stylize import Stylizer

            scale = self.student_scales.get(key, 1.0)
            try:
                network = Stylizer.load(
                    self.specs[key],
                    device=device.type,
                    backend="torch",
                    precision="fp32",
                    stroke_scale=1.0 / scale,
                )
            except FastNSTError as e:  # e.g. a student scale the teacher cannot paint down to
                raise FastNSTError(
                    f"teachers: {self.specs[key]} for a student painting at stroke scale "
                    f"{scale:g}: {e}"
                ) from None
            if network.styles:
                raise FastNSTError(
                    f"teachers: {self.specs[key]} is a multi-style network; a teacher paints one style"
                )
            self._opened[key] = network
        return self._opened[key]

    @torch.no_grad()
    def targets(
        self, photos: torch.Tensor, styles: Sequence[int] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the teachers' outputs, a (B,) mask of the photos whose style has a teacher)."""
        target = torch.zeros_like(photos, dtype=torch.float32)
        mask = torch.zeros(photos.shape[0], dtype=torch.bool, device=photos.device)
        keys = [None] * photos.shape[0] if styles is None else list(styles)
        for key in dict.fromkeys(keys):
            if key not in self.specs:
                continue
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key], device=photos.device)
            teacher = self._teacher(key, photos.device)
            target[rows] = teacher.stylize_tensor(photos[rows].float()).to(photos.device)
            mask[rows] = True
        return target, mask


def distill_loss(stylized: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over the photos that have a teacher (0 when none has)."""
    if not bool(mask.any()):
        return stylized.sum() * 0.0
    return F.mse_loss(stylized[mask].float(), target[mask])
