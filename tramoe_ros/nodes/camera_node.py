"""`camera_node`: one camera (an OpenCV device index or path, or a video file played in a loop) published as an
rgb8 sensor_msgs/Image on `image_raw` (remap it to /cameras/<view>/image_raw) at a set rate and size.

Frames are stamped when they are captured, so everything computed from them carries the capture time. A camera
that stops delivering does not stop the node: it counts the failed reads, reports the stale input in
/diagnostics, retries opening a device, and publishes again when frames come back.
"""
from __future__ import annotations

from typing import NoReturn

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from tramoe_ros.robot.camera import CameraError, FrameSource, to_rgb
from tramoe_ros.ros.conversions import image_from_rgb
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.params import Param, declare_params, not_empty, positive
from tramoe_ros.ros.qos import IMAGE_QOS
from tramoe_ros.ros.runtime import run_node

PARAMS = [
    Param("source", "", "camera: a device index (0), a device path (/dev/video0) or a video file (looped)",
          not_empty),
    Param("view", "agentview", "camera view name, used as the images' frame_id", not_empty),
    Param("rate_hz", 20.0, "publishing rate (frames per second)", positive),
    Param("width", 128, "published image width in pixels", positive),
    Param("height", 128, "published image height in pixels", positive),
    Param("stale_after_s", 1.0, "report the camera stale after this long without a frame", positive),
]


class CameraNode(Node):
    def __init__(self, **node_kwargs):
        self._camera = None  # set before anything can fail, for destroy_node
        super().__init__("camera_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        source = self.params["source"]
        try:
            self._camera = FrameSource(source)
        except CameraError as e:
            raise NodeStartupError(str(e)) from None
        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=source)
        self.health.watch("frames")
        self._publisher = self.create_publisher(Image, "image_raw", IMAGE_QOS)
        self.create_timer(1.0 / self.params["rate_hz"], self._capture_and_publish)
        self.get_logger().info(f"camera {source!r} -> {self._publisher.topic_name} "
                               f"({self.params['width']}x{self.params['height']} at {self.params['rate_hz']} Hz)")

    def _capture_and_publish(self) -> None:
        frame = self._camera.read()
        stamp = self.get_clock().now().to_msg()
        if frame is None:
            self.health.count("read_failures")
            return
        rgb = to_rgb(frame, self.params["width"], self.params["height"])
        self._publisher.publish(image_from_rgb(rgb, Header(stamp=stamp, frame_id=self.params["view"])))
        self.health.seen("frames")
        self.health.count("published")

    def destroy_node(self) -> None:
        if self._camera is not None:
            self._camera.release()
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    run_node(CameraNode, "camera_node", args)


if __name__ == "__main__":
    main()
