"""Ground truth for the track benchmark: the scripted expert's episodes on initial states kept out of training,
with the exact future of two point sets at evaluation frames.

At every `stride`-th frame t of an episode, for each view:
- **the policy's query grid** (`sample_double_grid`, the 32 points the policy node asks the track model about):
  the surfaces seen at those pixels at t are fixed to their geoms and followed for the horizon;
- **variance-filtered points**: 32 of ~1000 surface points on the robot and the objects, chosen from their
  ground-truth future as a training sample chooses them (`sample_track_points`: moving points first, the rest
  filled with still ones).

One compressed `.npz` per episode (`<cache>/<task name>/init_<k>.npz`), written whole or not at all, so a cache
that a collection left half-done resumes where it stopped.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tramoe_ros.data.sampling import sample_double_grid, sample_track_points
from tramoe_ros.sim.rollout import expert_rollout
from tramoe_ros.sim.ground_truth_tracks import AnchoredPoints, SimTrackRecorder, observe, points_at_pixels
from tramoe_ros.sim.libero_env import DEFAULT_VIEWS, LiberoEnv, LiberoObservation, task_name

FORMAT_VERSION = 1


@dataclass(frozen=True)
class WindowSettings:
    """What an episode's ground truth holds; a cache made with other settings is collected again."""

    horizon: int = 16
    stride: int = 8  # an evaluation frame every `stride` frames, from frame 0
    num_points: int = 32
    surface_points: int = 1000  # candidates of the variance-filtered set, per view
    variance_threshold_px2: float = 10.0
    seed: int = 0

    def as_array(self) -> np.ndarray:
        return np.array([FORMAT_VERSION, self.horizon, self.stride, self.num_points, self.surface_points,
                         self.variance_threshold_px2, self.seed], dtype=np.float64)


@dataclass
class ViewWindows:
    """One view's ground truth at an episode's E evaluation frames (H = horizon, K = num_points).

    images: (E, S, S, 3) uint8, the frame each window starts at
    grid_tracks, sampled_tracks: (E, H, K, 2) float32 normalised x/W, y/H; [:, 0] are the query points
    grid_visibility, sampled_visibility: (E, H, K) bool
    """

    images: np.ndarray
    grid_tracks: np.ndarray
    grid_visibility: np.ndarray
    sampled_tracks: np.ndarray
    sampled_visibility: np.ndarray


@dataclass
class EpisodeWindows:
    """The ground truth of one held-out episode: frames (E,) int, the evaluation frames; views: view -> windows."""

    task_index: int
    init_state: int
    instruction: str
    success: bool
    frames: np.ndarray
    views: dict[str, ViewWindows]


def windows_path(cache: Path, name: str, init_state: int) -> Path:
    """Where the ground truth of task `name` from `init_state` is cached."""
    return Path(cache) / name / f"init_{init_state:02d}.npz"


def save_windows(path: Path, windows: EpisodeWindows, settings: WindowSettings) -> None:
    """Write atomically: a file under its final name is always complete."""
    arrays = {"settings": settings.as_array(), "task_index": windows.task_index, "init_state": windows.init_state,
              "instruction": windows.instruction, "success": windows.success, "frames": windows.frames}
    for view, data in windows.views.items():
        arrays.update({f"{view}/{name}": value for name, value in vars(data).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, path)


def windows_complete(path: Path, settings: WindowSettings) -> bool:
    """Whether `path` holds an episode's ground truth made with `settings` (reads only the settings)."""
    try:
        with np.load(path) as f:
            return np.array_equal(f["settings"], settings.as_array())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def load_windows(path: Path) -> EpisodeWindows:
    """Read an episode's ground truth written by `save_windows`."""
    try:
        with np.load(path) as f:
            views = {view: ViewWindows(**{name: f[f"{view}/{name}"] for name in ViewWindows.__dataclass_fields__})
                     for view in {key.split("/")[0] for key in f.files if "/" in key}}
            return EpisodeWindows(int(f["task_index"]), int(f["init_state"]), str(f["instruction"]),
                                  bool(f["success"]), f["frames"], views)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable held-out ground-truth file ({e}); delete it to collect it "
                         f"again") from e


@dataclass
class _GridWindow:
    """The query grid anchored at one evaluation frame: per view, the anchored points, whether a geom is under
    each (K,), and the (K, 2) positions and (K,) visibility recorded so far, one per frame."""

    start: int
    anchored: dict[str, AnchoredPoints]
    on_geom: dict[str, np.ndarray]
    tracks: dict[str, list[np.ndarray]]
    visibility: dict[str, list[np.ndarray]]


