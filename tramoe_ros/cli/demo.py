"""`tramoe-demo`: one LIBERO episode through the ROS graph with the shipped models; records a bag, writes a video
of the predicted tracks and summary.json (success, steps, control rate, camera->action latency)."""
from __future__ import annotations

import argparse
import os
import sys

from tramoe_ros.demo import DEFAULT_POLICY, DEFAULT_TASK, DEFAULT_TRACK_MODEL, run_sim_demo
from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.graph import GraphError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-demo", description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="output folder (bag/, tracks.mp4, summary.json)")
    parser.add_argument("--task", default=DEFAULT_TASK, help="LIBERO task <suite>/<task index>")
    parser.add_argument("--policy", default=DEFAULT_POLICY, help="policy checkpoint")
    parser.add_argument("--track-model", default=DEFAULT_TRACK_MODEL, help="track model checkpoint")
    parser.add_argument("--steps", type=int, default=600, help="episode step budget")
    parser.add_argument("--mode", choices=["lockstep", "realtime"], default="lockstep",
                        help="bridge stepping: one step per action (deterministic, as offline evaluation), or 20 Hz "
                             "real time with the newest action")
    args = parser.parse_args(argv)
    # DDS stays on this machine (see README); MuJoCo renders headless.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        summary = run_sim_demo(args.out, args.task, args.policy, args.track_model, args.steps, args.mode)
    except (NodeStartupError, GraphError) as e:
        print(f"[tramoe-demo] cannot start: {e}", file=sys.stderr)
        return 1
    return 0 if summary["done"] else 1


if __name__ == "__main__":
    sys.exit(main())
