"""The Dynamixel driver (Protocol 2.0 over dynamixel_sdk): one serial bus (`ServoBus`), and one arm on it in joint
space (`DynamixelArm`: radians, gripper 0..1, through its calibration).

Every transaction is retried `retries` times on a timeout or corrupt answer; a servo that answers with an error
(access, range, ...) is not retried. What still fails raises `DynamixelError`, whose message names the port, the
servo and what was asked. Serial I/O errors (the adapter was unplugged) are `DynamixelError`s as well, never a
pyserial traceback.

Follower arms run their joints in extended position mode and the gripper in current-based position mode (it
squeezes with a bounded current instead of stalling at full torque on an object); leader arms are read with
torque off. Torque is only ever enabled after the goal is set to the present position, so an arm never jumps to a
stale goal. The servos' bus watchdog stops a follower where it is when the host goes silent (a crashed or hung
process, a pulled cable); `DynamixelArm.cycle` finds servos it stopped and, once they answer, recovers them.
"""
from __future__ import annotations

import termios
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dynamixel_sdk import (COMM_NOT_AVAILABLE, COMM_PORT_BUSY, COMM_RX_CORRUPT, COMM_RX_FAIL, COMM_RX_TIMEOUT,
                           COMM_SUCCESS, COMM_TX_ERROR, COMM_TX_FAIL, GroupSyncRead, GroupSyncWrite, PortHandler)
from dynamixel_sdk.protocol2_packet_handler import (PKT_ERROR, PKT_ID, PKT_INSTRUCTION, PKT_LENGTH_H, PKT_LENGTH_L,
                                                    PKT_PARAMETER0, Protocol2PacketHandler)
from dynamixel_sdk.robotis_def import BROADCAST_ID, INST_READ, INST_WRITE
from serial import SerialException

from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import ArmCalibration
from tramoe_ros.robot.protocol import ERROR_ALERT

_COMM_RESULTS = {
    COMM_RX_TIMEOUT: "no answer (timeout)",
    COMM_RX_CORRUPT: "corrupt answer (bad CRC or framing)",
    COMM_RX_FAIL: "no answer",
    COMM_TX_FAIL: "the instruction could not be sent",
    COMM_TX_ERROR: "malformed instruction",
    COMM_PORT_BUSY: "port busy",
    COMM_NOT_AVAILABLE: "not available",
}
_STATUS_ERRORS = {1: "result fail", 2: "instruction error", 3: "CRC error", 4: "data range error",
                  5: "data length error", 6: "data limit error", 7: "access error"}


REBOOT_TIME_S = 2.0  # a rebooted servo answers again within this
WATCHDOG_CHECK_CYCLES = 10  # control cycles between reads of the followers' bus watchdog state
# What a vanished serial device raises through pyserial.
_SERIAL_ERRORS = (SerialException, OSError, termios.error)


class DynamixelError(RuntimeError):
    """A servo or port that does not do what was asked; the message names the port, the servo and the request."""


@dataclass
class BusStats:
    retries: int = 0  # repeated after a timeout or corrupt answer
    failures: int = 0  # still failing after every retry


class _Port(PortHandler):
    """dynamixel_sdk's port with the USB adapter's latency timer as a setting instead of its fixed 16 ms."""

    def __init__(self, port_name: str, latency_timer_ms: float):
        super().__init__(port_name)
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length: int) -> None:
        # The SDK's formula: transfer time, plus the adapter's latency both ways, plus 2 ms.
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + self.latency_timer_ms * 2.0 + 2.0


def _reply_length(packet) -> int:
    """The LENGTH field of a Protocol 2.0 packet: instruction/error byte + parameters + CRC."""
    return packet[PKT_LENGTH_L] | packet[PKT_LENGTH_H] << 8


