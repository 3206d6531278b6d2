"""Which points a sample tracks: the policy's fixed query grid and the track model's variance-filtered sampling."""
from __future__ import annotations

import numpy as np
from einops import rearrange


def sample_grid(n: int, low: float, high: float) -> np.ndarray:
    """An n x n grid of normalised points spanning [low, high] in x and y.

    Returns:
        (n * n, 2) float32 (x, y), x varying slowest (ATM's meshgrid order, which the policy's point order follows).
    """
    axis = np.linspace(low, high, n, dtype=np.float32)
    xs, ys = np.meshgrid(axis, axis, indexing="ij")
    return rearrange(np.stack([xs, ys], axis=-1), "i j c -> (i j) c")


def sample_double_grid(n: int = 4) -> np.ndarray:
    """The policy's query points (ATM): an n x n grid over [0.05, 0.85] followed by one over [0.15, 0.95], so
    the two interleave and together cover the image more evenly than one grid.

    Returns:
        (2 * n * n, 2) float32 normalised (x, y); n = 4 gives the 32 policy queries.
    """
    return np.concatenate([sample_grid(n, 0.05, 0.85), sample_grid(n, 0.15, 0.95)])


def track_variance_px2(tracks: np.ndarray, image_size: int) -> np.ndarray:
    """Spatial variance of each point's trajectory over the window, in pixels² at `image_size`: the sum of the
    x and y variances over time (trace of the position covariance).

    Args:
        tracks: (H, N, 2) normalised positions.
    Returns:
        (N,) float64
    """
    return (tracks.astype(np.float64) * image_size).var(axis=0).sum(axis=-1)


def sample_track_points(
    tracks: np.ndarray,
    visible_at_start: np.ndarray,
    num_points: int,
    image_size: int,
    variance_threshold_px2: float,
    rng: np.random.Generator,
    still_share: float = 0.0,
) -> np.ndarray:
    """Variance-filtered choice of the points a track-training sample supervises (paper Tab. 6).

    Rule: candidates are the points visible at the window start (all points when none is). A candidate whose
    trajectory variance over the window (`track_variance_px2`) exceeds the threshold is "moving". Moving
    candidates are drawn first, without replacement, up to `num_points`; the remainder is filled with static
    candidates, without replacement. With fewer candidates than `num_points`, every candidate is taken once and
    the rest are drawn uniformly with replacement. The result is shuffled, so moving points carry no fixed slots.
    Static points would otherwise dominate (most of a scene does not move) and teach the model to predict no
    motion.

    `still_share` reserves round(still_share * num_points) slots for static candidates (as many as there are),
    moving points taking the rest. With 0 (the paper's rule) a window where the robot moves gives only moving
    points (86% of LIBERO-Object's agentview windows have more than 32), so a model never sees a point that stays
    put and predicts the average motion for all of them.

    Args:
        tracks: (H, N, 2) normalised positions over the window.
        visible_at_start: (N,) bool visibility at the window's first frame.
        rng: the only source of randomness, so a seeded generator gives the same choice.
        still_share: in [0, 1], the share of points reserved for static candidates.
    Returns:
        (num_points,) int64 indices into N.
    """
    if not 0.0 <= still_share <= 1.0:
        raise ValueError(f"still_share must be in [0, 1], got {still_share}")
    num_total = tracks.shape[1]
    if num_total == 0:
        raise ValueError("cannot sample track points from an episode view with no tracked points (N = 0)")
    candidates = np.flatnonzero(visible_at_start)
    if candidates.size == 0:
        candidates = np.arange(num_total)
    if candidates.size < num_points:
        extra = rng.choice(candidates, size=num_points - candidates.size, replace=True)
        return rng.permutation(np.concatenate([candidates, extra])).astype(np.int64)
    moving = track_variance_px2(tracks[:, candidates], image_size) > variance_threshold_px2
    moving_points, static_points = candidates[moving], candidates[~moving]
    num_still = min(static_points.size, round(still_share * num_points))
    num_moving = min(moving_points.size, num_points - num_still)
    chosen = np.concatenate([
        rng.choice(moving_points, size=num_moving, replace=False),
        rng.choice(static_points, size=num_points - num_moving, replace=False),
    ])
    return rng.permutation(chosen).astype(np.int64)
