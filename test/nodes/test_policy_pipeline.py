"""track_node -> policy_node -> arm_node (libero backend), each in its own process, with the test playing the
LIBERO bridge: every action reaches the bridge topic stamped with the images it came from; a re-sent observation
gets the same action again; malformed tracks are counted, not fatal; when the cameras stop, the diagnostics report
the stale input and the arm holds."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String
from tramoe_msgs.msg import EpisodeStatus, PolicyAction, TrackArray, Tracks

from node_fixtures import NodeProcess, ros_args, stop_all
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import image_from_rgb, ns_to_stamp, stamp_to_ns
from tramoe_ros.ros.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS, STATUS_QOS

VIEWS = ["agentview", "eye_in_hand"]
ARM_JOINTS = [f"robot0_joint{i}" for i in range(1, 8)]
FINGERS = ["gripper0_finger_joint1", "gripper0_finger_joint2"]


@pytest.fixture(scope="module")
def pipeline(tiny_models, tmp_path_factory, driver):
    track, policy = tiny_models
    logs = tmp_path_factory.mktemp("logs")
    processes = {
        "track_node": NodeProcess("tramoe_ros.nodes.track_node", ros_args(
            {"model_path": str(track), "device": "cpu", "stale_after_s": 0.5}), logs / "track.log"),
        "policy_node": NodeProcess("tramoe_ros.nodes.policy_node", ros_args(
            {"policy_path": str(policy), "device": "cpu", "mode": "lockstep", "control_rate_hz": 0.0,
             "joint_state_tolerance_s": 0.0,
             "proprio.joint_states": ARM_JOINTS, "proprio.gripper_states": FINGERS}), logs / "policy.log"),
        "arm_node": NodeProcess("tramoe_ros.nodes.arm_node", ros_args(
            {"backend": "libero", "enabled": True, "watchdog_timeout_s": 0.5, "stale_after_s": 0.5}),
            logs / "arm.log"),
    }
    node = driver.node
    io = {
        "instruction": node.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS),
        "status": node.create_publisher(EpisodeStatus, topics.EPISODE_STATUS, STATUS_QOS),
        "joints": node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS),
        "cameras": {v: node.create_publisher(Image, topics.camera_image(v), IMAGE_QOS) for v in VIEWS},
        "tracks": node.create_publisher(TrackArray, topics.TRACKS, RELIABLE_QOS),
        "actions": [], "diagnostics": {},
    }
    node.create_subscription(PolicyAction, topics.LIBERO_ACTION, lambda m: io["actions"].append(
        (node.get_clock().now().nanoseconds, m)), RELIABLE_QOS)
    node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, lambda m: io["diagnostics"].update(
        {s.name: s for s in m.status}), RELIABLE_QOS)

    def ready() -> bool:
        dead = [name for name, p in processes.items() if not p.alive()]
        assert not dead, "\n".join(processes[n].output() for n in dead)
        return (node.count_subscribers(topics.camera_image("agentview")) >= 2  # track and policy nodes
                and node.count_subscribers(topics.TRACKS) >= 1  # policy node
                and node.count_publishers(topics.POLICY_ACTION) >= 1  # policy node
                and node.count_publishers(topics.LIBERO_ACTION) >= 1)  # arm node

    try:
        driver.spin_until(ready, 120, "the three nodes to start")
    except AssertionError:
        stop_all(processes.values())
        raise
    io["instruction"].publish(String(data="pick up the soup"))
    io["status"].publish(EpisodeStatus(episode=0, step=0))

    def instruction_received() -> bool:  # image sets before it are dropped
        status = io["diagnostics"].get("/track_node")
        return status is not None and any(kv.key == "age_s:/instruction" and kv.value != "never"
                                          for kv in status.values)

    try:
        driver.spin_until(instruction_received, 10, "the track node to receive the instruction")
    except AssertionError:
        stop_all(processes.values())
        raise
    yield io, processes
    for name, process in processes.items():
        assert process.stop() == 0, process.output()


def publish_observation(driver, io, stamp_ns: int, seed: int) -> None:
    """What the bridge publishes for one step: joint states, then the images, all with one stamp."""
    header = Header(stamp=ns_to_stamp(stamp_ns))
    rng = np.random.default_rng(seed)
    io["joints"].publish(JointState(header=header, name=ARM_JOINTS + FINGERS, position=rng.normal(size=9).tolist()))
    for view, publisher in io["cameras"].items():
        rgb = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        publisher.publish(image_from_rgb(rgb, Header(stamp=header.stamp, frame_id=view)))


def action_for(io, stamp_ns: int):
    return [m for _, m in io["actions"] if stamp_to_ns(m.header.stamp) == stamp_ns]


def test_each_observation_gets_an_action_stamped_with_its_images(driver, pipeline):
    io, _ = pipeline
    for step in range(4):
        stamp = driver.node.get_clock().now().nanoseconds
        publish_observation(driver, io, stamp, seed=step)
        driver.spin_until(lambda: action_for(io, stamp), 30 if step == 0 else 10, f"the action of step {step}")
        action = action_for(io, stamp)[0]
        assert action.dimension == 7 and len(action.action) == 7
        assert all(-1.0 <= a <= 1.0 for a in action.action)
        assert action.model_id.startswith("tiny_policy-") and action.inference_latency_ms > 0


def test_resent_observation_gets_the_same_action(driver, pipeline):
    io, _ = pipeline
    stamp = driver.node.get_clock().now().nanoseconds
    publish_observation(driver, io, stamp, seed=10)
    driver.spin_until(lambda: action_for(io, stamp), 10, "the first action")
    publish_observation(driver, io, stamp, seed=10)  # lock-step re-send: same stamp, same content
    driver.spin_until(lambda: len(action_for(io, stamp)) == 2, 10, "the re-sent action")
    first, again = action_for(io, stamp)
    assert list(first.action) == list(again.action)


def test_malformed_tracks_counted_not_fatal(driver, pipeline):
    io, processes = pipeline
    bad = Tracks(view="agentview", horizon=16, num_points=32, points=[0.5] * 10)
    io["tracks"].publish(TrackArray(header=Header(stamp=driver.node.get_clock().now().to_msg()), views=[bad]))

    def counted() -> bool:
        status = io["diagnostics"].get("/policy_node")
        return status is not None and any(kv.key == "dropped/bad_tracks_length" for kv in status.values)

    driver.spin_until(counted, 5, "malformed tracks in the policy's diagnostics")
    stamp = driver.node.get_clock().now().nanoseconds
    publish_observation(driver, io, stamp, seed=20)
    driver.spin_until(lambda: action_for(io, stamp), 10, "an action after malformed tracks")
    assert processes["policy_node"].alive()


def test_stopped_cameras_reported_stale_and_arm_holds(driver, pipeline):
    io, processes = pipeline
    driver.spin_for(0.8)  # no observations: past the arm's 0.5 s watchdog and the 0.5 s staleness limit

    def reported() -> bool:
        arm, track = io["diagnostics"].get("/arm_node"), io["diagnostics"].get("/track_node")
        return (arm is not None and {kv.key: kv.value for kv in arm.values}.get("holding") == "True"
                and track is not None and "stale input /cameras/agentview/image_raw" in track.message)

    driver.spin_until(reported, 5, "stale cameras and a holding arm in the diagnostics")
    assert all(p.alive() for p in processes.values())


def test_observations_from_before_a_new_episode_are_not_acted_on(driver, pipeline):
    """Images of the last episode whose tracks arrive after the next episode's status (a busy machine) get no
    action: acted on, they would be the first frame of the new episode's stack."""
    io, _ = pipeline
    old = driver.node.get_clock().now().nanoseconds
    io["status"].publish(EpisodeStatus(header=Header(stamp=ns_to_stamp(old + 1_000_000)), episode=1, step=0))
    driver.spin_for(0.2)
    publish_observation(driver, io, old, seed=30)

    def counted() -> bool:
        status = io["diagnostics"].get("/policy_node")
        return status is not None and any(kv.key == "ignored_before_episode_start" for kv in status.values)

    driver.spin_until(counted, 10, "the old observation counted as ignored")
    assert action_for(io, old) == []
    new = driver.node.get_clock().now().nanoseconds
    publish_observation(driver, io, new, seed=31)
    driver.spin_until(lambda: action_for(io, new), 10, "the new episode's action")
