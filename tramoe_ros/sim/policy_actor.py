"""`PolicyActor`: the trajectory-guided policy acting on LIBERO observations, through `PolicyRunner` (the inference
path of the ROS policy node). Closed-loop evaluation runs it, and DAgger collection puts it in the expert's loop
(`rollout.Learner`)."""
from __future__ import annotations

import enum
from collections import deque

import numpy as np

from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.sim.libero_env import LiberoObservation


def check_track_model(runner: PolicyRunner) -> None:
    """Raise ValueError unless the runner has a track model that takes the policy's images."""
    if runner.predictor is None:
        raise ValueError("the policy names no track model; pass one (--track-model)")
    if runner.predictor.cfg.image_size != runner.cfg.image_size:
        raise ValueError(f"the track model takes {runner.predictor.cfg.image_size} px images, the policy "
                         f"{runner.cfg.image_size} px: they must match")


class TrackSource(enum.Enum):
    """What the policy is conditioned on: the track model's predictions, or "nothing moves" (each query point
    repeated over the horizon; the baseline of the track model's contribution)."""

    PREDICTED = "predicted"
    STATIC = "static"


class PolicyActor:
    """One task's closed-loop policy: the runner's own track model predicts the grid tracks of every frame (or,
    with `TrackSource.STATIC`, every frame gets "nothing moves").

    track_lag: condition each action on the tracks predicted `track_lag` frames earlier (the episode's first
    frame's until there are that many), as the real-time ROS graph does: its track model runs beside the policy,
    so the policy pairs each image with the newest tracks, one or two frames old. 0 (lock-step) is the paper's.
    last_tracks: {view: (H, K, 2)} the tracks the last action was conditioned on (for overlays), None before the
    first action of an episode.
    """

    def __init__(self, runner: PolicyRunner, instruction: str, tracks: TrackSource = TrackSource.PREDICTED,
                 track_lag: int = 0):
        check_track_model(runner)
        if track_lag < 0:
            raise ValueError(f"track_lag must be >= 0 frames, got {track_lag}")
        self.runner = runner
        self.instruction = instruction
        self.track_source = tracks
        self.last_tracks: dict[str, np.ndarray] | None = None
        # The tracks of the last track_lag + 1 frames, oldest first.
        self._recent: deque[dict[str, np.ndarray]] = deque(maxlen=track_lag + 1)

    def reset(self) -> None:
        self.runner.reset()
        self.last_tracks = None
        self._recent.clear()

    def act(self, obs: LiberoObservation) -> np.ndarray:
        """(action_dim,) float32 in [-1, 1] for `obs`."""
        if self.track_source is TrackSource.STATIC:
            self.last_tracks = self.runner.still_tracks()
        else:
            self._recent.append(self.runner.predict_tracks(obs.images, self.instruction))
            self.last_tracks = self._recent[0]
        return self.runner.step(obs.images, {"joint_states": obs.joint_states, "gripper_states": obs.gripper_states},
                                self.instruction, tracks=self.last_tracks)
