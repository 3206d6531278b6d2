"""The Dynamixel X-series control table (Protocol 2.0) of the servos in the Koch arms: XL330-M077 (leader arms),
XL330-M288 and XL430-W250 (follower arms). The driver and the emulator both use these definitions.

Addresses 0..63 are EEPROM (writable only while torque is off), 64 and up RAM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

TICKS_PER_REV = 4096  # position resolution: one turn of the output shaft
CENTER_TICKS = 2048  # the middle of one turn
RAD_PER_TICK = 2 * math.pi / TICKS_PER_REV
VELOCITY_UNIT_RPM = 0.229  # Present/Goal Velocity unit
RAD_S_PER_VELOCITY_UNIT = VELOCITY_UNIT_RPM * 2 * math.pi / 60
BUS_WATCHDOG_UNIT_S = 0.020  # Bus Watchdog (98) unit
MAX_BUS_WATCHDOG_S = 127 * BUS_WATCHDOG_UNIT_S  # its largest setting
EXTENDED_POSITION_LIMIT = 1_048_575  # goal position range in extended / current-based position mode
EEPROM_END = 64  # first RAM address


@dataclass(frozen=True)
class Register:
    """One control-table item: `size` bytes little-endian at `address`, two's complement when `signed`."""

    name: str
    address: int
    size: int
    signed: bool = False

    def decode(self, data: bytes | list[int]) -> int:
        return int.from_bytes(bytes(data[:self.size]), "little", signed=self.signed)

    def encode(self, value: int) -> list[int]:
        return list(int(value).to_bytes(self.size, "little", signed=self.signed))


MODEL_NUMBER = Register("model_number", 0, 2)
FIRMWARE_VERSION = Register("firmware_version", 6, 1)
ID = Register("id", 7, 1)
BAUD_RATE = Register("baud_rate", 8, 1)
RETURN_DELAY_TIME = Register("return_delay_time", 9, 1)
DRIVE_MODE = Register("drive_mode", 10, 1)
OPERATING_MODE = Register("operating_mode", 11, 1)
HOMING_OFFSET = Register("homing_offset", 20, 4, signed=True)
CURRENT_LIMIT = Register("current_limit", 38, 2)
VELOCITY_LIMIT = Register("velocity_limit", 44, 4)
MAX_POSITION_LIMIT = Register("max_position_limit", 48, 4)
MIN_POSITION_LIMIT = Register("min_position_limit", 52, 4)
TORQUE_ENABLE = Register("torque_enable", 64, 1)
LED = Register("led", 65, 1)
STATUS_RETURN_LEVEL = Register("status_return_level", 68, 1)
HARDWARE_ERROR_STATUS = Register("hardware_error_status", 70, 1)
# Hardware_Error_Status bits (X series e-manual). A servo that sets one turns its torque off and sets the alert bit
# (0x80) of every status packet until it is rebooted.
HARDWARE_ERRORS = {0: "input voltage error", 2: "overheating", 3: "motor encoder error", 4: "electrical shock",
                   5: "overload"}
POSITION_P_GAIN = Register("position_p_gain", 84, 2)
BUS_WATCHDOG = Register("bus_watchdog", 98, 1, signed=True)
GOAL_PWM = Register("goal_pwm", 100, 2, signed=True)
GOAL_CURRENT = Register("goal_current", 102, 2, signed=True)
GOAL_VELOCITY = Register("goal_velocity", 104, 4, signed=True)
PROFILE_ACCELERATION = Register("profile_acceleration", 108, 4)
PROFILE_VELOCITY = Register("profile_velocity", 112, 4)
GOAL_POSITION = Register("goal_position", 116, 4, signed=True)
MOVING = Register("moving", 122, 1)
PRESENT_CURRENT = Register("present_current", 126, 2, signed=True)
PRESENT_VELOCITY = Register("present_velocity", 128, 4, signed=True)
PRESENT_POSITION = Register("present_position", 132, 4, signed=True)
PRESENT_INPUT_VOLTAGE = Register("present_input_voltage", 144, 2)
PRESENT_TEMPERATURE = Register("present_temperature", 146, 1)
CONTROL_TABLE_SIZE = 147

# Goal values become read-only while a bus watchdog error is latched.
GOAL_REGISTERS = (GOAL_PWM, GOAL_CURRENT, GOAL_VELOCITY, GOAL_POSITION)

# Operating Mode (11) values.
MODE_CURRENT = 0
MODE_VELOCITY = 1
MODE_POSITION = 3
MODE_EXTENDED_POSITION = 4
MODE_CURRENT_BASED_POSITION = 5
MODE_PWM = 16
OPERATING_MODES = {MODE_CURRENT: "current", MODE_VELOCITY: "velocity", MODE_POSITION: "position",
                   MODE_EXTENDED_POSITION: "extended position",
                   MODE_CURRENT_BASED_POSITION: "current-based position", MODE_PWM: "PWM"}
DRIVE_MODE_REVERSE = 0x01  # Drive Mode (10) bit 0: clockwise is positive


@dataclass(frozen=True)
class ServoModel:
    name: str
    number: int  # Model Number (0)
    no_load_speed_rpm: float  # at the nominal voltage; the emulator moves at this speed
    current_control: bool  # current and current-based position modes, Goal Current (the XL430 has none)


MODELS = {m.number: m for m in (
    ServoModel("XL330-M077", 1190, 383.0, True),
    ServoModel("XL330-M288", 1200, 103.0, True),
    ServoModel("XL430-W250", 1060, 57.0, False),
)}
MODELS_BY_NAME = {m.name: m for m in MODELS.values()}


def model_name(number: int) -> str:
    return MODELS[number].name if number in MODELS else f"unknown model {number}"


def describe_hardware_error(status: int) -> str:
    """The faults a Hardware_Error_Status value names, e.g. "overheating, overload"."""
    names = [name for bit, name in HARDWARE_ERRORS.items() if status & (1 << bit)]
    return ", ".join(names) or f"no hardware error bit set ({status})"
