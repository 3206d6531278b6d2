"""`tramoe-eval-libero`: closed-loop success rate of a track model + policy on LIBERO suites.

    tramoe-eval-libero --suite libero_object --tasks 0 --first-init-state 30 --out runs/eval/shipped
    tramoe-eval-libero --suite libero_object --track-model models/track_moe.safetensors \\
        --policy models/policy_adaptive.safetensors --trials 20 --out runs/eval/object
    tramoe-eval-libero --suite libero_spatial libero_object --tasks 0-4 --workers 2 --out runs/eval/two_suites

Without --policy it evaluates the shipped models. Runs `--trials` episodes per task from the task's fixed initial
states (from --first-init-state on), each with a 600-step budget and the track model called every step; prints the
per-task table (and, for several suites, the paper's Spatial / Goal / Object / Long / Avg row), writes
OUT/summary.json, OUT/episodes.csv and a few episode videos with the predicted tracks drawn (OUT/videos/).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from tramoe_ros.cli.arguments import parse_index_list
from tramoe_ros.paths import shipped_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-eval-libero", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", nargs="+", required=True,
                        help="one or more of libero_spatial, libero_object, libero_goal, libero_10, libero_90")
    parser.add_argument("--tasks", type=parse_index_list, default=None,
                        help="task indices, e.g. 0-9 or 0,3 (default: every task of each suite)")
    parser.add_argument("--policy", default=None,
                        help="policy checkpoint (.safetensors; default: the shipped "
                             "models/policy_adaptive.safetensors)")
    parser.add_argument("--track-model", default=None,
                        help="track model checkpoint (default: the one the policy was trained with)")
    parser.add_argument("--trials", type=int, default=20, help="episodes per task (default 20, as the paper)")
    parser.add_argument("--first-init-state", type=int, default=0,
                        help="initial states first..first+trials-1 are used (default 0); the shipped models were "
                             "trained on states 0-29, so 30 evaluates on held-out states")
    parser.add_argument("--max-steps", type=int, default=None, help="step budget per episode (default 600)")
    parser.add_argument("--workers", type=int, default=1,
                        help="episodes run in this many processes (default 1); results do not depend on it")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (default 1; keep it when comparing runs)")
    parser.add_argument("--antialiasing", action="store_true",
                        help="render with 4x multisampling (use it when the training data was collected with it)")
    parser.add_argument("--tracks", choices=["predicted", "static"], default="predicted",
                        help="what the policy is conditioned on: the track model's predictions (default), or "
                             "'nothing moves' (each query point repeated over the horizon) to measure how much "
                             "the policy uses its track model")
    parser.add_argument("--track-lag", type=int, default=0,
                        help="condition each action on the tracks predicted this many frames earlier, as the "
                             "real-time ROS graph does (default 0: lock-step, the tracks of the current frame)")
    parser.add_argument("--videos", type=int, default=2, help="episodes per task saved as video (default 2)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    args.policy = args.policy or str(shipped_policy())

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("MESA_SHADER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tramoe_mesa_shader_cache"))
    from tqdm import tqdm

    from tramoe_ros.sim.evaluate import EvalSettings, evaluate, format_suite_table, format_task_table, write_results
    from tramoe_ros.sim.libero_env import EVAL_MAX_STEPS, LiberoError, num_tasks
    from tramoe_ros.models.checkpoint import CheckpointError

    def fail(message: str) -> int:
        print(f"tramoe-eval-libero: error: {message}", file=sys.stderr)
        return 2

    if (args.trials < 1 or args.workers < 1 or args.threads < 1 or args.videos < 0 or args.first_init_state < 0
            or args.track_lag < 0):
        return fail("need --trials, --workers, --threads >= 1 and --videos, --first-init-state, --track-lag >= 0")
    if args.first_init_state + args.trials > 50:
        return fail(f"LIBERO tasks have 50 initial states; --first-init-state {args.first_init_state} with "
                    f"--trials {args.trials} goes past them")
    for path in [args.policy] + ([args.track_model] if args.track_model else []):
        if not os.path.isfile(path):
            return fail(f"checkpoint {path} does not exist")
    suites_tasks = {}
    try:
        for suite in args.suite:
            total = num_tasks(suite)
            tasks = args.tasks if args.tasks is not None else list(range(total))
            if any(not 0 <= t < total for t in tasks):
                raise LiberoError(f"tasks {tasks} are not all in {suite}'s range 0..{total - 1}")
            suites_tasks[suite] = tasks
    except LiberoError as e:
        return fail(str(e))

    settings = EvalSettings(policy=args.policy, track_model=args.track_model,
                            max_steps=args.max_steps or EVAL_MAX_STEPS, threads=args.threads, out_dir=args.out,
                            antialiasing=args.antialiasing, tracks=args.tracks,
                            track_lag=args.track_lag)
    init_states = list(range(args.first_init_state, args.first_init_state + args.trials))
    total = sum(len(t) for t in suites_tasks.values()) * args.trials
    successes = 0
    with tqdm(total=total, unit="episode", desc="eval") as progress:
        def on_result(result) -> None:
            nonlocal successes
            successes += result.success
            progress.set_postfix(success=f"{successes}/{progress.n + 1}", refresh=False)
            progress.update()

        try:
            summaries = evaluate(suites_tasks, init_states, settings, workers=args.workers,
                                 videos_per_task=args.videos, on_result=on_result)
        except (CheckpointError, ValueError) as e:
            return fail(str(e))
    for summary in summaries:
        print(format_task_table(summary))
    if len(summaries) > 1:
        print(format_suite_table(summaries))
    path = write_results(args.out, summaries, {
        "policy": args.policy, "track_model": args.track_model, "init_states": init_states,
        "max_steps": settings.max_steps, "workers": args.workers, "threads": args.threads,
        "antialiasing": args.antialiasing, "tracks": args.tracks,
        "track_lag": args.track_lag})
    print(f"summary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
