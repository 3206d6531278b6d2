"""`tramoe-bench tracks`: how well a track model predicts motion, against simulator ground truth on held-out
LIBERO episodes and against the baseline "nothing moves" (each query point repeated over the horizon).

Ground truth: `tramoe_ros.sim.heldout_tracks` (the scripted expert on initial states 30-49, which no model trains
on; collected once and cached). Two point sets per evaluation frame and view:
- `grid`: the policy's 32 query points, what the policy node asks the track model about (mostly still scenery);
- `moving`: variance-filtered surface points (as training samples them), scored on those that move (trajectory
  variance above the threshold).

Errors are Euclidean, in pixels at 128 px, over the predicted steps 1..H-1 of points visible at the query frame
(step 0 is the query itself): ADE averages them, FDE takes the last step. `delta_avg` is TAP-Vid's δ^x_avg: the
share of visible ground-truth positions within 1, 2, 4, 8 and 16 px, averaged over the five thresholds. Static
drift: the mean predicted displacement of points whose ground truth stays within `STILL_PX` of the query over
the whole horizon (from both sets).
"""
from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from tramoe_ros.data.sampling import track_variance_px2
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.sim.heldout_tracks import (EpisodeWindows, WindowSettings, collect_task_windows, load_windows,
                                           windows_complete, windows_path)
from tramoe_ros.sim.libero_env import task_name
from tramoe_ros.viz import draw_tracks, write_png

DELTA_THRESHOLDS_PX = (1, 2, 4, 8, 16)
STILL_PX = 1.0  # a ground-truth point that never leaves this radius of its query "does not move"
# Point set -> the ground-truth arrays it is scored on (`ViewWindows`).
SETS = {"grid": "grid", "moving": "sampled"}
EPISODES_PER_JOB = 5


def _zeros(*shape: int):
    return field(default_factory=lambda: np.zeros(shape))


@dataclass
class ErrorSums:
    """Running sums of one point set's errors (px) over many windows; row 0 the model, row 1 "nothing moves"."""

    ade: np.ndarray = _zeros(2)
    fde: np.ndarray = _zeros(2)
    within: np.ndarray = _zeros(2, len(DELTA_THRESHOLDS_PX))  # visible positions within each threshold
    points: int = 0  # scored (point, window) pairs in the ADE/FDE
    visible: int = 0  # visible ground-truth positions of scored points, the δ's denominator

    def add(self, predicted: np.ndarray, truth: np.ndarray, visibility: np.ndarray, scored: np.ndarray) -> None:
        """
        Args:
            predicted, truth: (B, H, K, 2) in px; visibility: (B, H, K) bool; scored: (B, K) bool, the points
                that count (visible at the query frame, and moving for the moving set)
        """
        counted = visibility[:, 1:] & scored[:, None]
        for row, prediction in enumerate((predicted, np.broadcast_to(truth[:, :1], truth.shape))):
            error = np.linalg.norm(prediction[:, 1:] - truth[:, 1:], axis=-1)  # (B, H-1, K)
            self.ade[row] += error.mean(axis=1)[scored].sum()
            self.fde[row] += error[:, -1][scored].sum()
            self.within[row] += [(error[counted] <= threshold).sum() for threshold in DELTA_THRESHOLDS_PX]
        self.points += int(scored.sum())
        self.visible += int(counted.sum())

    def merge(self, other: ErrorSums) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metrics(self) -> dict[str, float]:
        ade, fde = self.ade / max(self.points, 1), self.fde / max(self.points, 1)
        delta = self.within.mean(axis=1) / max(self.visible, 1)
        return {
            "ade_px": round(ade[0], 3), "ade_static_baseline_px": round(ade[1], 3),
            "ratio": round(ade[0] / ade[1], 3) if ade[1] else float("nan"),
            "fde_px": round(fde[0], 3), "fde_static_baseline_px": round(fde[1], 3),
            "delta_avg": round(delta[0], 4), "delta_avg_static_baseline": round(delta[1], 4), "points": self.points,
        }


