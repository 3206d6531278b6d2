"""The real-robot graph of config/real.yaml with its default dynamixel arm backend, started by `tramoe-up real`,
on two emulated Koch follower arms and two video files as cameras: camera frames -> tracks -> 12-D actions ->
servo goals, and the servos' joint states back to the policy."""
import numpy as np
import yaml
from sensor_msgs.msg import JointState
from tramoe_msgs.msg import PolicyAction

from model_fixtures import write_tiny_models
from node_fixtures import NodeProcess, TestNode, write_video
from robot_fixtures import LATENCY_TIMER_MS, write_calibration
from tramoe_ros.paths import config_path
from tramoe_ros.robot.emulator import EmulatedBus, Emulator, koch_arm
from tramoe_ros.ros import topics
from tramoe_ros.ros.qos import RELIABLE_QOS


def test_real_graph_drives_the_emulated_arms(tmp_path):
    params = yaml.safe_load(config_path("real.yaml").read_text())
    for view in ("agentview", "eye_in_hand"):
        write_video(tmp_path / f"{view}.avi")
        params[f"camera_{view}"]["ros__parameters"]["source"] = str(tmp_path / f"{view}.avi")
    track, policy = write_tiny_models(tmp_path, action_dim=12, proprio_dims={"joint_states": 12}, name="real")
    params["track_node"]["ros__parameters"].update(model_path=str(track), device="cpu")
    params["policy_node"]["ros__parameters"].update(policy_path=str(policy), track_model_path=str(track),
                                                    device="cpu")
    arm = params["arm_node"]["ros__parameters"]
    assert arm["backend"] == "dynamixel"
    arm["enabled"] = True
    arm["max_action_age_s"] = 0.0  # tiny models on a loaded CPU: the stale-action limit is not under test here
    buses = {side: EmulatedBus(koch_arm()) for side in arm["dynamixel"]["arms"]}
    for side, bus in buses.items():
        arm["dynamixel"][side].update(port=bus.port, calibration=str(write_calibration(tmp_path / f"{side}.yaml")))
    arm["dynamixel"]["latency_timer_ms"] = LATENCY_TIMER_MS
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(params))

    ros = TestNode("real_graph_probe")
    actions, joint_states = [], []
    ros.node.create_subscription(PolicyAction, topics.POLICY_ACTION, actions.append, RELIABLE_QOS)
    ros.node.create_subscription(JointState, topics.JOINT_STATES, joint_states.append, RELIABLE_QOS)
    with Emulator(list(buses.values())):
        up = NodeProcess("tramoe_ros.cli.up", ["real", f"params_file:={tmp_path / 'real.yaml'}"],
                         tmp_path / "up.log")
        try:
            ros.spin_until(lambda: len(actions) >= 20 or not up.alive(), 180, "actions from the real graph")
            assert up.alive(), up.output()
        finally:
            status = up.stop()
            ros.close()
        assert status == 0, up.log.read_text()
        assert actions[-1].dimension == 12
        names = params["policy_node"]["ros__parameters"]["proprio"]["joint_states"]
        assert list(joint_states[-1].name) == names  # the policy's proprio joints, as the arms publish them
        # The policy's actions moved the servos away from the zero pose where they started.
        moved = np.abs(np.array(joint_states[-1].position))
        assert moved.max() > 0.02, joint_states[-1].position
