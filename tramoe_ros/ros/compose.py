"""A graph's nodes composed in one process: created from the graph description, each spun by its own
SingleThreadedExecutor on its own thread (a node's callbacks stay serialised, different nodes run in parallel).
Used by `tramoe-up`, the sim demo and the graph benchmark.

Why not one MultiThreadedExecutor: while a node's callback runs on a worker thread, rclpy's MultiThreadedExecutor
keeps finding that node's next message "ready but not executable" and re-polls without waiting; measured with
py-spy, its loop took ~96% of a core and the GIL, and the whole graph stalled for 1-3 s at a time on this 2-core
machine even with tiny models. A thread per node waits in rcl instead and leaves the GIL to the work.
"""
from __future__ import annotations

import importlib
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.utilities import get_default_context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.graph import ResolvedNode
from tramoe_ros.ros.runtime import spin_until


def node_type(node_class: str) -> type[Node]:
    """The class named by "module:Class"."""
    module, name = node_class.split(":")
    return getattr(importlib.import_module(module), name)


def create_nodes(resolved: list[ResolvedNode], context: Context | None = None) -> list[Node]:
    """Instantiate every node that has a class (outside programs such as rviz2 are skipped), each with its
    parameters file, launch-argument overrides and remappings, as `ros2 launch` would start it.

    Raises:
        NodeStartupError: naming the node that failed; nodes created before it are destroyed
    """
    nodes: list[Node] = []
    for spec in resolved:
        if spec.node_class is None:
            continue
        cli_args = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", spec.params_file]
        for source, target in spec.remappings:
            cli_args += ["-r", f"{source}:={target}"]
        try:
            nodes.append(node_type(spec.node_class)(
                cli_args=cli_args, use_global_arguments=False, context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in spec.overrides.items()]))
        except BaseException as e:
            for node in reversed(nodes):
                node.destroy_node()
            if isinstance(e, NodeStartupError):
                raise NodeStartupError(f"{spec.name}: {e}") from None
            raise
    return nodes


class ThreadPerNodeExecutor:
    """Spins every added node with its own SingleThreadedExecutor on its own thread.

    Offers what `spin_until` uses of an rclpy executor: `context`, `add_node`, `spin_once` (here: wait, the
    node threads do the work) and `shutdown` (stop and join the threads; running callbacks finish first).
    """

    def __init__(self, context: Context | None = None):
        self.context = context if context is not None else get_default_context()
        self._running = threading.Event()
        self._running.set()
        self._spinners: list[tuple[SingleThreadedExecutor, threading.Thread]] = []

    def add_node(self, node: Node) -> None:
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,), name=f"spin-{node.get_name()}", daemon=True)
        self._spinners.append((executor, thread))
        thread.start()

    def _spin(self, executor: SingleThreadedExecutor) -> None:
        while self._running.is_set() and self.context.ok():
            executor.spin_once(timeout_sec=0.1)

    def spin_once(self, timeout_sec: float | None = None) -> None:
        time.sleep(0.1 if timeout_sec is None else timeout_sec)

    def shutdown(self) -> None:
        self._running.clear()
        for executor, thread in self._spinners:
            thread.join()
            executor.shutdown()


def executor_for(context: Context | None = None) -> ThreadPerNodeExecutor:
    return ThreadPerNodeExecutor(context=context)


class BackgroundGraph:
    """Nodes spinning on a background thread in their own rclpy context, for programs that run a graph and
    watch it (the demo, the benchmark, tests).

    Usage:
        with BackgroundGraph(resolve("sim", {...}), extra_nodes=lambda ctx: [Probe(context=ctx)]) as graph:
            ...
    Leaving the block stops spinning and destroys the nodes (closing bags and simulators).
    """

    def __init__(self, resolved: list[ResolvedNode], extra_nodes=None):
        self._resolved = resolved
        self._extra_nodes = extra_nodes
        self.context = Context()
        self.nodes: list[Node] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "BackgroundGraph":
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.nodes = create_nodes(self._resolved, self.context)
            if self._extra_nodes is not None:
                self.nodes += self._extra_nodes(self.context)
        except BaseException:
            for node in reversed(self.nodes):
                node.destroy_node()
            rclpy.try_shutdown(context=self.context)
            raise
        executor = executor_for(self.context)
        self._thread = threading.Thread(target=spin_until, args=(self._stop, self.nodes, executor),
                                        name="graph-executor", daemon=True)
        self._thread.start()
        return self

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.get_name() == name)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rclpy.try_shutdown(context=self.context)
