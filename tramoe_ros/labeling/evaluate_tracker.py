"""How well a point tracker labels videos: run it on episodes that carry ground-truth tracks (simulator episodes
from `tramoe-collect-libero`, synthetic ones) and compare.

Per view, the queries are the ground-truth positions at a query frame (default 0) of the points visible there; the
tracker follows them forward (and backward, from a later query frame). Reported over every other frame:

- end-point error (EPE) in pixels at 128 px (errors are scaled from the episode's image size), median / mean /
  p90, over the entries the ground truth marks visible, and the fraction within 1, 2 and 4 px;
- visibility accuracy (predicted visible == ground-truth visible over all entries), with the recall of visible
  and of occluded entries, since visible entries are the large majority;
- the median EPE over entries both call visible (what a consumer that trusts the tracker's visibility sees).

`evaluate_tracker` writes the numbers to a JSON file and a PNG with the error over time and one frame per view
with ground-truth and tracked trajectories drawn.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from einops import rearrange
from tqdm import tqdm

from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.labeling.point_trackers import PointTracker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

REFERENCE_SIZE = 128  # errors are reported in pixels of a 128 px image, the project's camera size
WITHIN_PX = (1, 2, 4)
DRAWN_POINTS = 40  # trajectories drawn per view in the PNG
REPORT_NAME = "tracker_vs_ground_truth"


@dataclass
class ViewComparison:
    """A tracker against the ground truth on one view of one episode (M = points visible at the query frame).

    error_px: (T, M) end-point error in pixels at REFERENCE_SIZE; predicted_visible, true_visible: (T, M) bool;
    frame: (S, S, 3) uint8 the last frame; true_tracks, predicted_tracks: (T, M, 2) normalised.
    """

    episode: Path
    view: str
    query_frame: int
    error_px: np.ndarray
    predicted_visible: np.ndarray
    true_visible: np.ndarray
    frame: np.ndarray
    true_tracks: np.ndarray
    predicted_tracks: np.ndarray


def compare_view(tracker: PointTracker, episode: EpisodeFile, view: str, query_frame: int = 0) -> ViewComparison:
    """Track the points of `view` visible at `query_frame` from their ground-truth positions there (queries
    (M, 3) t, x, y; backward in time too when query_frame > 0) and compare with the ground truth."""
    if not 0 <= query_frame < episode.length:
        raise ValueError(f"{episode.path}: query frame {query_frame} is outside [0, {episode.length})")
    video_tchw = episode.read([view]).views[view].video
    true_tracks = episode.tracks(view, 0, episode.length)
    true_visible = episode.visibility(view, 0, episode.length)
    queried = np.flatnonzero(true_visible[query_frame])
    true_tracks, true_visible = true_tracks[:, queried], true_visible[:, queried]
    video = rearrange(video_tchw, "t c h w -> t h w c")
    queries = np.concatenate([np.full((len(queried), 1), query_frame), true_tracks[query_frame]], axis=1)
    predicted_tracks, predicted_visible = tracker.track(video, queries)
    error_px = np.linalg.norm(predicted_tracks - true_tracks, axis=-1) * REFERENCE_SIZE
    return ViewComparison(episode.path, view, query_frame, error_px, predicted_visible, true_visible, video[-1],
                          true_tracks, predicted_tracks)


def summarize(comparisons: Sequence[ViewComparison]) -> dict:
    """Metrics (see the module docstring) pooled over `comparisons`, every frame but the query frame."""
    def pooled(name: str) -> np.ndarray:
        return np.concatenate([np.delete(getattr(c, name), c.query_frame, axis=0).ravel() for c in comparisons])

    errors, predicted, true = pooled("error_px"), pooled("predicted_visible"), pooled("true_visible")
    visible_errors = errors[true]
    both_visible = errors[true & predicted]

    def fraction(mask: np.ndarray) -> float | None:
        return float(mask.mean()) if mask.size else None

    return {
        "episodes": len({c.episode for c in comparisons}),
        "points": int(sum(c.error_px.shape[1] for c in comparisons)),
        "entries_ground_truth_visible": int(true.sum()),
        "epe_px_median": float(np.median(visible_errors)) if visible_errors.size else None,
        "epe_px_mean": float(visible_errors.mean()) if visible_errors.size else None,
        "epe_px_p90": float(np.percentile(visible_errors, 90)) if visible_errors.size else None,
        **{f"within_{px}px": fraction(visible_errors < px) for px in WITHIN_PX},
        "visibility_accuracy": fraction(predicted == true),
        "visible_recall": fraction(predicted[true]),
        "occluded_recall": fraction(~predicted[~true]),
        "epe_px_median_both_visible": float(np.median(both_visible)) if both_visible.size else None,
    }


def error_by_frame(comparisons: Sequence[ViewComparison]) -> dict[str, list]:
    """Median and mean EPE (px) per frame index over the ground-truth-visible points of every episode (None at
    the query frame), and how many entries each frame has (episodes differ in length)."""
    length = max(len(c.error_px) for c in comparisons)
    median, mean, count = [], [], []
    for t in range(length):
        values = np.concatenate([np.zeros(0)] + [c.error_px[t][c.true_visible[t]] for c in comparisons
                                                 if t < len(c.error_px) and t != c.query_frame])
        median.append(float(np.median(values)) if values.size else None)
        mean.append(float(values.mean()) if values.size else None)
        count.append(int(values.size))
    return {"median": median, "mean": mean, "count": count}


def plot_comparison(by_view: dict[str, list[ViewComparison]], tracker_name: str, path: Path,
                    rng: np.random.Generator) -> Path:
    """PNG: EPE over time per view (left), and per view the last frame of the first episode with ground-truth
    (green) and tracked (red) trajectories of DRAWN_POINTS random points, each drawn where it is visible
    (white dot: the query)."""
    views = list(by_view)
    fig, axes = plt.subplots(1, 1 + len(views), figsize=(4.2 * (1 + len(views)), 4.0),
                             gridspec_kw={"width_ratios": [1.4] + [1] * len(views)})
    curve_axis = axes[0]
    for view, comparisons in by_view.items():
        curve = error_by_frame(comparisons)
        frames = np.arange(len(curve["median"]))
        line, = curve_axis.plot(frames, np.array(curve["median"], dtype=float), label=f"{view} median")
        curve_axis.plot(frames, np.array(curve["mean"], dtype=float), "--", color=line.get_color(),
                        label=f"{view} mean")
    curve_axis.set(xlabel="frame", ylabel="end-point error (px at 128 px)", yscale="log",
                   title=f"{tracker_name} vs ground truth ({len(next(iter(by_view.values())))} episodes, "
                         f"queries at frame {next(iter(by_view.values()))[0].query_frame})")
    curve_axis.grid(True, which="both", alpha=0.3)
    curve_axis.legend(fontsize=7, loc="best")
    for axis, view in zip(axes[1:], views):
        comparison = by_view[view][0]
        axis.imshow(comparison.frame, extent=(0, 1, 1, 0), interpolation="nearest")
        count = comparison.true_tracks.shape[1]
        true_path = np.where(comparison.true_visible[..., None], comparison.true_tracks, np.nan)
        predicted_path = np.where(comparison.predicted_visible[..., None], comparison.predicted_tracks, np.nan)
        for n in rng.choice(count, size=min(DRAWN_POINTS, count), replace=False):
            axis.plot(*true_path[:, n].T, color="lime", lw=1.0)
            axis.plot(*predicted_path[:, n].T, color="red", lw=1.0)
            axis.plot(*comparison.true_tracks[comparison.query_frame, n], "o", color="white", ms=2.5)
        axis.set(xlim=(0, 1), ylim=(1, 0), xticks=[], yticks=[],
                 title=f"{view}: ground truth (green), {tracker_name} (red)\n"
                       f"{comparison.episode.parent.name[:32]}/{comparison.episode.name}")
        axis.title.set_fontsize(8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def evaluate_tracker(episode_paths: Sequence[Path], tracker: PointTracker, out_dir: Path, *, query_frame: int = 0,
                     progress: bool = True, seed: int = 0) -> dict:
    """Compare `tracker` with the ground truth of every view of every episode, queried at `query_frame`; write
    out_dir/tracker_vs_ground_truth.{json,png} and return the report (per-view and pooled metrics, per-frame
    error curves, the episodes). `seed` picks the trajectories drawn.

    Raises:
        ValueError when a view has no ground-truth point visible at the query frame in any episode, or an episode
        is shorter than query_frame + 1.
    """
    by_view: dict[str, list[ViewComparison]] = {}
    files = [EpisodeFile(path) for path in episode_paths]
    work = [(file, view) for file in files for view in file.views]
    for file, view in tqdm(work, desc=f"{tracker.name} vs ground truth", unit="view", disable=not progress):
        by_view.setdefault(view, []).append(compare_view(tracker, file, view, query_frame))
    empty = [view for view, comparisons in by_view.items() if all(c.error_px.shape[1] == 0 for c in comparisons)]
    if empty:
        raise ValueError(f"views {empty} have no ground-truth points visible at frame {query_frame} in any episode of "
                         f"{[str(p) for p in episode_paths]}: nothing to compare")
    all_comparisons = [c for comparisons in by_view.values() for c in comparisons]
    report = {
        "tracker": tracker.name,
        "settings": {key: value for key, value in vars(tracker).items() if not key.startswith("_")},
        "reference_size_px": REFERENCE_SIZE,
        "query_frame": query_frame,
        "episodes": [str(file.path) for file in files],
        "views": {view: summarize(comparisons) for view, comparisons in by_view.items()},
        "all": summarize(all_comparisons),
        "epe_px_by_frame": {view: error_by_frame(comparisons) for view, comparisons in by_view.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{REPORT_NAME}.json").write_text(json.dumps(report, indent=1, default=str))
    plot_comparison(by_view, tracker.name, out_dir / f"{REPORT_NAME}.png", np.random.default_rng(seed))
    return report


def format_report(report: dict) -> str:
    """A small table of the per-view and pooled metrics."""
    columns = ("epe_px_median", "epe_px_mean", "epe_px_p90", "within_1px", "within_2px", "visibility_accuracy",
               "visible_recall", "occluded_recall")
    header = f"{'view':<14}{'points':>7}" + "".join(f"{name:>21}" for name in columns)
    rows = [header]
    for view, metrics in [*report["views"].items(), ("all", report["all"])]:
        cells = "".join(f"{'-' if metrics[name] is None else format(metrics[name], '.3f'):>21}" for name in columns)
        rows.append(f"{view:<14}{metrics['points']:>7}{cells}")
    return "\n".join(rows)