class _MatchedReplies(Protocol2PacketHandler):
    """dynamixel_sdk's Protocol 2.0 handler takes the first status packet of the right servo as the answer. A late
    answer to an earlier request (a slow servo, after the driver's timeout) would then become the value of this one,
    decoded with this request's length: observed, Present_Position -3060988 for 2935. Here an answer must also have
    the length this request's answer has (a READ: its data length; a WRITE: none); other packets are skipped, and
    the request times out and is retried if its answer does not come."""

    def __init__(self):
        super().__init__()
        self.stale_replies = 0

    def _answers(self, packet, servo_id: int, data_length: int) -> bool:
        if packet[PKT_ID] != servo_id:
            return False
        if _reply_length(packet) == data_length + 4:
            return True
        self.stale_replies += 1
        return False

    def txRxPacket(self, port, txpacket):
        instruction = txpacket[PKT_INSTRUCTION]
        if instruction not in (INST_READ, INST_WRITE) or txpacket[PKT_ID] == BROADCAST_ID:
            return super().txRxPacket(port, txpacket)
        data_length = (txpacket[PKT_PARAMETER0 + 2] | txpacket[PKT_PARAMETER0 + 3] << 8
                       if instruction == INST_READ else 0)
        rxpacket, result, error = super().txRxPacket(port, txpacket)
        while result == COMM_SUCCESS and not self._answers(rxpacket, txpacket[PKT_ID], data_length):
            port.is_using = True  # the SDK's receive step releases the port after each packet
            rxpacket, result = self.rxPacket(port, False)
        return rxpacket, result, rxpacket[PKT_ERROR] if result == COMM_SUCCESS else error

    def readRx(self, port, dxl_id, length):
        """One servo's part of a SYNC READ, checked as txRxPacket checks a READ's answer."""
        while True:
            rxpacket, result = self.rxPacket(port, False)
            if result != COMM_SUCCESS or self._answers(rxpacket, dxl_id, length):
                break
            port.is_using = True
        if result != COMM_SUCCESS:
            return [], result, 0
        return list(rxpacket[PKT_PARAMETER0 + 1:PKT_PARAMETER0 + 1 + length]), result, rxpacket[PKT_ERROR]


class _StatusKeepingSyncRead(GroupSyncRead):
    """dynamixel_sdk's GroupSyncRead keeps each servo's data but drops its status packet's error byte, where a
    servo sets the alert bit once a hardware error (overload, overheating, ...) has turned its torque off: a limp
    joint would go unnoticed. This one keeps them: `errors`, servo ID -> the error byte of its last status."""

    def __init__(self, port, packets, start_address: int, data_length: int):
        super().__init__(port, packets, start_address, data_length)
        self.errors: dict[int, int] = {}
        self.unanswered: int | None = None  # the servo whose answer did not come (in time) in the last read

    def rxPacket(self):
        self.last_result = False
        self.unanswered = None
        if not self.data_dict:
            return COMM_NOT_AVAILABLE
        result = COMM_RX_FAIL
        for servo_id in self.data_dict:
            self.data_dict[servo_id], result, self.errors[servo_id] = self.ph.readRx(self.port, servo_id,
                                                                                  self.data_length)
            if result != COMM_SUCCESS:
                self.unanswered = servo_id
                return result
        self.last_result = True
        return result


