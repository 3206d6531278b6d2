"""Per-arm calibration: servo ticks <-> joint values, and computing a calibration from recorded poses.

Joint values are radians, except the gripper's, which is normalised: 0 fully closed, 1 fully open. For servo j
with homing offset h and direction s (-1 when `inverted`):

    angle = s * (ticks + h - 2048) * 2 pi / 4096          (radians)
    gripper = (angle - lower) / (upper - lower)           (0..1 over the recorded range)

so the calibration's zero pose reads 0 rad on every joint. The homing offset and direction live in the file, not
in the servos (their Homing Offset and Drive Mode registers are kept at 0 by the driver), so one servo swapped
for another needs a new calibration file, not a reflash.

Policy actions are joint values normalised to the calibrated range, [-1, 1] (`normalize` / `denormalize`): the
trained policy's output range, and what `tramoe-teleop` records as actions.

The calibration file (YAML, written by `tramoe-calibrate`) is an `ArmCalibration`:

    arm: left_follower
    joints:
      - {id: 1, model: XL430-W250, homing_offset: -17, inverted: false, lower: -1.62, upper: 1.58, gripper: false}
      ...
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from tramoe_ros.config import ConfigError, config_to_dict, load_config
from tramoe_ros.robot import control_table as ct

# A pose-to-pose move smaller than this is not a deliberate quarter turn (calibration step 2).
MIN_ROTATION_TICKS = ct.TICKS_PER_REV // 8
# A joint range smaller than this was not swept (calibration step 3).
MIN_RANGE_RAD = math.radians(10)


class CalibrationError(ValueError):
    """A calibration cannot be computed, or a calibration file does not fit the arm; the message says why."""


@dataclass
class JointCalibration:
    id: int  # servo ID on the arm's bus
    model: str  # servo model, as the servo reports it (checked at connection)
    homing_offset: int  # ticks added to the present position so that the zero pose reads 2048
    inverted: bool  # the joint angle grows as the ticks fall
    lower: float  # joint range, radians (the gripper's: the closed end)
    upper: float  # radians (the gripper's: the open end)
    gripper: bool = False  # reported and commanded as 0 (closed) .. 1 (open)

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ConfigError(f"servo {self.id}: lower ({self.lower}) must be below upper ({self.upper})")
        if self.model not in ct.MODELS_BY_NAME:
            raise ConfigError(f"servo {self.id}: unknown model {self.model!r}; known: "
                              f"{', '.join(ct.MODELS_BY_NAME)}")


@dataclass
class ArmCalibration:
    arm: str
    joints: list[JointCalibration] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [j.id for j in self.joints]
        if not ids:
            raise ConfigError(f"arm {self.arm!r}: no joints")
        if len(set(ids)) != len(ids):
            raise ConfigError(f"arm {self.arm!r}: servo IDs repeat: {ids}")
        self.ids = ids
        self._sign = np.array([-1.0 if j.inverted else 1.0 for j in self.joints])
        self._offset = np.array([j.homing_offset for j in self.joints], np.float64)
        self._angle_lower = np.array([j.lower for j in self.joints])
        self._angle_upper = np.array([j.upper for j in self.joints])
        self.is_gripper = np.array([j.gripper for j in self.joints])
        # Joint-value limits: the angle range, and 0..1 for the gripper.
        self.lower = np.where(self.is_gripper, 0.0, self._angle_lower)
        self.upper = np.where(self.is_gripper, 1.0, self._angle_upper)

    def _angle_to_value(self, angle: np.ndarray) -> np.ndarray:
        gripper = (angle - self._angle_lower) / (self._angle_upper - self._angle_lower)
        return np.where(self.is_gripper, gripper, angle)

    def to_joint(self, ticks: np.ndarray) -> np.ndarray:
        """Present positions (J,) ticks -> joint values (J,) float64 (rad; gripper 0..1, may stray a little)."""
        angle = self._sign * (np.asarray(ticks, np.float64) + self._offset - ct.CENTER_TICKS) * ct.RAD_PER_TICK
        return self._angle_to_value(angle)

    def to_ticks(self, values: np.ndarray) -> np.ndarray:
        """Joint values (J,) -> goal positions (J,) int64 ticks."""
        values = np.asarray(values, np.float64)
        angle = np.where(self.is_gripper, self._angle_lower + values * (self._angle_upper - self._angle_lower),
                         values)
        return np.round(self._sign * angle / ct.RAD_PER_TICK - self._offset + ct.CENTER_TICKS).astype(np.int64)

    def to_joint_velocity(self, units: np.ndarray) -> np.ndarray:
        """Present velocities (J,) in 0.229 rpm units -> joint velocities (J,) (rad/s; gripper range/s)."""
        rad_s = self._sign * np.asarray(units, np.float64) * ct.RAD_S_PER_VELOCITY_UNIT
        return np.where(self.is_gripper, rad_s / (self._angle_upper - self._angle_lower), rad_s)

    def nearest_turns(self, ticks: np.ndarray) -> np.ndarray:
        """Whole turns (J,) int64 to add to `ticks` (x 4096) so each joint lies nearest the middle of its range.

        A servo starts counting within one turn at power-on; a joint whose range crosses that turn's boundary
        would otherwise read a full turn off.
        """
        middle = self.to_ticks((self.lower + self.upper) / 2)
        return np.round((middle - np.asarray(ticks, np.float64)) / ct.TICKS_PER_REV).astype(np.int64)

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Joint values (..., J) -> actions (..., J) in [-1, 1] over the calibrated range (not clipped)."""
        return 2.0 * (np.asarray(values, np.float64) - self.lower) / (self.upper - self.lower) - 1.0

    def denormalize(self, actions: np.ndarray) -> np.ndarray:
        """Actions (..., J) in [-1, 1] -> joint values (..., J)."""
        return self.lower + (np.asarray(actions, np.float64) + 1.0) / 2.0 * (self.upper - self.lower)


