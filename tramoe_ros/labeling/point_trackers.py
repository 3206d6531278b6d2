"""Point trackers for videos without a simulator: what labels real-robot and human videos with point tracks.

Every tracker implements `PointTracker.track(video, queries) -> (tracks, visibility)` in the episode format's
conventions: positions are normalised x / S, y / S with pixel column c covering [c / S, (c + 1) / S), so a pixel's
centre is at (c + 0.5) / S. (OpenCV and CoTracker put pixel centres at integer coordinates; the conversion is
`to_pixels` / `from_pixels`.)

- `LucasKanadeTracker` (built in, CPU, no weights): OpenCV's pyramidal Lucas-Kanade frame to frame, with a
  forward-backward consistency check (and a residual check) for visibility.
- `CoTrackerTracker`: Meta's CoTracker (the labels the paper and ATM train on), from the `cotracker` package and a
  local checkpoint file; it never downloads anything.
"""
from __future__ import annotations

import abc
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from tramoe_ros.data.sampling import sample_double_grid


class TrackerUnavailableError(RuntimeError):
    """A tracker backend cannot run here (package or checkpoint missing); the message names what is missing."""


def to_pixels(points: np.ndarray, size: int) -> np.ndarray:
    """Normalised (..., 2) x / S, y / S -> pixel coordinates with pixel centres at integers, float32."""
    return (points * size - 0.5).astype(np.float32)


def from_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """Inverse of `to_pixels`: (..., 2) pixel coordinates -> normalised, float32."""
    return ((pixels + 0.5) / size).astype(np.float32)


