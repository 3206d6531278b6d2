"""`tramoe-collect-libero`: scripted-expert demonstrations of a LIBERO suite with ground-truth point tracks.

    tramoe-collect-libero --suite libero_object --tasks 0-9 --episodes 50 --out data/libero/libero_object
    tramoe-collect-libero --suite libero_object --tasks 0 --episodes 100 --init-states 0-29,50-119 \
        --sampled-init-states 70 --out data/libero/libero_object
    tramoe-collect-libero --suite libero_90 --tasks 0-89 --episodes 20 --no-actions --out data/libero/libero_90
    tramoe-collect-libero --suite libero_object --tasks 0 --episodes 30 --init-states 0-29 \
        --policy runs/policy/last.safetensors --policy-share 0.5 --out data/libero/libero_object_dagger1

Keeps only successful episodes, prints a per-task success report and writes it to <out>/collect_report.json.
With --dry-run the expert runs without cameras and only the report is written (its success rate, fast):

    tramoe-collect-libero --suite libero_spatial --tasks 0-9 --episodes 50 --dry-run --out runs/expert_spatial
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import TYPE_CHECKING

from tramoe_ros.cli.arguments import parse_index_list

if TYPE_CHECKING:
    from tqdm import tqdm

    from tramoe_ros.sim.collect import CollectSettings, TaskReport


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # MuJoCo reads these when first imported, so they are set before the simulator modules load (the helpers
    # below import them).
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tramoe_mesa_shader_cache"))
    from tramoe_ros.models.checkpoint import CheckpointError
    from tramoe_ros.sim.collect import format_report, write_report
    from tramoe_ros.sim.libero_env import EVAL_MAX_STEPS, LiberoError

    try:
        tasks = _checked_tasks(args)
    except LiberoError as e:
        return _error(e)
    report_settings = {**vars(args), "max_steps": args.max_steps or EVAL_MAX_STEPS}
    try:
        reports = _collect(args, tasks, report_settings)
    except (LiberoError, CheckpointError, ValueError) as e:  # e.g. --init-states beyond the task's states
        return _error(e)
    print(format_report(reports))
    print(f"report: {write_report(args.out, reports, report_settings)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tramoe-collect-libero", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True,
                        help="libero_spatial, libero_object, libero_goal, libero_10 or libero_90")
    parser.add_argument("--tasks", type=parse_index_list, default=None,
                        help="task indices, e.g. 0-9 or 0,3,5 (default: every task of the suite)")
    parser.add_argument("--episodes", type=int, default=50,
                        help="successful episodes to keep per task; initial states are tried in order until that "
                             "many succeed or all 50 have been tried (default 50)")
    parser.add_argument("--init-states", type=parse_index_list, default=None,
                        help="initial state indices to try, in order, e.g. 0-29 (default: all); keep the ones "
                             "evaluation uses out of the demonstrations")
    parser.add_argument("--sampled-init-states", type=int, default=0,
                        help="add this many initial states sampled from the task's placement regions (as LIBERO "
                             "drew its 50 fixed ones, seeded by --seed) after the fixed ones: indices 50.. "
                             "(default 0)")
    parser.add_argument("--max-attempts", type=int, default=None,
                        help="initial states tried per task at most (default: all 50); e.g. a quick survey of which "
                             "tasks the expert solves: --episodes 2 --max-attempts 3 --dry-run")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per task)")
    parser.add_argument("--no-actions", action="store_true",
                        help="write action-free videos (no actions, no proprioception), e.g. D_ood from libero_90")
    parser.add_argument("--points", type=int, default=1000, help="tracked surface points per view (default 1000)")
    parser.add_argument("--grid", type=int, default=0,
                        help="also track a GRID x GRID grid of pixels unprojected through the depth map (default 0)")
    parser.add_argument("--camera-size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="step budget per episode (default 600, LIBERO evaluation's budget in ATM / Tra-MoE)")
    parser.add_argument("--no-reflections", action="store_true",
                        help="render without floor/table reflections (faster; looks unlike LIBERO's datasets)")
    parser.add_argument("--antialiasing", action="store_true",
                        help="render with 4x multisampling like LIBERO's datasets (slower); evaluate with the same")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the track point sampling and of the sampled initial states")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="perturbed demonstrations: execute the expert's actions with correlated position "
                             "noise of this standard deviation (action units, 1 = a 5 cm step) and record the "
                             "expert's own actions, its corrections (DART); default 0")
    parser.add_argument("--policy", default=None,
                        help="DAgger: a policy checkpoint acting in the loop; the env executes its action on "
                             "--policy-share of the steps and the episodes record the expert's actions")
    parser.add_argument("--track-model", default=None,
                        help="track model for --policy (default: the one the policy checkpoint names)")
    parser.add_argument("--policy-share", type=float, default=0.5,
                        help="fraction of the steps on which --policy's action is executed (default 0.5)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only measure the expert's success: no cameras, nothing written but the report")
    return parser


def _checked_tasks(args: argparse.Namespace) -> list[int]:
    """The task indices to collect, after checking the options against each other and the suite.

    Raises:
        LiberoError: naming the option at fault.
    """
    from tramoe_ros.sim.libero_env import LiberoError, num_tasks

    total_tasks = num_tasks(args.suite)
    tasks = args.tasks if args.tasks is not None else list(range(total_tasks))
    out_of_range = [task for task in tasks if not 0 <= task < total_tasks]
    if out_of_range:
        raise LiberoError(f"tasks {out_of_range} are out of range for {args.suite} (0..{total_tasks - 1})")
    if args.max_attempts is not None and args.max_attempts < 1:
        raise LiberoError("--max-attempts must be at least 1")
    if args.sampled_init_states < 0:
        raise LiberoError("--sampled-init-states must be at least 0")
    if not 0 <= args.action_noise <= 1:
        raise LiberoError(f"--action-noise must be in [0, 1] (action units), got {args.action_noise}")
    if not 0 <= args.policy_share <= 1:
        raise LiberoError(f"--policy-share must be in [0, 1], got {args.policy_share}")
    if args.policy is not None and args.dry_run:
        raise LiberoError("--policy needs the cameras a --dry-run leaves off")
    if args.episodes < 1 or args.points < 0 or args.grid < 0 or args.points + args.grid == 0:
        raise LiberoError("need --episodes >= 1, --points >= 0, --grid >= 0 and some points to track")
    return tasks


def _collect(args: argparse.Namespace, tasks: list[int], report_settings: dict) -> list[TaskReport]:
    """Collect every task in turn under one progress bar of successful episodes, rewriting the report after each
    task (so an interrupted collection leaves the report of the tasks it finished).

    Returns:
        one report per task
    """
    from tqdm import tqdm

    from tramoe_ros.sim.collect import CollectSettings, write_report

    settings = CollectSettings(
        episodes=args.episodes, with_actions=not args.no_actions, num_points=args.points, grid_size=args.grid,
        camera_size=args.camera_size, max_steps=report_settings["max_steps"], reflections=not args.no_reflections,
        antialiasing=args.antialiasing, seed=args.seed, dry_run=args.dry_run, max_attempts=args.max_attempts,
        init_states=args.init_states, sampled_init_states=args.sampled_init_states, action_noise=args.action_noise,
        learner_policy=args.policy, learner_track_model=args.track_model, learner_share=args.policy_share,
    )
    reports = []
    with tqdm(total=len(tasks) * args.episodes, unit="episode", desc=args.suite) as progress:
        for task in tasks:
            reports.append(_collect_task(args.suite, task, args.out, settings, progress))
            write_report(args.out, reports, report_settings)
    return reports


def _collect_task(suite: str, task: int, out: str, settings: CollectSettings, progress: tqdm) -> TaskReport:
    """Collect one task, counting its successful episodes on `progress`."""
    from tramoe_ros.sim.collect import collect_task

    succeeded = 0

    def on_attempt(success: bool) -> None:
        nonlocal succeeded
        succeeded += success
        progress.set_postfix(task=task, ok=succeeded, refresh=False)
        progress.update(int(success))

    report = collect_task(suite, task, out, settings, on_attempt=on_attempt)
    # Episodes a task could not deliver are taken off the bar's total so it ends full.
    progress.total -= settings.episodes - report.successes
    progress.refresh()
    return report


def _error(error: Exception) -> int:
    print(f"tramoe-collect-libero: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
