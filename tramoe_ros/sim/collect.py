"""Collect LIBERO demonstrations with the scripted expert: videos, ground-truth tracks, actions, proprioception.

Only successful episodes are kept, one episode file per (task, initial state) in the project's episode format
(`tramoe_ros.data.episode`): ``<out>/<task name>/init_<k>.hdf5``. Frame t holds the observation the expert acted
on and the action it took (LIBERO's dataset convention), so T frames pair with T actions. Action-free collection
(the paper's out-of-domain videos D_ood from libero_90) writes the same videos and tracks without actions and
proprioception.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tramoe_ros.data.episode import Episode, EpisodeFile, ViewData, episode_problems, write_episode
from tramoe_ros.sim.expert import ExpertUnsupported, ScriptedExpert
from tramoe_ros.sim.ground_truth_tracks import SimTrackRecorder
from tramoe_ros.sim.libero_env import DEFAULT_VIEWS, EVAL_MAX_STEPS, LiberoEnv, LiberoError, LiberoObservation
from tramoe_ros.sim.rollout import Learner, expert_rollout, run_expert_episode

REPORT_NAME = "collect_report.json"


@dataclass
class TaskReport:
    """Outcome of collecting one task: attempts (initial states tried), successes (episodes written)."""

    suite: str
    task_index: int
    task_name: str
    instruction: str
    attempts: int
    successes: int
    mean_steps: float  # over successful episodes; 0 when none
    seconds: float
    note: str = ""  # why the task was skipped (e.g. a goal the expert does not handle)

    @property
    def rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0


def episode_path(out_dir: Path, task_name: str, init_state_index: int) -> Path:
    """Where the episode of one task and initial state is written."""
    return Path(out_dir) / task_name / f"init_{init_state_index:02d}.hdf5"


def run_episode(
    env: LiberoEnv,
    init_state_index: int,
    *,
    num_points: int = 1000,
    grid_size: int = 0,
    with_actions: bool = True,
    max_steps: int | None = None,
    seed: int = 0,
    action_noise: float = 0.0,
    learner: Learner | None = None,
    learner_share: float = 0.0,
) -> tuple[Episode | None, bool, int]:
    """Run the expert from one initial state while recording frames, tracks, actions and proprioception.

    `env` must render depth (``LiberoEnv(..., depth=True)``) for the track visibility. With `action_noise` the
    env executes perturbed actions and the episode records the expert's (`rollout.PositionNoise`), seeded by
    `seed`; with a `learner` it executes the learner's action on a `learner_share` of the steps and records the
    expert's (DAgger, `rollout.expert_rollout`).
    Returns:
        (episode or None when the task was not solved, success, steps taken)
    """
    recorder = SimTrackRecorder(env, num_points=num_points, grid_size=grid_size, seed=seed)
    frames: list[LiberoObservation] = []
    actions: list[np.ndarray] = []
    success = False
    for obs, action, next_obs, success in expert_rollout(env, init_state_index, max_steps, on_start=recorder.start,
                                                         action_noise=action_noise, noise_seed=seed,
                                                         learner=learner, learner_share=learner_share):
        frames.append(obs)
        actions.append(action)
        if not success:  # the observation after the final action is not part of the episode
            recorder.record(next_obs)
    if not success:
        return None, False, len(actions)
    episode = episode_from_frames(frames, actions, recorder.tracks(), env.instruction, env.suite, with_actions)
    return episode, True, len(actions)


def episode_from_frames(
    frames: Sequence[LiberoObservation],
    actions: Sequence[np.ndarray],
    tracks: dict[str, tuple[np.ndarray, np.ndarray]],
    instruction: str,
    domain: str,
    with_actions: bool,
) -> Episode:
    """Assemble an `Episode` from T observations, the T actions taken on them and the recorded tracks
    (view -> (T, N, 2) tracks, (T, N) visibility). Without actions, proprioception is left out too (an action-free
    video)."""
    views = {
        view: ViewData(
            video=np.stack([frame.images[view].transpose(2, 0, 1) for frame in frames]),
            tracks=view_tracks,
            visibility=view_visibility,
        )
        for view, (view_tracks, view_visibility) in tracks.items()
    }
    if not with_actions:
        return Episode(views=views, instruction=instruction, domain=domain)
    return Episode(
        views=views,
        actions=np.stack(actions).astype(np.float32),
        proprio={
            "joint_states": np.stack([frame.joint_states for frame in frames]),
            "gripper_states": np.stack([frame.gripper_states for frame in frames]),
        },
        instruction=instruction,
        domain=domain,
    )


@dataclass(frozen=True)
class CollectSettings:
    """How `collect_task` collects one task's demonstrations (the same for every task of a collection).

    episodes: successful episodes to keep.
    with_actions: False writes action-free videos (no actions, no proprioception; `episode_from_frames`).
    num_points, grid_size: ground-truth tracks per view: surface points and a grid_size x grid_size pixel grid
        (`SimTrackRecorder`).
    camera_size, max_steps, reflections, antialiasing: the env's image side (px), step budget per episode and
        rendering (`LiberoEnv`).
    seed: seeds the track points, the sampled initial states and the action noise (plus the initial state index).
    dry_run: run the expert without cameras and write nothing (measures its success rate ~10x faster).
    max_attempts: initial states tried at most (default: all).
    init_states: the initial state indices to try, in order (default: all); e.g. 0-29 keeps 30-49 out of the
        demonstrations for held-out evaluation.
    sampled_init_states: initial states sampled after the task's fixed ones (`LiberoEnv`), indices 50.. for
        LIBERO's 50 fixed states.
    action_noise: perturbed demonstrations (`rollout.PositionNoise`): the arm is pushed off the expert's path and
        the recorded actions are the expert's corrections.
    learner_policy: DAgger: a policy checkpoint (with `learner_track_model`, default the one it names) whose
        action the env executes on a `learner_share` of the steps; the recorded actions are the expert's answers
        to the states the policy leads to (`rollout.expert_rollout`).
    """

    episodes: int
    with_actions: bool = True
    num_points: int = 1000
    grid_size: int = 0
    camera_size: int = 128
    max_steps: int = EVAL_MAX_STEPS
    reflections: bool = True
    antialiasing: bool = False
    seed: int = 0
    dry_run: bool = False
    max_attempts: int | None = None
    init_states: Sequence[int] | None = None
    sampled_init_states: int = 0
    action_noise: float = 0.0
    learner_policy: str | Path | None = None
    learner_track_model: str | Path | None = None
    learner_share: float = 0.5


def collect_task(suite: str, task_index: int, out_dir: str | Path, settings: CollectSettings,
                 on_attempt: Callable[[bool], None] | None = None) -> TaskReport:
    """Try the task's initial states in order until `settings.episodes` succeed or all (at most
    `settings.max_attempts`) have been tried.

    on_attempt: called with each attempt's success (for progress bars).

    An initial state whose episode file already exists and is well-formed counts as a success and is not run
    again, so an interrupted collection continues where it stopped.
    """
    started = time.perf_counter()
    if settings.learner_policy is not None and settings.dry_run:
        raise LiberoError("a dry run renders no cameras, so a policy in the loop cannot run")
    env = LiberoEnv(suite, task_index, views=() if settings.dry_run else DEFAULT_VIEWS,
                    camera_size=settings.camera_size, max_steps=settings.max_steps, depth=not settings.dry_run,
                    reflections=settings.reflections, antialiasing=settings.antialiasing,
                    sampled_init_states=settings.sampled_init_states, init_state_seed=settings.seed)
    attempts, steps = 0, []
    note = ""
    try:
        candidates = _init_state_candidates(env, settings)
        try:
            ScriptedExpert(env)  # checks the goal is one the expert handles
        except ExpertUnsupported as e:
            note = str(e)
        learner = (None if settings.learner_policy is None
                   else _policy_learner(settings.learner_policy, settings.learner_track_model, env))
        budget = 0 if note else min(len(candidates), settings.max_attempts or len(candidates))
        for init_state_index in candidates[:budget]:
            if len(steps) >= settings.episodes:
                break
            attempts += 1
            success, length = _try_init_state(env, init_state_index, Path(out_dir), settings, learner)
            if success:
                steps.append(length)
            if on_attempt is not None:
                on_attempt(success)
        return TaskReport(
            suite=suite, task_index=task_index, task_name=env.task_name, instruction=env.instruction,
            attempts=attempts, successes=len(steps), mean_steps=float(np.mean(steps)) if steps else 0.0,
            seconds=time.perf_counter() - started, note=note,
        )
    finally:
        env.close()


def _init_state_candidates(env: LiberoEnv, settings: CollectSettings) -> list[int]:
    """The initial state indices to try, in order; LiberoError naming any the task does not have."""
    candidates = list(range(env.num_init_states)) if settings.init_states is None else list(settings.init_states)
    unknown = [index for index in candidates if not 0 <= index < env.num_init_states]
    if unknown:
        raise LiberoError(f"initial states {unknown} do not exist for {env.task_name}: it has "
                          f"{env.num_fixed_init_states} fixed and {settings.sampled_init_states} sampled "
                          f"(0..{env.num_init_states - 1})")
    return candidates


def _try_init_state(env: LiberoEnv, init_state_index: int, out_dir: Path, settings: CollectSettings,
                    learner: Learner | None) -> tuple[bool, int]:
    """One attempt: in a dry run, the expert's episode unrecorded; else the initial state's episode file when it
    is already written and well-formed, or a recorded episode, written when it succeeds.

    Returns:
        (success, episode length in steps)
    """
    seed = settings.seed + init_state_index
    if settings.dry_run:
        return run_expert_episode(env, init_state_index, action_noise=settings.action_noise, noise_seed=seed)
    path = episode_path(out_dir, env.task_name, init_state_index)
    if path.exists() and not episode_problems(path, check_values=False):
        existing = EpisodeFile(path)
        length = existing.length
        existing.close()
        return True, length
    episode, success, length = run_episode(
        env, init_state_index, num_points=settings.num_points, grid_size=settings.grid_size,
        with_actions=settings.with_actions, seed=seed, action_noise=settings.action_noise, learner=learner,
        learner_share=settings.learner_share if learner is not None else 0.0,
    )
    if success:
        write_episode(path, episode)
    return success, length


def _policy_learner(policy: str | Path, track_model: str | Path | None, env: LiberoEnv) -> Learner:
    """A `PolicyActor` on `env`'s task, checked against the cameras the collection renders."""
    from tramoe_ros.models.runner import PolicyRunner
    from tramoe_ros.sim.policy_actor import PolicyActor

    runner = PolicyRunner.from_checkpoints(policy, track_model)
    missing = [view for view in runner.cfg.views if view not in DEFAULT_VIEWS]
    if missing or runner.cfg.image_size != env.camera_size:
        raise LiberoError(f"{policy} takes views {runner.cfg.views} at {runner.cfg.image_size} px; the collection "
                          f"renders {list(DEFAULT_VIEWS)} at {env.camera_size} px")
    return PolicyActor(runner, env.instruction)


