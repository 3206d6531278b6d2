"""The shipped robot configuration agrees with itself: the real graph's dynamixel arms, tramoe-teleop's arms, the
policy's proprio joints and the real-robot policy training config describe the same 12 joints and 2 views, and
the example calibration files load and fit their arms."""
import yaml

from tramoe_ros.config import PolicyTrainConfig, load_config
from tramoe_ros.paths import config_path, share_dir
from tramoe_ros.robot.calibration import load_calibration
from tramoe_ros.robot.teleop import TeleopConfig


def test_shipped_robot_configs_describe_the_same_arms():
    real = yaml.safe_load(config_path("real.yaml").read_text())
    dynamixel = real["arm_node"]["ros__parameters"]["dynamixel"]
    graph_joints = [j for arm in dynamixel["arms"] for j in dynamixel[arm]["joint_names"]]
    assert graph_joints == real["policy_node"]["ros__parameters"]["proprio"]["joint_states"]
    assert graph_joints == real["arm_node"]["ros__parameters"]["ros2_control"]["joint_names"]
    assert len(graph_joints) == real["arm_node"]["ros__parameters"]["action_dim"] == 12

    teleop = load_config(TeleopConfig, config_path("robot/teleop.yaml"))
    assert [j for pair in teleop.arms for j in pair.joint_names] == graph_joints
    assert [c.view for c in teleop.cameras] == real["track_node"]["ros__parameters"]["views"]
    assert teleop.record_rate_hz == real["policy_node"]["ros__parameters"]["control_rate_hz"]

    policy = load_config(PolicyTrainConfig, config_path("train_policy_real.yaml"))
    assert policy.model.action_dim == len(graph_joints)
    assert policy.model.proprio_dims == {"joint_states": len(graph_joints)}
    assert policy.model.views == policy.data.views == [c.view for c in teleop.cameras]

    for arm in dynamixel["arms"]:
        follower = load_calibration(share_dir() / dynamixel[arm]["calibration"])
        assert follower.ids == dynamixel[arm]["ids"] and follower.joints[-1].gripper
    for pair in teleop.arms:
        for side in (pair.leader, pair.follower):
            assert load_calibration(share_dir() / side.calibration).ids == side.ids


def test_real_track_model_config_matches_the_graph_and_the_policy():
    from tramoe_ros.config import TrackTrainConfig

    tracks = load_config(TrackTrainConfig, config_path("train_tracks_real.yaml"))
    assert {s.domain for s in tracks.data.sources} == {"robot", "human"} and tracks.data.val_domains == ["robot"]
    policy = load_config(PolicyTrainConfig, config_path("train_policy_real.yaml"))
    real = yaml.safe_load(config_path("real.yaml").read_text())
    assert real["track_node"]["ros__parameters"]["model_path"] == policy.track_model
    assert real["policy_node"]["ros__parameters"]["track_model_path"] == policy.track_model
    assert tracks.model.horizon == policy.model.horizon and tracks.model.num_points == policy.model.num_points
