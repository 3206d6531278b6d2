"""Closed-loop evaluation of a track model + policy on LIBERO, as ATM and Tra-MoE evaluate: every task of a suite,
a number of trials per task over the task's fixed initial states, a 600-step budget, the track model called on
every step (through `PolicyRunner`, the same inference path as the ROS policy node).

Episodes run in worker processes when several are asked for. Each worker keeps one simulator per task and loads
the models once. Results do not depend on the number of workers: every episode starts from its fixed initial state,
the models are deterministic in eval mode, and every worker (or the calling process, with one worker) runs torch
with the same number of threads, so the same floating-point reductions happen in the same order.
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tramoe_ros.sim.libero_env import EVAL_MAX_STEPS, LiberoEnv

# Column names of the paper's result tables.
SUITE_COLUMNS = {"libero_spatial": "Spatial", "libero_goal": "Goal", "libero_object": "Object",
                 "libero_10": "Long", "libero_90": "LIBERO-90"}
VIDEO_SCALE = 2
VIDEO_FPS = 20


@dataclass(frozen=True)
class EvalJob:
    """One episode to run: a task's initial state, and whether to keep its frames for a video."""

    suite: str
    task_index: int
    init_state: int
    video: bool


@dataclass
class EpisodeResult:
    suite: str
    task_index: int
    task_name: str
    init_state: int
    success: bool
    steps: int
    seconds: float
    video: str | None = None


@dataclass
class EvalSettings:
    """What every worker needs to run episodes.

    policy, track_model: checkpoint paths (track_model None: the one recorded in the policy checkpoint);
    max_steps: step budget per episode; threads: torch threads per worker (the same for any number of workers,
    so results are identical); out_dir: where episode videos go (out_dir/videos/<suite>/<task>_init<k>.mp4);
    antialiasing: render as the training data was rendered (see `LiberoEnv`); tracks: "predicted" (the track
    model's) or "static" ("nothing moves", `policy_actor.TrackSource`); track_lag: frames between the image the
    tracks were predicted from and the image the policy acts on (`PolicyActor`; 0: lock-step).
    """

    policy: str
    track_model: str | None
    max_steps: int = EVAL_MAX_STEPS
    threads: int = 1
    out_dir: str = "runs/eval"
    antialiasing: bool = False
    tracks: str = "predicted"
    track_lag: int = 0


@dataclass
class SuiteSummary:
    suite: str
    trials_per_task: int
    tasks: dict[str, float]
    average: float
    episodes: list[EpisodeResult] = field(default_factory=list)


class _Worker:
    """Models loaded once; one LIBERO env kept for the task being evaluated."""

    def __init__(self, settings: EvalSettings) -> None:
        from tramoe_ros.models.runner import PolicyRunner
        from tramoe_ros.sim.policy_actor import check_track_model

        self.settings = settings
        self.runner = PolicyRunner.from_checkpoints(settings.policy, settings.track_model)
        check_track_model(self.runner)
        self.env: LiberoEnv | None = None

    def _env(self, suite: str, task_index: int) -> LiberoEnv:
        if self.env is None or (self.env.suite, self.env.task_index) != (suite, task_index):
            if self.env is not None:
                self.env.close()
            self.env = LiberoEnv(suite, task_index, views=self.runner.cfg.views, camera_size=self.runner.cfg.image_size,
                                 max_steps=self.settings.max_steps, antialiasing=self.settings.antialiasing)
        return self.env

    def run(self, job: EvalJob) -> EpisodeResult:
        from tramoe_ros.sim.policy_actor import PolicyActor, TrackSource
        from tramoe_ros.viz import draw_tracks, write_animation

        started = time.perf_counter()
        env = self._env(job.suite, job.task_index)
        actor = PolicyActor(self.runner, env.instruction, TrackSource(self.settings.tracks),
                            self.settings.track_lag)
        obs = env.reset(job.init_state)
        actor.reset()
        frames: list[np.ndarray] = []
        success = done = False
        while not done:
            action = actor.act(obs)
            if job.video:
                frames.append(np.concatenate([draw_tracks(obs.images[v], actor.last_tracks[v], scale=VIDEO_SCALE)
                                              for v in self.runner.cfg.views], axis=1))
            obs, success, done = env.step(action)
        video = None
        if job.video:
            path = Path(self.settings.out_dir) / "videos" / job.suite / (
                f"{env.task_name}_init{job.init_state:02d}_{'success' if success else 'failure'}.mp4")
            video = str(write_animation(frames, path, fps=VIDEO_FPS))
        return EpisodeResult(job.suite, job.task_index, env.task_name, job.init_state, success, env.steps,
                             time.perf_counter() - started, video)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


_worker: _Worker | None = None
# How often a worker checks that the evaluation that started it still runs (s).
PARENT_POLL_S = 0.5


