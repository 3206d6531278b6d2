"""`tramoe-import-libero`: LIBERO's official demonstration files -> the project's episodes, with ground-truth tracks.

    tramoe-import-libero datasets/libero_object/*_demo.hdf5 --out data/libero_official/libero_object
    tramoe-import-libero demo.hdf5 --suite libero_goal --task 3 --demos 0-9 --out data/libero_official/libero_goal
    tramoe-import-libero datasets/libero_90/*_demo.hdf5 --points 0 --tracker lk --grid 7 --out data/libero_90_lk

Each demonstration's recorded simulator states are set and rendered at --camera-size (agentview and eye_in_hand,
upright), its ground-truth point tracks recorded as tramoe-collect-libero does, and it is written with its actions,
proprioception, the task's instruction and the suite as domain to <out>/<task name>/demo_<i>.hdf5. The task is
read from the file (its BDDL file name, else the file name <task name>_demo.hdf5); --suite and --task name it when
the file does not. Demonstrations whose last state does not satisfy the task's goal are reported and skipped
(exit status 1); a file that is missing, not in LIBERO's layout or of an unknown task stops the import (exit 2).

With --tracker, the views are labelled by a point tracker (as tramoe-label-tracks does: --points random queries
plus ATM's double grid of 2 x --grid^2, at frame 0) instead of the simulator's ground truth.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tramoe_ros.cli.arguments import parse_index_list

if TYPE_CHECKING:
    from tramoe_ros.data.episode import Episode
    from tramoe_ros.labeling.point_trackers import PointTracker
    from tramoe_ros.sim.libero_import import DemoReport, ImportSettings, LiberoDemoFile, Relabel, TaskRef

PROG = "tramoe-import-libero"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="LIBERO demonstration files (.hdf5)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per task)")
    parser.add_argument("--suite", default=None,
                        help="the files' suite (default: from each file's BDDL path or folder)")
    parser.add_argument("--task", default=None,
                        help="the files' task: an index in the suite's task order or a task name (default: from "
                             "each file's BDDL file name, else its file name)")
    parser.add_argument("--demos", type=parse_index_list, default=None,
                        help="demo indices i of data/demo_<i> to import, e.g. 0-9 (default: all)")
    parser.add_argument("--camera-size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--points", type=int, default=1000,
                        help="tracked points per view: ground-truth surface points, or a --tracker's random "
                             "queries (default 1000)")
    parser.add_argument("--grid", type=int, default=0,
                        help="ground truth: also track a GRID x GRID grid of pixels; --tracker: ATM's double grid "
                             "of 2 x GRID^2 queries (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the track points (default 0)")
    parser.add_argument("--no-reflections", action="store_true",
                        help="render without floor/table reflections (faster; looks unlike LIBERO's datasets)")
    parser.add_argument("--antialiasing", action="store_true",
                        help="render with 4x multisampling like LIBERO's datasets (slower); evaluate with the same")
    parser.add_argument("--tracker", choices=("lk", "cotracker"), default=None,
                        help="label the rendered videos with this point tracker instead of the simulator's ground "
                             "truth (lk: OpenCV Lucas-Kanade; cotracker: needs --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="local CoTracker checkpoint (.pth)")
    return parser


def _check_options(args: argparse.Namespace) -> None:
    """Raise ValueError naming the option at fault."""
    if args.points < 0 or args.grid < 0 or args.points + args.grid == 0:
        raise ValueError(f"need --points >= 0, --grid >= 0 and some points to track; got {args.points}, {args.grid}")
    if args.camera_size < 8:
        raise ValueError(f"--camera-size must be at least 8, got {args.camera_size}")
    if args.checkpoint is not None and args.tracker != "cotracker":
        raise ValueError("--checkpoint is for --tracker cotracker")


def _settings(args: argparse.Namespace) -> ImportSettings:
    from tramoe_ros.sim.libero_import import ImportSettings

    # A tracker labels the views afterwards, so the simulator records no points (and renders no depth).
    tracked_by_simulator = args.tracker is None
    return ImportSettings(camera_size=args.camera_size, num_points=args.points if tracked_by_simulator else 0,
                          grid_size=args.grid if tracked_by_simulator else 0, reflections=not args.no_reflections,
                          antialiasing=args.antialiasing, seed=args.seed)


def _selected_demos(demo_file: LiberoDemoFile, indices: list[int] | None) -> list[str]:
    """The file's demos with the chosen indices (all without --demos), in order."""
    if indices is None:
        return list(demo_file.demos)
    return [demo for demo in demo_file.demos if demo_file.demo_index(demo) in indices]


