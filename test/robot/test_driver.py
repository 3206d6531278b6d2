"""The driver against emulated servos over a pty (the real dynamixel_sdk path): configuration at connection,
goal = present before torque, the safety bound on goals, retries, and each fault ending in a clear
DynamixelError: corrupt answers, timeouts, a servo that stops answering, a missing or unplugged port, and
recovery from a bus watchdog stop."""
import time

import numpy as np
import pytest

from robot_fixtures import JOINT_RANGE, LATENCY_TIMER_MS, ticks, write_calibration
from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import load_calibration
from tramoe_ros.robot.driver import DynamixelArm, DynamixelError, ServoBus, limit_goal
from tramoe_ros.robot.emulator import EmulatedBus, Emulator, koch_arm


@pytest.fixture
def follower(tmp_path):
    """(emulated bus, arm) of a Koch follower arm; servos start at the zero pose."""
    bus = EmulatedBus(koch_arm())
    with Emulator([bus]):
        calibration = load_calibration(write_calibration(tmp_path / "c.yaml"))
        arm = DynamixelArm("left", ServoBus(bus.port, latency_timer_ms=LATENCY_TIMER_MS), calibration,
                           bus_watchdog_s=0.1)
        yield bus, arm
        arm.close(torque_off=False)


def registers(bus, register):
    return [bus.register(i, register) for i in sorted(bus.servos)]


def test_connect_configures_the_servos_and_torque_holds_without_a_jump(follower):
    bus, arm = follower
    with bus.lock:  # left over from elsewhere: offsets, reversal, position mode, torque on, a stale goal
        for servo in bus.servos.values():
            servo.write(ct.HOMING_OFFSET.address, bytes(ct.HOMING_OFFSET.encode(300)))
            servo.write(ct.DRIVE_MODE.address, bytes([ct.DRIVE_MODE_REVERSE]))
        holding = bus.servos[3]  # left holding by an earlier run
        holding.write(ct.GOAL_POSITION.address, bytes(ct.GOAL_POSITION.encode(holding.present_position())))
        holding.write(ct.TORQUE_ENABLE.address, b"\x01")
        bus.servos[4].write(ct.GOAL_POSITION.address, bytes(ct.GOAL_POSITION.encode(1500)))
        bus.servos[4].shaft = ticks(0.4)  # moved by hand meanwhile, away from that goal
    arm.connect()
    assert registers(bus, ct.OPERATING_MODE) == [ct.MODE_EXTENDED_POSITION] * 5 + [ct.MODE_CURRENT_BASED_POSITION]
    assert registers(bus, ct.HOMING_OFFSET) == [0] * 6 and registers(bus, ct.DRIVE_MODE) == [0] * 6
    assert registers(bus, ct.GOAL_CURRENT)[5] == arm.gripper_current
    np.testing.assert_allclose(arm.read().positions, [0, 0, 0, 0.4, 0, 0.0], atol=2e-3)
    arm.enable_torque()
    assert registers(bus, ct.TORQUE_ENABLE) == [1] * 6 and registers(bus, ct.BUS_WATCHDOG) == [5] * 6
    time.sleep(0.2)
    np.testing.assert_allclose(arm.cycle(None).positions, [0, 0, 0, 0.4, 0, 0.0], atol=2e-3)  # no jump to 1500


def test_goals_move_the_arm_within_the_step_and_joint_limits(follower):
    bus, arm = follower
    arm.connect()
    arm.enable_torque()
    present = arm.read().positions
    target = np.array([3.0, -0.5, 0.2, 0.0, 0.0, 1.0])
    goal = limit_goal(target, present, 0.1, arm.calibration.lower, arm.calibration.upper)
    np.testing.assert_allclose(goal, [0.1, -0.1, 0.1, 0.0, 0.0, 0.1])
    for _ in range(100):  # 100 steps of <= 0.1 rad, re-based on the present position each time
        reading = arm.cycle(limit_goal(target, arm.last.positions, 0.1, arm.calibration.lower,
                                       arm.calibration.upper))
        time.sleep(0.01)
    np.testing.assert_allclose(reading.positions, [JOINT_RANGE, -0.5, 0.2, 0, 0, 1.0], atol=5e-3)
    # A joint outside its range (pushed there by hand) is brought back by steps, not in one jump.
    np.testing.assert_allclose(limit_goal(np.zeros(2), np.array([2.0, 0.0]), 0.1, -np.ones(2), np.ones(2)),
                               [1.9, 0.0])


def test_limit_goal_refuses_values_that_are_not_finite():
    """NaN passes np.clip unchanged; the driver's goal function refuses it, naming the joints."""
    with pytest.raises(ValueError, match=r"target of joint\(s\) \[1\] is not finite"):
        limit_goal(np.array([0.0, np.nan]), np.zeros(2), 0.1, -np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"present position of joint\(s\) \[0\]"):
        limit_goal(np.zeros(2), np.array([np.inf, 0.0]), 0.1, -np.ones(2), np.ones(2))


