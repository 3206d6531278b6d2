"""The servo emulator speaks Protocol 2.0 the way the servos do, checked through dynamixel_sdk itself over the
pty: ping, read/write and their error answers, sync read/write, motion toward the goal from wall time, torque,
operating modes, the bus watchdog, and the injected faults."""
import termios
import time

import pytest
import serial
from dynamixel_sdk import port_handler
from dynamixel_sdk import (COMM_RX_CORRUPT, COMM_RX_TIMEOUT, COMM_SUCCESS, GroupSyncRead, GroupSyncWrite,
                           PacketHandler, PortHandler)

from robot_fixtures import LATENCY_TIMER_MS
from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot import protocol as p
from tramoe_ros.robot.emulator import EmulatedBus, Emulator, ServoSpec


@pytest.fixture
def servos(monkeypatch):
    """Servo 1 an XL430-W250, servo 2 an XL330-M288, both at 2048; yields (bus, port handler, packet handler)."""
    monkeypatch.setattr(port_handler, "LATENCY_TIMER", LATENCY_TIMER_MS)  # patience on a loaded machine
    bus = EmulatedBus([ServoSpec(1, "XL430-W250"), ServoSpec(2, "XL330-M288")])
    with Emulator([bus]):
        port = PortHandler(bus.port)
        assert port.openPort()
        yield bus, port, PacketHandler(2.0)
        port.closePort()


def position(port, ph, servo_id):
    value, comm, error = ph.read4ByteTxRx(port, servo_id, ct.PRESENT_POSITION.address)
    assert (comm, error) == (COMM_SUCCESS, 0)
    return ct.PRESENT_POSITION.decode(value.to_bytes(4, "little"))


def test_ping_read_write_and_refusals(servos):
    bus, port, ph = servos
    assert ph.ping(port, 1)[:2] == (1060, COMM_SUCCESS)  # XL430-W250
    assert ph.ping(port, 2)[:2] == (1200, COMM_SUCCESS)  # XL330-M288
    assert ph.ping(port, 9)[1] == COMM_RX_TIMEOUT  # nobody there
    assert ph.write1ByteTxRx(port, 2, ct.OPERATING_MODE.address, ct.MODE_EXTENDED_POSITION) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, ct.OPERATING_MODE.address)[0] == ct.MODE_EXTENDED_POSITION
    # The XL430 has no current-based position mode; present values are read-only; EEPROM locks with torque on.
    assert ph.write1ByteTxRx(port, 1, ct.OPERATING_MODE.address, ct.MODE_CURRENT_BASED_POSITION)[1] == \
        p.ERROR_DATA_RANGE
    assert ph.write4ByteTxRx(port, 2, ct.PRESENT_POSITION.address, 5)[1] == p.ERROR_ACCESS
    assert ph.write1ByteTxRx(port, 2, ct.TORQUE_ENABLE.address, 1) == (COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 2, ct.OPERATING_MODE.address, ct.MODE_POSITION)[1] == p.ERROR_ACCESS
    # A goal beyond the position limits of position mode (servo 1 is still in it) is refused.
    assert ph.write4ByteTxRx(port, 1, ct.GOAL_POSITION.address, 5000)[1] == p.ERROR_DATA_LIMIT


def test_corrupt_instruction_is_answered_with_a_crc_error(servos):
    bus, port, _ = servos
    packet = bytearray(p.build_packet(2, p.READ, bytes([132, 0, 4, 0])))
    packet[-2] ^= 0xFF
    with serial.Serial(bus.port, timeout=0.5) as raw:
        raw.write(bytes(packet))
        [status] = p.PacketParser().feed(raw.read(11))
    assert (status.servo_id, status.instruction, status.params[0]) == (2, p.STATUS, p.ERROR_CRC)
    assert bus.crc_errors == 1


def test_drive_mode_and_homing_offset_shape_the_present_position(servos):
    _, port, ph = servos
    ph.write1ByteTxRx(port, 2, ct.OPERATING_MODE.address, ct.MODE_EXTENDED_POSITION)
    ph.write4ByteTxRx(port, 2, ct.HOMING_OFFSET.address, 100)
    assert position(port, ph, 2) == 2148
    ph.write1ByteTxRx(port, 2, ct.DRIVE_MODE.address, ct.DRIVE_MODE_REVERSE)
    assert position(port, ph, 2) == -2048 + 100


