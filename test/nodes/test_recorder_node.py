"""recorder_node in its own process: topics of standard and tramoe types, best-effort and latched, one appearing
late, recorded into a rosbag2 MCAP bag that rosbags' AnyReader reads back with every message, after SIGINT and
after SIGTERM."""
import signal

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from tramoe_msgs.msg import TrackArray

from node_fixtures import NodeProcess, ros_args
from tramoe_ros.ros.bag import read_bag
from tramoe_ros.ros.conversions import image_from_rgb, stamp_to_ns, tracks_to_msg
from tramoe_ros.ros.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS

COUNTS = {"/test/chatter": 30, "/test/image": 20, "/test/tracks": 10, "/test/latched": 1, "/test/late": 5}


def tracks_msg(i: int) -> TrackArray:
    header = Header(stamp=Header().stamp, frame_id="agentview")
    header.stamp.sec = i
    tracks = np.full((16, 32, 2), i / 100, np.float32)
    return TrackArray(header=header, views=[tracks_to_msg(tracks, tracks[0], "agentview", header, "model")])


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_bag_written_and_read_back_complete(driver, tmp_path, stop_signal):
    node = driver.node
    latched = node.create_publisher(String, "/test/latched", LATCHED_QOS)
    latched.publish(String(data="published before the recorder started"))
    publishers = {"/test/chatter": node.create_publisher(String, "/test/chatter", RELIABLE_QOS),
                  "/test/image": node.create_publisher(Image, "/test/image", IMAGE_QOS),
                  "/test/tracks": node.create_publisher(TrackArray, "/test/tracks", RELIABLE_QOS)}
    bag = tmp_path / "bag"
    recorder = NodeProcess("tramoe_ros.nodes.recorder_node", ros_args(
        {"topics": list(COUNTS), "output": str(bag), "discovery_period_s": 0.1}), tmp_path / "recorder.log")
    try:
        driver.spin_until(lambda: all(p.get_subscription_count() for p in publishers.values())
                          and latched.get_subscription_count(), 20, "the recorder to subscribe")
        for i in range(30):
            publishers["/test/chatter"].publish(String(data=f"message {i}"))
            if i < 20:
                rgb = np.full((8, 8, 3), i, np.uint8)
                publishers["/test/image"].publish(image_from_rgb(rgb, Header(stamp=node.get_clock().now().to_msg())))
            if i < 10:
                publishers["/test/tracks"].publish(tracks_msg(i))
            driver.spin_for(0.005)
        late = node.create_publisher(String, "/test/late", RELIABLE_QOS)  # appears after recording started
        driver.spin_until(lambda: late.get_subscription_count(), 10, "the recorder to find the late topic")
        for i in range(5):
            late.publish(String(data=f"late {i}"))
        driver.spin_for(0.5)  # delivery
    finally:
        status = recorder.stop(stop_signal)
        for publisher in [latched, *publishers.values()]:
            node.destroy_publisher(publisher)
    assert status == 0, recorder.output()

    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["storage_identifier"] == "mcap"
    assert {t["topic_metadata"]["name"]: t["message_count"] for t in metadata["topics_with_message_count"]} == COUNTS
    with AnyReader([bag]) as reader:
        counted = {c.topic: 0 for c in reader.connections}
        decoded = {}
        for connection, _, raw in reader.messages():
            counted[connection.topic] += 1
            decoded[connection.topic] = reader.deserialize(raw, connection.msgtype)
    assert counted == COUNTS
    assert decoded["/test/chatter"].data == "message 29"
    assert decoded["/test/tracks"].views[0].num_points == 32  # a tramoe_msgs type, from the embedded definition
    assert decoded["/test/latched"].data == "published before the recorder started"
    images = [m for topic, _, m in read_bag(bag, ["/test/image"])]  # and as rclpy messages
    assert [m.data[0] for m in images] == list(range(20))
    assert stamp_to_ns(images[0].header.stamp) > 0


def test_topic_known_only_from_subscribers_waits_for_its_publisher_qos(driver, tmp_path):
    """A listener that starts before the publisher makes the topic visible without a QoS to copy; the recorder
    waits for the publisher, then records with its QoS (reliable, transient local) and stores it for replay."""
    node = driver.node
    node.create_subscription(String, "/test/status", lambda _: None, LATCHED_QOS)  # the listener, first
    bag = tmp_path / "bag"
    recorder = NodeProcess("tramoe_ros.nodes.recorder_node", ros_args(
        {"topics": ["/test/status"], "output": str(bag), "discovery_period_s": 0.1}), tmp_path / "recorder.log")
    try:
        driver.spin_until(lambda: "recording ['/test/status']" in recorder.output() or not recorder.alive(), 30,
                          "the recorder to start")
        driver.spin_for(1.0)  # several discovery periods with the topic known from its listener only
        publisher = node.create_publisher(String, "/test/status", LATCHED_QOS)
        publisher.publish(String(data="latched, published before the recorder subscribed"))
        driver.spin_until(lambda: publisher.get_subscription_count() >= 2, 10, "the recorder to subscribe")
        driver.spin_for(0.5)
    finally:
        assert recorder.stop() == 0, recorder.output()
    topics = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
        "topics_with_message_count"]
    (status,) = [t for t in topics if t["topic_metadata"]["name"] == "/test/status"]
    assert status["message_count"] == 1  # transient local: the message published before the subscription
    offered = status["topic_metadata"]["offered_qos_profiles"]
    offered = yaml.safe_load(offered) if isinstance(offered, str) else offered
    assert offered and offered[0]["durability"] in (1, "transient_local"), offered
