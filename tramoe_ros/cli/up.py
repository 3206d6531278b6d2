"""`tramoe-up sim|real [name:=value ...]`: start a tramoe graph in one process, each node spun on its own
thread (tramoe_ros.ros.compose), from the same graph description and parameters files as the launch files.

    tramoe-up sim task:=libero_goal/3 record:=true
    tramoe-up real arm_backend:=ros2_control instruction:="put the red block in the box"
    tramoe-up sim --show-args

Ctrl-C (or SIGTERM) stops the graph cleanly: bags are closed, the simulator and devices released.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import rclpy
from rclpy.signals import SignalHandlerOptions

from tramoe_ros.ros.compose import create_nodes, executor_for
from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.graph import GRAPHS, GraphError, ResolvedNode, resolve
from tramoe_ros.ros.runtime import install_stop_handlers, spin_until


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """["name:=value", ...] -> {name: value}, as `ros2 launch` takes them."""
    values = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise GraphError(f"launch arguments are name:=value, got {item!r}")
        values[name] = value
    return values


def _start_outside_programs(resolved: list[ResolvedNode]) -> list[subprocess.Popen]:
    """Programs without a node class (rviz2) run as child processes when installed."""
    processes = []
    for spec in resolved:
        if spec.node_class is not None:
            continue
        if shutil.which(spec.executable) is None:
            print(f"[tramoe-up] {spec.executable} is not installed; skipped (the track overlays are on "
                  f"/tracks/<view>/overlay)", file=sys.stderr)
            continue
        processes.append(subprocess.Popen([spec.executable, *spec.arguments]))
    return processes


def _show_arguments(graph: str) -> str:
    return "\n".join(f"  {a.name}:={a.default!r}\n      {a.description}" for a in GRAPHS[graph].arguments)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("graph", choices=sorted(GRAPHS), help="which graph: LIBERO simulation or the real robot")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments (see --show-args)")
    parser.add_argument("--show-args", action="store_true", help="list the graph's launch arguments and exit")
    args = parser.parse_args(argv)
    if args.show_args:
        print(f"Arguments of graph {args.graph} (name:=default):\n{_show_arguments(args.graph)}")
        return 0
    try:
        resolved = resolve(args.graph, parse_launch_arguments(args.arguments))
    except GraphError as e:
        parser.error(str(e))

    stop = install_stop_handlers()  # before the nodes load their models: Ctrl-C then ends start-up quietly
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            nodes = create_nodes(resolved)
        except NodeStartupError as e:
            print(f"[tramoe-up] cannot start: {e}", file=sys.stderr)
            return 1
        programs = _start_outside_programs(resolved)
        print(f"[tramoe-up] {args.graph} graph running: {', '.join(n.get_name() for n in nodes)} (Ctrl-C stops)",
              file=sys.stderr)
        try:
            spin_until(stop, nodes, executor_for())
        finally:
            for program in programs:
                program.terminate()
                program.wait()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
