"""`tramoe-bench models|graph [--json]`: speed and size of the track models and the policy; speed of the ROS graph
(camera->action latency, achieved control rate, the LIBERO bridge's overhead against the raw env)."""
from __future__ import annotations

import argparse
import json
import os

from tramoe_ros.bench.models import bench_models


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
    graph.add_argument("--policy", default=None, help="policy checkpoint (default: untrained, paper size)")
    graph.add_argument("--track-model", default=None, help="track model checkpoint (default: untrained, paper size)")
    graph.add_argument("--steps", type=int, default=100, help="simulation steps per measurement")
    graph.add_argument("--reflections", action=argparse.BooleanOptionalAction, default=True,
                       help="render reflections (LIBERO's datasets have them; off renders faster)")
    args = parser.parse_args(argv)
    if args.what == "graph":
        from tramoe_ros.bench.graph import bench_graph

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # DDS stays on this machine
        os.environ.setdefault("MUJOCO_GL", "egl")
        result = bench_graph(args.task, args.policy, args.track_model, args.steps, args.reflections)
    else:
        result = bench_models(repeats_b64=args.repeats, threads=args.threads)
    print(json.dumps(result) if args.json else _table(result))
    return 0
