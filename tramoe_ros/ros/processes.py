"""A graph's nodes each in its own process, as `ros2 launch` starts them, for programs that run a graph and watch
it from this process (the demo, the graph benchmark).

Why processes: nodes composed in one Python process share one interpreter lock. The simulator's step is mostly
Python (robosuite's controller), so every other node's Python work (message handling, the recorder's writes, torch's
op dispatch) delays it; measured on 2 cores with the shipped models: the real-time sim graph kept 15-16 simulation
steps per second with recording in one process, 20 in a process per node (docs/ros-graph.md).

Each node runs `python -m tramoe_ros.nodes.start <node>` (as its console script does) with the graph's parameters
file, its launch-argument overrides (a parameters file of their own, so every value keeps its type) and remappings;
its output goes to `<log_dir>/<node>.log`. Leaving the block sends SIGINT to every node (bags close, simulators are
released) and waits for them.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from tramoe_ros.ros.compose import BackgroundGraph
from tramoe_ros.ros.graph import ResolvedNode

STOP_TIMEOUT_S = 30.0


class NodeExited(RuntimeError):
    """A node's process ended while the graph was running (e.g. it could not start)."""


class ProcessGraph:
    """Usage:
        with ProcessGraph(resolve("sim", {...}), extra_nodes=lambda ctx: [Probe(context=ctx)], log_dir=out) as g:
            probe = g.node("graph_probe")   # extra nodes live in this process
            g.check()                        # raises NodeExited naming a node that ended
    """

    def __init__(self, resolved: list[ResolvedNode], extra_nodes=None, log_dir: str | Path | None = None):
        self._resolved = [spec for spec in resolved if spec.node_class is not None]
        self._local = BackgroundGraph([], extra_nodes=extra_nodes)
        self._scratch = tempfile.TemporaryDirectory(prefix="tramoe_graph_")
        self.log_dir = Path(log_dir) if log_dir is not None else Path(self._scratch.name)
        self.processes: dict[str, subprocess.Popen] = {}

    def command(self, spec: ResolvedNode) -> list[str]:
        """The command line that starts `spec` alone."""
        # As the node's console script starts it (tramoe_ros.nodes.start: quiet if stopped while importing).
        command = [sys.executable, "-m", "tramoe_ros.nodes.start", spec.executable, "--ros-args", "-r",
                   f"__node:={spec.name}"]
        if spec.params_file:
            command += ["--params-file", spec.params_file]
        if spec.overrides:
            overrides = Path(self._scratch.name) / f"{spec.name}_overrides.yaml"
            overrides.write_text(yaml.safe_dump({spec.name: {"ros__parameters": dict(spec.overrides)}}))
            command += ["--params-file", str(overrides)]
        for source, target in spec.remappings:
            command += ["-r", f"{source}:={target}"]
        return command

    def __enter__(self) -> "ProcessGraph":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self._resolved:
                with open(self.log_dir / f"{spec.name}.log", "wb") as log:
                    self.processes[spec.name] = subprocess.Popen(self.command(spec), stdout=log,
                                                                 stderr=subprocess.STDOUT)
            self._local.__enter__()
        except BaseException:
            self._stop_processes()
            raise
        return self

    def node(self, name: str):
        """An extra node living in this process."""
        return self._local.node(name)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def check(self) -> None:
        """Raise NodeExited when a node's process has ended, with the end of its output."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = "\n".join(self.log(name).strip().splitlines()[-5:])
                raise NodeExited(f"{name} exited with status {process.returncode}:\n{tail}")

    def wait_for(self, waiter: Callable[[float], bool], timeout_s: float, what: str) -> None:
        """Wait until `waiter(seconds)` (a wait of at most that long that returns whether it ended) is true,
        checking every second that each node still runs.

        Raises:
            NodeExited: a node ended meanwhile
            TimeoutError: `what` did not happen within `timeout_s`
        """
        waited = 0.0
        while not waiter(1.0):
            self.check()
            waited += 1.0
            if waited > timeout_s:
                raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")

    def _stop_processes(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __exit__(self, *exc: object) -> None:
        try:
            self._local.__exit__(*exc)
        finally:
            self._stop_processes()
            self._scratch.cleanup()
