"""The `dynamixel` arm backend: the dual-arm Koch robot driven directly over its servo buses.

Parameters (under `dynamixel.`; config/real.yaml has the documented example):
    arms                  arm names, in action order, e.g. [left, right]
    <arm>.port            the arm's serial port (/dev/serial/by-id/... stays the same across replugging)
    <arm>.ids             servo IDs, in joint order
    <arm>.calibration     the arm's calibration file (tramoe-calibrate)
    <arm>.joint_names     joint names, in joint order (the /joint_states names)
    baudrate, retries, latency_timer_ms, bus_watchdog_s, gripper_current, max_step, joint_states_rate_hz,
    on_shutdown

Actions are the joints of all arms in order (2 x 6 = 12), each normalised to its calibrated range: -1 is the
lower end, +1 the upper (the gripper: closed, open). What reaches the servos is bounded three times: the arm
node's clamp to [action_min, action_max], at most `max_step` (rad; gripper: fraction of its range) from the
present position per command, and the calibrated joint range.

On start, each arm's goal is set to its present position and torque enabled: the arms hold where they are. A
bus thread then sends the newest goal, sync-reads every servo and publishes /joint_states (positions in rad,
gripper 0..1; velocities) at `joint_states_rate_hz`. `hold` (the arm node's watchdog, disabling) makes the present
position the goal. The `~/estop` service (std_srvs/Trigger) holds, disables the arm and refuses actions until
~/enable is called with true. A failing arm (a servo that stops answering, the adapter unplugged) is a fault: its
answering servos hold their last read position, the silent ones stop on their bus watchdog, the arm node is
disabled, and enabling is refused until the arm answers again. A servo's hardware error (overload, overheating,
...: its torque goes off) is such a fault too, named with its decoded Hardware_Error_Status; once the cause is
removed, the `~/reboot_servos` service (std_srvs/Trigger) reboots the servos that report one (Protocol 2.0
Reboot), and enabling turns their torque on again. On shutdown the arms hold, or go limp
(`on_shutdown: torque_off`).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.robot.calibration import CalibrationError, load_calibration
from tramoe_ros.robot.control_table import MAX_BUS_WATCHDOG_S
from tramoe_ros.robot.driver import DynamixelArm, DynamixelError, ServoBus, limit_goal
from tramoe_ros.robot.pacing import Pacer
from tramoe_ros.ros import topics
from tramoe_ros.ros.arm_backends import ArmBackend, ArmNotReady
from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.params import Param, declare_params, non_negative, not_empty, one_of, positive, resolve_path
from tramoe_ros.ros.qos import RELIABLE_QOS

SUPERVISE_PERIOD_S = 0.05  # how often faults found by the bus thread are acted on (in the executor's thread)
RATE_WINDOW_S = 1.0  # the published joint-state rate is measured over this window
GAP_WINDOW = 6000  # joint-state intervals kept for the diagnostics' maximum (a minute at 100 Hz)
REBOOT_BUDGET_S = 10.0  # ~/reboot_servos waits this long for the bus thread to reboot the faulted servos


def _ids_check(values: list[int]) -> str | None:
    if not values:
        return "must not be empty"
    if len(set(values)) != len(values) or not all(0 <= v <= 252 for v in values):
        return "must be distinct servo IDs in 0..252"
    return None


def _declare_parameters(node: Node, action_dim: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Declare and read the `dynamixel.` parameters, the per-arm ones for each name in `dynamixel.arms`.

    Returns:
        (shared parameters, per-arm parameters), both keyed by full parameter name
    Raises:
        NodeStartupError: arm names repeat, an arm's joint names do not match its servos, or the joints do not
            add up to `action_dim`.
    """
    shared = declare_params(node, [
        Param("dynamixel.arms", ["left", "right"], "arm names, in action order", not_empty),
        Param("dynamixel.baudrate", 1_000_000, "serial baud rate of every arm's bus", positive),
        Param("dynamixel.retries", 2, "repeats of a transaction that timed out or came back corrupt",
              non_negative),
        Param("dynamixel.latency_timer_ms", 16.0, "the USB adapters' latency timer: answers are awaited for "
                                                  "twice this + 2 ms", positive),
        Param("dynamixel.bus_watchdog_s", 0.1, "servos stop by themselves after this long without an "
                                               f"instruction (0: off; at most {MAX_BUS_WATCHDOG_S:.2f})",
              lambda v: None if 0 <= v <= MAX_BUS_WATCHDOG_S else f"must be in 0..{MAX_BUS_WATCHDOG_S:.2f}"),
        Param("dynamixel.gripper_current", 300, "gripper Goal Current (mA): how hard it squeezes", positive),
        Param("dynamixel.max_step", 0.1, "largest move per command from the present position (rad; gripper: "
                                         "fraction of its range); 0: unlimited", non_negative),
        Param("dynamixel.joint_states_rate_hz", 100.0, "servo read and /joint_states publishing rate",
              positive),
        Param("dynamixel.on_shutdown", "hold", "arms on shutdown: hold (torque on, where they are) or "
                                               "torque_off (limp: they drop)", one_of("hold", "torque_off")),
    ])
    names = shared["dynamixel.arms"]
    if len(set(names)) != len(names):
        raise NodeStartupError(f"dynamixel.arms must be distinct names, got {names}")
    per_arm = declare_params(node, [param for name in names for param in (
        Param(f"dynamixel.{name}.port", "", f"serial port of arm {name}", not_empty),
        Param(f"dynamixel.{name}.ids", [], f"servo IDs of arm {name}, in joint order", _ids_check, kind="int[]"),
        Param(f"dynamixel.{name}.calibration", "", f"calibration file of arm {name} (tramoe-calibrate)",
              not_empty),
        Param(f"dynamixel.{name}.joint_names", [], f"joint names of arm {name}, in joint order", not_empty,
              kind="str[]"),
    )])
    problems = [f"dynamixel.{n}.joint_names has {len(per_arm[f'dynamixel.{n}.joint_names'])} names for "
                f"{len(per_arm[f'dynamixel.{n}.ids'])} servos" for n in names
                if len(per_arm[f"dynamixel.{n}.joint_names"]) != len(per_arm[f"dynamixel.{n}.ids"])]
    total = sum(len(per_arm[f"dynamixel.{n}.ids"]) for n in names)
    if total != action_dim:
        problems.append(f"the arms have {total} joints but action_dim is {action_dim}")
    if problems:
        raise NodeStartupError("dynamixel: " + "; ".join(problems))
    return shared, per_arm


