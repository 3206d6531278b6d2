"""`camera_node`: one camera (an OpenCV device index or path, or a video file played in a loop) published as an
rgb8 sensor_msgs/Image on `image_raw` (remap it to /cameras/<view>/image_raw) at a set rate and size.

Frames are stamped when they are captured, so everything computed from them carries the capture time. A camera
that stops delivering does not stop the node: it counts the failed reads, reports the stale input in
/diagnostics, retries opening a device, and publishes again when frames come back.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import NoReturn

import cv2
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

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
REOPEN_INTERVAL_S = 1.0  # how often a device that stopped delivering frames is reopened


class CameraNode(Node):
    def __init__(self, **node_kwargs):
        self._capture = None  # set before anything can fail, for destroy_node
        super().__init__("camera_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        source = self.params["source"]
        self._device = int(source) if source.isdigit() else source
        self._is_file = Path(source).is_file()
        if not source.isdigit() and not Path(source).exists():
            raise NodeStartupError(f"camera source {source!r} is neither a device index nor an existing device or "
                                   f"video file")
        self._capture = cv2.VideoCapture(self._device)
        if not self._capture.isOpened():
            raise NodeStartupError(f"OpenCV cannot open camera source {source!r}")
        if not self._is_file:
            # Keep at most one frame queued in the driver, so each read returns a fresh one.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._last_reopen = time.monotonic()
        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=source)
        self.health.watch("frames")
        self._publisher = self.create_publisher(Image, "image_raw", IMAGE_QOS)
        self.create_timer(1.0 / self.params["rate_hz"], self._capture_and_publish)
        self.get_logger().info(f"camera {source!r} -> {self._publisher.topic_name} "
                               f"({self.params['width']}x{self.params['height']} at {self.params['rate_hz']} Hz)")

    def _read(self):
        ok, frame = self._capture.read()
        if not ok and self._is_file:  # end of the video: start it again
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        return frame if ok else None

    def _capture_and_publish(self) -> None:
        frame = self._read()
        stamp = self.get_clock().now().to_msg()
        if frame is None:
            self.health.count("read_failures")
            if not self._is_file and time.monotonic() - self._last_reopen > REOPEN_INTERVAL_S:
                self._last_reopen = time.monotonic()
                self._capture.release()
                self._capture = cv2.VideoCapture(self._device)
            return
        size = (self.params["width"], self.params["height"])
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self._publisher.publish(image_from_rgb(rgb, Header(stamp=stamp, frame_id=self.params["view"])))
        self.health.seen("frames")
        self.health.count("published")

    def destroy_node(self) -> None:
        if self._capture is not None:
            self._capture.release()
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    run_node(CameraNode, "camera_node", args)


if __name__ == "__main__":
    main()
