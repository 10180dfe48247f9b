"""Widening a finished network (fastnst.widen, `init_from=` with a wider `model=`): the wider
network paints the same image, its copied channels learn apart, and a narrower model= is refused."""

from __future__ import annotations

import pytest
import torch

from fastnst.artifacts import save_exported
from fastnst.errors import FastNSTError
from fastnst.multistyle import init_network
from fastnst.transformer import TransformerNet
from fastnst.widen import widen

STYLES = ["starry_night", "wave"]


def trained_looking(styles=None, norm="instance", upsample="nearest") -> TransformerNet:
    """A small network whose norms are far from their defaults, as after training."""
    torch.manual_seed(0)
    net = TransformerNet((4, 8, 12), 2, norm, styles=styles, upsample=upsample).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) and (
                module.weight is not None
            ):
                module.weight.normal_(1.0, 0.4)
                module.bias.normal_(0.0, 0.4)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize(
    "styles, norm, upsample",
    [(None, "instance", "nearest"), (STYLES, "instance", "bilinear"), (None, "batch", "nearest")],
)
def test_the_wider_network_paints_the_same_image(styles, norm, upsample):
    net = trained_looking(styles, norm, upsample)
    wide = widen(net, [7, 16, 20])  # not multiples of 4-8-12: some channels have one copy more
    assert wide.config["channels"] == [7, 16, 20] and wide.styles == net.styles
    assert wide.upsample_mode == upsample
    x = torch.rand(2, 3, 37, 30)
    blends = [None] if styles is None else [torch.tensor([1.0, 0.0]), torch.tensor([0.3, 0.7])]
    with torch.no_grad():
        for blend in blends:
            assert torch.allclose(wide(x, blend), net(x, blend), atol=1e-5)
    # and it is wider in fact, not the old weights padded with zeros
    assert wide.down1[1].weight.shape == (7, 3, 9, 9)
    assert torch.equal(wide.down1[1].weight[4], net.down1[1].weight[0])


def test_copied_channels_learn_apart():
    wide = widen(trained_looking(), [8, 16, 24]).train()
    opt = torch.optim.Adam(wide.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        wide(torch.rand(2, 3, 32, 32)).square().mean().backward()
        opt.step()
    filters = wide.down2[1].weight  # channel 8 started as a copy of channel 0
    assert not torch.allclose(filters[0], filters[8], atol=1e-4)


def test_init_from_widens_a_narrower_network_and_refuses_a_narrower_model(tmp_path):
    narrow = trained_looking(STYLES)
    source = save_exported(tmp_path / "narrow.pt", narrow)
    wide = TransformerNet((8, 16, 24), 2, styles=[*STYLES, "udnie"]).eval()
    assert init_network(wide, source) == ["udnie"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(
            wide(x, torch.tensor([0.0, 1.0, 0.0])), narrow(x, torch.tensor([0.0, 1.0])), atol=1e-5
        )
    with pytest.raises(FastNSTError, match=r"init_from=.*narrow\.pt.*model= it was trained with"):
        init_network(TransformerNet((4, 8, 8), 2, styles=STYLES), source)
    with pytest.raises(FastNSTError, match="only be widened"):
        widen(narrow, [2, 8, 12])
