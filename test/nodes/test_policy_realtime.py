"""policy_node in real time: it acts on every new image set as soon as its joint state is there, with the newest
tracks predicted from images no newer than these (the track model runs beside the policy, a frame behind), never
with tracks of later images or older than `max_track_lag_s`. Each action equals the shared inference path's
(`PolicyRunner`) for the same images, joint state and tracks."""
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from tramoe_msgs.msg import PolicyAction, TrackArray

from node_fixtures import NodeProcess, ros_args
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import image_from_rgb, ns_to_stamp, stamp_to_ns, tracks_to_msg
from tramoe_ros.ros.qos import IMAGE_QOS, RELIABLE_QOS

VIEWS = ["agentview", "eye_in_hand"]
ARM_JOINTS = [f"robot0_joint{i}" for i in range(1, 8)]
FINGERS = ["gripper0_finger_joint1", "gripper0_finger_joint2"]
MS = 1_000_000
MAX_LAG_S = 0.25


@pytest.fixture(scope="module")
def policy(tiny_models, tmp_path_factory, driver):
    _, policy_path = tiny_models
    node = NodeProcess("tramoe_ros.nodes.policy_node", ros_args(
        {"policy_path": str(policy_path), "device": "cpu", "mode": "realtime", "control_rate_hz": 0.0,
         "sync_tolerance_s": 0.0, "max_track_lag_s": MAX_LAG_S, "joint_state_tolerance_s": 0.0,
         "proprio.joint_states": ARM_JOINTS, "proprio.gripper_states": FINGERS}),
        tmp_path_factory.mktemp("logs") / "policy.log")
    io = {"joints": driver.node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS),
          "cameras": {v: driver.node.create_publisher(Image, topics.camera_image(v), IMAGE_QOS) for v in VIEWS},
          "tracks": driver.node.create_publisher(TrackArray, topics.TRACKS, RELIABLE_QOS), "actions": []}
    driver.node.create_subscription(PolicyAction, topics.POLICY_ACTION, io["actions"].append, RELIABLE_QOS)

    def ready() -> bool:
        assert node.alive(), node.output()
        return driver.node.count_subscribers(topics.TRACKS) >= 1 and \
            driver.node.count_publishers(topics.POLICY_ACTION) >= 1

    driver.spin_until(ready, 120, "the policy node to start")
    yield io, PolicyRunner.from_checkpoints(policy_path)
    assert node.stop() == 0, node.output()


def observation(io, stamp: int, seed: int) -> tuple[dict, dict]:
    """Publish joint state and images as the bridge does; return them as the runner takes them."""
    rng = np.random.default_rng(seed)
    header = Header(stamp=ns_to_stamp(stamp))
    position = rng.normal(size=9)
    io["joints"].publish(JointState(header=header, name=ARM_JOINTS + FINGERS, position=position.tolist()))
    images = {v: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for v in VIEWS}
    for view, rgb in images.items():
        io["cameras"][view].publish(image_from_rgb(rgb, Header(stamp=header.stamp, frame_id=view)))
    proprio = {"joint_states": position[:7].astype(np.float32), "gripper_states": position[7:].astype(np.float32)}
    return images, proprio


def tracks(io, stamp: int, seed: int) -> dict:
    """Publish a TrackArray predicted (here: drawn at random) from the images stamped `stamp`."""
    rng = np.random.default_rng(1000 + seed)
    queries = sample_double_grid(4)
    per_view = {v: np.clip(queries + rng.normal(0, 0.05, (16, 32, 2)), 0, 1).astype(np.float32) for v in VIEWS}
    header = Header(stamp=ns_to_stamp(stamp))
    io["tracks"].publish(TrackArray(header=header, views=[
        tracks_to_msg(per_view[v], queries, v, Header(stamp=header.stamp, frame_id=v), "test") for v in VIEWS]))
    return per_view


def actions_for(io, stamp: int) -> list[np.ndarray]:
    return [np.array(m.action) for m in io["actions"] if stamp_to_ns(m.header.stamp) == stamp]


def test_acts_on_new_images_with_the_newest_earlier_tracks(driver, policy):
    io, runner = policy
    runner.reset()
    s0 = driver.node.get_clock().now().nanoseconds
    images0, proprio0 = observation(io, s0, seed=0)
    driver.spin_for(1.0)
    assert not actions_for(io, s0), "acted before any tracks were predicted"
    tracks0 = tracks(io, s0, seed=0)
    driver.spin_until(lambda: actions_for(io, s0), 10, "the first action, once its tracks are there")
    expected = [(s0, runner.step(images0, proprio0, "", tracks0))]

    # The next camera frame is acted on at once, with the previous frame's tracks.
    s1 = s0 + 50 * MS
    images1, proprio1 = observation(io, s1, seed=1)
    driver.spin_until(lambda: actions_for(io, s1), 10, "the action of the next frame, before its tracks")
    expected.append((s1, runner.step(images1, proprio1, "", tracks0)))

    # Tracks of frame 1 and of a later frame 3 arrive; frame 2 takes frame 1's, never those of later images.
    tracks1 = tracks(io, s1, seed=1)
    s2, s3 = s1 + 50 * MS, s1 + 100 * MS
    tracks(io, s3, seed=3)
    driver.spin_for(0.3)
    images2, proprio2 = observation(io, s2, seed=2)
    driver.spin_until(lambda: actions_for(io, s2), 10, "the action of frame 2")
    expected.append((s2, runner.step(images2, proprio2, "", tracks1)))

    # Tracks older than max_track_lag_s are not used: the policy waits for newer ones.
    s4 = s3 + int((MAX_LAG_S + 0.2) * 1e9)
    images4, proprio4 = observation(io, s4, seed=4)
    driver.spin_for(1.0)
    assert not actions_for(io, s4), "acted on tracks older than max_track_lag_s"
    tracks4 = tracks(io, s4, seed=4)
    driver.spin_until(lambda: actions_for(io, s4), 10, "the action once fresh tracks arrived")
    expected.append((s4, runner.step(images4, proprio4, "", tracks4)))

    for stamp, action in expected:
        received = actions_for(io, stamp)
        assert len(received) == 1
        np.testing.assert_allclose(received[0], action, atol=1e-5)
