"""How every node process starts: the console scripts (`policy_node`, ...: what `ros2 launch` runs) and
`ProcessGraph` (`python -m tramoe_ros.nodes.start <node> --ros-args ...`) import `tramoe_ros.nodes.<node>` and run
its `main()`.

A stop signal can come at any moment of start-up: a Ctrl-C, or the launch's SIGINT to every node when an essential
one exits. Importing a node's module takes seconds (torch, LIBERO, rclpy), and Python's default handler would raise
KeyboardInterrupt somewhere inside those imports. So this module, which imports nothing heavy, catches SIGINT and
SIGTERM first: until the node's `run_node` installs its own handlers (which stop the node in order), a signal ends
the process at once, quietly, with status 0 (nothing is open yet).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
from functools import partial
from typing import NoReturn

NODES = ("camera_node", "instruction_node", "track_node", "policy_node", "arm_node", "libero_bridge_node",
         "recorder_node")


def run(node: str) -> NoReturn:
    """Import `tramoe_ros.nodes.<node>` with stop signals ending the process quietly, then run its main()."""
    if node not in NODES:
        sys.exit(f"unknown node {node!r}; one of {', '.join(NODES)}")

    def stop_while_importing(signum: int, frame: object) -> None:
        sys.stderr.write(f"[{node}] stopped while starting\n")
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGINT, stop_while_importing)
    signal.signal(signal.SIGTERM, stop_while_importing)
    importlib.import_module(f"tramoe_ros.nodes.{node}").main()


camera_node = partial(run, "camera_node")
instruction_node = partial(run, "instruction_node")
track_node = partial(run, "track_node")
policy_node = partial(run, "policy_node")
arm_node = partial(run, "arm_node")
libero_bridge_node = partial(run, "libero_bridge_node")
recorder_node = partial(run, "recorder_node")

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: python -m tramoe_ros.nodes.start <node> [--ros-args ...]; nodes: {', '.join(NODES)}")
    run(sys.argv[1])