@dataclass
class DriftSums:
    """Predicted displacement (px) of points that do not move in ground truth."""

    total: float = 0.0
    points: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray, visible_at_query: np.ndarray) -> None:
        """predicted, truth: (B, H, K, 2) px; visible_at_query: (B, K) bool"""
        still = (np.linalg.norm(truth - truth[:, :1], axis=-1).max(axis=1) <= STILL_PX) & visible_at_query
        drift = np.linalg.norm(predicted[:, 1:] - truth[:, :1], axis=-1).mean(axis=1)  # (B, K)
        self.total += float(drift[still].sum())
        self.points += int(still.sum())

    def merge(self, other: DriftSums) -> None:
        self.total += other.total
        self.points += other.points

    def value(self) -> float:
        return round(self.total / self.points, 3) if self.points else float("nan")


@dataclass
class TaskScores:
    sets: dict[str, ErrorSums] = field(default_factory=lambda: {name: ErrorSums() for name in SETS})
    drift: DriftSums = field(default_factory=DriftSums)

    def merge(self, other: TaskScores) -> None:
        for name, sums in other.sets.items():
            self.sets[name].merge(sums)
        self.drift.merge(other.drift)


# (images (B, S, S, 3) uint8, queries (B, K, 2) normalised, instruction) -> (B, H, K, 2) normalised tracks
Predict = Callable[[np.ndarray, np.ndarray, str], np.ndarray]


def score_windows(predict: Predict, episode: EpisodeWindows, image_size: int,
                  variance_threshold_px2: float) -> TaskScores:
    """Score `predict` on one episode's windows, both views and both point sets."""
    scores = TaskScores()
    for view in episode.views.values():
        for name, arrays in SETS.items():
            truth_n = getattr(view, f"{arrays}_tracks")
            visibility = getattr(view, f"{arrays}_visibility")
            predicted = np.asarray(predict(view.images, truth_n[:, 0], episode.instruction)) * image_size
            truth = truth_n * image_size
            visible_at_query = visibility[:, 0]
            scored = visible_at_query
            if name == "moving":
                variance = np.stack([track_variance_px2(window, image_size) for window in truth_n])
                scored = scored & (variance > variance_threshold_px2)
            scores.sets[name].add(predicted, truth, visibility, scored)
            scores.drift.add(predicted, truth, visible_at_query)
    return scores


def _collect(job: tuple[str, int, Sequence[int], Path, WindowSettings]) -> int:
    suite, task, init_states, cache, settings = job
    return len(collect_task_windows(suite, task, init_states, cache, settings))


def ensure_ground_truth(suite: str, tasks: Sequence[int], init_states: Sequence[int], cache: Path,
                        settings: WindowSettings, workers: int) -> dict[int, list[Path]]:
    """The cached ground truth of every (task, initial state), collecting what is missing with `workers`
    processes. Returns task -> episode files, in `init_states` order."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    files = {task: [windows_path(cache, task_name(suite, task), k) for k in init_states] for task in tasks}
    missing = {task: [k for k, path in zip(init_states, paths) if not windows_complete(path, settings)]
               for task, paths in files.items()}
    # A job is a few episodes of one task: an environment is made once per job, and the bar moves per job.
    jobs = [(suite, task, states[i:i + EPISODES_PER_JOB], cache, settings)
            for task, states in missing.items() for i in range(0, len(states), EPISODES_PER_JOB)]
    if jobs:
        with tqdm(total=sum(len(job[2]) for job in jobs), desc="held-out ground truth", unit="episode") as bar:
            if workers > 1:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    for done in pool.map(_collect, jobs):
                        bar.update(done)
            else:
                for job in jobs:
                    bar.update(_collect(job))
    return files


@dataclass
class TrackBenchResult:
    tasks: dict[int, TaskScores]
    instructions: dict[int, str]

    def total(self) -> TaskScores:
        total = TaskScores()
        for scores in self.tasks.values():
            total.merge(scores)
        return total

    def summary(self) -> dict:
        """The JSON line: the moving-point metrics at the top level, the grid's under `grid_`."""
        total = self.total()
        moving, grid = total.sets["moving"].metrics(), total.sets["grid"].metrics()
        return {
            "moving_ade_px": moving["ade_px"], "moving_ade_static_baseline_px": moving["ade_static_baseline_px"],
            "moving_ratio": moving["ratio"], "moving_fde_px": moving["fde_px"],
            "moving_fde_static_baseline_px": moving["fde_static_baseline_px"], "delta_avg": moving["delta_avg"],
            "delta_avg_static_baseline": moving["delta_avg_static_baseline"], "static_drift_px": total.drift.value(),
            "grid_ade_px": grid["ade_px"], "grid_ade_static_baseline_px": grid["ade_static_baseline_px"],
            "grid_ratio": grid["ratio"], "grid_fde_px": grid["fde_px"], "grid_delta_avg": grid["delta_avg"],
            "moving_points": moving["points"], "grid_points": grid["points"],
        }

    def table(self) -> str:
        header = (f"{'task':<5} {'moving ADE':>10} {'still':>7} {'ratio':>6} {'FDE':>6} {'d_avg':>6} "
                  f"{'grid ADE':>9} {'still':>7} {'ratio':>6} {'drift':>6}")
        rows = [header]
        for task, scores in [*sorted(self.tasks.items()), ("all", self.total())]:
            moving, grid = scores.sets["moving"].metrics(), scores.sets["grid"].metrics()
            rows.append(f"{task!s:<5} {moving['ade_px']:>10.2f} {moving['ade_static_baseline_px']:>7.2f} "
                        f"{moving['ratio']:>6.2f} {moving['fde_px']:>6.2f} {moving['delta_avg']:>6.3f} "
                        f"{grid['ade_px']:>9.2f} {grid['ade_static_baseline_px']:>7.2f} {grid['ratio']:>6.2f} "
                        f"{scores.drift.value():>6.2f}")
        return "\n".join(rows)


