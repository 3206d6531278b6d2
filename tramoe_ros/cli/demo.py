"""`tramoe-demo`: LIBERO episodes through the ROS graph with the shipped models, in real time (as the launch files
run) or lock-step; records a bag, writes a video of the predicted tracks and summary.json (per episode and over
all: success, steps, fresh-action rate, control rate, camera->action latency).

    tramoe-demo --out runs/demo                                            # one episode, initial state 0
    tramoe-demo --mode realtime --init-states 30-39 --out runs/demo_rt     # held-out states, one episode each
"""
from __future__ import annotations

import argparse
import os
import sys

from tramoe_ros.cli.arguments import parse_index_list
from tramoe_ros.demo import DEFAULT_TASK, run_sim_demo
from tramoe_ros.ros.graph import GraphError
from tramoe_ros.ros.runtime import keep_dds_local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="output folder (bag/, tracks.mp4, summary.json)")
    parser.add_argument("--task", default=DEFAULT_TASK, help="LIBERO task <suite>/<task index>")
    parser.add_argument("--policy", default=None, help="policy checkpoint (default: the shipped one)")
    parser.add_argument("--track-model", default=None, help="track model checkpoint (default: the shipped one)")
    parser.add_argument("--steps", type=int, default=600, help="episode step budget")
    parser.add_argument("--mode", choices=["realtime", "lockstep"], default="realtime",
                        help="bridge stepping: 20 Hz real time with the newest action, as the launch files run "
                             "(default), or one step per action (deterministic, as offline evaluation)")
    parser.add_argument("--init-states", type=parse_index_list, default=[0],
                        help="initial states, one episode each, e.g. 30-39 (default: 0)")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="record no bag (and draw no video)")
    args = parser.parse_args(argv)
    domain = keep_dds_local()
    print(f"[tramoe-demo] ROS_DOMAIN_ID={domain}, localhost only", flush=True)
    os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo renders headless
    try:
        run_sim_demo(args.out, args.task, args.policy, args.track_model, args.steps, args.mode, args.init_states,
                     args.record)
    except GraphError as e:
        print(f"[tramoe-demo] cannot start: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as e:  # a node that could not start or ended; an episode that did not end
        print(f"[tramoe-demo] {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
