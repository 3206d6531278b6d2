"""Image, tracks, action and joint-state conversions: round trips, and a MalformedMessage with a reason for every
kind of bad input."""
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.ros.conversions import (action_from_msg, action_to_msg, image_from_rgb, joint_positions, ns_to_stamp,
                                        planned_from_msg, rgb_from_image, stamp_to_ns, tracks_from_msg, tracks_to_msg)
from tramoe_ros.ros.errors import MalformedMessage

RNG = np.random.default_rng(0)


def header(ns: int = 1_700_000_000_123_456_789) -> Header:
    return Header(stamp=ns_to_stamp(ns), frame_id="agentview")


def test_stamp_round_trip():
    ns = 1_700_000_000_123_456_789
    stamp = ns_to_stamp(ns)
    assert (stamp.sec, stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert stamp_to_ns(stamp) == ns


def test_rgb8_round_trip_keeps_pixels_and_header():
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    msg = image_from_rgb(rgb, header())
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 6, 5, 15)
    assert msg.header.frame_id == "agentview" and stamp_to_ns(msg.header.stamp) == stamp_to_ns(header().stamp)
    np.testing.assert_array_equal(rgb_from_image(msg), rgb)


def test_bgr8_and_mono8_become_rgb():
    rgb = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    bgr = Image(height=4, width=4, encoding="bgr8", step=12, data=rgb[..., ::-1].tobytes())
    np.testing.assert_array_equal(rgb_from_image(bgr), rgb)
    gray = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    mono = Image(height=4, width=4, encoding="mono8", step=4, data=gray.tobytes())
    np.testing.assert_array_equal(rgb_from_image(mono), np.repeat(gray[..., None], 3, axis=2))


def test_padded_rows_are_cropped():
    rgb = RNG.integers(0, 256, (3, 2, 3), dtype=np.uint8)
    padded = np.zeros((3, 8), np.uint8)
    padded[:, :6] = rgb.reshape(3, 6)
    msg = Image(height=3, width=2, encoding="rgb8", step=8, data=padded.tobytes())
    np.testing.assert_array_equal(rgb_from_image(msg), rgb)


def test_returned_image_is_a_writable_copy():
    msg = image_from_rgb(np.zeros((2, 2, 3), np.uint8), header())
    rgb = rgb_from_image(msg)
    rgb[0, 0, 0] = 255
    assert rgb_from_image(msg)[0, 0, 0] == 0


@pytest.mark.parametrize("msg, reason", [
    (Image(height=2, width=2, encoding="rgba8", step=8, data=bytes(16)), "unknown_encoding"),
    (Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8)), "unknown_encoding"),
    (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty_image"),
    (Image(height=2, width=2, encoding="rgb8", step=5, data=bytes(10)), "bad_step"),
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), "bad_data_length"),
])
def test_malformed_images_name_their_reason(msg, reason):
    with pytest.raises(MalformedMessage) as error:
        rgb_from_image(msg)
    assert error.value.reason == reason


def test_image_of_the_wrong_size_is_refused_when_a_size_is_required():
    msg = image_from_rgb(np.zeros((64, 48, 3), np.uint8), header())
    with pytest.raises(MalformedMessage, match="is 48x64, expected 128x128") as error:
        rgb_from_image(msg, size=128)
    assert error.value.reason == "wrong_size"


def test_tracks_round_trip_with_visibility_from_the_image_bounds():
    tracks = RNG.uniform(-0.2, 1.2, (16, 32, 2)).astype(np.float32)
    queries = RNG.uniform(0, 1, (32, 2)).astype(np.float32)
    msg = tracks_to_msg(tracks, queries, "eye_in_hand", header(), "track_moe-123")
    assert (msg.view, msg.horizon, msg.num_points, msg.model_id) == ("eye_in_hand", 16, 32, "track_moe-123")
    points, visibility, query_points = tracks_from_msg(msg)
    np.testing.assert_array_equal(points, tracks)
    np.testing.assert_array_equal(query_points, queries)
    np.testing.assert_array_equal(visibility, ((tracks >= 0) & (tracks <= 1)).all(-1))


def test_malformed_tracks_name_their_reason():
    msg = tracks_to_msg(np.zeros((16, 32, 2), np.float32), np.zeros((32, 2), np.float32), "agentview", header(), "m")
    msg.num_points = 31
    with pytest.raises(MalformedMessage) as error:
        tracks_from_msg(msg)
    assert error.value.reason == "bad_tracks_length"
    msg.num_points = 32
    msg.points[5] = float("nan")
    with pytest.raises(MalformedMessage) as error:
        tracks_from_msg(msg)
    assert error.value.reason == "nonfinite_tracks"


def test_action_round_trip_and_checks():
    action = np.array([0.1, -0.2, 0.3, 0, 0, 0, -1], np.float32)
    msg = action_to_msg(action, header(), 12.5, "policy-1")
    assert (msg.dimension, msg.inference_latency_ms, msg.model_id) == (7, 12.5, "policy-1")
    np.testing.assert_array_equal(action_from_msg(msg, 7), action)
    with pytest.raises(MalformedMessage) as error:
        action_from_msg(msg, 12)
    assert error.value.reason == "wrong_action_dimension"
    with pytest.raises(MalformedMessage) as error:
        action_from_msg(PolicyAction(dimension=7, action=[0.0] * 6), 7)
    assert error.value.reason == "bad_action_length"
    with pytest.raises(MalformedMessage) as error:
        action_from_msg(action_to_msg(np.full(7, np.inf, np.float32), header(), 0, ""), 7)
    assert error.value.reason == "nonfinite_action"


def test_planned_actions_round_trip_and_checks():
    action = np.zeros(7, np.float32)
    planned = np.arange(21, dtype=np.float32).reshape(3, 7) / 21
    msg = action_to_msg(action, header(), 0.0, "chunk", planned=planned)
    np.testing.assert_array_equal(planned_from_msg(msg, 7), planned)
    assert planned_from_msg(action_to_msg(action, header(), 0.0, "one"), 7).shape == (0, 7)
    # A column slice is not contiguous: it is packed row by row all the same.
    np.testing.assert_array_equal(planned_from_msg(action_to_msg(action[:2], header(), 0.0, "", planned[:, :2]), 2),
                                  planned[:, :2])
    with pytest.raises(MalformedMessage) as error:
        planned_from_msg(PolicyAction(dimension=7, action=[0.0] * 7, planned=[0.0] * 10), 7)
    assert error.value.reason == "bad_planned_length"
    planned[1, 3] = np.nan
    with pytest.raises(MalformedMessage) as error:
        planned_from_msg(action_to_msg(action, header(), 0.0, "", planned), 7)
    assert error.value.reason == "nonfinite_action"


def test_joint_positions_in_the_requested_order():
    msg = JointState(name=["c", "a", "b"], position=[3.0, 1.0, 2.0])
    np.testing.assert_array_equal(joint_positions(msg, ["a", "b", "c"]), [1.0, 2.0, 3.0])
    with pytest.raises(MalformedMessage, match=r"lacks joints \['d'\]") as error:
        joint_positions(msg, ["a", "d"])
    assert error.value.reason == "missing_joints"
    with pytest.raises(MalformedMessage) as error:
        joint_positions(JointState(name=["a", "b"], position=[1.0]), ["a"])
    assert error.value.reason == "bad_joint_state"
    with pytest.raises(MalformedMessage) as error:
        joint_positions(JointState(name=["a"], position=[float("nan")]), ["a"])
    assert error.value.reason == "nonfinite_joint_state"