def exit_with_parent(poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Make this process exit as soon as its parent is gone. A pool's workers otherwise outlive an evaluation
    killed with SIGTERM or SIGKILL (only Ctrl-C reaches the whole process group) and run their episodes on,
    slowing everything else on the machine for minutes. Returns the daemon thread that watches."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _init_worker(settings: EvalSettings) -> None:
    import torch

    global _worker
    exit_with_parent()
    torch.set_num_threads(settings.threads)
    _worker = _Worker(settings)


def _run_in_worker(job: EvalJob) -> EpisodeResult:
    assert _worker is not None, "worker not initialised"
    return _worker.run(job)


def make_jobs(suite: str, tasks: Sequence[int], init_states: Sequence[int], videos_per_task: int) -> list[EvalJob]:
    """Every (task, initial state) pair of a suite, task by task; the first `videos_per_task` of each keep video."""
    return [EvalJob(suite, task, state, i < videos_per_task) for task in tasks for i, state in enumerate(init_states)]


def run_jobs(jobs: Sequence[EvalJob], settings: EvalSettings, workers: int = 1) -> Iterator[EpisodeResult]:
    """Run episodes, in this process (workers=1) or in `workers` processes; yields results as they finish
    (in job order with one worker, completion order otherwise)."""
    import torch

    if workers <= 1:
        caller_threads = torch.get_num_threads()
        torch.set_num_threads(settings.threads)
        worker = _Worker(settings)
        try:
            for job in jobs:
                yield worker.run(job)
        finally:
            worker.close()
            torch.set_num_threads(caller_threads)
        return
    # Load the models here first, so a missing or corrupt checkpoint is reported as such rather than as a broken pool.
    _Worker(settings).close()
    # spawn: a forked child would inherit the parent's GL and torch thread state.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(settings,))
    futures: list[Future] = []
    try:
        futures = [pool.submit(_run_in_worker, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        # Ctrl-C, a failed episode or a caller that stops reading: drop the queued episodes, which the executor's
        # own exit (shutdown with wait) would first run, minutes each; only those already handed to a worker finish.
        # The futures are cancelled here because shutdown(cancel_futures=True) does it in the executor's manager
        # thread, which skips it once this generator's frame, and with it the executor, is gone.
        for future in futures:
            future.cancel()
        pool.shutdown(wait=False)
        raise
    pool.shutdown(wait=True)


def summarise(suite: str, results: Sequence[EpisodeResult], trials_per_task: int) -> SuiteSummary:
    """Per-task success rates (tasks in index order) and their average."""
    ordered = sorted(results, key=lambda r: (r.task_index, r.init_state))
    by_task: dict[str, list[bool]] = {}
    for r in ordered:
        by_task.setdefault(r.task_name, []).append(r.success)
    rates = {name: float(np.mean(successes)) for name, successes in by_task.items()}
    return SuiteSummary(suite, trials_per_task, rates, float(np.mean(list(rates.values()))) if rates else 0.0,
                        ordered)


def format_task_table(summary: SuiteSummary) -> str:
    width = max([len(name) for name in summary.tasks] + [4])
    lines = [f"{summary.suite}: {summary.trials_per_task} trials per task",
             f"{'task':<{width}}  success"]
    lines += [f"{name:<{width}}  {rate * 100:6.1f}%" for name, rate in summary.tasks.items()]
    lines.append(f"{'average':<{width}}  {summary.average * 100:6.1f}%")
    return "\n".join(lines)


def format_suite_table(summaries: Sequence[SuiteSummary]) -> str:
    """The paper's layout: one column per suite and the average over suites."""
    names = [SUITE_COLUMNS.get(s.suite, s.suite) for s in summaries] + ["Avg"]
    values = [s.average for s in summaries]
    values.append(float(np.mean(values)))
    header = " | ".join(f"{n:>9}" for n in names)
    row = " | ".join(f"{v * 100:8.1f}%" for v in values)
    return f"{header}\n{row}"


def write_results(out_dir: str | Path, summaries: Sequence[SuiteSummary], extra: dict) -> Path:
    """out_dir/summary.json and out_dir/episodes.csv (one row per episode). With one suite, summary.json is
    {"suite", "trials_per_task", "tasks": {task: rate}, "average", ...}; with several, "suite" lists them, "tasks"
    is keyed "<suite>/<task>", "suites" holds each suite's average and "average" is their mean."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(summaries) == 1:
        s = summaries[0]
        summary = {"suite": s.suite, "trials_per_task": s.trials_per_task, "tasks": s.tasks, "average": s.average}
    else:
        summary = {"suite": [s.suite for s in summaries], "trials_per_task": summaries[0].trials_per_task,
                   "tasks": {f"{s.suite}/{name}": rate for s in summaries for name, rate in s.tasks.items()},
                   "suites": {s.suite: s.average for s in summaries},
                   "average": float(np.mean([s.average for s in summaries]))}
    summary.update(extra)
    summary["videos"] = [r.video for s in summaries for r in s.episodes if r.video]
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    with open(out / "episodes.csv", "w", newline="") as f:
        fields = list(EpisodeResult.__dataclass_fields__)
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for s in summaries:
            for r in s.episodes:
                writer.writerow(asdict(r))
    return path


def evaluate(suites_tasks: dict[str, Sequence[int]], init_states: Sequence[int], settings: EvalSettings,
             workers: int = 1, videos_per_task: int = 2,
             on_result: Callable[[EpisodeResult], None] | None = None) -> list[SuiteSummary]:
    """Run every suite's tasks over `init_states`; returns one summary per suite (in the given order)."""
    jobs = [job for suite, tasks in suites_tasks.items()
            for job in make_jobs(suite, tasks, init_states, videos_per_task)]
    results: list[EpisodeResult] = []
    for result in run_jobs(jobs, settings, workers):
        results.append(result)
        if on_result is not None:
            on_result(result)
    return [summarise(suite, [r for r in results if r.suite == suite], len(init_states)) for suite in suites_tasks]
