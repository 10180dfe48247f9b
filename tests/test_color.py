"""One definition of luma serves the colour prior, the stroke-scale detail and optical flow."""

import numpy as np
import pytest
import torch

from fastnst.color import LUMA_WEIGHTS, luma, opponent_channels
from fastnst.flow import to_gray
from fastnst.stroke import luminance


def test_luma_of_each_primary_is_its_rec601_weight():
    primaries = torch.eye(3).view(3, 3, 1, 1)  # red, green, blue pixels
    assert luma(primaries).flatten().tolist() == pytest.approx(list(LUMA_WEIGHTS))
    assert sum(LUMA_WEIGHTS) == pytest.approx(1.0)


def test_opponent_channels_of_grey_carry_no_colour_and_keep_its_level():
    grey = torch.full((2, 3, 4, 5), 0.4)
    channels = opponent_channels(grey)
    assert channels.shape == grey.shape
    assert torch.allclose(channels[:, 0], torch.full((2, 4, 5), 0.4))
    assert channels[:, 1:].abs().max().item() < 1e-6


def test_stroke_detail_and_flow_frames_use_the_same_luma():
    rgb = torch.rand(1, 3, 6, 7)
    expected = luma(rgb)[0]
    assert torch.equal(luminance(rgb)[0, 2], expected)
    assert np.array_equal(to_gray(rgb), expected.mul(255).round().byte().numpy())
