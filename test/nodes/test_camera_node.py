"""camera_node in its own process playing a video file: rgb8 images of the set size at the set rate, stamped at
capture, on the remapped topic, looping past the end of the file."""
import numpy as np
from sensor_msgs.msg import Image

from node_fixtures import VIDEO_FRAMES, NodeProcess, ros_args, write_video
from tramoe_ros.ros.conversions import rgb_from_image, stamp_to_ns
from tramoe_ros.ros.qos import IMAGE_QOS


def test_video_file_published_as_rgb8_at_rate_and_size_looping(driver, tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video)
    images = []
    driver.node.create_subscription(Image, "/cameras/test_view/image_raw", images.append, IMAGE_QOS)
    process = NodeProcess("tramoe_ros.nodes.camera_node", ros_args(
        {"source": str(video), "view": "test_view", "rate_hz": 40.0, "width": 32, "height": 32},
        remaps={"image_raw": "/cameras/test_view/image_raw"}), tmp_path / "camera.log")
    try:
        driver.spin_until(lambda: len(images) >= 3 * VIDEO_FRAMES or not process.alive(), 30, "camera images")
        assert process.alive(), process.output()
        start = driver.node.get_clock().now().nanoseconds
        count = len(images)
        driver.spin_for(1.0)
        rate = (len(images) - count) / ((driver.node.get_clock().now().nanoseconds - start) * 1e-9)
    finally:
        assert process.stop() == 0, process.output()
    first = images[0]
    assert (first.encoding, first.width, first.height, first.header.frame_id) == ("rgb8", 32, 32, "test_view")
    stamps = [stamp_to_ns(m.header.stamp) for m in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert 25 <= rate <= 50, f"published at {rate:.1f} Hz, set 40 Hz"
    # Colours in RGB order, in the file's order, starting again after its last frame (whichever frame the
    # subscription happened to start at).
    colours = [int(np.argmax(rgb_from_image(m).reshape(-1, 3).mean(0))) for m in images[:3 * VIDEO_FRAMES]]
    played = [i % 3 for i in range(VIDEO_FRAMES)]  # red, green, blue, red, ...
    assert any(colours == [played[(offset + k) % VIDEO_FRAMES] for k in range(len(colours))]
               for offset in range(VIDEO_FRAMES)), colours
