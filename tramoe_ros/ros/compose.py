"""A graph's nodes composed in one process: created from the graph description, spun by one
MultiThreadedExecutor (each node's callbacks stay serialised in its own default callback group, different nodes
run in parallel). Used by `tramoe-up`, the sim demo and the graph benchmark.
"""
from __future__ import annotations

import importlib
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
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


class DrainingExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose shutdown lets running callbacks finish first.

    rclpy's shutdown destroys the executor's guard condition before joining its worker threads; a callback that
    ends after that fails to trigger it and leaves "exception never retrieved" on stderr.
    """

    def shutdown(self, timeout_sec: float | None = None, *, wait_for_threads: bool = True) -> bool:
        self._executor.shutdown(wait=True)  # the worker thread pool
        return super().shutdown(timeout_sec, wait_for_threads=wait_for_threads)


def executor_for(nodes: list[Node], context: Context | None = None) -> MultiThreadedExecutor:
    # One thread per node (and one spare) so a long callback (a model, a simulator step) never starves another
    # node; the heavy work releases the GIL.
    return DrainingExecutor(num_threads=len(nodes) + 1, context=context)


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
        executor = executor_for(self.nodes, self.context)
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
