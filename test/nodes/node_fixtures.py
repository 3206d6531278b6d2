"""Helpers for multi-process node tests: node subprocesses, a real rclpy node in the test process, tiny models.

Every subprocess inherits the test session's ROS environment: DDS on loopback / shared memory only, the session's
own ROS_DOMAIN_ID (test/conftest.py, test/nodes/conftest.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


VIDEO_FRAMES = 8


def write_video(path: Path, frames: int = VIDEO_FRAMES) -> None:
    """A 64x48 MJPG video whose frames are one flat colour each: red, green, blue, red, ..."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[..., 2 - i % 3] = 200
        writer.write(bgr)
    writer.release()


def ros_args(params: dict | None = None, remaps: dict[str, str] | None = None,
             params_file: Path | None = None) -> list[str]:
    """`--ros-args` for a node: a params file, `-p name:=value` (YAML values), `-r from:=to`."""
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    for name, value in (params or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple)):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        args += ["-p", f"{name}:={value}"]
    for source, target in (remaps or {}).items():
        args += ["-r", f"{source}:={target}"]
    return args


class NodeProcess:
    """A node (or tramoe-up) in its own Python process, output captured to a file.

    `env` adds to (or overrides) this process's environment, e.g. a ROS_DOMAIN_ID of its own.
    """

    def __init__(self, module: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self._log_file = open(log, "w")
        self.process = subprocess.Popen([PYTHON, "-m", module, *args], stdout=self._log_file,
                                        stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})})

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        """The exit status; a process still running after `timeout` is killed and the test fails."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.process.args} still running after {timeout} s:\n{self.output()}") from None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        """Send `sig`, wait for exit (kill after `timeout`), return the exit status."""
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode


def stop_all(processes) -> None:
    """Stop processes that are still running (a fixture whose setup failed), without checking their status."""
    for process in processes:
        process.stop()


class TestNode:
    """A real rclpy node in the test process, in its own context, spun on demand."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "test_driver"):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def spin_until(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
