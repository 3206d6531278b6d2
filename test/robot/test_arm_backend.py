"""arm_node with the dynamixel backend in its own process, driving two emulated Koch follower arms over ptys:
/joint_states from the servos, actuation only when enabled, the step and joint limits, the watchdog hold, the
e-stop, a servo that stops answering, shutdown, and a missing port."""
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from std_srvs.srv import SetBool, Trigger
from tramoe_msgs.msg import PolicyAction

from node_fixtures import NodeProcess, TestNode, stop_all
from robot_fixtures import GRIPPER_RANGE, JOINT_RANGE, LATENCY_TIMER_MS, ticks, write_calibration
from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.emulator import EmulatedBus, Emulator, koch_arm
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import action_to_msg
from tramoe_ros.ros.qos import RELIABLE_QOS

ARMS = ("left", "right")
JOINTS = {arm: [f"{arm}_{j}" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll",
                                       "gripper")] for arm in ARMS}
MAX_STEP = 0.1


def arm_params(folder, buses, **extra) -> list[str]:
    """--ros-args for arm_node: a parameters file for the two emulated arms."""
    dynamixel = {"arms": list(ARMS), "max_step": MAX_STEP, "joint_states_rate_hz": 100.0,
                 "latency_timer_ms": LATENCY_TIMER_MS, **extra}
    for arm in ARMS:
        dynamixel[arm] = {"port": buses[arm].port, "ids": [1, 2, 3, 4, 5, 6], "joint_names": JOINTS[arm],
                          "calibration": str(write_calibration(folder / f"{arm}.yaml", f"{arm}_follower"))}
    params = {"backend": "dynamixel", "action_dim": 12, "enabled": False, "watchdog_timeout_s": 0.3,
              "dynamixel": dynamixel}
    (folder / "arm.yaml").write_text(yaml.safe_dump({"arm_node": {"ros__parameters": params}}))
    return ["--ros-args", "--params-file", str(folder / "arm.yaml")]


def shafts(buses) -> np.ndarray:
    """Shaft positions (12,) as joint values of write_calibration's calibration (gripper in rad)."""
    with buses["left"].lock, buses["right"].lock:
        for bus in buses.values():
            bus.advance()
        return np.array([(buses[a].servos[i].shaft - ct.CENTER_TICKS) * ct.RAD_PER_TICK
                         for a in ARMS for i in range(1, 7)])


class Robot:
    """The test's side of one arm_node process: the emulated arms and the node's topics and services."""

    def __init__(self, node: TestNode, buses, process: NodeProcess):
        self.node, self.buses, self.process = node, buses, process
        self.joint_states: list[JointState] = []
        self.diagnostics: list = []
        n = node.node
        n.create_subscription(JointState, topics.JOINT_STATES, self.joint_states.append, RELIABLE_QOS)
        n.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, lambda m: self.diagnostics.extend(
            s for s in m.status if s.name == "/arm_node"), RELIABLE_QOS)
        self.actions = n.create_publisher(PolicyAction, topics.POLICY_ACTION, RELIABLE_QOS)
        self.enable_client = n.create_client(SetBool, "/arm_node/enable")
        self.estop_client = n.create_client(Trigger, "/arm_node/estop")
        self.reboot_client = n.create_client(Trigger, "/arm_node/reboot_servos")

    def wait_started(self):
        # Diagnostics come once the node spins; the arm's joint states already while it is being built.
        def started() -> bool:
            return bool(self.diagnostics and self.joint_states and self.enable_client.service_is_ready()
                        and self.actions.get_subscription_count())

        self.node.spin_until(lambda: started() or not self.process.alive(), 30, "arm_node to start")
        assert self.process.alive(), self.process.output()

    def send(self, value, seconds=0.0, period=0.05):
        """Actions of `value` (all 12) every `period` for `seconds` (at least one)."""
        for _ in range(max(1, round(seconds / period))):
            stamp = self.node.node.get_clock().now().to_msg()
            self.actions.publish(action_to_msg(np.full(12, value, np.float32), Header(stamp=stamp), 1.0, "test"))
            self.node.spin_for(period)

    def call(self, client, request):
        future = client.call_async(request)
        self.node.spin_until(future.done, 5, f"{client.srv_name}")
        return future.result()

    def diag(self, key: str, value: str | None = None, timeout: float = 3.0, unlike: str | None = None) -> str:
        """Wait for the arm node's diagnostics to report `key` (= `value`, or != `unlike`); return its value."""
        def found():
            if not self.diagnostics:
                return False
            values = {kv.key: kv.value for kv in self.diagnostics[-1].values}
            return key in values and value in (None, values[key]) and values[key] != unlike
        self.node.spin_until(found, timeout, f"diagnostics {key} = {value}")
        return {kv.key: kv.value for kv in self.diagnostics[-1].values}[key]


@pytest.fixture(scope="module")
def ros():
    node = TestNode("robot_test_driver")
    yield node
    node.close()


