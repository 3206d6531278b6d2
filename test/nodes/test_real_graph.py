"""The real-robot graph from config/real.yaml, started by `tramoe-up real` in one process, with two video files as
cameras and the ros2_control arm backend: camera frames -> tracks -> actions -> joint trajectories."""
import yaml
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory
from tramoe_msgs.msg import PolicyAction, TrackArray

from model_fixtures import write_tiny_models
from node_fixtures import NodeProcess, write_video
from tramoe_ros.paths import config_path
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import stamp_to_ns
from tramoe_ros.ros.qos import IMAGE_QOS, RELIABLE_QOS


def real_params(tmp_path) -> tuple[dict, list[str]]:
    """config/real.yaml with video files for cameras, tiny 12-D models and the arm enabled."""
    params = yaml.safe_load(config_path("real.yaml").read_text())
    for view in ("agentview", "eye_in_hand"):
        write_video(tmp_path / f"{view}.avi")
        params[f"camera_{view}"]["ros__parameters"]["source"] = str(tmp_path / f"{view}.avi")
    joints = params["arm_node"]["ros__parameters"]["ros2_control"]["joint_names"]
    track, policy = write_tiny_models(tmp_path, action_dim=12, proprio_dims={"joint_states": 12}, name="real")
    params["track_node"]["ros__parameters"].update(model_path=str(track), device="cpu")
    params["policy_node"]["ros__parameters"].update(policy_path=str(policy), track_model_path=str(track),
                                                    device="cpu")
    params["arm_node"]["ros__parameters"]["enabled"] = True
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(params))
    return params, joints


def test_real_graph_cameras_to_joint_trajectories(driver, tmp_path):
    params, joints = real_params(tmp_path)
    node = driver.node
    tracks, actions, trajectories, frames = [], [], [], []
    node.create_subscription(TrackArray, topics.TRACKS, tracks.append, RELIABLE_QOS)
    for view in ("agentview", "eye_in_hand"):
        node.create_subscription(Image, topics.camera_image(view),
                                 lambda m: frames.append(stamp_to_ns(m.header.stamp)), IMAGE_QOS)
    node.create_subscription(PolicyAction, topics.POLICY_ACTION, actions.append, RELIABLE_QOS)
    node.create_subscription(JointTrajectory, topics.joint_trajectory("arm_controller"), trajectories.append,
                             RELIABLE_QOS)
    joint_states = node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS)
    up = NodeProcess("tramoe_ros.cli.up", ["real", f"params_file:={tmp_path / 'real.yaml'}",
                                           "arm_backend:=ros2_control"], tmp_path / "up.log")
    try:
        def moving() -> bool:
            # The arm's present position comes from /joint_states, as from a ros2_control joint_state_broadcaster.
            joint_states.publish(JointState(header=Header(stamp=node.get_clock().now().to_msg()), name=joints,
                                            position=[0.0] * len(joints)))
            assert up.alive(), up.output()
            return len(trajectories) >= 3

        driver.spin_until(moving, 180, "joint trajectories from the real graph")
    finally:
        assert up.stop() == 0, up.output()
    assert [v.view for v in tracks[-1].views] == ["agentview", "eye_in_hand"]
    assert {v.header.frame_id for v in tracks[-1].views} == {"agentview", "eye_in_hand"}
    # In real time (config/real.yaml) an action carries the stamp of the newest camera frame of its image pair, and
    # its tracks came from frames no newer (the track model runs beside the policy).
    stamp = stamp_to_ns(actions[-1].header.stamp)
    assert stamp in set(frames)
    assert min(stamp_to_ns(t.header.stamp) for t in tracks) <= stamp
    assert actions[-1].dimension == 12
    assert trajectories[-1].joint_names == joints and len(trajectories[-1].points[0].positions) == 12
    # Each command moves at most ros2_control.max_step from the present position (0 here).
    max_step = params["arm_node"]["ros__parameters"]["ros2_control"]["max_step"]
    assert all(abs(p) <= max_step + 1e-9 for t in trajectories for p in t.points[0].positions)
