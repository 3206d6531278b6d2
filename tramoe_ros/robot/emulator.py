"""A Dynamixel Protocol 2.0 servo bus emulator on a pseudo-terminal, so the real driver (dynamixel_sdk over
pyserial) runs unchanged against emulated XL330 / XL430 servos: tests, benchmarks and trying the robot graph
without hardware.

Each `EmulatedBus` is one pty (one arm's serial port, `bus.port` is the path to open) with servos on it; an
`Emulator` serves any number of buses from one thread. What the servos do, as the real ones:

- instructions PING, READ, WRITE, SYNC READ, SYNC WRITE; status packets with the error field (CRC error for a
  corrupt instruction, access error for read-only or torque-locked EEPROM items, data range / limit errors);
- the control table of `control_table`: torque enable, operating mode (position, extended position, current-based
  position; the XL430 has no current modes), drive mode (reverse), homing offset
  (present = ±shaft + offset), position limits in position mode;
- motion from wall time (worked out exactly whenever the bus is addressed, or `advance`d by an observer): with
  torque on the shaft moves toward the goal at the model's no-load speed (or the profile velocity); torque off:
  no motion, except that a person may move it (`hand`); enabling torque moves to whatever the goal register holds;
- the bus watchdog: with torque on and Bus Watchdog (98) = n > 0, no instruction packet for n x 20 ms stops the
  servo where it is (torque stays on), 98 reads -1 and goal writes answer a data range error until 0 is written.

Fault injection: `corrupt_replies(n)` (bad CRC on the next n status packets), `drop_replies(n)` (no answer to the
next n), `disconnect(id)` (a servo that stops answering), `unplug()` (the port disappears).

Run stand-alone (`python -m tramoe_ros.robot.emulator [--calibration-dir DIR]`) it emulates the two Koch follower
arms and prints their port paths as JSON (and writes matching calibration files), for `tramoe-up real`,
`tramoe-calibrate` or a benchmark without a robot.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot import protocol as p
from tramoe_ros.robot.calibration import ArmCalibration, JointCalibration, save_calibration

_LOOP_TIMEOUT_S = 0.05  # the serving thread's select timeout, for noticing `stop`


@dataclass(frozen=True)
class ServoSpec:
    """One servo to emulate: its ID, model name (control_table.MODELS_BY_NAME) and initial shaft position."""

    servo_id: int
    model: str = "XL330-M288"
    position: float = ct.CENTER_TICKS  # shaft position in ticks


class EmulatedServo:
    """One servo's control table and shaft. Not thread-safe on its own: its bus's lock guards it.

    `hand`: while torque is off, a person moving the arm: time (the emulator clock, time.monotonic) -> shaft ticks.
    """

    def __init__(self, spec: ServoSpec, clock: Callable[[], float]):
        if spec.model not in ct.MODELS_BY_NAME:
            raise ValueError(f"unknown servo model {spec.model!r}; known: {', '.join(ct.MODELS_BY_NAME)}")
        self.servo_id = spec.servo_id
        self.model = ct.MODELS_BY_NAME[spec.model]
        self.connected = True
        self.hand: Callable[[float], float] | None = None
        self._clock = clock
        self.table = bytearray(ct.CONTROL_TABLE_SIZE)
        for register, value in ((ct.MODEL_NUMBER, self.model.number), (ct.FIRMWARE_VERSION, 52),
                                (ct.ID, spec.servo_id), (ct.BAUD_RATE, 3), (ct.RETURN_DELAY_TIME, 250),
                                (ct.OPERATING_MODE, ct.MODE_POSITION), (ct.MAX_POSITION_LIMIT, ct.TICKS_PER_REV - 1),
                                (ct.STATUS_RETURN_LEVEL, 2), (ct.POSITION_P_GAIN, 800),
                                (ct.PRESENT_INPUT_VOLTAGE, 50), (ct.PRESENT_TEMPERATURE, 30)):
            self._set(register, value)
        self.shaft = float(spec.position)
        self._target = self.shaft  # shaft ticks the servo moves toward while torque is on
        self._velocity = 0.0  # shaft ticks/s over the last motion step
        self.watchdog_error = False
        self._last_instruction = clock()
        self._last_step = clock()
        self._set(ct.GOAL_POSITION, self.present_position())  # at power-on the goal is where the shaft is

    # -- registers -------------------------------------------------------------------------------------------

    def _get(self, register: ct.Register) -> int:
        return register.decode(self.table[register.address:register.address + register.size])

    def _set(self, register: ct.Register, value: int) -> None:
        self.table[register.address:register.address + register.size] = bytes(register.encode(value))

    @property
    def hardware_error(self) -> int:
        return self.table[ct.HARDWARE_ERROR_STATUS.address]

    def fail(self, hardware_error: int) -> None:
        """A hardware error (Hardware_Error_Status bits): the torque goes off and stays off, and every status
        packet carries the alert bit, until the servo is rebooted."""
        self.table[ct.HARDWARE_ERROR_STATUS.address] |= hardware_error
        self.table[ct.TORQUE_ENABLE.address] = 0

    def restart(self) -> None:
        """Power cycle (or Protocol 2.0 reboot): RAM back to its power-on values: no hardware error, torque off,
        bus watchdog off, goal = present position."""
        for register in (ct.HARDWARE_ERROR_STATUS, ct.TORQUE_ENABLE, ct.BUS_WATCHDOG):
            self._set(register, 0)
        self.watchdog_error = False
        self._target = self.shaft
        self._set(ct.GOAL_POSITION, self.present_position())

    @property
    def torque(self) -> bool:
        return bool(self.table[ct.TORQUE_ENABLE.address])

    @property
    def mode(self) -> int:
        return self.table[ct.OPERATING_MODE.address]

    def _sign(self) -> int:
        return -1 if self.table[ct.DRIVE_MODE.address] & ct.DRIVE_MODE_REVERSE else 1

    def present_position(self) -> int:
        """Present Position: ±shaft (drive mode) + homing offset; within one turn in position mode."""
        position = self._sign() * round(self.shaft) + self._get(ct.HOMING_OFFSET)
        return position % ct.TICKS_PER_REV if self.mode == ct.MODE_POSITION else position

    def _shaft_target(self, goal: int) -> float:
        if self.mode == ct.MODE_POSITION:  # a goal within the turn the shaft is on
            return self.shaft + self._sign() * (goal - self.present_position())
        return float(self._sign() * (goal - self._get(ct.HOMING_OFFSET)))

    def _refresh(self) -> None:
        """Write the live values (position, velocity, moving, watchdog) into the table before a read."""
        self._set(ct.PRESENT_POSITION, self.present_position())
        rpm = self._sign() * self._velocity * 60 / ct.TICKS_PER_REV
        self._set(ct.PRESENT_VELOCITY, round(rpm / ct.VELOCITY_UNIT_RPM))
        self._set(ct.MOVING, int(abs(self._velocity) > 0))
        if self.watchdog_error:
            self._set(ct.BUS_WATCHDOG, -1)

    def value(self, register: ct.Register) -> int:
        """A register's value as a READ would return it now."""
        self._refresh()
        return self._get(register)

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """(error, data) of a READ of `length` bytes at `address`."""
        if address + length > ct.CONTROL_TABLE_SIZE or length == 0:
            return p.ERROR_DATA_LENGTH, b""
        self._refresh()
        return 0, bytes(self.table[address:address + length])

    def write(self, address: int, data: bytes) -> int:
        """Apply a WRITE; the status error (0: done)."""
        if address + len(data) > ct.CONTROL_TABLE_SIZE or not data:
            return p.ERROR_DATA_LENGTH
        end = address + len(data)

        def touches(register: ct.Register) -> bool:
            return address < register.address + register.size and register.address < end

        read_only = (ct.MODEL_NUMBER, ct.FIRMWARE_VERSION, ct.HARDWARE_ERROR_STATUS, ct.MOVING,
                     ct.PRESENT_CURRENT, ct.PRESENT_VELOCITY, ct.PRESENT_POSITION, ct.PRESENT_INPUT_VOLTAGE,
                     ct.PRESENT_TEMPERATURE)
        if any(touches(r) for r in read_only):
            return p.ERROR_ACCESS
        if address < ct.EEPROM_END and self.torque:
            return p.ERROR_ACCESS  # EEPROM is locked while torque is on
        if touches(ct.GOAL_CURRENT) and not self.model.current_control:
            return p.ERROR_ACCESS
        if self.watchdog_error and any(touches(r) for r in ct.GOAL_REGISTERS):
            return p.ERROR_DATA_RANGE  # goals are read-only while a watchdog error is latched
        new = bytearray(self.table)
        new[address:end] = data

        def value(register: ct.Register) -> int:
            return register.decode(new[register.address:register.address + register.size])

        mode = value(ct.OPERATING_MODE)
        if touches(ct.OPERATING_MODE):
            supported = {ct.MODE_VELOCITY, ct.MODE_POSITION, ct.MODE_EXTENDED_POSITION, ct.MODE_PWM}
            if self.model.current_control:
                supported |= {ct.MODE_CURRENT, ct.MODE_CURRENT_BASED_POSITION}
            if mode not in supported:
                return p.ERROR_DATA_RANGE
        if touches(ct.BUS_WATCHDOG) and not 0 <= value(ct.BUS_WATCHDOG) <= 127:
            return p.ERROR_DATA_RANGE
        goal = value(ct.GOAL_POSITION)
        if touches(ct.GOAL_POSITION):
            low, high = ((value(ct.MIN_POSITION_LIMIT), value(ct.MAX_POSITION_LIMIT)) if mode == ct.MODE_POSITION
                         else (-ct.EXTENDED_POSITION_LIMIT, ct.EXTENDED_POSITION_LIMIT))
            if not low <= goal <= high:
                return p.ERROR_DATA_LIMIT
        was_on = self.torque
        if self.hardware_error and new[ct.TORQUE_ENABLE.address]:
            new[ct.TORQUE_ENABLE.address] = 0  # a latched hardware error keeps the torque off until a reboot
        self.table = new
        if touches(ct.BUS_WATCHDOG) and value(ct.BUS_WATCHDOG) == 0:
            self.watchdog_error = False
        if self.torque and (not was_on or touches(ct.GOAL_POSITION)):
            self._target = self._shaft_target(goal)  # torque on: go to the goal register, whatever it holds
        return 0

    # -- time ------------------------------------------------------------------------------------------------

    def heard(self, now: float) -> None:
        """An instruction packet reached this servo at `now` (feeds the bus watchdog); call `step(now)` first."""
        self._last_instruction = now

    def step(self, now: float) -> None:
        """Advance the shaft to `now` (seconds of the emulator clock)."""
        start, self._last_step = self._last_step, now
        self._velocity = 0.0
        if not self.torque:
            if self.hand is not None:
                self.shaft = float(self.hand(now))
            self._target = self.shaft
            return
        if self.watchdog_error:
            return  # stopped by the watchdog: holds with torque on
        end = now
        watchdog = self._get(ct.BUS_WATCHDOG)
        if watchdog > 0 and self._last_instruction + watchdog * ct.BUS_WATCHDOG_UNIT_S <= now:
            end = max(start, self._last_instruction + watchdog * ct.BUS_WATCHDOG_UNIT_S)
            self.watchdog_error = True
        dt = end - start
        profile = self._get(ct.PROFILE_VELOCITY)
        rpm = self.model.no_load_speed_rpm
        if profile:
            rpm = min(rpm, profile * ct.VELOCITY_UNIT_RPM)
        max_move = rpm * ct.TICKS_PER_REV / 60 * dt
        move = max(-max_move, min(max_move, self._target - self.shaft))
        self.shaft += move
        if self.watchdog_error:
            self._target = self.shaft
        elif dt > 0:
            self._velocity = move / dt