@pytest.fixture(scope="module")
def robot(ros, tmp_path_factory):
    folder = tmp_path_factory.mktemp("arm_node")
    buses = {arm: EmulatedBus(koch_arm()) for arm in ARMS}
    with buses["left"].lock:  # a joint and a gripper away from the zero pose
        buses["left"].servos[2].shaft = ticks(0.3)
    with buses["right"].lock:
        buses["right"].servos[6].shaft = ticks(0.6)
    with Emulator(list(buses.values())):
        process = NodeProcess("tramoe_ros.nodes.arm_node", arm_params(folder, buses), folder / "arm_node.log")
        robot = Robot(ros, buses, process)
        try:
            robot.wait_started()
        except AssertionError:
            stop_all([process])
            raise
        yield robot
        process.stop()


def test_joint_states_come_from_the_servos(robot):
    state = robot.joint_states[-1]
    assert list(state.name) == JOINTS["left"] + JOINTS["right"]
    expected = np.zeros(12)
    expected[1], expected[11] = 0.3, 0.6 / GRIPPER_RANGE[1]  # the gripper as 0 (closed) .. 1 (open)
    np.testing.assert_allclose(state.position, expected, atol=2e-3)
    assert len(state.velocity) == 12
    for bus in robot.buses.values():  # holding where they are: torque on, watchdog armed, modes set
        assert [bus.register(i, ct.TORQUE_ENABLE) for i in range(1, 7)] == [1] * 6
        assert [bus.register(i, ct.BUS_WATCHDOG) for i in range(1, 7)] == [5] * 6
        assert bus.register(6, ct.OPERATING_MODE) == ct.MODE_CURRENT_BASED_POSITION


def test_disabled_arm_ignores_actions(robot):
    before = shafts(robot.buses)
    robot.send(0.8, seconds=0.3)
    robot.node.spin_for(0.2)
    np.testing.assert_allclose(shafts(robot.buses), before, atol=ct.RAD_PER_TICK)
    robot.diag("ignored_while_disabled")


def test_enabled_arm_moves_by_bounded_steps_within_joint_limits(robot):
    assert robot.call(robot.enable_client, SetBool.Request(data=True)).success
    start = shafts(robot.buses)
    robot.send(1.0)
    robot.node.spin_for(0.1)
    goal = np.array([(robot.buses[a].register(i, ct.GOAL_POSITION) - ct.CENTER_TICKS) * ct.RAD_PER_TICK
                     for a in ARMS for i in range(1, 7)])
    # One command: each goal at most max_step (+ a tick) beyond where the joint was; the gripper's step is a
    # fraction of its range.
    step = MAX_STEP * np.array(([1.0] * 5 + [GRIPPER_RANGE[1] - GRIPPER_RANGE[0]]) * 2)
    assert np.all(goal - start <= step + 2 * ct.RAD_PER_TICK) and np.all(goal - start > step / 2)
    highest = np.full(12, -np.inf)
    for _ in range(30):  # 1.5 s of actions beyond the clamp (3.0 -> 1.0 -> each joint's upper limit)
        robot.send(3.0)
        highest = np.maximum(highest, shafts(robot.buses))
    upper = np.array(([JOINT_RANGE] * 5 + [GRIPPER_RANGE[1]]) * 2)
    np.testing.assert_allclose(shafts(robot.buses), upper, atol=5e-3)
    assert np.all(highest <= upper + 2 * ct.RAD_PER_TICK)
    robot.diag("clamped")


def slow_servos(buses, units: int) -> None:
    """Profile velocity (0.229 rpm units; 0: full speed) of every emulated servo."""
    for bus in buses.values():
        with bus.lock:
            for servo in bus.servos.values():
                servo.table[ct.PROFILE_VELOCITY.address:ct.PROFILE_VELOCITY.address + 4] = bytes(
                    ct.PROFILE_VELOCITY.encode(units))


def goal_ahead(robot) -> np.ndarray:
    """Goal minus present position (12,) in ticks."""
    return np.array([robot.buses[a].register(i, ct.GOAL_POSITION) - robot.buses[a].register(i, ct.PRESENT_POSITION)
                     for a in ARMS for i in range(1, 7)])


def test_watchdog_holds_when_actions_stop(robot):
    slow_servos(robot.buses, 5)  # 1.1 rpm: the arms lag their goals
    try:
        robot.send(-1.0, seconds=0.25)
        assert np.all(goal_ahead(robot) < -30)  # moving down toward goals ~max_step ahead
        robot.node.spin_for(0.6)  # no actions: the 0.3 s watchdog holds
        robot.diag("holding", "True")
        assert np.all(np.abs(goal_ahead(robot)) <= 2)  # the goal is where the arm is
    finally:
        slow_servos(robot.buses, 0)


def test_estop_holds_and_refuses_motion_until_enabled(robot):
    robot.send(-1.0, seconds=0.2)
    response = robot.call(robot.estop_client, Trigger.Request())
    assert response.success and "call ~/enable with true" in response.message
    robot.node.spin_for(0.1)
    held = shafts(robot.buses)
    robot.send(-1.0, seconds=0.4)
    np.testing.assert_allclose(shafts(robot.buses), held, atol=ct.RAD_PER_TICK)
    assert robot.diag("estop", "True") == "True" and robot.diag("enabled", "False") == "False"
    assert robot.call(robot.enable_client, SetBool.Request(data=True)).success
    robot.send(-1.0, seconds=0.3)
    assert np.all(shafts(robot.buses) < held - 0.2)
    robot.diag("estop", "False")