def load_calibration(path: str | Path) -> ArmCalibration:
    """Read a calibration file. Raises CalibrationError naming the file and the problem."""
    try:
        return load_config(ArmCalibration, path)
    except ConfigError as e:
        raise CalibrationError(f"calibration file {path}: {e}") from None


def save_calibration(calibration: ArmCalibration, path: str | Path) -> Path:
    """Write `calibration` as YAML, atomically (a temporary file renamed over `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config_to_dict(calibration)
    text = (f"# Calibration of arm {calibration.arm!r}, written by tramoe-calibrate (tramoe_ros/robot/calibration.py "
            f"documents the fields).\n" + yaml.safe_dump({"arm": calibration.arm}) + "joints:\n")
    for joint in data["joints"]:
        text += "  - " + yaml.safe_dump(joint, default_flow_style=True, sort_keys=False, width=200)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def compute_calibration(arm: str, ids: list[int], models: list[str], zero: np.ndarray, rotated: np.ndarray,
                        swept_min: np.ndarray, swept_max: np.ndarray, gripper_id: int | None) -> ArmCalibration:
    """A calibration from the three recorded steps (all (J,) present positions in ticks, servo order `ids`).

    Args:
        zero: the zero pose (every joint at 0 rad, gripper closed)
        rotated: every joint turned a quarter turn in its positive direction, gripper open
        swept_min, swept_max: the extremes reached while every joint was moved through its whole range
        gripper_id: the servo that drives the gripper (None: no gripper)
    Raises:
        CalibrationError: a joint that barely moved between the poses, or whose range was not swept
    """
    zero, rotated = np.asarray(zero, np.int64), np.asarray(rotated, np.int64)
    problems = []
    joints = []
    for j, servo_id in enumerate(ids):
        moved = int(rotated[j] - zero[j])
        if abs(moved) < MIN_ROTATION_TICKS:
            problems.append(f"servo {servo_id} moved {math.degrees(abs(moved) * ct.RAD_PER_TICK):.0f} deg between "
                            f"the zero and the rotated pose; turn it about 90 deg")
            continue
        sign = 1 if moved > 0 else -1
        offset = ct.CENTER_TICKS - int(zero[j])
        ends = sorted(sign * (float(t) + offset - ct.CENTER_TICKS) * ct.RAD_PER_TICK
                      for t in (swept_min[j], swept_max[j]))
        if ends[1] - ends[0] < MIN_RANGE_RAD:
            problems.append(f"servo {servo_id} swept only {math.degrees(ends[1] - ends[0]):.0f} deg; move it "
                            f"through its whole range")
            continue
        joints.append(JointCalibration(id=servo_id, model=models[j], homing_offset=offset, inverted=sign < 0,
                                       lower=round(ends[0], 4), upper=round(ends[1], 4),
                                       gripper=servo_id == gripper_id))
    if problems:
        raise CalibrationError("; ".join(problems))
    return ArmCalibration(arm=arm, joints=joints)