class EmulatedBus:
    """One serial port (a pty) with servos on it. `port` is the path a driver opens."""

    def __init__(self, servos: Sequence[ServoSpec], clock: Callable[[], float] = time.monotonic):
        ids = [s.servo_id for s in servos]
        if len(set(ids)) != len(ids) or not all(0 <= i <= p.MAX_ID for i in ids):
            raise ValueError(f"servo IDs must be distinct and in 0..{p.MAX_ID}, got {ids}")
        self._clock = clock
        self.servos = {s.servo_id: EmulatedServo(s, clock) for s in servos}
        self.lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        self.port = os.ttyname(self._slave)
        self._parser = p.PacketParser()
        self._corrupt = 0
        self._drop = 0
        self._late, self._late_delay_s = 0, 0.0
        self._slow: dict[int, float] = {}  # servo ID -> how late all its status packets are
        self.crc_errors = 0  # instruction packets received with a bad CRC

    def fileno(self) -> int:
        return self._master

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def advance(self, now: float | None = None) -> None:
        """Bring every servo's motion (and bus watchdog) up to `now` (default: the clock's now); call with `lock`
        held, e.g. before looking at the shafts."""
        now = self._clock() if now is None else now
        for servo in self.servos.values():
            servo.step(now)

    def register(self, servo_id: int, register: ct.Register) -> int:
        """A servo's register value now, as a READ would return it."""
        with self.lock:
            self.advance()
            return self.servos[servo_id].value(register)

    # -- fault injection -------------------------------------------------------------------------------------

    def corrupt_replies(self, n: int) -> None:
        """Send the next `n` status packets with a wrong CRC."""
        with self.lock:
            self._corrupt = n

    def late_replies(self, n: int, delay_s: float) -> None:
        """Send the next `n` status packets `delay_s` late: a slow servo whose answer comes after the driver's
        timeout, while the driver may already wait for the answer to another request."""
        with self.lock:
            self._late, self._late_delay_s = n, delay_s

    def slow(self, servo_id: int, delay_s: float) -> None:
        """Servo `servo_id` answers its turn in SYNC READs `delay_s` late from now on (0: on time again): alive,
        but slow. Its answers to single requests stay on time, as a marginally slow servo's do: alone it has the
        driver's whole window, in a SYNC READ only what the servos before it leave."""
        with self.lock:
            if delay_s > 0:
                self._slow[servo_id] = delay_s
            else:
                self._slow.pop(servo_id, None)

    def _send_late(self, packet: bytes) -> None:
        with self.lock:
            if self._master >= 0:
                try:
                    os.write(self._master, packet)
                except OSError:
                    pass  # unplugged meanwhile

    def drop_replies(self, n: int) -> None:
        """Do not answer the next `n` packets that need an answer."""
        with self.lock:
            self._drop = n

    def hardware_fault(self, servo_id: int, hardware_error: int) -> None:
        """Servo `servo_id` latches a hardware error (Hardware_Error_Status bits, e.g. 1 << 5 overload): its
        torque goes off (the joint goes limp) and its status packets carry the alert bit."""
        with self.lock:
            self.servos[servo_id].fail(hardware_error)

    def disconnect(self, servo_id: int) -> None:
        """The servo stops answering and hearing (a loose cable): its bus watchdog, if set, stops it."""
        with self.lock:
            self.servos[servo_id].connected = False

    def reconnect(self, servo_id: int) -> None:
        with self.lock:
            self.servos[servo_id].connected = True

    def unplug(self) -> None:
        """The port disappears (the USB adapter was pulled): both pty ends close."""
        with self.lock:
            if self._master >= 0:
                os.close(self._master)
                os.close(self._slave)
                self._master = self._slave = -1

    # -- serving ---------------------------------------------------------------------------------------------

    def serve(self) -> None:
        """Read what the driver sent and answer it (called by the emulator thread when the pty is readable)."""
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        replies = bytearray()
        with self.lock:
            now = self._clock()
            for packet in self._parser.feed(data):
                replies += self._handle(packet, now)
        if replies:
            try:
                os.write(self._master, bytes(replies))
            except OSError:
                pass  # unplugged meanwhile

    def _reply(self, servo_id: int, error: int, params: bytes = b"", delay_s: float = 0.0) -> bytes:
        if self._drop > 0:
            self._drop -= 1
            return b""
        if servo_id in self.servos and self.servos[servo_id].hardware_error:
            error |= p.ERROR_ALERT
        packet = bytearray(p.status_packet(servo_id, error, params))
        if self._corrupt > 0:
            self._corrupt -= 1
            packet[-1] ^= 0xFF
        if self._late > 0:
            self._late -= 1
            delay_s = max(delay_s, self._late_delay_s)
        if delay_s > 0:
            threading.Timer(delay_s, self._send_late, args=(bytes(packet),)).start()
            return b""
        return bytes(packet)

    def _handle(self, packet: p.Packet, now: float) -> bytes:
        self.advance(now)
        live = {i: s for i, s in self.servos.items() if s.connected}
        if not packet.crc_ok:
            self.crc_errors += 1
            # Only an addressed servo can tell that the packet was meant for it.
            return self._reply(packet.servo_id, p.ERROR_CRC) if packet.servo_id in live else b""
        for servo in live.values():
            servo.heard(now)
        params = packet.params
        if packet.servo_id == p.BROADCAST_ID:
            if packet.instruction == p.SYNC_READ and len(params) >= 4:
                address, length = params[0] | params[1] << 8, params[2] | params[3] << 8
                out = b""
                for servo_id in params[4:]:
                    if servo_id in live:
                        error, data = live[servo_id].read(address, length)
                        out += self._reply(servo_id, error, data, self._slow.get(servo_id, 0.0))
                return out
            if packet.instruction == p.SYNC_WRITE and len(params) >= 4:
                address, length = params[0] | params[1] << 8, params[2] | params[3] << 8
                block = params[4:]
                for i in range(0, len(block) - length, length + 1):
                    if block[i] in live:
                        live[block[i]].write(address, block[i + 1:i + 1 + length])
                return b""
            if packet.instruction == p.PING:
                return b"".join(self._ping(s) for s in live.values())
            return b""  # broadcast writes answer nothing; other broadcasts are not emulated
        servo = live.get(packet.servo_id)
        if servo is None:
            return b""
        if packet.instruction == p.PING:
            return self._ping(servo)
        if packet.instruction == p.REBOOT:
            status = self._reply(servo.servo_id, 0)
            servo.restart()  # clears a latched hardware error; torque off
            return status
        if packet.instruction == p.READ and len(params) == 4:
            error, data = servo.read(params[0] | params[1] << 8, params[2] | params[3] << 8)
            return self._reply(servo.servo_id, error, data)
        if packet.instruction == p.WRITE and len(params) >= 3:
            return self._reply(servo.servo_id, servo.write(params[0] | params[1] << 8, params[2:]))
        if packet.instruction in (p.READ, p.WRITE):
            return self._reply(servo.servo_id, p.ERROR_DATA_LENGTH)
        return self._reply(servo.servo_id, p.ERROR_INSTRUCTION)

    def _ping(self, servo: EmulatedServo) -> bytes:
        number = servo.model.number
        firmware = servo.table[ct.FIRMWARE_VERSION.address]
        return self._reply(servo.servo_id, 0, bytes([number & 0xFF, number >> 8, firmware]))

    def close(self) -> None:
        self.unplug()


