"""track_node in its own process: images in -> tracks out with the right shapes and stamps, overlays, expert-usage
diagnostics; malformed images counted and dropped without harm; a stopped camera reported stale."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String
from tramoe_msgs.msg import TrackArray

from node_fixtures import NodeProcess, ros_args, stop_all
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import image_from_rgb, ns_to_stamp, stamp_to_ns, tracks_from_msg
from tramoe_ros.ros.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS

VIEWS = ["agentview", "eye_in_hand"]


@pytest.fixture(scope="module")
def track_node(tiny_models, tmp_path_factory, driver):
    track, _ = tiny_models
    process = NodeProcess("tramoe_ros.nodes.track_node", ros_args(
        {"model_path": str(track), "device": "cpu", "stale_after_s": 0.5}),
        tmp_path_factory.mktemp("logs") / "track_node.log")

    def started() -> bool:  # the node subscribes once its model is loaded
        return driver.node.count_subscribers(topics.camera_image("agentview")) > 0 or not process.alive()

    try:
        driver.spin_until(started, timeout=90, what="track_node to start")
        assert process.alive(), process.output()
    except AssertionError:
        stop_all([process])
        raise
    yield process
    assert process.stop() == 0, process.output()


class Received:
    """Messages received on the outputs of the track node."""

    def __init__(self, driver):
        self.tracks, self.overlays, self.diagnostics = [], [], []
        node = driver.node
        node.create_subscription(TrackArray, topics.TRACKS, self.tracks.append, RELIABLE_QOS)
        node.create_subscription(Image, topics.track_overlay("agentview"), self.overlays.append, IMAGE_QOS)
        node.create_subscription(
            DiagnosticArray, topics.DIAGNOSTICS,
            lambda m: self.diagnostics.extend(s for s in m.status if s.name == "/track_node"), RELIABLE_QOS)

    def last_values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].values}


@pytest.fixture(scope="module")
def io(driver, track_node):
    received = Received(driver)
    node = driver.node
    instruction = node.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS)
    instruction.publish(String(data="put the bowl on the plate"))
    cameras = {v: node.create_publisher(Image, topics.camera_image(v), IMAGE_QOS) for v in VIEWS}
    driver.spin_until(lambda: node.count_subscribers(topics.track_overlay("agentview")) == 1 and
                      all(p.get_subscription_count() for p in cameras.values()), 10, "discovery")
    # Image sets that arrive before the instruction are dropped.
    driver.spin_until(lambda: received.diagnostics and received.last_values()["age_s:/instruction"] != "never", 10,
                      "the track node to receive the instruction")
    return cameras, received


def publish_set(driver, cameras, stamp_ns: int, rng) -> None:
    for view, publisher in cameras.items():
        rgb = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        publisher.publish(image_from_rgb(rgb, Header(stamp=ns_to_stamp(stamp_ns), frame_id=view)))
    driver.spin_for(0.01)


def test_images_in_tracks_out_with_shapes_and_stamps(driver, io):
    cameras, received = io
    rng = np.random.default_rng(0)
    stamps = [driver.node.get_clock().now().nanoseconds + i * 50_000_000 for i in range(3)]
    for stamp in stamps:
        publish_set(driver, cameras, stamp, rng)
        driver.spin_until(lambda: any(stamp_to_ns(t.header.stamp) == stamp for t in received.tracks), 20,
                          f"tracks for stamp {stamp}")
    for stamp in stamps:
        msg = next(t for t in received.tracks if stamp_to_ns(t.header.stamp) == stamp)
        assert [v.view for v in msg.views] == VIEWS
        for view_tracks in msg.views:
            assert stamp_to_ns(view_tracks.header.stamp) == stamp
            assert view_tracks.header.frame_id == view_tracks.view
            assert (view_tracks.horizon, view_tracks.num_points) == (16, 32)
            points, visibility, queries = tracks_from_msg(view_tracks)
            assert points.shape == (16, 32, 2) and visibility.shape == (16, 32) and queries.shape == (32, 2)
            assert np.isfinite(points).all()
            assert view_tracks.model_id.startswith("tiny_track-")
    driver.spin_until(lambda: {stamp_to_ns(o.header.stamp) for o in received.overlays} >= set(stamps), 5,
                      "overlays")
    overlay = received.overlays[-1]
    assert (overlay.width, overlay.height, overlay.encoding) == (256, 256, "rgb8")  # overlay_scale 2


def test_expert_usage_in_diagnostics(driver, io):
    _, received = io
    driver.spin_until(lambda: received.diagnostics and "expert_usage/layer_0" in received.last_values(), 5,
                      "expert usage diagnostics")
    usage = [float(x) for x in received.last_values()["expert_usage/layer_0"].split()]
    assert len(usage) == 4 and abs(sum(usage) - 1.0) < 0.01


def test_malformed_images_are_counted_not_fatal(driver, io, track_node):
    cameras, received = io
    stamp = ns_to_stamp(driver.node.get_clock().now().nanoseconds)
    good = image_from_rgb(np.zeros((128, 128, 3), np.uint8), Header(stamp=stamp, frame_id="agentview"))
    bad = {
        "unknown_encoding": Image(header=good.header, height=128, width=128, encoding="rgba16", step=128 * 8,
                                  data=bytes(128 * 128 * 8)),
        "bad_data_length": Image(header=good.header, height=128, width=128, encoding="rgb8", step=384,
                                 data=bytes(100)),
        "bad_step": Image(header=good.header, height=128, width=128, encoding="rgb8", step=10, data=bytes(1280)),
        "wrong_size": image_from_rgb(np.zeros((64, 64, 3), np.uint8), good.header),
    }
    for msg in bad.values():
        cameras["agentview"].publish(msg)
        driver.spin_for(0.05)

    def counted() -> bool:
        values = received.last_values() if received.diagnostics else {}
        return all(f"dropped/{reason}" in values for reason in bad)

    driver.spin_until(counted, 5, "malformed images counted in diagnostics")
    assert all(int(received.last_values()[f"dropped/{reason}"]) == 1 for reason in bad)
    assert track_node.alive()
    before = len(received.tracks)
    publish_set(driver, cameras, driver.node.get_clock().now().nanoseconds, np.random.default_rng(1))
    driver.spin_until(lambda: len(received.tracks) > before, 20, "tracks after malformed input")


def test_stopped_camera_is_reported_stale(driver, io, track_node):
    _, received = io
    driver.spin_for(0.6)  # stale_after_s is 0.5

    def stale_reported() -> bool:
        status = received.diagnostics[-1] if received.diagnostics else None
        return status is not None and "stale input /cameras/agentview/image_raw" in status.message

    driver.spin_until(stale_reported, 5, "a stale-camera diagnostic")
    assert received.diagnostics[-1].level == received.diagnostics[-1].WARN
    assert track_node.alive()


def test_overlong_instruction_and_fields_are_refused_and_not_logged_whole(driver, io, track_node):
    """A 1 MB /instruction is not taken as the task (the previous one stays), and neither it nor a 100 kB image
    encoding string reaches the log whole."""
    cameras, received = io
    node = driver.node
    flood = node.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS)
    flood.publish(String(data="pick " * 200_000))
    stamp = ns_to_stamp(node.get_clock().now().nanoseconds)
    cameras["agentview"].publish(Image(header=Header(stamp=stamp, frame_id="agentview"), height=1, width=1,
                                       encoding="x" * 100_000, step=3, data=bytes(3)))

    def counted() -> bool:
        values = received.last_values() if received.diagnostics else {}
        return "dropped/instruction_too_long" in values and "dropped/unknown_encoding" in values

    driver.spin_until(counted, 10, "the overlong instruction and encoding counted in diagnostics")
    before = len(received.tracks)
    publish_set(driver, cameras, node.get_clock().now().nanoseconds, np.random.default_rng(2))
    driver.spin_until(lambda: len(received.tracks) > before, 20, "tracks with the previous instruction")
    node.destroy_publisher(flood)
    assert track_node.alive()
    assert max(len(line) for line in track_node.output().splitlines()) < 2000