def test_a_servo_that_stops_answering_disables_the_arm_until_it_answers(robot):
    robot.send(0.0, seconds=0.1)
    robot.buses["left"].disconnect(3)
    assert "servo(s) [3] do not answer" in robot.diag("fault", unlike="none", timeout=5)
    robot.diag("enabled", "False")
    refused = robot.call(robot.enable_client, SetBool.Request(data=True))
    assert not refused.success and "arm left" in refused.message and "[3] do not answer" in refused.message
    assert robot.process.alive()
    robot.node.spin_for(0.3)  # cut off, servo 3 is stopped by its bus watchdog
    assert robot.buses["left"].register(3, ct.BUS_WATCHDOG) == -1
    robot.buses["left"].reconnect(3)
    robot.node.spin_for(0.5)
    assert robot.call(robot.enable_client, SetBool.Request(data=True)).success
    robot.diag("fault", "none")
    before = shafts(robot.buses)[2]
    robot.send(1.0, seconds=0.3)
    assert shafts(robot.buses)[2] > before + 0.2  # servo 3 takes goals again


def test_a_servo_hardware_error_disables_the_arm_and_a_reboot_recovers_it(robot):
    """An overload turns servo 2's torque off: the arm node notices within a cycle, disables the arm and names
    arm, servo and fault; enabling is refused until ~/reboot_servos has rebooted the servo, then turns its torque
    on again."""
    robot.send(0.0, seconds=0.1)
    robot.buses["right"].hardware_fault(2, 1 << 5)
    fault = robot.diag("fault", unlike="none", timeout=5)
    assert "arm 'right'" in fault and "servo 2: overload" in fault, fault
    robot.diag("enabled", "False")
    refused = robot.call(robot.enable_client, SetBool.Request(data=True))
    assert not refused.success and "servo 2: overload" in refused.message
    assert robot.buses["right"].register(2, ct.TORQUE_ENABLE) == 0 and robot.process.alive()
    rebooted = robot.call(robot.reboot_client, Trigger.Request())
    assert rebooted.success and "rebooted right servo 2" in rebooted.message, rebooted.message
    robot.node.spin_for(0.3)
    assert robot.call(robot.enable_client, SetBool.Request(data=True)).success
    robot.diag("fault", "none")
    robot.node.spin_for(0.2)
    assert robot.buses["right"].register(2, ct.TORQUE_ENABLE) == 1
    before = shafts(robot.buses)[7]
    robot.send(1.0, seconds=0.3)
    assert shafts(robot.buses)[7] > before + 0.2  # servo 2 of the right arm takes goals again


def test_shutdown_leaves_the_arms_holding(robot):
    status = robot.process.stop()
    assert status == 0, robot.process.log.read_text()
    for bus in robot.buses.values():
        assert [bus.register(i, ct.TORQUE_ENABLE) for i in range(1, 7)] == [1] * 6
        assert [bus.register(i, ct.BUS_WATCHDOG) for i in range(1, 7)] == [0] * 6  # disarmed: keeps holding


def test_shutdown_with_torque_off(ros, tmp_path):
    buses = {arm: EmulatedBus(koch_arm()) for arm in ARMS}
    with Emulator(list(buses.values())):
        process = NodeProcess("tramoe_ros.nodes.arm_node", arm_params(tmp_path, buses, on_shutdown="torque_off"),
                              tmp_path / "arm_node.log")
        try:
            Robot(ros, buses, process).wait_started()
        finally:
            status = process.stop()
        assert status == 0, process.log.read_text()
        for bus in buses.values():
            assert [bus.register(i, ct.TORQUE_ENABLE) for i in range(1, 7)] == [0] * 6


def test_missing_port_is_a_clear_startup_error_leaving_the_other_arm_safe(tmp_path):
    buses = {arm: EmulatedBus(koch_arm()) for arm in ARMS}
    args = arm_params(tmp_path, buses)
    (tmp_path / "arm.yaml").write_text((tmp_path / "arm.yaml").read_text().replace(buses["right"].port,
                                                                                   "/dev/ttyUSB_absent"))
    with Emulator(list(buses.values())):
        process = NodeProcess("tramoe_ros.nodes.arm_node", args, tmp_path / "arm_node.log")
        assert process.wait(30) == 1
        assert ("[arm_node] cannot start: dynamixel: serial port /dev/ttyUSB_absent does not exist: is the arm's "
                "USB adapter plugged in?" in process.output())
        # The left arm, already up, was left holding (on_shutdown: hold), its watchdog disarmed.
        left = buses["left"]
        assert [left.register(i, ct.TORQUE_ENABLE) for i in range(1, 7)] == [1] * 6
        assert [left.register(i, ct.BUS_WATCHDOG) for i in range(1, 7)] == [0] * 6

