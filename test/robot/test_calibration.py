"""Calibration: ticks <-> joint values (offset, direction, gripper 0..1, whole turns), action normalisation,
computing a calibration from recorded poses, and calibration files with their errors."""
import math

import numpy as np
import pytest

from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import (ArmCalibration, CalibrationError, JointCalibration, compute_calibration,
                                          load_calibration, save_calibration)

QUARTER = ct.TICKS_PER_REV // 4


def arm() -> ArmCalibration:
    return ArmCalibration("test", [
        JointCalibration(id=1, model="XL430-W250", homing_offset=100, inverted=False, lower=-1.0, upper=2.0),
        JointCalibration(id=2, model="XL330-M288", homing_offset=-300, inverted=True, lower=-1.5, upper=1.5),
        JointCalibration(id=3, model="XL330-M288", homing_offset=0, inverted=False, lower=0.2, upper=1.2,
                         gripper=True),
    ])


def test_ticks_to_joint_values_and_back():
    calibration = arm()
    # Zero pose: ticks + offset = 2048 on every joint -> 0 rad; a quarter turn up -> +-pi/2.
    zero = np.array([1948, 2348, 2048])
    np.testing.assert_allclose(calibration.to_joint(zero)[:2], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(calibration.to_joint(zero + QUARTER)[:2], [math.pi / 2, -math.pi / 2])
    # Gripper: 0 at its lower angle (0.2 rad), 1 at its upper (1.2 rad).
    gripper_ticks = 2048 + np.array([0.2, 1.2, 0.7]) / ct.RAD_PER_TICK
    values = [calibration.to_joint(np.array([1948, 2348, t]))[2] for t in gripper_ticks]
    np.testing.assert_allclose(values, [0.0, 1.0, 0.5], atol=2e-3)
    joint = np.array([0.5, -1.0, 0.25])
    np.testing.assert_allclose(calibration.to_joint(calibration.to_ticks(joint)), joint, atol=ct.RAD_PER_TICK)
    np.testing.assert_allclose(calibration.to_joint_velocity(np.array([10, 10, 10])),
                               [10 * ct.RAD_S_PER_VELOCITY_UNIT, -10 * ct.RAD_S_PER_VELOCITY_UNIT,
                                10 * ct.RAD_S_PER_VELOCITY_UNIT / 1.0])


def test_actions_normalise_over_the_calibrated_range():
    calibration = arm()
    np.testing.assert_allclose(calibration.normalize(calibration.lower), [-1, -1, -1])
    np.testing.assert_allclose(calibration.normalize(calibration.upper), [1, 1, 1])
    actions = np.array([[0.3, -0.7, 0.9]])
    np.testing.assert_allclose(calibration.normalize(calibration.denormalize(actions)), actions)
    np.testing.assert_allclose(calibration.denormalize(np.zeros(3)), [0.5, 0.0, 0.5])


def test_nearest_turns_put_a_joint_back_in_its_range():
    calibration = arm()
    inside = calibration.to_ticks(np.array([0.5, 0.3, 0.5]))
    np.testing.assert_array_equal(calibration.nearest_turns(inside), [0, 0, 0])
    # Joint 1 read one turn low (it crossed the turn boundary before power-on).
    shifted = inside - np.array([ct.TICKS_PER_REV, 0, 0])
    turns = calibration.nearest_turns(shifted)
    np.testing.assert_array_equal(turns, [1, 0, 0])
    np.testing.assert_allclose(calibration.to_joint(shifted + turns * ct.TICKS_PER_REV), [0.5, 0.3, 0.5],
                               atol=ct.RAD_PER_TICK)


def test_compute_calibration_from_poses():
    zero = np.array([2000, 3000, 1500])
    rotated = zero + np.array([QUARTER, -QUARTER, 700])  # joint 2 counts down: inverted
    swept_min = zero - np.array([800, 1000, 100])
    swept_max = zero + np.array([1100, 1200, 800])
    calibration = compute_calibration("a", [1, 2, 3], ["XL430-W250", "XL330-M288", "XL330-M288"], zero, rotated,
                                      swept_min, swept_max, gripper_id=3)
    assert [j.inverted for j in calibration.joints] == [False, True, False]
    assert [j.gripper for j in calibration.joints] == [False, False, True]
    np.testing.assert_allclose(calibration.to_joint(zero)[:2], [0, 0], atol=1e-12)
    np.testing.assert_allclose(calibration.to_joint(rotated)[:2], [math.pi / 2, math.pi / 2])
    # The gripper swept from 100 ticks below the zero pose to 800 above: the rotated pose is (100 + 700) / 900 open.
    np.testing.assert_allclose(calibration.to_joint(rotated)[2], 800 / 900, atol=1e-4)
    first, second = calibration.joints[0], calibration.joints[1]
    assert (first.lower, first.upper) == pytest.approx((-800 * ct.RAD_PER_TICK, 1100 * ct.RAD_PER_TICK), abs=1e-4)
    assert (second.lower, second.upper) == pytest.approx((-1200 * ct.RAD_PER_TICK, 1000 * ct.RAD_PER_TICK), abs=1e-4)


def test_compute_calibration_refuses_unmoved_joints():
    zero = np.array([2000, 2000])
    with pytest.raises(CalibrationError, match=r"servo 2 moved 9 deg between the zero and the rotated pose"):
        compute_calibration("a", [1, 2], ["XL330-M288"] * 2, zero, zero + np.array([QUARTER, 100]),
                            zero - 500, zero + 1500, gripper_id=None)
    with pytest.raises(CalibrationError, match=r"servo 1 swept only 4 deg"):
        compute_calibration("a", [1, 2], ["XL330-M288"] * 2, zero, zero + QUARTER,
                            np.array([2000, 1000]), np.array([2050, 3500]), gripper_id=None)


def test_calibration_files_round_trip_and_name_their_problems(tmp_path):
    path = save_calibration(arm(), tmp_path / "arm.yaml")
    loaded = load_calibration(path)
    assert loaded.joints == arm().joints and loaded.arm == "test"
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "absent.yaml")
    path.write_text(path.read_text().replace("inverted", "reversed", 1))
    with pytest.raises(CalibrationError, match=r"arm.yaml.*joints\[0\].*unknown key\(s\) \['reversed'\]"):
        load_calibration(path)
    path.write_text("arm: x\njoints:\n  - {id: 1, model: XL330-M288, homing_offset: 0, inverted: false, "
                    "lower: 1.0, upper: 0.5}\n")
    with pytest.raises(CalibrationError, match=r"servo 1: lower \(1.0\) must be below upper \(0.5\)"):
        load_calibration(path)