def test_retries_hide_single_corrupt_answers_and_report_persistent_ones(follower):
    bus, arm = follower
    arm.connect()
    bus.corrupt_replies(1)
    assert arm.bus.read(2, ct.OPERATING_MODE) == ct.MODE_EXTENDED_POSITION
    assert arm.bus.stats.retries == 1
    bus.corrupt_replies(3)
    with pytest.raises(DynamixelError, match=r"pts/\d+: read of operating_mode from servo 2 failed after 3 tries: "
                                             r"corrupt answer"):
        arm.bus.read(2, ct.OPERATING_MODE)
    bus.drop_replies(3 * 6)  # no answer from any of the six servos, three times over
    with pytest.raises(DynamixelError, match="failed after 3 tries: no answer"):
        arm.read()
    arm.read()  # the bus is usable again
    with pytest.raises(DynamixelError, match=r"servo 2 .* refused write of goal_position = 2000000: data limit"):
        arm.bus.write(2, ct.GOAL_POSITION, 2_000_000)


def test_a_servo_that_stops_answering_is_named(follower):
    bus, arm = follower
    arm.connect()
    bus.disconnect(3)
    with pytest.raises(DynamixelError, match=r"sync read of present_velocity..present_position from servos "
                                             r"\[1, 2, 3, 4, 5, 6\] failed .*; servo\(s\) \[3\] do not answer"):
        arm.read()
    bus.reconnect(3)
    arm.read()


def test_connection_errors_are_clear(follower, tmp_path):
    bus, arm = follower
    bus.disconnect(5)
    with pytest.raises(DynamixelError, match=r"arm 'left' .*: servo\(s\) \[5\] of \[1, 2, 3, 4, 5, 6\] do not answer"):
        arm.connect()
    bus.reconnect(5)
    leader_calibration = load_calibration(write_calibration(tmp_path / "l.yaml", models=["XL330-M077"] * 6))
    wrong = DynamixelArm("left", ServoBus(bus.port, latency_timer_ms=LATENCY_TIMER_MS), leader_calibration)
    with pytest.raises(DynamixelError, match="servo 1 is a XL430-W250, the calibration says XL330-M077"):
        wrong.connect()
    wrong.close(torque_off=False)
    absent = DynamixelArm("left", ServoBus("/dev/ttyUSB_absent", latency_timer_ms=LATENCY_TIMER_MS), arm.calibration)
    with pytest.raises(DynamixelError, match="serial port /dev/ttyUSB_absent does not exist: is the arm's USB "
                                             "adapter plugged in"):
        absent.connect()


def test_unplugged_adapter_is_a_clear_error(follower):
    bus, arm = follower
    arm.connect()
    bus.unplug()
    with pytest.raises(DynamixelError, match="was the USB adapter unplugged"):
        for _ in range(3):
            arm.read()


def test_recovers_when_its_own_silence_tripped_the_bus_watchdog(follower):
    bus, arm = follower
    arm.connect()
    arm.enable_torque()
    time.sleep(0.3)  # the process stalls: the servos' 100 ms watchdog stops them
    assert registers(bus, ct.BUS_WATCHDOG) == [-1] * 6
    goal = np.array([0.3, 0, 0, 0, 0, 0.5])
    arm.cycle(goal)
    assert arm.watchdog_recoveries == 1 and registers(bus, ct.BUS_WATCHDOG) == [5] * 6
    for _ in range(30):
        reading = arm.cycle(goal)
        time.sleep(0.01)
    np.testing.assert_allclose(reading.positions, goal, atol=5e-3)  # goals are accepted again


def test_a_joint_past_the_turn_boundary_reads_in_its_range(tmp_path):
    # Servo 1 counts from power-on within one turn: a joint at +1.2 rad whose zero pose is at 3900 ticks reads
    # 3900 + 782 - 4096 = 586 after a power cycle.
    calibration = write_calibration(tmp_path / "c.yaml")
    text = calibration.read_text().replace("{id: 1, model: XL430-W250, homing_offset: 0",
                                           "{id: 1, model: XL430-W250, homing_offset: -1852")
    calibration.write_text(text)
    bus = EmulatedBus(koch_arm(positions=[3900 + 782 - 4096, 2048, 2048, 2048, 2048, 2048]))
    with Emulator([bus]):
        arm = DynamixelArm("left", ServoBus(bus.port, latency_timer_ms=LATENCY_TIMER_MS), load_calibration(calibration))
        arm.connect()
        assert arm.read().positions[0] == pytest.approx(782 * ct.RAD_PER_TICK, abs=1e-9)
        arm.enable_torque()
        arm.write_goal(np.array([1.0, 0, 0, 0, 0, 0]))  # goal ticks go back into the servo's own turn
        time.sleep(0.3)
        assert arm.read().positions[0] == pytest.approx(1.0, abs=2e-3)
        assert registers(bus, ct.PRESENT_POSITION)[0] < ct.TICKS_PER_REV
        arm.close(torque_off=True)