class ServoBus:
    """One serial port with Protocol 2.0 servos, through dynamixel_sdk.

    latency_timer_ms: the USB adapter's latency timer; an answer is awaited for twice this plus 2 ms (and the
        transfer time). 16 ms is the FTDI default; with the adapter set to 1 ms, a silent servo is noticed sooner.
    Not thread-safe: one thread uses a bus at a time.
    """

    def __init__(self, port: str, baudrate: int = 1_000_000, retries: int = 2, latency_timer_ms: float = 16.0):
        self.port = port
        self.baudrate = baudrate
        self.retries = retries
        self.stats = BusStats()
        self.alerts: set[int] = set()  # servos whose status packets carry the hardware-error alert bit
        self._unsettled = False  # an answer may still be on its way: settle before the next request
        self._port = _Port(port, latency_timer_ms)
        self._packets = _MatchedReplies()
        self.last_instruction_time = 0.0  # time.monotonic() of the last instruction sent
        self._sync_readers: dict[tuple, GroupSyncRead] = {}

    # -- port ------------------------------------------------------------------------------------------------

    def open(self) -> None:
        if not Path(self.port).exists():
            raise DynamixelError(f"serial port {self.port} does not exist: is the arm's USB adapter plugged in? "
                                 f"(ls /dev/serial/by-id/ lists the adapters)")
        try:
            opened = self._port.openPort() and self._port.setBaudRate(self.baudrate)
        except (SerialException, OSError) as e:
            raise DynamixelError(f"cannot open serial port {self.port}: {e}") from None
        if not opened:
            raise DynamixelError(f"cannot open serial port {self.port} at {self.baudrate} baud")

    def close(self) -> None:
        if self._port.is_open:
            try:
                self._port.closePort()
            except _SERIAL_ERRORS:
                pass  # already gone (unplugged)

    @property
    def is_open(self) -> bool:
        return bool(self._port.is_open)

    def _io(self, call, *args):
        """Run one dynamixel_sdk call, turning serial I/O errors into DynamixelError."""
        if not self._port.is_open:
            raise DynamixelError(f"serial port {self.port} is not open")
        try:
            self._settle()
            self.last_instruction_time = time.monotonic()
            return call(*args)
        except _SERIAL_ERRORS as e:
            self._port.is_using = False  # the SDK leaves its busy flag set when a call raises
            raise DynamixelError(f"serial I/O on {self.port} failed ({e}): was the USB adapter unplugged?") from None

    def _settle(self) -> None:
        """After a request whose answer did not come (or came corrupt), give the bus one answer's timeout to fall
        silent and flush it before the next request: the late answer is discarded instead of being taken for the
        next request's, which Protocol 2.0 cannot tell apart when it comes from the same servo with the same
        length (`_MatchedReplies` skips the others, however late)."""
        if self._unsettled:
            self._unsettled = False
            time.sleep((self._port.latency_timer_ms * 2.0 + 2.0) / 1e3)
            self._port.clearPort()

    def _retrying(self, what: str, call, *args):
        """Call until it communicates (COMM_SUCCESS), at most 1 + retries times; returns the call's result."""
        for attempt in range(self.retries + 1):
            result = self._io(call, *args)
            comm = result[-2] if isinstance(result, tuple) else result
            if comm == COMM_SUCCESS:
                return result
            self._unsettled = True
            if attempt < self.retries:
                self.stats.retries += 1
        self.stats.failures += 1
        raise DynamixelError(f"{self.port}: {what} failed after {self.retries + 1} tries: "
                             f"{_COMM_RESULTS.get(comm, f'result {comm}')}")

    def _check_status(self, servo_id: int, error: int, what: str) -> None:
        if error & ERROR_ALERT:
            self.alerts.add(servo_id)
        else:
            self.alerts.discard(servo_id)  # rebooted since
        code = error & ~ERROR_ALERT
        if code:
            raise DynamixelError(f"servo {servo_id} on {self.port} refused {what}: "
                                 f"{_STATUS_ERRORS.get(code, f'error {code}')}")

    # -- single servo ----------------------------------------------------------------------------------------

    def ping(self, servo_id: int) -> int:
        """The servo's model number. Raises DynamixelError when it does not answer."""
        model, _, error = self._retrying(f"ping of servo {servo_id}", self._packets.ping, self._port, servo_id)
        self._check_status(servo_id, error, "ping")
        return model

    def reboot(self, servo_id: int) -> None:
        """Protocol 2.0 REBOOT: the servo restarts (RAM to power-on values: torque off, a latched hardware error
        cleared); returns once it answers a ping again. Raises DynamixelError when it does not."""
        self._retrying(f"reboot of servo {servo_id}", self._packets.reboot, self._port, servo_id)
        deadline = time.monotonic() + REBOOT_TIME_S
        while True:
            time.sleep(0.05)
            try:
                self.ping(servo_id)
                return
            except DynamixelError:
                if time.monotonic() > deadline:
                    raise DynamixelError(f"servo {servo_id} on {self.port} did not answer within "
                                         f"{REBOOT_TIME_S} s of its reboot") from None

    def missing(self, ids: list[int]) -> list[int]:
        """The servos of `ids` that do not answer a ping."""
        absent = []
        for servo_id in ids:
            try:
                self.ping(servo_id)
            except DynamixelError:
                absent.append(servo_id)
        return absent

    def read(self, servo_id: int, register: ct.Register) -> int:
        what = f"read of {register.name} from servo {servo_id}"
        data, _, error = self._retrying(what, self._packets.readTxRx, self._port, servo_id, register.address,
                                        register.size)
        self._check_status(servo_id, error, f"read of {register.name}")
        return register.decode(data)

    def write(self, servo_id: int, register: ct.Register, value: int) -> None:
        what = f"write of {register.name} = {value} to servo {servo_id}"
        _, error = self._retrying(what, self._packets.writeTxRx, self._port, servo_id, register.address,
                                  register.size, register.encode(value))
        self._check_status(servo_id, error, f"write of {register.name} = {value}")

    # -- all servos at once ----------------------------------------------------------------------------------

    def sync_read(self, ids: list[int], first: ct.Register, last: ct.Register) -> dict[int, bytes]:
        """One SYNC READ of the registers from `first` through `last` (contiguous) from every servo of `ids`.

        Returns:
            servo ID -> the bytes from first.address to the end of `last`
        Raises:
            DynamixelError naming the servos that do not answer when it fails after the retries
        """
        length = last.address + last.size - first.address
        key = (tuple(ids), first.address, length)
        group = self._sync_readers.get(key)
        if group is None:
            group = self._sync_readers[key] = _StatusKeepingSyncRead(self._port, self._packets, first.address,
                                                                     length)
            for servo_id in ids:
                group.addParam(servo_id)
        try:
            self._retrying(f"sync read of {first.name}..{last.name} from servos {ids}", group.txRxPacket)
        except DynamixelError as e:
            late, absent = group.unanswered, self.missing(ids)
            if late is not None and late not in absent:
                # It answers a ping: slow (or its answers come garbled), not gone.
                raise DynamixelError(f"{e}; servo {late} did not answer in time but answers a ping: slow, "
                                     f"overloaded or a noisy line") from None
            raise DynamixelError(f"{e}" + (f"; servo(s) {absent} do not answer (not even a ping)" if absent
                                           else "")) from None
        for servo_id in ids:
            self._check_status(servo_id, group.errors.get(servo_id, 0), f"sync read of {first.name}..{last.name}")
        return {servo_id: bytes(group.getData(servo_id, first.address + k, 1) for k in range(length))
                for servo_id in ids}

    def sync_write(self, ids: list[int], register: ct.Register, values: list[int]) -> None:
        """One SYNC WRITE of `register` (no answer comes back; only sending can fail)."""
        group = GroupSyncWrite(self._port, self._packets, register.address, register.size)
        for servo_id, value in zip(ids, values):
            group.addParam(servo_id, register.encode(value))
        result = self._io(group.txPacket)
        if result != COMM_SUCCESS:
            self.stats.failures += 1
            raise DynamixelError(f"{self.port}: sync write of {register.name} failed: "
                                 f"{_COMM_RESULTS.get(result, f'result {result}')}")


