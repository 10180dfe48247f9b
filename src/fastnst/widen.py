"""A network made wider without changing what it paints (Net2WiderNet, Chen et al. 2016): the
start of a wider network from a finished narrower one (`init_from=` with a wider `model=`).

Each new channel copies an old one (channel j copies j mod the old width), so its activations
equal the original's at every norm and ReLU. The next layer splits each old input weight
among the copies with random fractions that sum to one, element by element: the output is
unchanged, but the copies receive different gradients and so learn different features
(an even split would keep them identical under Adam forever)."""

from __future__ import annotations

import torch

from fastnst.errors import FastNSTError
from fastnst.transformer import TransformerNet


def _layers(num_residual: int):
    """(conv, norm, input stage, output stage) of each conv in forward order; stage None is
    the image's 3 channels, which never widen."""
    yield "down1.1", "down1.2", None, 0
    yield "down2.1", "down2.2", 0, 1
    yield "down3.1", "down3.2", 1, 2
    for k in range(num_residual):
        for j in (0, 1):
            yield f"residuals.{k}.body.{j}.1", f"residuals.{k}.body.{j}.2", 2, 2
    yield "up1.conv.1", "up1.conv.2", 2, 1
    yield "up2.conv.1", "up2.conv.2", 1, 0
    yield "out.1", None, 0, None


def can_widen(old: list[int], new: list[int]) -> bool:
    return len(old) == len(new) and old != new and all(n >= o for o, n in zip(old, new))


def widen(net: TransformerNet, channels, seed: int = 0) -> TransformerNet:
    """A copy of `net` with the stage widths `channels` (each at least `net`'s) that computes
    the same image for every input and style."""
    old = list(net.config["channels"])
    channels = [int(c) for c in channels]
    if not (can_widen(old, channels) or old == channels):
        raise FastNSTError(f"a network of {old} channels can only be widened, not made {channels}")
    wide = TransformerNet(
        channels,
        net.config["num_residual"],
        net.config["norm"],
        styles=net.styles,
        upsample=net.upsample_mode,
    )
    generator = torch.Generator().manual_seed(seed)
    source = [torch.arange(c) % o for o, c in zip(old, channels)]  # new channel -> old channel
    state, narrow = wide.state_dict(), net.state_dict()
    for conv, norm, stage_in, stage_out in _layers(net.config["num_residual"]):
        weight = narrow[f"{conv}.weight"]
        bias = narrow[f"{conv}.bias"]
        if stage_out is not None:
            weight, bias = weight[source[stage_out]], bias[source[stage_out]]
        if stage_in is not None:
            weight = _split_inputs(weight, source[stage_in], generator)
        state[f"{conv}.weight"], state[f"{conv}.bias"] = weight, bias
        if norm is None:
            continue
        for key, value in narrow.items():
            if key.startswith(f"{norm}.") and value.dim() >= 1:  # (C) or a style's (N, C) rows
                state[key] = value[..., source[stage_out]]
            elif key.startswith(f"{norm}."):
                state[key] = value
    wide.load_state_dict(state)
    return wide.train(net.training)


def _split_inputs(weight: torch.Tensor, source: torch.Tensor, generator) -> torch.Tensor:
    """`weight` (out, in_old, k, k) -> (out, in_new, k, k): each old input's weights shared by
    its copies in random positive fractions that sum to one."""
    fractions = torch.rand((weight.shape[0], len(source), *weight.shape[2:]), generator=generator)
    fractions = fractions + 0.5  # in [0.5, 1.5): no copy gets (almost) nothing
    totals = torch.zeros_like(weight).index_add_(1, source, fractions)
    return weight[:, source] * fractions / totals[:, source]


__all__ = ["widen", "can_widen"]
