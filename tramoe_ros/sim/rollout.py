"""Episodes driven by the scripted expert (`expert.ScriptedExpert`) in a `LiberoEnv`, optionally with perturbed
actions (`PositionNoise`, DART) or a learner executing some of the steps (DAgger); the expert's own actions are what
they record either way."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from tramoe_ros.sim.expert import ExpertFailed, ScriptedExpert
from tramoe_ros.sim.libero_env import LiberoEnv, LiberoObservation

# Perturbed demonstrations: the correlation of the position noise from one step to the next (AR(1)); ~10 steps.
NOISE_CORRELATION = 0.9


class PositionNoise:
    """Temporally correlated Gaussian noise on the position part (dims 0-2) of OSC_POSE actions, stationary
    standard deviation `scale` (action units; 1 = a commanded 5 cm step).

    For perturbed demonstrations (DART, Laskey et al. 2017): the env executes the expert's action plus this noise
    while the demonstration records the expert's own action. The expert is closed-loop, so the arm drifts off the
    expert's path by a few centimetres and the recorded actions bring it back: the corrections a policy trained only
    on the expert's exact path never sees (it then replays the average motion and misses the object when it is
    a little off). White noise would average out within a step or two; correlated noise moves the arm.
    """

    def __init__(self, scale: float, seed: int):
        if scale < 0:
            raise ValueError(f"action noise must be >= 0, got {scale}")
        self.scale = scale
        self._rng = np.random.default_rng(seed)
        self._state = np.zeros(3)

    def perturb(self, action: np.ndarray) -> np.ndarray:
        """(7,) expert action -> (7,) action to execute, clipped to [-1, 1]; the gripper and rotation unchanged."""
        if self.scale == 0:
            return action
        innovation = self._rng.normal(0.0, self.scale * np.sqrt(1 - NOISE_CORRELATION ** 2), 3)
        self._state = NOISE_CORRELATION * self._state + innovation
        executed = action.copy()
        executed[:3] = np.clip(action[:3] + self._state, -1.0, 1.0)
        return executed


class Learner(Protocol):
    """A policy acting in the loop of an expert rollout (DAgger): it sees every observation of the episode, in
    order, whether or not its action is the one executed."""

    def reset(self) -> None:
        """Start a new episode."""

    def act(self, obs: LiberoObservation) -> np.ndarray:
        """(7,) action in [-1, 1] for `obs`."""


def expert_rollout(env: LiberoEnv, init_state_index: int, max_steps: int | None = None,
                   on_start: Callable[[LiberoObservation], None] | None = None, action_noise: float = 0.0,
                   noise_seed: int = 0, learner: Learner | None = None, learner_share: float = 0.0
                   ) -> Iterator[tuple[LiberoObservation, np.ndarray, LiberoObservation, bool]]:
    """Reset `env` to `init_state_index` and let the expert act until success, failure or the step budget
    (default `env.max_steps`).

    on_start: called with the first observation while the simulator still holds its state (before the first
        action), e.g. to anchor ground-truth track points on the bodies where they are in that first frame.
    action_noise: with > 0, the env executes the expert's action with `PositionNoise` of this scale added
        (seeded by `noise_seed`); the yielded action stays the expert's.
    learner, learner_share: DAgger (Ross et al. 2011): on each step, with probability `learner_share` (drawn with
        `noise_seed`), the env executes the learner's action instead; the yielded action stays the expert's, its
        answer to the states the learner leads to. The learner is asked on every step, so a frame-stacked policy
        sees the whole episode.
    Yields:
        (observation acted on, the expert's action, next observation, success after the action), one per step
    """
    if not 0.0 <= learner_share <= 1.0:
        raise ValueError(f"learner share must be in [0, 1], got {learner_share}")
    if learner_share > 0 and learner is None:
        raise ValueError("a learner share > 0 needs a learner")
    budget = max_steps if max_steps is not None else env.max_steps
    noise = PositionNoise(action_noise, noise_seed)
    # Its own stream, so the noise of a perturbed run does not change with the learner share.
    takeover = np.random.default_rng([noise_seed, 1])
    obs = env.reset(init_state_index)
    if on_start is not None:
        on_start(obs)
    expert = ScriptedExpert(env)
    expert.reset(obs)
    if learner is not None:
        learner.reset()
    for _ in range(budget):
        try:
            action = expert.act(obs)
        except ExpertFailed:
            return
        if expert.done:
            return
        executed = noise.perturb(action)
        if learner is not None:
            learner_action = learner.act(obs)
            if takeover.random() < learner_share:
                executed = np.asarray(learner_action, dtype=np.float64)
        next_obs, success, _ = env.step(executed)
        yield obs, action, next_obs, success
        if success:
            return
        obs = next_obs


def run_expert_episode(env: LiberoEnv, init_state_index: int, *, max_steps: int | None = None,
                       action_noise: float = 0.0, noise_seed: int = 0) -> tuple[bool, int]:
    """Run `expert_rollout` without recording (`action_noise`, `noise_seed` as there; no learner: it would need
    the cameras a dry run leaves off).

    Returns:
        (success, steps taken)
    """
    success, steps = False, 0
    for _, _, _, success in expert_rollout(env, init_state_index, max_steps, action_noise=action_noise,
                                           noise_seed=noise_seed):
        steps += 1
    return success, steps