def limit_goal(target: np.ndarray, present: np.ndarray, max_step: float, lower: np.ndarray,
               upper: np.ndarray) -> np.ndarray:
    """The goal to send for `target`: `target` clamped to [lower, upper], then moved at most `max_step` from
    `present` (0: unlimited). All (J,) joint values. A joint outside its range (moved there by hand) is brought
    back step by step rather than in one jump.

    Raises:
        ValueError: a target or present value is not finite (NaN passes every clamp), naming the joints
    """
    for name, values in (("target", target), ("present position", present)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{name} of joint(s) {bad.tolist()} is not finite: {np.asarray(values)[bad].tolist()}")
    goal = np.clip(target, lower, upper)
    if max_step > 0:
        goal = present + np.clip(goal - present, -max_step, max_step)
    return goal


def configure_servos(bus: ServoBus, settings: dict[int, dict[ct.Register, int]]) -> None:
    """Give each servo (ID -> {EEPROM register: value}) the values it does not have yet; a servo with torque on
    has it turned off first, as the EEPROM only changes with torque off. Unchanged servos are left alone (the
    EEPROM wears with writes, and a holding arm keeps holding)."""
    for servo_id, wanted in settings.items():
        changes = {r: v for r, v in wanted.items() if bus.read(servo_id, r) != v}
        if changes and bus.read(servo_id, ct.TORQUE_ENABLE):
            bus.write(servo_id, ct.TORQUE_ENABLE, 0)
        for register, value in changes.items():
            bus.write(servo_id, register, value)


@dataclass
class JointReading:
    """One read of an arm: positions (J,) and velocities (J,) in joint units, at `time` (time.monotonic())."""

    positions: np.ndarray
    velocities: np.ndarray
    time: float


class DynamixelArm:
    """One arm on its own serial port, in joint space through its calibration.

    Args:
        name: for messages ("left", "right_leader")
        bus: the arm's bus (opened by `connect`)
        calibration: the arm's calibration; its servo IDs are the arm's, in joint order
        follower: True: position-controlled (gripper in current-based position mode, torque enabled by
            `enable_torque`); False: a leader arm, only read, torque off
        gripper_current: the follower gripper's Goal Current (mA): how hard it squeezes
        bus_watchdog_s: the followers' bus watchdog (0: off); rounded up to 20 ms steps
    """

    def __init__(self, name: str, bus: ServoBus, calibration: ArmCalibration, follower: bool = True,
                 gripper_current: int = 300, bus_watchdog_s: float = 0.1):
        self.name = name
        self.bus = bus
        self.calibration = calibration
        self.ids = list(calibration.ids)
        self.follower = follower
        self.gripper_current = gripper_current
        self.watchdog_units = int(np.ceil(bus_watchdog_s / ct.BUS_WATCHDOG_UNIT_S - 1e-9)) if follower else 0
        if not 0 <= bus_watchdog_s <= ct.MAX_BUS_WATCHDOG_S:
            raise ValueError(f"bus watchdog {bus_watchdog_s} s is outside 0..{ct.MAX_BUS_WATCHDOG_S:.2f} s")
        self.watchdog_recoveries = 0
        self._cycles = 0
        self.torque_on = False
        self._turns = np.zeros(len(self.ids), np.int64)  # whole turns added to the servos' ticks
        self._present_ticks: np.ndarray | None = None  # raw present positions of the last read
        self.last: JointReading | None = None

    def _describe(self) -> str:
        return f"arm {self.name!r} ({self.bus.port})"

    # -- setup -----------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the port, check that every calibrated servo answers with the calibrated model, configure the
        servos (modes, homing offset and drive mode at 0), and read the present position."""
        self.bus.open()
        models, absent = {}, []
        for servo_id in self.ids:
            try:
                models[servo_id] = ct.model_name(self.bus.ping(servo_id))
            except DynamixelError:
                absent.append(servo_id)
        if absent:
            raise DynamixelError(f"{self._describe()}: servo(s) {absent} of {self.ids} do not answer a ping at "
                                 f"{self.bus.baudrate} baud: check the power supply, the cables and the IDs")
        for joint in self.calibration.joints:
            if models[joint.id] != joint.model:
                raise DynamixelError(f"{self._describe()}: servo {joint.id} is a {models[joint.id]}, the calibration "
                                     f"says {joint.model}: wrong port or calibration file?")
        self._configure()
        self.read()
        self._turns = self.calibration.nearest_turns(self._present_ticks)
        self.read()

    def _configure(self) -> None:
        grippers = {j.id for j in self.calibration.joints if j.gripper}
        wanted = {}
        for joint in self.calibration.joints:
            mode = ct.MODE_EXTENDED_POSITION
            if self.follower and joint.id in grippers:
                if not ct.MODELS_BY_NAME[joint.model].current_control:
                    raise DynamixelError(f"{self._describe()}: gripper servo {joint.id} ({joint.model}) has no "
                                         f"current-based position mode")
                mode = ct.MODE_CURRENT_BASED_POSITION
            wanted[joint.id] = {ct.OPERATING_MODE: mode, ct.DRIVE_MODE: 0, ct.HOMING_OFFSET: 0}
        for servo_id in self.ids:
            self.bus.write(servo_id, ct.BUS_WATCHDOG, 0)  # clears a watchdog error left by an earlier run
        configure_servos(self.bus, wanted)
        for servo_id in self.ids:
            if not self.follower:
                self.bus.write(servo_id, ct.TORQUE_ENABLE, 0)
            elif servo_id in grippers:
                self.bus.write(servo_id, ct.GOAL_CURRENT, self.gripper_current)
        self.torque_on = self.follower and all(self.bus.read(i, ct.TORQUE_ENABLE) for i in self.ids)

    # -- cycle -----------------------------------------------------------------------------------------------

    def _hardware_fault(self, servo_ids: list[int], what: str) -> DynamixelError:
        """The error for servos that report a hardware error (their alert bit, or torque that did not come on):
        which servo, which fault, what to do."""
        faults = []
        for servo_id in servo_ids:
            try:
                status = self.bus.read(servo_id, ct.HARDWARE_ERROR_STATUS)
                faults.append(f"servo {servo_id}: {ct.describe_hardware_error(status)}")
            except DynamixelError as e:
                faults.append(f"servo {servo_id}: hardware error status unreadable ({e})")
        return DynamixelError(f"{self._describe()}: {what}: {'; '.join(faults)}. The servo's torque is off (the "
                              f"joint is limp). Remove the cause (load, heat, supply voltage), then reboot the servo "
                              f"(the arm node's ~/reboot_servos service, or a power cycle) and enable the arm again")

    def read(self) -> JointReading:
        """Sync-read present velocity and position of every servo.

        Raises:
            DynamixelError: the bus failed, or a servo reports a hardware error (its torque is off), naming it
        """
        now = time.monotonic()
        data = self.bus.sync_read(self.ids, ct.PRESENT_VELOCITY, ct.PRESENT_POSITION)
        alerted = [i for i in self.ids if i in self.bus.alerts]
        if alerted:
            self.torque_on = False  # not on every servo any more: enable_torque turns it on again
            raise self._hardware_fault(alerted, "hardware error")
        offset = ct.PRESENT_POSITION.address - ct.PRESENT_VELOCITY.address
        ticks = np.array([ct.PRESENT_POSITION.decode(data[i][offset:]) for i in self.ids], np.int64)
        units = np.array([ct.PRESENT_VELOCITY.decode(data[i]) for i in self.ids], np.int64)
        self._present_ticks = ticks
        self.last = JointReading(self.calibration.to_joint(ticks + self._turns * ct.TICKS_PER_REV),
                                 self.calibration.to_joint_velocity(units), now)
        return self.last

    def write_goal(self, values: np.ndarray) -> None:
        """Sync-write goal positions for joint values (J,), as given: callers bound them (`limit_goal`)."""
        ticks = self.calibration.to_ticks(values) - self._turns * ct.TICKS_PER_REV
        self.bus.sync_write(self.ids, ct.GOAL_POSITION, ticks.tolist())

    def hold(self) -> JointReading:
        """Read the present position and make it the goal: the arm stops where it is."""
        reading = self.read()
        self.bus.sync_write(self.ids, ct.GOAL_POSITION, self._present_ticks.tolist())
        return reading

    def cycle(self, goal: np.ndarray | None) -> JointReading:
        """One control cycle: recover servos stopped by their bus watchdog (checked right away when this process
        was silent long enough to trip it, and every WATCHDOG_CHECK_CYCLES cycles for trips it could not see: a
        stalled adapter, a servo cut off for a while), send `goal` (joint values (J,); None: leave the goals),
        read the present state."""
        self._cycles += 1
        silent = time.monotonic() - self.bus.last_instruction_time
        if self.torque_on and self.watchdog_units and (
                silent > 0.8 * self.watchdog_units * ct.BUS_WATCHDOG_UNIT_S
                or self._cycles % WATCHDOG_CHECK_CYCLES == 0):
            self.recover_watchdog()
        if goal is not None:
            self.write_goal(goal)
        return self.read()

    # -- torque and watchdog ---------------------------------------------------------------------------------

    def enable_torque(self) -> None:
        """Goal = present position, then torque on, then the bus watchdog (followers only)."""
        if not self.follower:
            raise DynamixelError(f"{self._describe()}: a leader arm is not torque-controlled")
        self.hold()
        for servo_id in self.ids:
            self.bus.write(servo_id, ct.TORQUE_ENABLE, 1)
        # Read back: a servo with a latched hardware error accepts the write and keeps its torque off.
        refused = [i for i in self.ids if not self.bus.read(i, ct.TORQUE_ENABLE)]
        if refused:
            raise self._hardware_fault(refused, "torque did not come on")
        self.torque_on = True
        self._set_watchdog(self.watchdog_units)

    def disable_torque(self) -> None:
        self._set_watchdog(0)
        for servo_id in self.ids:
            self.bus.write(servo_id, ct.TORQUE_ENABLE, 0)
        self.torque_on = False

    def _set_watchdog(self, units: int) -> None:
        if self.follower:
            for servo_id in self.ids:
                self.bus.write(servo_id, ct.BUS_WATCHDOG, units)

    def recover_watchdog(self) -> list[int]:
        """Servos stopped by their bus watchdog (it reads -1) get the error cleared, goal = present position and
        the watchdog re-armed. Returns their IDs."""
        values = self.bus.sync_read(self.ids, ct.BUS_WATCHDOG, ct.BUS_WATCHDOG)
        tripped = [i for i in self.ids if ct.BUS_WATCHDOG.decode(values[i]) < 0]
        if tripped:
            for servo_id in tripped:
                self.bus.write(servo_id, ct.BUS_WATCHDOG, 0)
            self.hold()
            for servo_id in tripped:
                self.bus.write(servo_id, ct.BUS_WATCHDOG, self.watchdog_units)
            self.watchdog_recoveries += 1
        return tripped

    def reboot_faulted(self) -> list[int]:
        """Reboot the servos that report a hardware error (their cause removed), then configure them again (a
        reboot resets their RAM: goal current, bus watchdog); torque stays off until `enable_torque`. Returns
        their IDs."""
        faulted = [i for i in self.ids if i in self.bus.alerts]
        for servo_id in faulted:
            self.bus.reboot(servo_id)
        if faulted:
            self._configure()
            self.torque_on = False
            self.read()
        return faulted

    def close(self, torque_off: bool) -> None:
        """Leave the arm: holding where it is with torque on (the watchdog disarmed, so it keeps holding), or
        with torque off (a follower arm then drops under gravity). Closes the port; errors are ignored, as the
        arm may be gone already."""
        try:
            if self.follower and self.bus.is_open:
                if torque_off:
                    self.disable_torque()
                else:
                    self.hold()
                    self._set_watchdog(0)
        except DynamixelError:
            pass
        finally:
            self.bus.close()
