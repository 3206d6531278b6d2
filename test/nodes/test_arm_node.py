"""arm_node in its own process with the ros2_control backend: the enable switch, clamping and the per-command step
limit, the watchdog hold when actions stop, and malformed actions counted and dropped."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from tramoe_msgs.msg import PolicyAction

from node_fixtures import NodeProcess, ros_args, stop_all
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import action_to_msg
from tramoe_ros.ros.qos import RELIABLE_QOS

JOINTS = ["j1", "j2", "j3"]


@pytest.fixture(scope="module")
def arm(driver, tmp_path_factory):
    process = NodeProcess("tramoe_ros.nodes.arm_node", ros_args({
        "backend": "ros2_control", "action_dim": 3, "enabled": False, "watchdog_timeout_s": 0.3,
        "ros2_control.controller": "test_controller", "ros2_control.joint_names": JOINTS,
        "ros2_control.lower": [-1.0, -1.0, -1.0], "ros2_control.upper": [1.0, 1.0, 1.0],
        "ros2_control.max_step": 0.1}), tmp_path_factory.mktemp("logs") / "arm_node.log")
    node = driver.node
    received = {"trajectories": [], "diagnostics": []}
    node.create_subscription(JointTrajectory, topics.joint_trajectory("test_controller"),
                             received["trajectories"].append, RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, lambda m: received["diagnostics"].extend(
        s for s in m.status if s.name == "/arm_node"), RELIABLE_QOS)
    actions = node.create_publisher(PolicyAction, topics.POLICY_ACTION, RELIABLE_QOS)
    joint_states = node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS)
    enable = node.create_client(SetBool, "/arm_node/enable")
    try:
        driver.spin_until(lambda: enable.service_is_ready() or not process.alive(), 30, "arm_node to start")
        assert process.alive(), process.output()
        driver.spin_until(lambda: actions.get_subscription_count() and joint_states.get_subscription_count(), 10,
                          "discovery")
    except AssertionError:
        stop_all([process])
        raise
    joint_states.publish(JointState(name=JOINTS, position=[0.0, 0.0, 0.0]))
    yield actions, enable, received, process
    assert process.stop() == 0, process.output()


def send(driver, actions, values, n=5, period=0.05):
    for _ in range(n):
        stamp = driver.node.get_clock().now().to_msg()
        actions.publish(action_to_msg(np.array(values, np.float32), Header(stamp=stamp), 1.0, "test"))
        driver.spin_for(period)


def last_values(received) -> dict[str, str]:
    return {kv.key: kv.value for kv in received["diagnostics"][-1].values}


def call_enable(driver, enable, on: bool):
    future = enable.call_async(SetBool.Request(data=on))
    driver.spin_until(future.done, 5, "the enable service")
    assert future.result().success


def test_disabled_arm_does_not_move(driver, arm):
    actions, _, received, _ = arm
    send(driver, actions, [0.5, 0.5, 0.5])
    driver.spin_for(0.3)
    assert received["trajectories"] == []
    driver.spin_until(lambda: received["diagnostics"] and "ignored_while_disabled" in last_values(received), 3,
                      "ignored actions counted")


def test_enabled_arm_commands_clamped_step_limited_positions(driver, arm):
    actions, enable, received, _ = arm
    call_enable(driver, enable, True)
    send(driver, actions, [3.0, -3.0, 0.0])  # clamped to [1, -1, 0] -> targets [1, -1, 0] -> step-limited
    driver.spin_until(lambda: received["trajectories"], 3, "a joint trajectory")
    trajectory = received["trajectories"][-1]
    assert trajectory.joint_names == JOINTS
    np.testing.assert_allclose(trajectory.points[0].positions, [0.1, -0.1, 0.0], atol=1e-6)
    driver.spin_until(lambda: "clamped" in last_values(received), 3, "clamped actions counted")


def test_watchdog_holds_when_actions_stop(driver, arm):
    actions, _, received, _ = arm
    send(driver, actions, [0.5, 0.5, 0.5], n=3)
    count = len(received["trajectories"])
    driver.spin_until(lambda: len(received["trajectories"]) > count, 2, "the hold command")  # 0.3 s watchdog
    hold = received["trajectories"][-1]
    np.testing.assert_allclose(hold.points[0].positions, [0.0, 0.0, 0.0])  # the present position
    driver.spin_until(lambda: last_values(received).get("holding") == "True", 3, "holding in diagnostics")
    driver.spin_for(0.5)
    assert len(received["trajectories"]) == count + 1  # one hold, then silence


def test_malformed_actions_dropped_and_counted(driver, arm):
    actions, _, received, process = arm
    header = Header(stamp=driver.node.get_clock().now().to_msg())
    actions.publish(action_to_msg(np.zeros(7, np.float32), header, 0.0, "wrong dimension"))
    actions.publish(action_to_msg(np.array([np.nan, 0, 0], np.float32), header, 0.0, "nan"))
    actions.publish(PolicyAction(header=header, dimension=3, action=[0.0] * 3, planned=[0.0] * 4))
    driver.spin_until(lambda: {"dropped/wrong_action_dimension", "dropped/nonfinite_action",
                               "dropped/bad_planned_length"} <=
                      last_values(received).keys(), 3, "malformed actions counted")
    assert process.alive()


def test_disabling_holds_the_arm(driver, arm):
    actions, enable, received, _ = arm
    send(driver, actions, [0.2, 0.2, 0.2], n=3)
    count = len(received["trajectories"])
    call_enable(driver, enable, False)
    driver.spin_until(lambda: len(received["trajectories"]) > count, 2, "the hold command on disable")
    send(driver, actions, [0.2, 0.2, 0.2], n=3)
    assert len(received["trajectories"]) == count + 1


def test_fresh_action_rate_counts_actions_of_new_observations(driver, arm):
    """Actions of new observations at 20 Hz count as fresh; the same observation's action sent again (a re-sent
    observation) is commanded but not fresh."""
    actions, enable, received, _ = arm
    call_enable(driver, enable, True)
    send(driver, actions, [0.0, 0.0, 0.0], n=55, period=0.05)  # fills the rate's window (50 actions)
    driver.spin_for(1.2)  # the next diagnostics
    assert 10.0 < float(last_values(received)["fresh_action_rate_hz"]) < 25.0
    before = last_values(received)
    header = Header(stamp=driver.node.get_clock().now().to_msg())
    for _ in range(10):
        actions.publish(action_to_msg(np.zeros(3, np.float32), header, 1.0, "test"))
        driver.spin_for(0.05)
    driver.spin_until(lambda: int(last_values(received)["commanded"]) == int(before["commanded"]) + 10, 3,
                      "the re-sent actions commanded")
    assert int(last_values(received)["fresh_actions"]) == int(before["fresh_actions"]) + 1