OVERLOAD, OVERHEATING = 1 << 5, 1 << 2


def test_a_hardware_error_during_control_is_noticed_in_the_next_cycle(follower):
    """The servo turns its torque off and sets the alert bit of its status packets; sync reads used to drop that
    byte. The next cycle raises, naming the arm, the servo and the fault."""
    bus, arm = follower
    arm.connect()
    arm.enable_torque()
    arm.cycle(None)
    bus.hardware_fault(3, OVERLOAD | OVERHEATING)
    with pytest.raises(DynamixelError, match=r"arm 'left'.*servo 3: overheating, overload.*torque is off"):
        arm.cycle(None)
    assert bus.register(3, ct.TORQUE_ENABLE) == 0


def test_torque_that_a_servo_refuses_is_not_reported_on(follower):
    """A servo with a latched hardware error accepts Torque_Enable = 1 and keeps its torque off: the read-back
    catches it."""
    bus, arm = follower
    arm.connect()
    bus.hardware_fault(5, OVERLOAD)
    with pytest.raises(DynamixelError, match=r"servo 5: overload"):
        arm.enable_torque()
    assert not arm.torque_on



def test_late_replies_never_become_values(follower):
    """A slow servo answers after the driver's timeout, while the driver already waits for the answer to its next
    request: every value read is the true one, or the read fails with a DynamixelError; a late answer is never
    decoded as another register's value."""
    bus, arm = follower
    arm.connect()
    arm.bus.retries = 0  # each late answer then lands in the next request's wait
    timeout_s = (2 * LATENCY_TIMER_MS + 2) / 1e3
    truth = {r: bus.register(1, r) for r in (ct.OPERATING_MODE, ct.PRESENT_POSITION, ct.HOMING_OFFSET)}
    for _ in range(3):
        bus.late_replies(len(truth), delay_s=1.3 * timeout_s)
        for register, value in truth.items():
            try:
                assert arm.bus.read(1, register) == value, register.name
            except DynamixelError:
                pass
    arm.bus.retries = 2
    time.sleep(2 * timeout_s)  # the last late answer
    assert {r: arm.bus.read(1, r) for r in truth} == truth


def test_an_answer_later_than_the_settling_time_is_skipped_by_its_length(follower):
    """An answer to a 1-byte read that comes 2.5 timeouts late lands while the driver waits for the (also late)
    answer to a 4-byte read: it is skipped, and the 4-byte read fails instead of decoding it."""
    bus, arm = follower
    arm.connect()
    arm.bus.retries = 0
    timeout_s = (2 * LATENCY_TIMER_MS + 2) / 1e3
    position = bus.register(1, ct.PRESENT_POSITION)
    bus.late_replies(2, delay_s=2.5 * timeout_s)
    with pytest.raises(DynamixelError):
        arm.bus.read(1, ct.OPERATING_MODE)
    try:
        assert arm.bus.read(1, ct.PRESENT_POSITION) == position
    except DynamixelError:
        pass
    assert arm.bus._packets.stale_replies == 1


def test_a_retry_is_not_answered_by_the_late_answer_to_the_failed_attempt(follower):
    """With retries, the bus falls silent and is flushed before each retry: late answers are discarded and the
    reads succeed with their true values."""
    bus, arm = follower
    arm.connect()
    timeout_s = (2 * LATENCY_TIMER_MS + 2) / 1e3
    truth = {r: bus.register(1, r) for r in (ct.OPERATING_MODE, ct.PRESENT_POSITION, ct.HOMING_OFFSET)}
    for register, value in truth.items():
        bus.late_replies(1, delay_s=1.3 * timeout_s)
        assert arm.bus.read(1, register) == value, register.name
    assert arm.bus.stats.retries == len(truth)


def test_a_slow_servo_is_named(follower):
    """A servo whose turn in the sync read comes too late, though it answers a ping in time, is named as slow."""
    bus, arm = follower
    arm.connect()
    timeout_s = (2 * LATENCY_TIMER_MS + 2) / 1e3
    bus.slow(4, 1.5 * timeout_s)
    with pytest.raises(DynamixelError, match=r"servo 4 did not answer in time but answers a ping: slow"):
        arm.read()
    bus.slow(4, 0.0)
    time.sleep(2 * timeout_s)
    arm.read()  # on time again