class DynamixelBackend(ArmBackend):
    def __init__(self, node: Node, action_dim: int):
        super().__init__(node, action_dim)
        shared, per_arm = _declare_parameters(node, action_dim)
        names = shared["dynamixel.arms"]
        self.joint_names = [j for n in names for j in per_arm[f"dynamixel.{n}.joint_names"]]
        self.max_step = shared["dynamixel.max_step"]
        self.on_shutdown = shared["dynamixel.on_shutdown"]
        self.rate_hz = shared["dynamixel.joint_states_rate_hz"]
        # Present positions older than this (five missed reads) are not a base for a new goal.
        self.stale_after_s = max(0.1, 5 / self.rate_hz)
        self.arms: list[DynamixelArm] = []
        self._connect_arms(names, shared, per_arm)
        bounds = np.cumsum([0] + [len(a.ids) for a in self.arms])
        self._slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.lower = np.concatenate([a.calibration.lower for a in self.arms])
        self.upper = np.concatenate([a.calibration.upper for a in self.arms])
        self._init_shared_state()
        self._start(node)

    def _connect_arms(self, names: list[str], shared: dict[str, Any], per_arm: dict[str, Any]) -> None:
        """Open every arm's bus, check its servos against its calibration file, configure them and enable torque
        (the arms hold where they are); a failure closes the arms opened so far.

        Raises:
            NodeStartupError: a calibration file that is missing or for other servos, or a servo bus that fails.
        """
        try:
            for name in names:
                path = resolve_path(per_arm[f"dynamixel.{name}.calibration"])
                calibration = load_calibration(path)
                ids = per_arm[f"dynamixel.{name}.ids"]
                if calibration.ids != ids:
                    raise CalibrationError(f"calibration file {path} is for servos {calibration.ids}, "
                                           f"dynamixel.{name}.ids are {ids}")
                bus = ServoBus(per_arm[f"dynamixel.{name}.port"], shared["dynamixel.baudrate"],
                               shared["dynamixel.retries"], shared["dynamixel.latency_timer_ms"])
                arm = DynamixelArm(name, bus, calibration, follower=True,
                                   gripper_current=shared["dynamixel.gripper_current"],
                                   bus_watchdog_s=shared["dynamixel.bus_watchdog_s"])
                self.arms.append(arm)
                arm.connect()
                arm.enable_torque()
        except (DynamixelError, CalibrationError) as e:
            self._close_arms()
            raise NodeStartupError(f"dynamixel: {e}") from None

    def _init_shared_state(self) -> None:
        """The state the bus thread and the executor share, starting from the arms' present positions."""
        self._lock = threading.Lock()  # guards everything below that the bus thread shares
        self._goal: np.ndarray | None = None  # joint values (J,) not yet sent
        self._hold_requested = False
        self._present = np.concatenate([a.last.positions for a in self.arms])  # joint values (J,)
        self._present_time = time.monotonic()
        # Seconds between successive readings of every arm (over the last GAP_WINDOW): how old a command's base
        # gets under load, against `stale_after_s`.
        self._present_gaps: deque[float] = deque(maxlen=GAP_WINDOW)
        self._faults = 0  # faults latched since start
        self._arm_errors: dict[str, str] = {}  # arm -> its current communication error
        self._fault: str | None = None  # latched until the arm is enabled again
        self._fault_handled = False
        self._torque_wanted = False  # enabled again: the bus thread turns torque back on where it went off
        self._reboot = threading.Event()  # ~/reboot_servos asked the bus thread to reboot faulted servos
        self._rebooted = threading.Event()
        self._reboot_outcome = (False, "")  # (success, message) of the last reboot
        self.estopped = False
        self._publish_times: deque[float] = deque(maxlen=10_000)  # appended by the bus thread only

    def _start(self, node: Node) -> None:
        """Offer /joint_states, the services and the parameter checks, then start the bus thread."""
        self._publisher = node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS)
        node.create_service(Trigger, "~/estop", self._on_estop)
        node.create_service(Trigger, "~/reboot_servos", self._on_reboot_servos)
        node.add_on_set_parameters_callback(self._check_enable)
        node.add_post_set_parameters_callback(self._on_parameters_set)
        node.create_timer(SUPERVISE_PERIOD_S, self._supervise)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._bus_loop, name="dynamixel-bus", daemon=True)
        self._thread.start()
        node.get_logger().info(
            "dynamixel: " + ", ".join(f"{a.name} on {a.bus.port} ({len(a.ids)} servos)" for a in self.arms)
            + f"; holding, joint states at {self.rate_hz:.0f} Hz")

    # -- the bus thread --------------------------------------------------------------------------------------

    def _bus_loop(self) -> None:
        pacer = Pacer(self.rate_hz, self._stop.wait)
        while not self._stop.is_set():
            if self._reboot.is_set():
                self._reboot_faulted_servos()
            with self._lock:
                goal, self._goal = self._goal, None
                hold, self._hold_requested = self._hold_requested, False
                torque, self._torque_wanted = self._torque_wanted, False
            stamp = self.node.get_clock().now().to_msg()
            positions, velocities, errors = [], [], {}
            for arm, part in zip(self.arms, self._slices):
                try:
                    if torque and not arm.torque_on:  # a servo's hardware error turned it off (then a reboot)
                        arm.enable_torque()  # goal = present first; verified by read-back
                    reading = arm.hold() if hold else arm.cycle(None if goal is None else goal[part])
                except DynamixelError as e:
                    errors[arm.name] = str(e)
                    self._hold_last_known(arm)
                    continue
                positions.append(reading.positions)
                velocities.append(reading.velocities)
            with self._lock:
                self._arm_errors = errors
                if errors and self._fault is None:
                    self._fault = "; ".join(errors.values())
                    self._fault_handled = False
                    self._faults += 1
                if not errors:
                    self._present = np.concatenate(positions)
                    now = time.monotonic()
                    self._present_gaps.append(now - self._present_time)
                    self._present_time = now
            if not errors:
                self._publisher.publish(JointState(
                    header=Header(stamp=stamp), name=self.joint_names,
                    position=np.concatenate(positions).tolist(), velocity=np.concatenate(velocities).tolist()))
                self._publish_times.append(time.monotonic())
            pacer.wait()

    @staticmethod
    def _hold_last_known(arm: DynamixelArm) -> None:
        """A failing arm: the servos that still listen stop at their last read position."""
        if arm.last is None:
            return
        try:
            arm.write_goal(arm.last.positions)
        except DynamixelError:
            pass  # the port itself is gone; the servos' bus watchdog stops them

    # -- the executor's side ---------------------------------------------------------------------------------

    def command(self, action: np.ndarray, source: PolicyAction) -> None:
        with self._lock:
            if self.estopped:
                raise ArmNotReady("e-stop: call ~/enable with true to resume")
            if self._fault is not None:
                raise ArmNotReady(f"arm fault: {self._fault}")
            age = time.monotonic() - self._present_time
            if age > self.stale_after_s:
                raise ArmNotReady(f"joint positions are {age:.2f} s old (servo bus not answering)")
            target = self.lower + (action.astype(np.float64) + 1.0) / 2.0 * (self.upper - self.lower)
            try:
                self._goal = limit_goal(target, self._present, self.max_step, self.lower, self.upper)
            except ValueError as e:
                raise ArmNotReady(f"refused a command: {e}") from None
            self._hold_requested = False

    def hold(self) -> None:
        with self._lock:
            self._goal = None
            self._hold_requested = True

    def _reboot_faulted_servos(self) -> None:
        """On the bus thread: reboot every servo that reports a hardware error; the result for the service."""
        done = []
        try:
            for arm in self.arms:
                done += [f"{arm.name} servo {i}" for i in arm.reboot_faulted()]
            self._reboot_outcome = (True, f"rebooted {', '.join(done)}; enable the arm to turn their torque on"
                                    if done else "no servo reports a hardware error")
        except DynamixelError as e:
            self._reboot_outcome = (False, f"reboot failed: {e}")
        self._reboot.clear()
        self._rebooted.set()

    def _on_reboot_servos(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._rebooted.clear()
        self._reboot.set()
        if not self._rebooted.wait(REBOOT_BUDGET_S):
            response.success, response.message = False, f"the reboot did not finish within {REBOOT_BUDGET_S} s"
            return response
        response.success, response.message = self._reboot_outcome
        self.node.get_logger().info(f"~/reboot_servos: {response.message}")
        return response

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.estopped = True
        self.hold()
        self.node.set_parameters([Parameter("enabled", value=False)])
        self.node.get_logger().warning("E-STOP: arms holding; actions refused until ~/enable is called with true")
        response.success = True
        response.message = "e-stop: arms holding where they are; call ~/enable with true to resume"
        return response

    def _check_enable(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse enabling while an arm does not answer."""
        enabling = any(p.name == "enabled" and p.value is True for p in parameters)
        with self._lock:
            errors = dict(self._arm_errors)
        if enabling and errors:
            return SetParametersResult(successful=False, reason="cannot enable: " + "; ".join(
                f"arm {name}: {error}" for name, error in errors.items()))
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        if any(p.name == "enabled" and p.value is True for p in parameters):
            with self._lock:
                self.estopped = False
                self._fault = None
                self._torque_wanted = True

    def _supervise(self) -> None:
        """Act on a fault the bus thread latched: disable the arm node (which holds), in the executor's thread."""
        with self._lock:
            fault = self._fault if not self._fault_handled else None
            self._fault_handled = True
        if fault is not None:
            self.node.get_logger().error(f"dynamixel fault, arm disabled: {fault}")
            self.node.set_parameters([Parameter("enabled", value=False)])

    def joint_states_rate(self) -> float:
        """Published /joint_states per second over the last RATE_WINDOW_S."""
        now = time.monotonic()
        return sum(1 for t in list(self._publish_times) if now - t <= RATE_WINDOW_S) / RATE_WINDOW_S

    def diagnostics(self) -> dict[str, str]:
        with self._lock:
            fault, errors = self._fault, dict(self._arm_errors)
        return {
            "estop": str(self.estopped),
            "fault": fault or "none",
            "arms_answering": str(not errors),
            "joint_states_hz": f"{self.joint_states_rate():.1f}",
            "faults": str(self._faults),
            "joint_states_gap_ms_max": f"{max(self._present_gaps, default=0.0) * 1e3:.1f}",
            "stale_after_ms": f"{self.stale_after_s * 1e3:.0f}",
            "bus_retries": str(sum(a.bus.stats.retries for a in self.arms)),
            "bus_failures": str(sum(a.bus.stats.failures for a in self.arms)),
            "watchdog_recoveries": str(sum(a.watchdog_recoveries for a in self.arms)),
            "hardware_alerts": str({a.name: sorted(a.bus.alerts) for a in self.arms if a.bus.alerts}),
        }

    def _close_arms(self) -> None:
        for arm in self.arms:
            arm.close(torque_off=self.on_shutdown == "torque_off")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._close_arms()
