"""Rasterising predicted tracks into a 4th image channel (paper Fig. 3b, Tab. 3).

The policy concatenates this mask with the RGB channels before its image encoder, so the predicted 2-D trajectories
are explicitly aligned with the pixels they refer to. Two variants:

* `DrawnTrackMask` - RT-Trajectory-style hand-drawn mask: the first half of every trajectory is drawn with 128, the
  second half with 255.
* `AdaptiveTrackMask` - the paper's adaptive policy conditioning: every trajectory time step has a learnable value.

Both share one rasteriser (`_TrackRasterizer`):

* a point (x, y), normalised as x / W and y / H, lands on pixel column floor(x * S), row floor(y * S);
* points outside the image (x or y outside [0, 1), or not finite) are dropped, never clamped to the border or
  wrapped around, so a track that leaves the view leaves no trace on the edge;
* pixels no point lands on stay 0;
* where several points land on one pixel, the point with the LATEST time step wins (ties are points of the same
  step, which share a value). This mirrors drawing a trajectory from start to end, keeps the drawn mask's 255 on top
  where a trajectory crosses its own start, and makes the winner independent of the learnable values, so the adaptive
  values never fight over a pixel through their gradient.

Values are on the 0..255 scale of the raw RGB channels; the policy divides all four channels by 255 together.
"""
from __future__ import annotations

import torch
from torch import nn

from tramoe_ros.config import MaskMode


def image_channels(mode: MaskMode) -> int:
    """Number of channels the policy's image encoder receives: RGB, plus the mask unless `mode` is NONE."""
    return 3 if mode == MaskMode.NONE else 4


class _TrackRasterizer(nn.Module):
    """Scatter per-time-step values of `values()` at the pixels the track points fall on."""

    def __init__(self, horizon: int):
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be positive, got {horizon}")
        self.horizon = horizon

    def values(self) -> torch.Tensor:
        """(H,) pixel value of each trajectory time step, 0..255 scale."""
        raise NotImplementedError

    def forward(self, tracks: torch.Tensor, image_size: int) -> torch.Tensor:
        """
        Args:
            tracks: (B, H, K, 2) points as (x / W, y / H); H must equal `horizon`
            image_size: S, side of the square image the mask is stacked onto
        Returns:
            (B, 1, S, S) mask, 0 where no in-image point lands, else the value of the latest time step landing there
        """
        if tracks.dim() != 4 or tracks.shape[1] != self.horizon or tracks.shape[-1] != 2:
            raise ValueError(
                f"tracks must be (B, H={self.horizon}, K, 2) normalised points, got {tuple(tracks.shape)}"
            )
        b, h, k, _ = tracks.shape
        s = image_size
        pix = torch.floor(tracks.detach() * s)  # (B, H, K, 2) as (column, row)
        # Checked on the pixel index rather than on [0, 1): also drops x slightly below 1 that rounds up to S, and NaN.
        inside = ((pix >= 0) & (pix < s)).all(dim=-1)  # (B, H, K)
        pix = torch.where(inside[..., None], pix, torch.zeros_like(pix)).long()
        flat = (pix[..., 1] * s + pix[..., 0]).reshape(b, h * k)  # (B, H*K) index into the S*S pixels
        step = torch.arange(h, device=tracks.device).view(1, h, 1).expand(b, h, k)
        # Dropped points carry step -1, which never beats the -1 background below: they leave no trace.
        step = torch.where(inside, step, torch.full_like(step, -1)).reshape(b, h * k)
        winner = torch.full((b, s * s), -1, dtype=torch.long, device=tracks.device)
        winner.scatter_reduce_(1, flat, step, reduce="amax")  # (B, S*S) latest step per pixel, -1 = empty
        values = self.values().to(tracks.dtype)
        # Indexing the value table keeps the result differentiable w.r.t. it (the adaptive mask's parameters).
        mask = torch.where(winner >= 0, values[winner.clamp(min=0)], 0.0)
        return mask.view(b, 1, s, s)


class DrawnTrackMask(_TrackRasterizer):
    """Hand-drawn mask (RT-Trajectory style, paper Tab. 3): steps t < H/2 drawn with 128, t >= H/2 with 255.
    No parameters."""

    def __init__(self, horizon: int):
        super().__init__(horizon)
        table = torch.where(torch.arange(horizon) < horizon / 2, 128.0, 255.0)
        self.register_buffer("table", table, persistent=False)

    def values(self) -> torch.Tensor:
        """(H,) 128 for the first half of the trajectory, 255 for the second."""
        return self.table


class AdaptiveTrackMask(_TrackRasterizer):
    """The paper's adaptive mask: a learnable scalar per trajectory time step (init 0.5), drawn as 255 * param[t].

    The paper instantiates "each point on the trajectory" (each trajectory position) as a learnable embedding; the
    public Tra-MoE code instead indexes its 16 parameters by query point id (param[i] for track i, whatever the time
    step). We follow the paper: the value depends on how far along the trajectory a point is, which is what lets the
    policy tell the start of a trajectory from its end where they overlap. The parameters are not clamped, so the
    policy may learn values outside 0..255.
    """

    def __init__(self, horizon: int):
        super().__init__(horizon)
        self.step_values = nn.Parameter(torch.full((horizon,), 0.5))

    def values(self) -> torch.Tensor:
        """(H,) 255 * param[t]."""
        return 255.0 * self.step_values


def build_track_mask(mode: MaskMode, horizon: int) -> nn.Module | None:
    """The mask module for `mode` (None for MaskMode.NONE: the policy sees RGB only, as ATM)."""
    if mode == MaskMode.NONE:
        return None
    if mode == MaskMode.DRAWN:
        return DrawnTrackMask(horizon)
    if mode == MaskMode.ADAPTIVE:
        return AdaptiveTrackMask(horizon)
    raise ValueError(f"unknown mask mode {mode!r}; expected one of {[m.value for m in MaskMode]}")