def write_report(out_dir: str | Path, reports: Sequence[TaskReport], settings: dict) -> Path:
    """Write the per-task success report as JSON (out_dir/collect_report.json) and return its path."""
    attempts = sum(report.attempts for report in reports)
    successes = sum(report.successes for report in reports)
    content = {
        "settings": settings,
        "tasks": [{**asdict(report), "rate": report.rate} for report in reports],
        "total": {"attempts": attempts, "successes": successes, "rate": successes / attempts if attempts else 0.0},
    }
    path = Path(out_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def format_report(reports: Sequence[TaskReport]) -> str:
    """A plain-text table: task, attempts, successes, rate, mean episode length."""
    lines = [f"{'task':>4}  {'attempts':>8}  {'successes':>9}  {'rate':>5}  {'steps':>5}  name"]
    for report in reports:
        lines.append(
            f"{report.task_index:>4}  {report.attempts:>8}  {report.successes:>9}  {report.rate:>5.0%}  "
            f"{report.mean_steps:>5.0f}  {report.task_name}" + (f"  [{report.note}]" if report.note else "")
        )
    attempts = sum(report.attempts for report in reports)
    successes = sum(report.successes for report in reports)
    lines.append(f"{'all':>4}  {attempts:>8}  {successes:>9}  {successes / attempts if attempts else 0:>5.0%}")
    return "\n".join(lines)
