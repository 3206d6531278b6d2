"""The LIBERO bridge in real time with a camera rate: it steps and publishes joint states at its control rate, and
renders and publishes the cameras only every camera period, each image stamped like the joint state of its step."""
import importlib.util

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from tramoe_msgs.msg import EpisodeStatus, PolicyAction

from node_fixtures import NodeProcess, ros_args
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import action_to_msg, stamp_to_ns
from tramoe_ros.ros.qos import IMAGE_QOS, RELIABLE_QOS, STATUS_QOS
from tramoe_ros.sim.libero_env import NOOP_ACTION

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libero") is None, reason="LIBERO is not installed")

CONTROL_HZ, CAMERA_HZ, STEPS = 10.0, 2.5, 20


def test_cameras_render_at_their_rate_beside_the_control_rate(driver, tmp_path):
    joint_stamps, image_stamps, statuses = [], {"agentview": [], "eye_in_hand": []}, []
    driver.node.create_subscription(JointState, topics.JOINT_STATES,
                                    lambda m: joint_stamps.append(stamp_to_ns(m.header.stamp)), RELIABLE_QOS)
    for view, stamps in image_stamps.items():
        driver.node.create_subscription(Image, topics.camera_image(view),
                                        lambda m, s=stamps: s.append(stamp_to_ns(m.header.stamp)), IMAGE_QOS)
    driver.node.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, statuses.append, STATUS_QOS)
    actions = driver.node.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)
    bridge = NodeProcess("tramoe_ros.nodes.libero_bridge_node", ros_args(
        {"mode": "realtime", "control_rate_hz": CONTROL_HZ, "camera_rate_hz": CAMERA_HZ, "max_steps": STEPS}),
        tmp_path / "bridge.log")
    try:
        driver.spin_until(lambda: statuses or not bridge.alive(), 240, "the bridge's first observation")
        assert bridge.alive(), bridge.output()
        # The world waits for its first action; one starts the episode, then the bridge holds on its own.
        actions.publish(action_to_msg(NOOP_ACTION, statuses[-1].header, 0.0, "test"))
        driver.spin_until(lambda: any(s.done for s in statuses), 60, "the episode to end")
        driver.spin_for(0.5)
    finally:
        assert bridge.stop() == 0, bridge.output()

    stepped = sorted({stamp_to_ns(s.header.stamp) for s in statuses if s.step > 0})
    assert len(stepped) == STEPS
    for view, stamps in image_stamps.items():
        rendered = sorted(set(stamps) & set(stepped))
        # Every image belongs to a step's observation (the same stamp as its joint state) ...
        assert set(stamps) <= set(joint_stamps), view
        # ... about one per camera period (stamped after the step, so a control period of slack) ...
        gaps_s = np.diff(rendered) / 1e9
        assert len(rendered) >= 2 and (gaps_s >= 1 / CAMERA_HZ - 1 / CONTROL_HZ).all(), (view, gaps_s)
        # ... so most steps publish joint states without rendering.
        assert len(rendered) <= STEPS * CAMERA_HZ / CONTROL_HZ + 1, (view, len(rendered))
