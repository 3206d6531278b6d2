"""`track_node`: synchronised camera images + the instruction -> the Tra-MoE track model -> predicted tracks.

Inputs: /cameras/<view>/image_raw for every view in `views` (newest image only: a slow model skips frames rather
than falling behind), /instruction (transient local).
Outputs, all stamped with the source images' stamps:
- /tracks (TrackArray): one per synchronised image set, one Tracks per view, queried at the policy's grid;
- /tracks/<view>/overlay (Image): the view with its tracks drawn, coloured by time step (drawn only while
  someone, e.g. rviz, subscribes);
- /diagnostics: per-layer expert usage of the MoE, inference time, image age, dropped and stale inputs.

Images of the views form a set when their stamps lie within `sync_tolerance_s` and each is newer than the last
set's. A set that arrives again unchanged (the LIBERO bridge re-sends its observation in lock-step mode until it
gets an action) re-publishes the same tracks without running the model again.
"""
from __future__ import annotations

import time
from collections import deque
from typing import NoReturn

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tramoe_msgs.msg import TrackArray

from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.checkpoint import CheckpointError
from tramoe_ros.models.device import select_device
from tramoe_ros.models.language import LanguageEncoderError
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import image_from_rgb, ns_to_stamp, rgb_from_image, stamp_to_ns, tracks_to_msg
from tramoe_ros.ros.cpu_share import BackgroundThread, set_torch_threads
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import MalformedMessage, NodeStartupError
from tramoe_ros.ros.image_sets import NewestImageSet
from tramoe_ros.ros.instruction import InstructionInput
from tramoe_ros.ros.params import Param, declare_params, non_negative, not_empty, one_of, positive, resolve_path
from tramoe_ros.ros.qos import IMAGE_QOS, LATEST_IMAGE_QOS, RELIABLE_QOS
from tramoe_ros.ros.runtime import run_node
from tramoe_ros.viz import draw_tracks

PARAMS = [
    Param("model_path", "", "track model checkpoint (.safetensors); relative paths: the working directory, then "
                            "the package's share folder", not_empty),
    Param("device", "auto", "torch device: cpu, cuda, or auto (cuda when available)", one_of("cpu", "cuda", "auto")),
    Param("views", ["agentview", "eye_in_hand"], "camera views; images come from /cameras/<view>/image_raw",
          not_empty),
    Param("sync_tolerance_s", 0.025, "images of the views form one set when their stamps differ by at most this",
          non_negative),
    Param("stale_after_s", 1.0, "report an input stale after this long without a usable message", positive),
    Param("torch_threads", 0, "torch intra-op threads (per process: nodes composed in one process share it); "
                              "0: torch's default, one per core", non_negative),
    Param("background", False, "run the model at idle priority: it uses only the CPU the control path (bridge or "
                               "cameras, policy, arm) leaves; in real time the policy takes its tracks a frame late"),
    Param("overlay_scale", 2, "overlay images are this many times the camera size, so tracks stay readable",
          positive),
]
# The policy queries tracks on this grid (sample_double_grid(4): 32 points), so the track node does too.
QUERY_GRID = 4
# Expert usage and inference time are reported over this many recent image sets.
REPORT_WINDOW = 50


class TrackNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("track_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        self.views: list[str] = self.params["views"]
        path = resolve_path(self.params["model_path"])
        set_torch_threads(self.params["torch_threads"])
        self._background = BackgroundThread(self.params["background"])
        try:
            device = select_device(self.params["device"])
            self.predictor = TrackPredictor.from_checkpoint(path, device=device)
        except (CheckpointError, LanguageEncoderError, RuntimeError) as e:
            raise NodeStartupError(str(e)) from None
        self.image_size = self.predictor.cfg.image_size
        self.queries = sample_double_grid(QUERY_GRID)
        if len(self.queries) != self.predictor.cfg.num_points:
            raise NodeStartupError(f"track model {path} predicts {self.predictor.cfg.num_points} points per image, "
                                   f"but the policy's query grid has {len(self.queries)}")
        # The first call of a model is several times slower (allocation, kernel selection); pay it now.
        self.predictor.predict(np.zeros((len(self.views), self.image_size, self.image_size, 3), np.uint8),
                               self.queries, "warm up")

        self._images = NewestImageSet(self.views, self.params["sync_tolerance_s"])
        self._last_output: TrackArray | None = None
        self._expert_usage: dict[int, deque[np.ndarray]] = {}
        self._inference_ms: deque[float] = deque(maxlen=REPORT_WINDOW)

        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=self.predictor.model_id)
        self.instruction = InstructionInput(self, self.health)
        self._tracks_pub = self.create_publisher(TrackArray, topics.TRACKS, RELIABLE_QOS)
        self._overlay_pubs = {v: self.create_publisher(Image, topics.track_overlay(v), IMAGE_QOS) for v in self.views}
        for view in self.views:
            self.health.watch(topics.camera_image(view))
            self.create_subscription(Image, topics.camera_image(view), lambda msg, v=view: self._on_image(v, msg),
                                     LATEST_IMAGE_QOS)
        self.get_logger().info(f"track model {self.predictor.model_id} ({path}) on {self.predictor.device}, "
                               f"views {self.views}")

    def _on_image(self, view: str, msg: Image) -> None:
        self._background.apply()
        try:
            rgb = rgb_from_image(msg, self.image_size)
        except MalformedMessage as e:
            self.health.drop(e)
            return
        self.health.seen(topics.camera_image(view))
        self._images.add(view, stamp_to_ns(msg.header.stamp), msg.header, rgb)
        self._predict_if_complete()

    def _predict_if_complete(self) -> None:
        image_set = self._images.newest()
        if image_set is None:
            return
        if self._images.is_repeat(image_set) and self._last_output is not None:
            self._tracks_pub.publish(self._last_output)
            self.health.count("republished")
            return
        if not self._images.ready(image_set):
            return  # a view has no image newer than the last set yet, or the views are not one moment yet
        if self.instruction.value is None:
            self.health.drop("no_instruction", f"no instruction on {topics.INSTRUCTION} yet")
            return
        images = np.stack(image_set.images)
        start = time.perf_counter()
        tracks = self.predictor.predict(images, self.queries, self.instruction.value).numpy()
        self._inference_ms.append((time.perf_counter() - start) * 1e3)
        self._images.take(image_set)
        if not np.isfinite(tracks).all():
            self.health.drop("nonfinite_tracks", "the track model returned NaN or infinite values")
            return
        output = TrackArray(header=Header(stamp=ns_to_stamp(image_set.stamp)), views=[
            tracks_to_msg(tracks[i], self.queries, v, image_set.headers[i], self.predictor.model_id)
            for i, v in enumerate(self.views)])
        self._tracks_pub.publish(output)
        self._last_output = output
        self.health.count("track_sets")
        for i, view in enumerate(self.views):
            if self._overlay_pubs[view].get_subscription_count() > 0:
                overlay = draw_tracks(images[i], tracks[i], scale=self.params["overlay_scale"])
                self._overlay_pubs[view].publish(image_from_rgb(overlay, image_set.headers[i]))
        self._report(image_set.stamp)

    def _report(self, newest_stamp_ns: int) -> None:
        for layer, fractions in self.predictor.last_expert_fractions.items():
            self._expert_usage.setdefault(layer, deque(maxlen=REPORT_WINDOW)).append(fractions)
            mean = np.mean(self._expert_usage[layer], axis=0)
            self.health.values[f"expert_usage/layer_{layer}"] = " ".join(f"{f:.3f}" for f in mean)
        self.health.values["inference_ms_p50"] = f"{np.percentile(self._inference_ms, 50):.1f}"
        self.health.values["image_age_ms"] = f"{(self.get_clock().now().nanoseconds - newest_stamp_ns) * 1e-6:.1f}"


def main(args: list[str] | None = None) -> NoReturn:
    run_node(TrackNode, "track_node", args)


if __name__ == "__main__":
    main()