def test_sync_write_moves_toward_goals_over_time_and_sync_read_sees_it(servos):
    bus, port, ph = servos
    for servo_id in (1, 2):
        ph.write1ByteTxRx(port, servo_id, ct.OPERATING_MODE.address, ct.MODE_EXTENDED_POSITION)
        ph.write1ByteTxRx(port, servo_id, ct.TORQUE_ENABLE.address, 1)
    ph.write4ByteTxRx(port, 1, ct.PROFILE_VELOCITY.address, 20)  # 4.6 rpm: 313 ticks/s
    writer = GroupSyncWrite(port, ph, ct.GOAL_POSITION.address, 4)
    writer.addParam(1, ct.GOAL_POSITION.encode(4048))
    writer.addParam(2, ct.GOAL_POSITION.encode(1048))
    assert writer.txPacket() == COMM_SUCCESS
    reader = GroupSyncRead(port, ph, ct.PRESENT_VELOCITY.address, 8)
    reader.addParam(1)
    reader.addParam(2)
    time.sleep(0.3)
    assert reader.txRxPacket() == COMM_SUCCESS
    moving = ct.PRESENT_POSITION.decode(reader.getData(1, ct.PRESENT_POSITION.address, 4).to_bytes(4, "little"))
    velocity = ct.PRESENT_VELOCITY.decode(reader.getData(1, ct.PRESENT_VELOCITY.address, 4).to_bytes(4, "little"))
    assert 2048 < moving < 3500 and velocity == pytest.approx(20, abs=1)  # on its way at the profile velocity
    deadline = time.monotonic() + 2
    while position(port, ph, 2) != 1048:  # the XL330 at full speed: 1000 ticks in ~0.15 s
        assert time.monotonic() < deadline, "servo 2 never reached its goal"
        time.sleep(0.02)


def test_torque_off_does_not_move_and_torque_on_goes_to_the_goal_register(servos):
    bus, port, ph = servos
    ph.write1ByteTxRx(port, 2, ct.OPERATING_MODE.address, ct.MODE_EXTENDED_POSITION)
    assert ph.write4ByteTxRx(port, 2, ct.GOAL_POSITION.address, 2548) == (COMM_SUCCESS, 0)
    time.sleep(0.2)
    assert position(port, ph, 2) == 2048  # torque off: no motion
    ph.write1ByteTxRx(port, 2, ct.TORQUE_ENABLE.address, 1)
    time.sleep(0.3)
    assert position(port, ph, 2) == 2548  # torque on: off to the (stale) goal, as the real servo does


def test_bus_watchdog_stops_the_servo_holding_and_locks_goals_until_cleared(servos):
    bus, port, ph = servos
    ph.write1ByteTxRx(port, 1, ct.OPERATING_MODE.address, ct.MODE_EXTENDED_POSITION)
    ph.write4ByteTxRx(port, 1, ct.PROFILE_VELOCITY.address, 20)
    ph.write1ByteTxRx(port, 1, ct.TORQUE_ENABLE.address, 1)
    ph.write1ByteTxRx(port, 1, ct.BUS_WATCHDOG.address, 5)  # 100 ms
    ph.write4ByteTxRx(port, 1, ct.GOAL_POSITION.address, 6048)
    time.sleep(0.4)  # silence: the watchdog expires 100 ms in
    stopped = position(port, ph, 1)
    assert 2048 < stopped < 2048 + 313 * 0.25  # moved for ~0.1 s, then stopped
    time.sleep(0.2)
    assert position(port, ph, 1) == stopped  # holding there, torque still on
    assert ph.read1ByteTxRx(port, 1, ct.TORQUE_ENABLE.address)[0] == 1
    assert ph.read1ByteTxRx(port, 1, ct.BUS_WATCHDOG.address)[0] == 0xFF  # -1: watchdog error
    assert ph.write4ByteTxRx(port, 1, ct.GOAL_POSITION.address, 6048)[1] == p.ERROR_DATA_RANGE
    assert ph.write1ByteTxRx(port, 1, ct.BUS_WATCHDOG.address, 0) == (COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 1, ct.GOAL_POSITION.address, 6048) == (COMM_SUCCESS, 0)
    time.sleep(0.2)
    assert position(port, ph, 1) > stopped + 20  # moving again


def test_injected_faults(servos):
    bus, port, ph = servos
    bus.corrupt_replies(1)
    assert ph.ping(port, 1)[1] == COMM_RX_CORRUPT
    bus.drop_replies(1)
    assert ph.ping(port, 1)[1] == COMM_RX_TIMEOUT
    assert ph.ping(port, 1)[1] == COMM_SUCCESS
    bus.disconnect(2)
    assert ph.ping(port, 2)[1] == COMM_RX_TIMEOUT
    bus.reconnect(2)
    assert ph.ping(port, 2)[1] == COMM_SUCCESS
    bus.unplug()
    with pytest.raises((serial.SerialException, OSError, termios.error)):  # what pyserial meets on a vanished tty
        for _ in range(3):
            ph.ping(port, 1)
