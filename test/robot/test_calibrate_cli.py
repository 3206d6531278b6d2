"""`tramoe-calibrate` against an emulated leader arm, with a scripted user who moves the arm at each prompt:
the written file reads the zero pose as 0 rad and the rotated pose as +pi/2 (an inverted servo detected), has
the swept ranges, and a botched step writes nothing."""
import math
import time

import numpy as np
import pytest

from robot_fixtures import LATENCY_TIMER_MS
from tramoe_ros.cli import calibrate
from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import load_calibration
from tramoe_ros.robot.emulator import KOCH_LEADER, EmulatedBus, Emulator, koch_arm

QUARTER = ct.TICKS_PER_REV / 4
ZERO = np.array([2100.0, 3000.0, 1000.0, 2048.0, 4000.0, 1800.0])
DIRECTION = np.array([1, -1, 1, -1, 1, 1])  # servos 2 and 4 are mounted the other way round
SWEEP_LOW = ZERO - DIRECTION * np.array([1000, 400, 1100, 1000, 1800, 50])
SWEEP_HIGH = ZERO + DIRECTION * np.array([1100, 1200, 1300, 1100, 1800, 900])


@pytest.fixture
def leader():
    bus = EmulatedBus(koch_arm(KOCH_LEADER))
    with Emulator([bus]):
        yield bus


def user(bus, rotation=QUARTER):
    """A person following the prompts: puts the arm in each pose, sweeps the joints, answers y to overwriting."""
    def place(shafts):
        with bus.lock:
            for servo_id, shaft in zip(sorted(bus.servos), shafts):
                bus.servos[servo_id].hand = lambda now, shaft=shaft: shaft

    def respond(message: str) -> str:
        if message.startswith("Step 1/3"):
            place(ZERO)
        elif message.startswith("Step 2/3"):
            gripper_open = np.array([0, 0, 0, 0, 0, 700])
            place(ZERO + DIRECTION * np.append(np.full(5, rotation), 0) + gripper_open)
        elif message.startswith("Step 3/3"):
            start = time.monotonic()
            with bus.lock:  # every joint at its low end for 0.1 s, then one slow sweep to its high end
                for servo_id, low, high in zip(sorted(bus.servos), SWEEP_LOW, SWEEP_HIGH):
                    bus.servos[servo_id].hand = lambda now, low=low, high=high: \
                        low + (high - low) * min(1.0, max(0.0, now - start - 0.1) / 0.4)
            time.sleep(0.7)
        time.sleep(0.05)  # the hand reaches the pose before the user presses Enter
        return "y"

    return respond


def test_calibration_from_scripted_steps(leader, tmp_path, capsys):
    out = tmp_path / "left_leader.yaml"
    assert calibrate.main(["--port", leader.port, "--arm", "left_leader", "--out", str(out), "--latency-timer-ms",
                           str(LATENCY_TIMER_MS)], prompt=user(leader)) == 0
    calibration = load_calibration(out)
    assert calibration.arm == "left_leader" and calibration.ids == [1, 2, 3, 4, 5, 6]
    assert [j.model for j in calibration.joints] == ["XL330-M077"] * 6
    assert [j.inverted for j in calibration.joints] == [False, True, False, True, False, False]
    assert [j.gripper for j in calibration.joints] == [False] * 5 + [True]
    np.testing.assert_allclose(calibration.to_joint(ZERO)[:5], 0, atol=1e-9)
    rotated = ZERO + DIRECTION * np.array([QUARTER] * 5 + [0])
    np.testing.assert_allclose(calibration.to_joint(rotated)[:5], math.pi / 2, atol=1e-9)
    # Ranges: the swept extremes, in each joint's own direction; the gripper's closed end is 0, its open end 1.
    low = np.array([-1000, -400, -1100, -1000, -1800]) * ct.RAD_PER_TICK
    high = np.array([1100, 1200, 1300, 1100, 1800]) * ct.RAD_PER_TICK
    np.testing.assert_allclose(calibration.lower[:5], low, atol=2e-3)
    np.testing.assert_allclose(calibration.upper[:5], high, atol=2e-3)
    gripper = calibration.joints[5]
    assert (gripper.lower, gripper.upper) == pytest.approx((-50 * ct.RAD_PER_TICK, 900 * ct.RAD_PER_TICK), abs=2e-3)
    with leader.lock:  # left for the user with torque off, counting raw ticks
        assert all(not s.torque and s.mode == ct.MODE_EXTENDED_POSITION for s in leader.servos.values())
    assert "wrote" in capsys.readouterr().out


def test_a_joint_left_unturned_writes_nothing(leader, tmp_path, capsys):
    out = tmp_path / "arm.yaml"
    status = calibrate.main(["--port", leader.port, "--arm", "a", "--out", str(out), "--latency-timer-ms",
                             str(LATENCY_TIMER_MS)], prompt=user(leader, rotation=40))
    assert status == 1 and not out.exists()
    assert "servo 1 moved 4 deg between the zero and the rotated pose; turn it about 90 deg" in capsys.readouterr().err


def test_missing_port_and_existing_file(tmp_path, capsys):
    assert calibrate.main(["--port", "/dev/ttyUSB_absent", "--arm", "a", "--out", str(tmp_path / "a.yaml")],
                          prompt=lambda message: "") == 1
    assert "serial port /dev/ttyUSB_absent does not exist" in capsys.readouterr().err
    existing = tmp_path / "b.yaml"
    existing.write_text("keep me")
    assert calibrate.main(["--port", "/dev/ttyUSB_absent", "--arm", "a", "--out", str(existing)],
                          prompt=lambda message: "n") == 1
    assert existing.read_text() == "keep me"