def bench_tracks(track_model: str | Path, suite: str, tasks: Sequence[int], init_states: Sequence[int],
                 cache: Path, settings: WindowSettings, workers: int = 2, batch_size: int = 64,
                 figure: Path | None = None) -> TrackBenchResult:
    """Collect what the cache lacks, then score `track_model` on every episode's windows (per task)."""
    files = ensure_ground_truth(suite, tasks, init_states, cache, settings, workers)
    predictor = TrackPredictor.from_checkpoint(track_model)
    if predictor.cfg.num_points != settings.num_points or predictor.cfg.horizon != settings.horizon:
        raise ValueError(f"{track_model} predicts {predictor.cfg.num_points} points over {predictor.cfg.horizon} "
                         f"steps; the benchmark asks {settings.num_points} over {settings.horizon}")

    def predict(images: np.ndarray, queries: np.ndarray, instruction: str) -> np.ndarray:
        return torch.cat([predictor.predict(images[i:i + batch_size], queries[i:i + batch_size], instruction)
                          for i in range(0, len(images), batch_size)]).numpy()

    tasks_scores: dict[int, TaskScores] = defaultdict(TaskScores)
    instructions: dict[int, str] = {}
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with tqdm(total=sum(len(paths) for paths in files.values()), desc="scoring", unit="episode") as bar:
        for task, paths in files.items():
            for path in paths:
                episode = load_windows(path)
                instructions[task] = episode.instruction
                tasks_scores[task].merge(score_windows(predict, episode, predictor.cfg.image_size,
                                                       settings.variance_threshold_px2))
                if figure is not None and path == paths[0] and len(examples) < 4:
                    examples.append(_example(predict, episode))
                bar.update()
    if figure is not None and examples:
        _write_figure(examples, figure)
    return TrackBenchResult(dict(tasks_scores), instructions)


def _example(predict: Predict, episode: EpisodeWindows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The agentview window of the episode's middle evaluation frame: (image, predicted, truth) of the moving set."""
    view = episode.views["agentview"] if "agentview" in episode.views else next(iter(episode.views.values()))
    i = len(episode.frames) // 2
    truth = view.sampled_tracks[i:i + 1]
    predicted = predict(view.images[i:i + 1], truth[:, 0], episode.instruction)
    return view.images[i], predicted[0], truth[0]


def _write_figure(examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Rows of [prediction | ground truth], tracks coloured by time step."""
    scale = 3
    rows = []
    for image, predicted, truth in examples:
        panels = [draw_tracks(image, predicted, scale=scale), draw_tracks(image, truth, scale=scale)]
        for panel, label in zip(panels, ("predicted", "ground truth")):
            cv2.putText(panel, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        rows.append(np.concatenate(panels, axis=1))
    return write_png(np.concatenate(rows, axis=0), path)
