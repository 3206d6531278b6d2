"""`tramoe-label-tracks`: point tracks for episodes and videos that have no simulator ground truth.

Relabel episode files in place (or into --out), e.g. teleoperated episodes recorded without tracks:

    tramoe-label-tracks data/robot/teleop --only-empty
    tramoe-label-tracks 'data/robot/**/*.hdf5' --out data/robot_labelled --backend cotracker --checkpoint ckpt.pth

Import videos (.mp4/.avi files, or folders of them) as action-free episodes, e.g. human videos as out-of-domain
data (centre-cropped to a square, resized to --size):

    tramoe-label-tracks videos/human --out data/human --domain human --instruction "open the drawer"

Measure a tracker against simulator ground truth (episodes from tramoe-collect-libero), writing a JSON report and
a PNG into --out (default runs/tracker_eval):

    tramoe-label-tracks --compare-ground-truth 'data/libero/libero_object/pick_up_the_alphabet*/init_0?.hdf5'

Inputs are files, folders (searched recursively) or quoted globs (** recurses). With --out, each output keeps its
path relative to the folder it was found in. Every file is written atomically (a temporary file renamed), keeping
the actions, proprioception, instruction and domain of an episode and replacing only the tracks of the labelled
views. Each view is labelled with --points random points plus ATM's double grid of 2 x --grid² points, all queried
at frame 0 (default 1000 + 98, the reference labels' count); the track dataset's variance filtering later prefers
the moving ones.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from tramoe_ros.data.episode import EpisodeFormatError
from tramoe_ros.labeling.point_trackers import (
    BACKENDS,
    PointTracker,
    TrackerUnavailableError,
    make_tracker,
    sample_label_queries,
)
from tramoe_ros.labeling.relabel import (
    EPISODE_SUFFIX,
    LabelError,
    expand_inputs,
    output_paths,
    query_rng,
    relabel_episode,
)
from tramoe_ros.labeling.video_import import VIDEO_SUFFIXES, import_video

DEFAULT_EVAL_OUT = Path("runs/tracker_eval")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tramoe-label-tracks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="episode .hdf5 files, .mp4/.avi videos, folders or quoted globs")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: relabel episodes in place; required for videos; the report "
                             f"folder with --compare-ground-truth, default {DEFAULT_EVAL_OUT})")
    parser.add_argument("--backend", choices=BACKENDS, default="lk",
                        help="lk: built-in OpenCV Lucas-Kanade (CPU, no weights; default); cotracker: needs the "
                             "'cotracker' package and --checkpoint")
    parser.add_argument("--checkpoint", type=Path, default=None, help="local CoTracker checkpoint (.pth)")
    parser.add_argument("--fb-threshold", type=float, default=1.0,
                        help="lk: forward-backward round-trip distance (px) above which a point counts as lost "
                             "(default 1.0)")
    parser.add_argument("--points", type=int, default=1000, help="random query points per view (default 1000)")
    parser.add_argument("--grid", type=int, default=7,
                        help="side of ATM's double query grid, 2 x GRID^2 points per view (default 7: 98; 0: none)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random query points (combined with each file's relative path)")
    parser.add_argument("--views", type=lambda text: [v for v in text.split(",") if v], default=None,
                        help="episodes: comma-separated views to label (default: all)")
    parser.add_argument("--only-empty", action="store_true",
                        help="episodes: label only views that have no tracked points (N = 0), e.g. teleop recordings")
    videos = parser.add_argument_group("video import")
    videos.add_argument("--domain", default="human", help="domain tag of imported videos (default human)")
    videos.add_argument("--instruction", default=None,
                        help="instruction of imported videos (default: the file name, _ and - read as spaces)")
    videos.add_argument("--size", type=int, default=128, help="square frame side after resizing (default 128)")
    videos.add_argument("--stride", type=int, default=1, help="keep every STRIDE-th frame (default 1: all)")
    videos.add_argument("--view", default="agentview", help="view name of imported videos (default agentview)")
    evaluation = parser.add_argument_group("tracker evaluation")
    evaluation.add_argument("--compare-ground-truth", metavar="EPISODES", default=None,
                            help="instead of labelling, run the tracker on simulator episodes with ground-truth "
                                 "tracks (folder, glob or file) and report its pixel error and visibility accuracy")
    evaluation.add_argument("--query-frame", type=int, default=0,
                            help="frame whose ground-truth positions are the queries (default 0)")
    return parser


def _check_options(args: argparse.Namespace) -> None:
    if args.points < 0 or args.grid < 0 or args.points + args.grid == 0:
        raise LabelError(f"need --points >= 0, --grid >= 0 and some points; got {args.points}, {args.grid}")
    if args.size < 8 or args.stride < 1:
        raise LabelError(f"need --size >= 8 and --stride >= 1; got {args.size}, {args.stride}")
    if args.fb_threshold <= 0:
        raise LabelError(f"--fb-threshold must be > 0, got {args.fb_threshold}")
    if args.checkpoint is not None and args.backend != "cotracker":
        raise LabelError("--checkpoint is for --backend cotracker")


def _compare(args: argparse.Namespace, tracker: PointTracker) -> int:
    from tramoe_ros.labeling.evaluate_tracker import REPORT_NAME, evaluate_tracker, format_report

    episodes = [path for path, _ in expand_inputs([args.compare_ground_truth], (EPISODE_SUFFIX,))]
    out_dir = args.out or DEFAULT_EVAL_OUT
    report = evaluate_tracker(episodes, tracker, out_dir, query_frame=args.query_frame)
    print(format_report(report))
    print(f"report: {out_dir / (REPORT_NAME + '.json')}, {out_dir / (REPORT_NAME + '.png')}")
    return 0


def _label(args: argparse.Namespace, tracker: PointTracker) -> int:
    work = expand_inputs(args.inputs, (EPISODE_SUFFIX, *VIDEO_SUFFIXES))
    has_videos = any(path.suffix.lower() in VIDEO_SUFFIXES for path, _ in work)
    if has_videos and args.out is None:
        raise LabelError("video inputs are imported as new episodes: give --out FOLDER")
    plan = output_paths(work, args.out)
    failures = []
    labelled_views = 0
    progress = tqdm(plan, desc=f"labelling ({tracker.name})", unit="file")
    for path, relative, out_path in progress:
        progress.set_postfix_str(relative.as_posix()[-40:], refresh=False)
        sample_queries = partial(sample_label_queries, args.points, args.grid, query_rng(args.seed, relative))
        try:
            if path.suffix.lower() == EPISODE_SUFFIX:
                labelled = relabel_episode(path, out_path, tracker, sample_queries, args.views, args.only_empty)
            else:
                labelled = import_video(path, out_path, tracker, sample_queries, size=args.size, stride=args.stride,
                                        view=args.view, domain=args.domain, instruction=args.instruction)
            labelled_views += len(labelled)
        except (ValueError, OSError) as e:  # LabelError, EpisodeFormatError and bad values name the file
            failures.append(str(e) if str(path) in str(e) else f"{path}: {e}")
    progress.close()
    print(f"labelled {labelled_views} views in {len(work) - len(failures)} of {len(work)} files"
          + (f" into {args.out}" if args.out is not None else " (in place)"))
    for failure in failures:
        print(f"tramoe-label-tracks: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.inputs) == (args.compare_ground_truth is not None):
        parser.error("give inputs to label, or --compare-ground-truth EPISODES (not both)")
    try:
        _check_options(args)
        tracker = make_tracker(args.backend, args.checkpoint, fb_threshold_px=args.fb_threshold)
        if args.compare_ground_truth is not None:
            return _compare(args, tracker)
        return _label(args, tracker)
    except (LabelError, TrackerUnavailableError, EpisodeFormatError, ValueError) as e:
        print(f"tramoe-label-tracks: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