def split_queries(queries: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Check queries and split them into query frames and positions.

    Args:
        queries: (N, 2) normalised (x, y) at frame 0, or (N, 3) (t, x, y) with t the frame index the point is
            given in (CoTracker's order).
        length: T, the number of frames.
    Returns:
        frames (N,) int64 in [0, T); positions (N, 2) float64 normalised.
    Raises:
        ValueError naming the problem for a wrong shape, non-finite values or query frames outside [0, T).
    """
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] not in (2, 3):
        raise ValueError(f"queries must be (N, 2) x, y or (N, 3) t, x, y; got shape {queries.shape}")
    if not np.isfinite(queries).all():
        raise ValueError("queries contain non-finite values")
    if queries.shape[1] == 2:
        return np.zeros(len(queries), np.int64), queries.astype(np.float64)
    frames = queries[:, 0]
    if (frames != np.round(frames)).any() or (frames < 0).any() or (frames >= length).any():
        raise ValueError(f"query frames must be integers in [0, {length}); got {np.unique(frames)[:10].tolist()}")
    return frames.astype(np.int64), queries[:, 1:].astype(np.float64)


def check_video(video: np.ndarray) -> None:
    """Raise ValueError unless video is (T, S, S, 3) uint8 with T >= 1."""
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or video.shape[1] != video.shape[2]:
        raise ValueError(f"video must be (T, S, S, 3) uint8 RGB; got {video.shape} {video.dtype}")
    if len(video) == 0:
        raise ValueError("video has no frames")


class PointTracker(abc.ABC):
    """Tracks query points through a video."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def track(self, video: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Track points through `video`.

        Args:
            video: (T, S, S, 3) uint8 RGB.
            queries: (N, 2) normalised (x, y) at frame 0, or (N, 3) (t, x, y) with the frame each is given in.
        Returns:
            tracks (T, N, 2) float32 normalised x / S, y / S (a point is at its query position at its query frame);
            visibility (T, N) bool (true at the query frame).
        """


@dataclass
class LucasKanadeTracker(PointTracker):
    """Pyramidal Lucas-Kanade (`cv2.calcOpticalFlowPyrLK`) from frame to frame, forward and backward in time from
    each point's query frame.

    A step t -> t+1 is accepted when both the forward flow (t -> t+1) and the backward flow of its result
    (t+1 -> t) converge, the backward flow lands within `fb_threshold_px` of where the point was, the window
    at the new position looks like the one at the old (`max_residual`), and the new position is inside the image. A point whose step fails stays at its last good position, marked invisible.
    While lost, each later frame tries to find it again by flowing from the frame it was last seen in (same
    forward-backward test), so a point occluded for a while (by the arm passing over it) comes back.

    Args:
        fb_threshold_px: largest forward-backward round-trip distance (pixels of the video) of a visible point.
        max_residual: largest Lucas-Kanade residual of a forward step, the mean absolute grey-level difference
            (0..255) between the windows at the old and the new position; a patch that converged onto an unrelated
            texture (an occluder) passes the forward-backward test now and then but not this one.
        window_px: side of the Lucas-Kanade integration window (odd).
        pyramid_levels: extra pyramid levels above the full image (0: single scale).
        recover: look for lost points again from the frame they were last seen in.

    The defaults were chosen on simulator episodes of a LIBERO task other than the one `docs/labeling.md`
    reports on: an 11 px window follows small objects at 128 px better than larger ones, which drift with the
    background; 1 px and 20 grey levels balance finding occlusions against dropping points that are still visible.
    """

    fb_threshold_px: float = 1.0
    max_residual: float = 20.0
    window_px: int = 11
    pyramid_levels: int = 3
    recover: bool = True
    name: ClassVar[str] = "lk"

    def __post_init__(self) -> None:
        if self.fb_threshold_px <= 0 or self.max_residual <= 0:
            raise ValueError(f"fb_threshold_px and max_residual must be > 0, got {self.fb_threshold_px}, "
                             f"{self.max_residual}")
        if self.window_px < 3 or self.window_px % 2 == 0:
            raise ValueError(f"window_px must be an odd number >= 3, got {self.window_px}")
        if self.pyramid_levels < 0:
            raise ValueError(f"pyramid_levels must be >= 0, got {self.pyramid_levels}")

    def track(self, video: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_video(video)
        length, size = video.shape[0], video.shape[1]
        query_frames, query_points = split_queries(queries, length)
        num_points = len(query_points)
        gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video]
        pixels = np.zeros((length, num_points, 2), np.float32)
        visibility = np.zeros((length, num_points), bool)
        start = to_pixels(query_points, size)
        forward = np.arange(length)
        self._propagate(gray, forward, query_frames, start, pixels, visibility, np.ones(num_points, bool))
        # Points given after frame 0 are also followed back in time, on the reversed frame order.
        backward = forward[::-1]
        later = query_frames > 0
        if later.any():
            self._propagate(gray, backward, length - 1 - query_frames, start, pixels, visibility, later)
        return from_pixels(pixels, size), visibility

    def _flow(self, source: np.ndarray, target: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow (P, 2) pixel `points` from image `source` to `target` and back; returns the new positions (P, 2)
        and which passed the forward-backward test (P,) bool."""
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
        options = dict(winSize=(self.window_px, self.window_px), maxLevel=self.pyramid_levels, criteria=criteria)
        points = points.reshape(-1, 1, 2)
        moved, ok_forward, residual = cv2.calcOpticalFlowPyrLK(source, target, points, None, **options)
        back, ok_backward, _ = cv2.calcOpticalFlowPyrLK(target, source, moved, None, **options)
        moved, back, points = moved.reshape(-1, 2), back.reshape(-1, 2), points.reshape(-1, 2)
        round_trip = np.linalg.norm(back - points, axis=1)
        size = source.shape[0]
        inside = ((moved > -0.5) & (moved < size - 0.5)).all(axis=1)
        good = (
            ok_forward.ravel().astype(bool) & ok_backward.ravel().astype(bool) & inside
            & (round_trip < self.fb_threshold_px) & (residual.ravel() < self.max_residual)
        )
        return moved, good

    def _propagate(
        self,
        gray: list[np.ndarray],
        order: np.ndarray,
        start_steps: np.ndarray,
        start: np.ndarray,
        pixels: np.ndarray,
        visibility: np.ndarray,
        selected: np.ndarray,
    ) -> None:
        """Track the `selected` (N,) points along the frames `order` (a permutation of 0..T-1, forward or
        reversed), each from step start_steps[n] (its query frame's position in `order`) at start[n] (N, 2),
        writing (T, N, 2) `pixels` and (T, N) `visibility` at the steps after it."""
        length = len(order)
        last_good = start.copy()  # (N, 2) last accepted position
        last_seen = start_steps.copy()  # (N,) step of that position
        for step in range(length):
            frame = order[step]
            starting = selected & (start_steps == step)
            pixels[frame, starting] = start[starting]
            visibility[frame, starting] = True
            if step == length - 1:
                break
            following = selected & (start_steps <= step)
            if not following.any():
                continue
            next_frame = order[step + 1]
            seen = np.zeros(len(start), bool)
            # Points seen at this step flow on from here; lost ones (when recovering) from where they were last
            # seen, one flow per such step (the groups are disjoint, so updating last_good in place is safe).
            sources = np.unique(last_seen[following])
            if not self.recover:
                sources = sources[sources == step]
            for source_step in sources:
                members = np.flatnonzero(following & (last_seen == source_step))
                moved, good = self._flow(gray[order[source_step]], gray[next_frame], last_good[members])
                last_good[members[good]] = moved[good]
                seen[members[good]] = True
            last_seen[seen] = step + 1
            pixels[next_frame, following] = last_good[following]
            visibility[next_frame, following] = seen[following]


class CoTrackerTracker(PointTracker):
    """Meta's CoTracker through the `cotracker` package (installed from its repository) and a local checkpoint.

    The model runs offline on the whole video with tracking backward in time from each query frame, on CUDA when
    present. Nothing is downloaded: a missing package or checkpoint raises `TrackerUnavailableError` naming it.

    Args:
        checkpoint: path of a CoTracker checkpoint (.pth) matching the installed package.
        device: torch device; default CUDA when available, else the CPU.
    """

    name: ClassVar[str] = "cotracker"

    def __init__(self, checkpoint: str | Path | None, device: str | None = None) -> None:
        if checkpoint is None:
            raise TrackerUnavailableError(
                "the cotracker backend needs a local checkpoint file (--checkpoint PATH, e.g. scaled_offline.pth); "
                "it never downloads one"
            )
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise TrackerUnavailableError(f"CoTracker checkpoint {checkpoint} does not exist (or is not a file)")
        try:
            from cotracker.predictor import CoTrackerPredictor
        except ImportError as e:
            raise TrackerUnavailableError(
                "the cotracker backend needs the 'cotracker' package, installed from the CoTracker repository "
                f"(it is not on PyPI): {e}"
            ) from e
        import torch

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            self._model = CoTrackerPredictor(checkpoint=str(checkpoint)).to(self.device)
        except (RuntimeError, KeyError, OSError, ValueError, pickle.UnpicklingError) as e:
            # a truncated or foreign file, or another CoTracker version's weights
            raise TrackerUnavailableError(
                f"CoTracker checkpoint {checkpoint} does not load into the installed cotracker package "
                f"({type(e).__name__}: {e})"
            ) from e

    def track(self, video: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_video(video)
        length, size = video.shape[0], video.shape[1]
        query_frames, query_points = split_queries(queries, length)
        if len(query_points) == 0:
            return np.zeros((length, 0, 2), np.float32), np.zeros((length, 0), bool)
        torch = self._torch
        # CoTracker wants (B, T, 3, H, W) float 0..255 and (B, N, 3) queries (t, x, y) in pixels.
        frames = torch.from_numpy(video).permute(0, 3, 1, 2)[None].float().to(self.device)
        query_pixels = np.concatenate([query_frames[:, None], to_pixels(query_points, size)], axis=1)
        query_tensor = torch.from_numpy(query_pixels.astype(np.float32))[None].to(self.device)
        with torch.no_grad():
            tracks, visibility = self._model(frames, queries=query_tensor, backward_tracking=True)
        tracks = tracks[0].float().cpu().numpy()
        visibility = visibility[0].cpu().numpy()
        if tracks.shape != (length, len(query_points), 2) or visibility.shape != (length, len(query_points)):
            raise RuntimeError(
                f"cotracker returned tracks {tracks.shape} and visibility {visibility.shape}; expected "
                f"({length}, {len(query_points)}, 2) and ({length}, {len(query_points)})"
            )
        return from_pixels(tracks, size), visibility.astype(bool)


BACKENDS = ("lk", "cotracker")


def make_tracker(backend: str, checkpoint: str | Path | None = None, fb_threshold_px: float = 1.0) -> PointTracker:
    """The tracker named `backend` ("lk" or "cotracker"); `checkpoint` is CoTracker's local weights file."""
    if backend == "lk":
        return LucasKanadeTracker(fb_threshold_px=fb_threshold_px)
    if backend == "cotracker":
        return CoTrackerTracker(checkpoint)
    raise ValueError(f"unknown tracker backend {backend!r}; choose one of {list(BACKENDS)}")


def sample_label_queries(num_random: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """The points a video is labelled with: `num_random` uniform random points followed by ATM's double grid
    (`sample_double_grid(grid)`, 2 * grid² points; none for grid 0). The track dataset later prefers the moving
    ones (`sample_track_points`' variance filtering), so the random points need not aim at anything.

    Returns:
        (num_random + 2 * grid², 2) float32 normalised (x, y), at frame 0.
    """
    if num_random < 0 or grid < 0:
        raise ValueError(f"need num_random >= 0 and grid >= 0, got {num_random}, {grid}")
    random_points = rng.uniform(0.0, 1.0, size=(num_random, 2)).astype(np.float32)
    grid_points = sample_double_grid(grid) if grid else np.zeros((0, 2), np.float32)
    return np.concatenate([random_points, grid_points])