class Emulator:
    """Serves `buses` from one thread until `stop` (or the end of a `with` block), which also closes their ptys."""

    def __init__(self, buses: Sequence[EmulatedBus]):
        self.buses = list(buses)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dynamixel-emulator", daemon=True)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            plugged = [b for b in self.buses if b.plugged]
            try:
                readable, _, _ = select.select(plugged, [], [], _LOOP_TIMEOUT_S)
            except (OSError, ValueError):  # a bus was unplugged during select
                continue
            for bus in readable:
                bus.serve()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for bus in self.buses:
            bus.close()


# The Koch follower arm: XL430-W250 at the shoulder, XL330-M288 elsewhere (gripper last); the leader: XL330-M077.
KOCH_FOLLOWER = ("XL430-W250", "XL430-W250", "XL330-M288", "XL330-M288", "XL330-M288", "XL330-M288")
KOCH_LEADER = ("XL330-M077",) * 6


def koch_arm(models: Sequence[str] = KOCH_FOLLOWER, positions: Sequence[float] | None = None) -> list[ServoSpec]:
    """Servo specs of one Koch arm, IDs 1..6, shafts at `positions` (default: the middle of the turn)."""
    positions = positions if positions is not None else [ct.CENTER_TICKS] * len(models)
    return [ServoSpec(i + 1, model, position) for i, (model, position) in enumerate(zip(models, positions))]