class _QueryGridFollower:
    """Follows the policy's query grid, anchored anew at each evaluation frame, for `horizon` frames."""

    def __init__(self, env: LiberoEnv, settings: WindowSettings) -> None:
        self.env = env
        self.settings = settings
        self.pixels = sample_double_grid() * env.camera_size
        self.windows: list[_GridWindow] = []

    def record(self, frame: int, obs: LiberoObservation) -> None:
        """Call with every frame's observation while the simulator holds that frame's state."""
        views = self.env.views
        if frame % self.settings.stride == 0:
            anchored = {view: points_at_pixels(self.env, view, obs.depths[view], self.pixels) for view in views}
            self.windows.append(_GridWindow(frame, {view: a[0] for view, a in anchored.items()},
                                            {view: a[1] for view, a in anchored.items()},
                                            {view: [] for view in views}, {view: [] for view in views}))
        for window in self.windows:
            if frame - window.start >= self.settings.horizon:
                continue  # this window is complete
            for view, points in window.anchored.items():
                pixels, seen = observe(self.env, points, view, obs.depths[view])
                on_geom = window.on_geom[view]
                # The query itself is where it was asked; a pixel over no geom is not scored (never visible).
                window.tracks[view].append(np.where(on_geom[:, None], pixels, self.pixels) / self.env.camera_size)
                window.visibility[view].append(seen & on_geom)

    def starts(self) -> np.ndarray:
        """(E,) the evaluation frames."""
        return np.array([window.start for window in self.windows])

    def stacked(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """view -> ((E, H, K, 2) tracks, (E, H, K) visibility); past the episode end the last frame repeats."""
        result = {}
        for view in self.env.views:
            pads = [np.minimum(np.arange(self.settings.horizon), len(w.tracks[view]) - 1) for w in self.windows]
            result[view] = (np.stack([np.stack(w.tracks[view])[pad] for w, pad in zip(self.windows, pads)])
                            .astype(np.float32),
                            np.stack([np.stack(w.visibility[view])[pad] for w, pad in zip(self.windows, pads)]))
        return result


def collect_episode_windows(env: LiberoEnv, init_state: int, settings: WindowSettings) -> EpisodeWindows:
    """Run the expert from `init_state` (to success or the env's step budget) and record the ground truth of its
    evaluation frames. `env` renders depth (`LiberoEnv(depth=True)`)."""
    recorder = SimTrackRecorder(env, num_points=settings.surface_points, seed=settings.seed + init_state)
    grid = _QueryGridFollower(env, settings)
    images: dict[str, list[np.ndarray]] = {view: [] for view in env.views}

    def record(frame: int, obs: LiberoObservation) -> None:
        grid.record(frame, obs)
        if frame % settings.stride == 0:
            for view in env.views:
                images[view].append(obs.images[view])

    def start(obs: LiberoObservation) -> None:
        recorder.start(obs)
        record(0, obs)

    success, frame = False, 0
    for _, _, next_obs, success in expert_rollout(env, init_state, on_start=start):
        frame += 1
        recorder.record(next_obs)
        record(frame, next_obs)
    frames = grid.starts()
    surface = recorder.tracks()
    views = {}
    for view, (grid_tracks, grid_visibility) in grid.stacked().items():
        tracks, visibility = surface[view]
        sampled_tracks, sampled_visibility = _sampled_windows(tracks, visibility, frames, env.camera_size, settings,
                                                              np.random.default_rng([settings.seed, init_state]))
        views[view] = ViewWindows(np.stack(images[view]), grid_tracks, grid_visibility, sampled_tracks,
                                  sampled_visibility)
    return EpisodeWindows(env.task_index, init_state, env.instruction, bool(success), frames, views)


def _sampled_windows(tracks: np.ndarray, visibility: np.ndarray, frames: np.ndarray, image_size: int,
                     settings: WindowSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The variance-filtered points of each evaluation frame's window, chosen as `TrackDataset` chooses them.

    Args:
        tracks: (T, N, 2) the episode's surface-point tracks; visibility: (T, N)
    Returns:
        (E, H, K, 2) tracks and (E, H, K) visibility
    """
    chosen_tracks, chosen_visibility = [], []
    for t in frames:
        window = np.minimum(t + np.arange(settings.horizon), len(tracks) - 1)
        points = sample_track_points(tracks[window], visibility[t], settings.num_points, image_size,
                                     settings.variance_threshold_px2, rng)
        chosen_tracks.append(tracks[window][:, points])
        chosen_visibility.append(visibility[window][:, points])
    return np.stack(chosen_tracks), np.stack(chosen_visibility)


def collect_task_windows(suite: str, task_index: int, init_states: Sequence[int], cache: Path,
                         settings: WindowSettings) -> list[Path]:
    """The ground truth of one task's `init_states`, collected where the cache lacks it (LiberoEnv's own meshes,
    as the training data). Returns the episode files in `init_states` order."""
    name = task_name(suite, task_index)
    paths = [windows_path(cache, name, init_state) for init_state in init_states]
    env = None
    try:
        for init_state, path in zip(init_states, paths):
            if not windows_complete(path, settings):
                env = env or LiberoEnv(suite, task_index, views=DEFAULT_VIEWS, depth=True)
                save_windows(path, collect_episode_windows(env, init_state, settings), settings)
    finally:
        if env is not None:
            env.close()
    return paths
