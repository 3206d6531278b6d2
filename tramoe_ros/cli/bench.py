"""`tramoe-bench models|graph|robot|tracks [--json]`: speed and size of the track models and the policy; speed of the ROS
graph (camera->action latency, achieved control rate, the LIBERO bridge's overhead against the raw env); speed of
the dual-arm robot's driver, teleop loop and joint states against emulated servos, and of its whole graph (video
files as cameras, emulated arms): the fresh-action rate it sustains beside the rates it is configured and
recorded at; how well a track model predicts motion on held-out LIBERO episodes, against "nothing moves"."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tramoe_ros.bench.models import bench_models
from tramoe_ros.cli.arguments import parse_index_list
from tramoe_ros.sim.heldout_tracks import WindowSettings
from tramoe_ros.ros.runtime import keep_dds_local


def _table(result: dict) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}"
                     for k, v in result.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    models = sub.add_parser("models", help="track model (dense vs MoE) and policy inference time and size")
    models.add_argument("--json", action="store_true", help="print one JSON object")
    models.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    models.add_argument("--repeats", type=int, default=7, help="timed repeats at batch 64")
    graph = sub.add_parser("graph", help="ROS graph: camera->action latency, control rate, bridge vs raw env")
    graph.add_argument("--json", action="store_true", help="print one JSON object")
    graph.add_argument("--task", default="libero_object/0", help="LIBERO task <suite>/<task index>")
    graph.add_argument("--policy", default=None,
                       help="policy checkpoint (default: the shipped one, else an untrained one of its size)")
    graph.add_argument("--track-model", default=None,
                       help="track model checkpoint (default: the shipped one, else an untrained one of its size)")
    graph.add_argument("--steps", type=int, default=100, help="simulation steps per measurement")
    graph.add_argument("--reflections", action=argparse.BooleanOptionalAction, default=True,
                       help="render reflections (LIBERO's datasets have them; off renders faster)")
    robot = sub.add_parser("robot", help="dual-arm robot: driver cycle, teleop loop and /joint_states rates "
                                         "against emulated Dynamixel arms; the real graph's fresh-action rate")
    robot.add_argument("--json", action="store_true", help="print one JSON object")
    robot.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    robot.add_argument("--graph-seconds", type=float, default=10.0,
                       help="duration of each real-graph measurement (0: skip the graph)")
    tracks = sub.add_parser("tracks", help="track model against simulator ground truth on held-out LIBERO "
                                           "episodes (collected and cached when missing) and against "
                                           "'nothing moves': ADE/FDE, TAP-Vid delta_avg, static drift, per task")
    tracks.add_argument("--json", action="store_true", help="end with one JSON line of the overall metrics")
    tracks.add_argument("--track-model", default=None, help="track model checkpoint (default: the shipped one)")
    tracks.add_argument("--suite", default="libero_object", help="LIBERO suite")
    tracks.add_argument("--tasks", type=parse_index_list, default=list(range(10)), help="tasks, e.g. 0-9")
    tracks.add_argument("--init-states", type=parse_index_list, default=list(range(30, 50)),
                        help="held-out initial states (the shipped models train on 0-29)")
    tracks.add_argument("--stride", type=int, default=WindowSettings.stride,
                        help="an evaluation frame every STRIDE frames of each episode")
    tracks.add_argument("--workers", type=int, default=2, help="processes collecting missing ground truth")
    tracks.add_argument("--cache", type=Path, default=Path("data/bench/track_heldout"),
                        help="where the ground truth is cached")
    tracks.add_argument("--figure", type=Path, default=Path("runs/bench/tracks.png"),
                        help="PNG of predictions beside the ground truth")
    args = parser.parse_args(argv)
    keep_dds_local()
    if args.what == "tracks":
        from tramoe_ros.bench.tracks import bench_tracks
        from tramoe_ros.paths import shipped_track_model

        model = args.track_model or shipped_track_model()
        result = bench_tracks(model, args.suite, args.tasks, args.init_states, args.cache,
                              WindowSettings(stride=args.stride), args.workers, figure=args.figure)
        print(f"{model}: {args.suite} tasks {args.tasks}, initial states {args.init_states[0]}-"
              f"{args.init_states[-1]}; errors in px at 128 px (still = the 'nothing moves' baseline)")
        print(result.table())
        print(f"figure: {args.figure}")
        if args.json:
            print(json.dumps(result.summary()))
        return 0
    if args.what == "robot":
        from tramoe_ros.bench.robot import bench_robot

        result = bench_robot(args.seconds)
        if args.graph_seconds > 0:
            from tramoe_ros.bench.robot_graph import bench_robot_graph

            result.update(bench_robot_graph(args.graph_seconds))
    elif args.what == "graph":
        from tramoe_ros.bench.graph import bench_graph

        os.environ.setdefault("MUJOCO_GL", "egl")
        from tramoe_ros.paths import shipped_policy, shipped_track_model

        if args.policy is None and args.track_model is None and shipped_policy().is_file() \
                and shipped_track_model().is_file():
            args.policy, args.track_model = shipped_policy(), shipped_track_model()
        result = bench_graph(args.task, args.policy, args.track_model, args.steps, args.reflections)
    else:
        result = bench_models(repeats_b64=args.repeats, threads=args.threads)
    print(json.dumps(result) if args.json else _table(result))
    return 0