def _checked_work(args: argparse.Namespace) -> list[tuple[LiberoDemoFile, TaskRef, list[str]]]:
    """Each file with its task and the demos to import, all checked before anything is imported.

    Raises:
        LiberoImportError naming a file that is missing, not in LIBERO's layout, of an unknown task, or without
        any of the --demos.
    """
    from tramoe_ros.sim.libero_import import LiberoImportError, find_task, read_demo_file

    work = []
    for path in args.files:
        demo_file = read_demo_file(path)
        demos = _selected_demos(demo_file, args.demos)
        if not demos:
            raise LiberoImportError(f"{path}: none of --demos {args.demos} is in the file, which has "
                                    f"{', '.join(demo_file.demos)}")
        work.append((demo_file, find_task(demo_file, args.suite, args.task), demos))
    return work


def _tracker_relabel(args: argparse.Namespace, tracker: PointTracker, task_name: str) -> Relabel:
    """A hook labelling every view of an episode with `tracker`; each demo's queries are seeded by --seed and
    its output path relative to --out, as tramoe-label-tracks seeds a file's."""
    from tramoe_ros.labeling.point_trackers import sample_label_queries
    from tramoe_ros.labeling.relabel import label_view, query_rng

    def relabel(episode: Episode, demo: str) -> Episode:
        sample_queries = partial(sample_label_queries, args.points, args.grid,
                                 query_rng(args.seed, Path(task_name) / f"{demo}.hdf5"))
        for view, data in episode.views.items():
            episode.views[view] = label_view(tracker, data.video, sample_queries())
        return episode

    return relabel


def _import_file(args: argparse.Namespace, demo_file: LiberoDemoFile, task: TaskRef, demos: list[str],
                 tracker: PointTracker | None) -> list[DemoReport]:
    """Import `demos` of one file under a progress bar; one report per demo."""
    from tqdm import tqdm

    from tramoe_ros.sim.libero_import import import_demos, make_import_env

    settings = _settings(args)
    relabel = _tracker_relabel(args, tracker, task.name) if tracker is not None else None
    reports = []
    env = make_import_env(task, settings)
    try:
        with tqdm(total=len(demos), unit="demo", desc=f"{task.suite} {task.index}") as progress:
            for report in import_demos(env, demo_file, args.out, settings, demos, relabel):
                reports.append(report)
                progress.set_postfix(imported=sum(r.imported for r in reports), refresh=False)
                progress.update()
    finally:
        env.close()
    return reports


def _make_tracker(args: argparse.Namespace) -> PointTracker:
    """The --tracker (labeling is imported only when one is asked for)."""
    from tramoe_ros.labeling.point_trackers import TrackerUnavailableError, make_tracker

    try:
        return make_tracker(args.tracker, args.checkpoint)
    except TrackerUnavailableError as e:
        raise ValueError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # MuJoCo reads these when first imported, so they are set before the simulator modules load.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tramoe_mesa_shader_cache"))
    try:
        _check_options(args)
        work = _checked_work(args)
        tracker = _make_tracker(args) if args.tracker is not None else None
        failures = []
        imported = total = 0
        for demo_file, task, demos in work:
            for report in _import_file(args, demo_file, task, demos, tracker):
                total += 1
                imported += report.imported
                if not report.imported:
                    failures.append(f"{demo_file.path} {report.demo}: not imported: {report.problem}")
    except ValueError as e:  # LiberoImportError, LiberoError, EpisodeFormatError, options, a tracker that cannot run
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"imported {imported} of {total} demos into {args.out}")
    for failure in failures:
        print(f"{PROG}: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
