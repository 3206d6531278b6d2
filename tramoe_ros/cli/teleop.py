"""`tramoe-teleop`: drive the follower arms with the leader arms and record demonstrations.

    tramoe-teleop --out data/real/fold_towel --instruction "fold the towel"
    tramoe-teleop --config my_teleop.yaml --out data/real/pour --instruction "pour water" rate_hz=60

Keys (in the terminal): r start an episode, s stop and save it, d discard it, q quit (saving an episode in
progress). Episodes go to <out>/episode_<n>.hdf5 with both cameras, the followers' joint states and the followers'
goals as actions, and no point tracks yet: `tramoe-label-tracks` adds them.
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import tty
from dataclasses import replace
from pathlib import Path

from tramoe_ros.config import ConfigError, load_config
from tramoe_ros.paths import config_path
from tramoe_ros.robot.calibration import CalibrationError
from tramoe_ros.robot.camera import CameraError
from tramoe_ros.robot.driver import DynamixelError
from tramoe_ros.robot.teleop import KeySource, TeleopConfig, run_teleop
from tramoe_ros.ros.params import resolve_path


class TerminalKeys:
    """Single key presses from the terminal: cbreak mode (no Enter needed, Ctrl-C still works) until closed."""

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)

    def poll(self) -> str | None:
        if select.select([self._fd], [], [], 0)[0]:
            return os.read(self._fd, 1).decode(errors="replace").lower()
        return None

    def close(self) -> None:
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


def _resolved(config: TeleopConfig) -> TeleopConfig:
    """Calibration paths as `resolve_path` finds them (working directory, then the package's share folder)."""
    arms = [replace(pair, leader=replace(pair.leader, calibration=str(resolve_path(pair.leader.calibration))),
                    follower=replace(pair.follower, calibration=str(resolve_path(pair.follower.calibration))))
            for pair in config.arms]
    return replace(config, arms=arms)


def main(argv: list[str] | None = None, keys: KeySource | None = None) -> int:
    """`keys`: where key presses come from (default: the terminal)."""
    parser = argparse.ArgumentParser(prog="tramoe-teleop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="teleop config (default: config/robot/teleop.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the recorded episodes")
    parser.add_argument("--instruction", required=True, help="the task instruction stored with every episode")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rate_hz=60")
    args = parser.parse_args(argv)
    try:
        config = _resolved(load_config(TeleopConfig, args.config or config_path("robot/teleop.yaml"),
                                       args.overrides))
    except ConfigError as e:
        print(f"tramoe-teleop: {e}", file=sys.stderr)
        return 2
    if not args.instruction.strip():
        print("tramoe-teleop: --instruction must not be empty", file=sys.stderr)
        return 2
    terminal = None
    if keys is None:
        if not sys.stdin.isatty():
            print("tramoe-teleop: the keys come from the terminal; run it in an interactive terminal",
                  file=sys.stderr)
            return 2
        keys = terminal = TerminalKeys()
    try:
        summary = run_teleop(config, args.out, args.instruction, keys)
    except (DynamixelError, CalibrationError, CameraError) as e:
        print(f"tramoe-teleop: {e}", file=sys.stderr)
        return 1
    finally:
        if terminal is not None:
            terminal.close()
    print(f"tramoe-teleop: {len(summary.episodes)} episode(s) in {args.out}")
    return 0
