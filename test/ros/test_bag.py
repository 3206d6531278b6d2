"""BagWriter: rosbag2 MCAP bags of standard and tramoe message types, with the records rosbag2's MCAP plugin
expects (ros2 profile, ros2msg schemas, cdr messages, the rosbag2 metadata record) and metadata.yaml."""
import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from std_msgs.msg import Header, String
from tramoe_msgs.msg import EpisodeStatus, TrackArray

from tramoe_ros.ros.bag import BagError, BagWriter, read_bag
from tramoe_ros.ros.conversions import ns_to_stamp, tracks_to_msg
from tramoe_ros.ros.qos import LATCHED_QOS


def track_array(i: int) -> TrackArray:
    header = Header(stamp=ns_to_stamp(i), frame_id="agentview")
    tracks = np.full((16, 32, 2), 0.5, np.float32)
    return TrackArray(header=header, views=[tracks_to_msg(tracks, tracks[0], "agentview", header, f"model-{i}")])


@pytest.fixture
def bag(tmp_path):
    writer = BagWriter(tmp_path / "bag")
    writer.add_topic("/instruction", "std_msgs/msg/String", [LATCHED_QOS])
    writer.add_topic("/tracks", "tramoe_msgs/msg/TrackArray", [qos_profile_sensor_data])
    writer.add_topic("/episode_status", "tramoe_msgs/msg/EpisodeStatus")
    writer.write("/instruction", 10, serialize_message(String(data="pick up the soup")))
    for i in range(3):
        writer.write("/tracks", 20 + i, serialize_message(track_array(i)))
        writer.write("/episode_status", 21 + i, serialize_message(EpisodeStatus(step=i)))
    writer.close()
    writer.close()  # idempotent
    return tmp_path / "bag"


def test_metadata_yaml(bag):
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert (info["version"], info["storage_identifier"], info["message_count"]) == (9, "mcap", 7)
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert topics["/tracks"]["message_count"] == 3
    assert topics["/tracks"]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    latched = topics["/instruction"]["topic_metadata"]["offered_qos_profiles"][0]
    assert (latched["durability"], latched["reliability"]) == ("transient_local", "reliable")


def test_mcap_records_are_rosbag2s(bag):
    with open(bag / "bag.mcap", "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        schemas = {s.name: s.data.decode() for s in summary.schemas.values()}
        # The nested tramoe type's definition is embedded, so the bag decodes without tramoe_msgs installed.
        assert "MSG: tramoe_msgs/Tracks" in schemas["tramoe_msgs/msg/TrackArray"]
        assert [m.name for m in reader.iter_metadata()] == ["rosbag2"]


def test_read_back_with_rosbags_and_rclpy(bag):
    with AnyReader([bag]) as reader:
        decoded = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert decoded[0].data == "pick up the soup"
    assert [m.views[0].model_id for m in decoded if hasattr(m, "views")] == ["model-0", "model-1", "model-2"]
    messages = list(read_bag(bag, ["/episode_status"]))
    assert [(topic, t, m.step) for topic, t, m in messages] == [("/episode_status", 21 + i, i) for i in range(3)]


def test_existing_folder_is_refused(bag):
    with pytest.raises(BagError, match="exists already"):
        BagWriter(bag)


def test_incomplete_bag_is_named(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml"):
        list(read_bag(tmp_path / "half"))
