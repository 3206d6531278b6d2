"""Running nodes: the body of every node's console script, and spinning until SIGINT or SIGTERM.

rclpy's own signal handlers are not used: they raise KeyboardInterrupt wherever the main thread happens to be,
which can be in the middle of writing a bag record. Here a signal only sets a flag; the spin loop sees it, and the
nodes are destroyed in order (each node's `destroy_node` closes its files, devices and simulator).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, NoReturn, Sequence

import rclpy
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from tramoe_ros.ros.errors import NodeStartupError


def keep_dds_local() -> int:
    """For programs that start a graph of their own (the demo, the benchmarks): DDS stays on this machine
    (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and on ROS_DOMAIN_ID when it is set, else on a domain of this
    process's own (100 + pid % 100), so that two of them, or one beside another ROS graph, do not mix their topics.
    Returns the domain (watch the graph with that ROS_DOMAIN_ID)."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return int(os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100)))


def install_stop_handlers() -> threading.Event:
    """An event set by SIGINT or SIGTERM (main thread only, as Python requires)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def spin_until(stop: threading.Event, nodes: Sequence[Node], executor: Executor) -> None:
    """Spin `nodes` until `stop` is set or the context shuts down, then destroy them (last created first)."""
    for node in nodes:
        executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok(context=executor.context):
            executor.spin_once(timeout_sec=0.1)
    finally:
        # Wait for callbacks still running on executor threads before nodes close their files and devices.
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()


def exit_now(status: int) -> NoReturn:
    """End the process once everything it owns is closed, without the interpreter's teardown: with the language
    model stack loaded that takes seconds, and `ros2 launch` escalates a Ctrl-C to SIGTERM after five."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run_node(node_factory: Callable[[], Node], name: str, args: list[str] | None = None) -> NoReturn:
    """Console-script body: start the node, spin until SIGINT/SIGTERM, destroy it, exit.

    A `NodeStartupError` (invalid parameters, missing or corrupt model, device that does not open) is printed
    as one clear line and the process exits with status 1. SIGINT/SIGTERM during start-up end the process
    quietly (status 0) once the node is made.
    """
    # Before the node is made: a Ctrl-C while models or a simulator load only sets the flag, and the node, once
    # made, is destroyed in order instead of a KeyboardInterrupt tearing through the loading code.
    stop = install_stop_handlers()
    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = node_factory()
    except NodeStartupError as e:
        rclpy.try_shutdown()
        print(f"[{name}] cannot start: {e}", file=sys.stderr)
        exit_now(1)
    if stop.is_set():
        print(f"[{name}] stopped while starting", file=sys.stderr)
    try:
        spin_until(stop, [node], SingleThreadedExecutor())
    finally:
        rclpy.try_shutdown()
    exit_now(0)
