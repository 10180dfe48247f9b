"""Optical flow between video frames (OpenCV DIS), its reliability mask, and warping.

Flow is computed on the *input* frames (the photos move; a stylization should move with them)
and used on the outputs: the temporal warping error (Lai et al. 2018) and `temporal=flow`
smoothing at inference. Flow runs on the CPU (OpenCV); warping is torch `grid_sample` on
whatever device the frames are on.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fastnst.color import luma

# forward-backward consistency test of Sundaram et al. 2010 (as in Ruder et al. 2016):
# |f + b|^2 <= RELATIVE * (|f|^2 + |b|^2) + ABSOLUTE  (px^2)
RELATIVE, ABSOLUTE = 0.01, 0.5


def to_gray(frame: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> (H, W) uint8 luminance, as DIS wants."""
    rgb = frame.reshape(-1, *frame.shape[-3:])[0].detach().float().cpu().clamp(0, 1)
    gray = luma(rgb)
    return np.ascontiguousarray(gray.mul(255).round().byte().numpy())


class FlowEstimator:
    """DIS optical flow (cv2.DISOpticalFlow, medium preset): flow(a, b)[y, x] = the displacement
    (dx, dy) taking pixel (x, y) of gray image `a` to its match in `b`."""

    def __init__(self, preset: str = "medium"):
        import cv2

        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self.dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.dis.calc(a, b, None)

    def backward_with_mask(
        self, prev: np.ndarray, cur: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow from `cur` back to `prev` ((1, 2, H, W): where each pixel of cur was in prev)
        and its reliability mask ((1, 1, H, W) of 0/1: forward-backward consistent, inside)."""
        back = torch.from_numpy(self(cur, prev)).permute(2, 0, 1).unsqueeze(0)
        fwd = torch.from_numpy(self(prev, cur)).permute(2, 0, 1).unsqueeze(0)
        return back, consistency_mask(back, fwd)


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid for grid_sample (align_corners=True) at pixel + flow."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([x, y], dim=-1)


def warp_by_flow(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out[y, x] = image[(y, x) + flow[y, x]], bilinear (border values outside)."""
    flow = flow.to(device=image.device, dtype=torch.float32)
    return F.grid_sample(
        image.float(), _grid(flow), mode="bilinear", padding_mode="border", align_corners=True
    )


def consistency_mask(back: torch.Tensor, fwd: torch.Tensor) -> torch.Tensor:
    """1 where following `back` then `fwd` returns (nearly) to the start and lands inside the
    frame; 0 at occlusions, disocclusions and unreliable matches."""
    fwd_at = warp_by_flow(fwd, back)  # the forward flow where each pixel came from
    err = (back + fwd_at).pow(2).sum(1, keepdim=True)
    bound = (
        RELATIVE * (back.pow(2).sum(1, keepdim=True) + fwd_at.pow(2).sum(1, keepdim=True))
        + ABSOLUTE
    )
    _, _, h, w = back.shape
    grid = _grid(back.float())
    inside = (grid.abs() <= 1).all(-1).unsqueeze(1)
    return ((err <= bound) & inside).float()


def warping_error_pair(
    prev_out: torch.Tensor, cur_out: torch.Tensor, back: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float]:
    """(sum over reliable pixels of the squared RGB difference between cur_out and prev_out
    warped by the input flow, number of reliable pixels)."""
    warped = warp_by_flow(prev_out, back)
    mask = mask.to(warped.device)
    sq = (cur_out.float().to(warped.device) - warped).pow(2).sum(1, keepdim=True) * mask
    return float(sq.sum()), float(mask.sum())


def _gray_at(frame: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """An input frame's luminance at the output's (H, W) (the stylizer may have resized it)."""
    frame = frame.reshape(-1, *frame.shape[-3:])[:1].float()
    if tuple(frame.shape[-2:]) != tuple(size):
        frame = F.interpolate(
            frame.cpu(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
    return to_gray(frame)


def warping_error(inputs, outputs, estimator: FlowEstimator | None = None) -> float:
    """Temporal warping error (Lai et al. 2018) of a stylized video: over consecutive frames,
    the squared RGB difference (summed over channels, pixels in [0, 1]) between output t+1 and
    output t warped by the flow of the *input* frames, averaged over the reliable pixels of each
    pair, then over the pairs. `inputs`, `outputs`: iterables of (1, 3, H, W) frames in step."""
    estimator = estimator or FlowEstimator()
    errors, prev_gray, prev_out = [], None, None
    for frame, out in zip(inputs, outputs, strict=True):
        gray = _gray_at(frame, out.shape[-2:])
        if prev_gray is not None:
            back, mask = estimator.backward_with_mask(prev_gray, gray)
            total, count = warping_error_pair(prev_out, out, back, mask)
            if count:
                errors.append(total / count)
        prev_gray, prev_out = gray, out
    if not errors:
        raise ValueError("the warping error needs at least two frames with reliable flow")
    return float(np.mean(errors))


class TemporalSmoother:
    """`temporal=flow`: blend each output frame with the previous (smoothed) output warped by the
    input frames' flow, where that flow is reliable:
        out_t = (1 - s * mask) * stylized_t + s * mask * warp(out_{t-1})
    s = strength in 0..1 (0 = off). Call in frame order with each input and its stylization."""

    def __init__(self, strength: float = 0.5, estimator: FlowEstimator | None = None):
        self.strength = float(strength)
        self.estimator = estimator or FlowEstimator()
        self.prev_gray: np.ndarray | None = None
        self.prev_out: torch.Tensor | None = None

    def __call__(self, frame: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        gray = _gray_at(frame, stylized.shape[-2:])
        out = stylized
        if self.prev_gray is not None and self.strength > 0 and self.prev_gray.shape == gray.shape:
            back, mask = self.estimator.backward_with_mask(self.prev_gray, gray)
            warped = warp_by_flow(self.prev_out, back).to(stylized.dtype)
            weight = mask.to(device=stylized.device, dtype=stylized.dtype) * self.strength
            out = torch.lerp(stylized, warped, weight)
        self.prev_gray, self.prev_out = gray, out
        return out
