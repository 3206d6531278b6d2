"""Helpers for the robot tests: calibration files that match emulated arms, and scripted key presses."""
from __future__ import annotations

import time
from pathlib import Path

from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import save_calibration
from tramoe_ros.robot.emulator import KOCH_FOLLOWER, zero_pose_calibration

JOINT_RANGE = 1.5  # rad either side of the zero pose (shaft at 2048)
GRIPPER_RANGE = (0.0, 1.2)  # rad: closed .. open
# The emulator answers within a millisecond, but on a loaded test machine its thread can wait tens of
# milliseconds for a CPU; the driver then waits longer for answers than a real bus needs.
LATENCY_TIMER_MS = 100.0


def write_calibration(path: Path, arm: str = "left_follower", models=KOCH_FOLLOWER) -> Path:
    """The emulator's zero-pose calibration (every shaft at 2048 reads 0 rad): joints +-JOINT_RANGE rad, the last
    servo a gripper over GRIPPER_RANGE rad."""
    return save_calibration(zero_pose_calibration(arm, models, JOINT_RANGE, GRIPPER_RANGE), path)


def ticks(radians: float) -> float:
    """Shaft ticks of a joint angle under `write_calibration`'s calibration."""
    return ct.CENTER_TICKS + radians / ct.RAD_PER_TICK


class ScriptedKeys:
    """Key presses at set times (seconds after the first poll), as a terminal user would type them."""

    def __init__(self, script: list[tuple[float, str]]):
        self._script = sorted(script)
        self._start: float | None = None

    def poll(self) -> str | None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        if self._script and now - self._start >= self._script[0][0]:
            return self._script.pop(0)[1]
        return None