def zero_pose_calibration(arm: str, models: Sequence[str] = KOCH_FOLLOWER, joint_range: float = 1.5,
                          gripper_range: tuple[float, float] = (0.0, 1.2)) -> ArmCalibration:
    """The calibration of an emulated arm whose zero pose is every shaft at 2048 ticks (no offset, nothing
    inverted): joints within +-joint_range rad, the last servo a gripper over `gripper_range` rad."""
    last = len(models) - 1
    return ArmCalibration(arm=arm, joints=[
        JointCalibration(id=i + 1, model=model, homing_offset=0, inverted=False,
                         lower=gripper_range[0] if i == last else -joint_range,
                         upper=gripper_range[1] if i == last else joint_range, gripper=i == last)
        for i, model in enumerate(models)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tramoe_ros.robot.emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["left", "right"], help="names of the emulated arms")
    parser.add_argument("--leader", action="store_true", help="emulate leader arms (XL330-M077) instead")
    parser.add_argument("--calibration-dir", type=Path, default=None,
                        help="write a calibration file <arm>.yaml for each emulated arm here")
    args = parser.parse_args(argv)
    models = KOCH_LEADER if args.leader else KOCH_FOLLOWER
    buses = {name: EmulatedBus(koch_arm(models)) for name in args.arms}
    if args.calibration_dir is not None:
        for name in args.arms:
            save_calibration(zero_pose_calibration(name, models), args.calibration_dir / f"{name}.yaml")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Emulator(list(buses.values())):
        print(json.dumps({name: bus.port for name, bus in buses.items()}), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
