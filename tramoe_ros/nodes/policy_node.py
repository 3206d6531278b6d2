"""`policy_node`: images + predicted tracks + joint states -> the trajectory-guided policy (frame stack) ->
PolicyAction on /policy/action, stamped with the stamp of the images the action was computed from.

Two ways to form an observation (parameter `mode`):
- `lockstep`: one TrackArray from the track node together with the images it was predicted from (matched by stamp)
  and the joint state closest to the images' stamp: the policy sees exactly what offline evaluation gives it, and
  waits for the track model every step. An observation that arrives again with the same stamp (lock-step re-sends)
  re-publishes the same action without stepping the frame stack.
- `realtime`: every new image set (one image per view, stamps within `sync_tolerance_s`) with the joint state
  closest to it and the newest tracks predicted from images no newer than these (usually the previous camera
  frame's, at most `max_track_lag_s` older). The track model then runs beside the policy instead of before it, so
  camera -> action takes the policy's time, not the track model's plus the policy's: at LIBERO's 20 Hz the action
  computed from a step's observation is applied at the very next step, as in lock-step. A one-step-late action
  fails where lock-step succeeds (models/README.md), a one-frame-old track prediction does not.
In both modes the policy acts at most at `control_rate_hz` (observations closer than half a control period to the
last one are skipped, so the frame stack keeps the training data's spacing); 0 acts on every observation. A new
episode on /episode_status clears the frame stack. A policy conditioned on the instruction (a multi-task policy)
also takes /instruction (transient local) and acts only once it has one; a new instruction starts a new stack.

Joint state -> proprio: one parameter per proprio input of the policy, `proprio.<name>`: the joint names whose
positions form it, e.g. proprio.joint_states: [robot0_joint1, ..., robot0_joint7]. Each /joint_states message
must hold every joint named there (one message for both arms of the real robot).
"""
from __future__ import annotations

import time
from collections import deque
from typing import NoReturn

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from tramoe_msgs.msg import EpisodeStatus, PolicyAction, TrackArray

from tramoe_ros.models.checkpoint import CheckpointError
from tramoe_ros.models.device import select_device
from tramoe_ros.models.language import LanguageEncoderError
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import (action_to_msg, joint_positions, ns_to_stamp, rgb_from_image, stamp_to_ns,
                                        tracks_from_msg)
from tramoe_ros.ros.cpu_share import set_torch_threads
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import MalformedMessage, NodeStartupError
from tramoe_ros.ros.image_sets import NewestImageSet
from tramoe_ros.ros.instruction import InstructionInput
from tramoe_ros.ros.params import Param, declare_params, non_negative, not_empty, one_of, positive, resolve_path
from tramoe_ros.ros.qos import IMAGE_HISTORY_QOS, JOINT_STATE_HISTORY_QOS, RELIABLE_QOS, STATUS_QOS
from tramoe_ros.ros.runtime import run_node

PARAMS = [
    Param("policy_path", "", "policy checkpoint (.safetensors); relative paths: the working directory, then the "
                             "package's share folder", not_empty),
    Param("track_model_path", "", "the track model the policy was trained with; empty: the one its checkpoint "
                                  "names. Tracks from another model are used but warned about"),
    Param("device", "auto", "torch device: cpu, cuda, or auto (cuda when available)", one_of("cpu", "cuda", "auto")),
    Param("control_rate_hz", 20.0, "act at most this often; 0: act on every observation (lock-step simulation)",
          non_negative),
    Param("onnxruntime", False, "run the policy with ONNX Runtime on the CPU (~2x faster, the same actions to "
                                "~1e-5); without it installed, or on a GPU, torch runs it (a warning says why)"),
    Param("torch_threads", 0, "torch intra-op threads (per process: nodes composed in one process share it); "
                              "0: torch's default, one per core", non_negative),
    Param("mode", "realtime", "realtime: act on each new image set with the newest tracks; lockstep: act on each "
                              "TrackArray with the images it came from (deterministic, as offline evaluation)",
          one_of("realtime", "lockstep")),
    Param("sync_tolerance_s", 0.025, "realtime: images of the views form one set when their stamps differ by at "
                                     "most this", non_negative),
    Param("max_track_lag_s", 0.25, "realtime: use tracks predicted from images at most this much older than the "
                                   "observation's (else wait for newer ones)", non_negative),
    Param("joint_state_tolerance_s", 0.05, "use the joint state closest to the images' stamp, at most this far "
                                           "from it", non_negative),
    Param("stale_after_s", 1.0, "report an input stale after this long without a usable message", positive),
]
# What the policy acts on: the images' stamp, images {view: (S, S, 3)}, proprio {name: (d,)}, tracks {view: (H, K, 2)}.
Observation = tuple[int, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]
TRACK_BUFFER = 10  # realtime: recent track predictions kept, to find the newest one not newer than an image set
IMAGE_BUFFER = IMAGE_HISTORY_QOS.depth  # recent images kept per view, to find those a TrackArray came from
JOINT_STATE_BUFFER = JOINT_STATE_HISTORY_QOS.depth  # recent joint states kept, to find the one of the images
REPORT_WINDOW = 50


def _length(expected: int):
    return lambda names: None if len(names) == expected else f"must list {expected} joint names"


class PolicyNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("policy_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        path = resolve_path(self.params["policy_path"])
        track_path = resolve_path(self.params["track_model_path"]) if self.params["track_model_path"] else None
        set_torch_threads(self.params["torch_threads"])
        try:
            device = select_device(self.params["device"])
            self.runner = PolicyRunner.from_checkpoints(path, track_path, device=device,
                                                        onnxruntime=self.params["onnxruntime"])
        except (CheckpointError, LanguageEncoderError, RuntimeError) as e:
            raise NodeStartupError(str(e)) from None
        cfg = self.runner.cfg
        # The proprio inputs are the checkpoint's, so their parameters are declared once it is loaded.
        joint_names = declare_params(self, [
            Param(f"proprio.{key}", [], f"joint names whose positions form the policy's {dim}-d {key!r} input",
                  _length(dim), kind="str[]") for key, dim in cfg.proprio_dims.items()])
        self.proprio_joints: dict[str, list[str]] = {key: joint_names[f"proprio.{key}"] for key in cfg.proprio_dims}
        self._expected_track_model = self.runner.predictor.model_id if self.runner.predictor else None
        self._warm_up()

        self._images = {v: deque(maxlen=IMAGE_BUFFER) for v in cfg.views}  # lockstep: (stamp ns, rgb)
        self.realtime = self.params["mode"] == "realtime"
        self._image_sets = NewestImageSet(cfg.views, self.params["sync_tolerance_s"])
        self._tracks: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=TRACK_BUFFER)  # realtime: recent
        self._joint_states: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=JOINT_STATE_BUFFER)
        self._pending: tuple[int, dict[str, tuple[int, np.ndarray]]] | None = None
        self._last_stamp: int | None = None
        self._last_action: PolicyAction | None = None
        self._episode: int | None = None
        self._status_episode: int | None = None
        self._episode_start = 0  # stamp of the current episode's first status (ns)
        self._warned_track_models: set[str] = set()
        self._inference_ms: deque[float] = deque(maxlen=REPORT_WINDOW)
        self._action_times: deque[float] = deque(maxlen=REPORT_WINDOW)

        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=self.runner.model_id)
        self._publisher = self.create_publisher(PolicyAction, topics.POLICY_ACTION, RELIABLE_QOS)
        for view in cfg.views:
            self.health.watch(topics.camera_image(view))
            self.create_subscription(Image, topics.camera_image(view), lambda m, v=view: self._on_image(v, m),
                                     IMAGE_HISTORY_QOS)
        self.health.watch(topics.TRACKS)
        self.health.watch(topics.JOINT_STATES)
        self.create_subscription(TrackArray, topics.TRACKS, self._on_tracks, RELIABLE_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, JOINT_STATE_HISTORY_QOS)
        self.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, self._on_episode_status, STATUS_QOS)
        self.instruction = InstructionInput(self, self.health) if cfg.instruction_dim else None
        if self.runner.backend_note:
            self.get_logger().warning(f"the policy runs on torch: {self.runner.backend_note}")
        self.get_logger().info(f"policy {self.runner.model_id} ({path}) on {self.runner.device} "
                               f"({self.runner.backend}): views {cfg.views}, {cfg.action_dim}-d actions, "
                               f"proprio {self.proprio_joints}")

    def _warm_up(self) -> None:
        """Run the policy once on a blank observation: its first call is several times slower than the rest."""
        cfg = self.runner.cfg
        s = cfg.image_size
        self.runner.step({v: np.zeros((s, s, 3), np.uint8) for v in cfg.views},
                         {k: np.zeros(d, np.float32) for k, d in cfg.proprio_dims.items()}, "",
                         {v: np.zeros((cfg.horizon, cfg.num_points, 2), np.float32) for v in cfg.views})
        self.runner.reset()

    # ---- inputs ----------------------------------------------------------------------------------------------

    def _on_image(self, view: str, msg: Image) -> None:
        try:
            rgb = rgb_from_image(msg, self.runner.cfg.image_size)
        except MalformedMessage as e:
            self.health.drop(e)
            return
        self.health.seen(topics.camera_image(view))
        stamp = stamp_to_ns(msg.header.stamp)
        if self.realtime:
            self._image_sets.add(view, stamp, msg.header, rgb)
        else:
            self._images[view].append((stamp, rgb))
        self._act_if_ready()

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            proprio = {k: joint_positions(msg, names) for k, names in self.proprio_joints.items()}
        except MalformedMessage as e:
            self.health.drop(e)
            return
        self.health.seen(topics.JOINT_STATES)
        self._joint_states.append((stamp_to_ns(msg.header.stamp), proprio))
        self._act_if_ready()

    def _on_episode_status(self, msg: EpisodeStatus) -> None:
        if msg.episode != self._status_episode:
            # Tracks of the last episode's images must not guide the new one's first actions.
            self._tracks.clear()
            self._episode_start = stamp_to_ns(msg.header.stamp)
        self._status_episode = msg.episode

    def _on_tracks(self, msg: TrackArray) -> None:
        cfg = self.runner.cfg
        tracks = {}
        try:
            for view_tracks in msg.views:
                points, _, _ = tracks_from_msg(view_tracks)
                if points.shape != (cfg.horizon, cfg.num_points, 2):
                    raise MalformedMessage("wrong_tracks_shape", f"tracks of {view_tracks.view!r} are "
                                           f"{points.shape}, the policy needs ({cfg.horizon}, {cfg.num_points}, 2)")
                tracks[view_tracks.view] = (stamp_to_ns(view_tracks.header.stamp), points)
                self._check_track_model(view_tracks.model_id)
        except MalformedMessage as e:
            self.health.drop(e)
            return
        missing = [v for v in cfg.views if v not in tracks]
        if missing:
            self.health.drop("missing_track_views", f"tracks lack views {missing} (have {sorted(tracks)})")
            return
        self.health.seen(topics.TRACKS)
        stamp = stamp_to_ns(msg.header.stamp)
        if self.realtime:
            if stamp >= self._episode_start:
                self._tracks.append((stamp, {v: t for v, (_, t) in tracks.items()}))
                self._act_if_ready()
            return
        if stamp < self._episode_start:
            # Predicted from the last episode's final images, which came after the reset on a busy machine: acted
            # on, they would be the first frame of the new episode's stack.
            self.health.count("ignored_before_episode_start")
            return
        if stamp == self._last_stamp and self._last_action is not None:
            self._publisher.publish(self._last_action)
            self.health.count("republished")
            return
        if self._last_stamp is not None and stamp < self._last_stamp:
            self.health.drop("out_of_order", "tracks older than the last observation acted on")
            return
        rate = self.params["control_rate_hz"]
        if rate > 0 and self._last_stamp is not None and (stamp - self._last_stamp) * 1e-9 < 0.5 / rate:
            self.health.count("skipped_above_control_rate")
            return
        if self._pending is not None:
            self.health.count("skipped_superseded")
        self._pending = (stamp, tracks)
        self._act_if_ready()

    def _check_track_model(self, model_id: str) -> None:
        if self._expected_track_model and model_id != self._expected_track_model \
                and model_id not in self._warned_track_models:
            self._warned_track_models.add(model_id)
            self.get_logger().warning(f"tracks come from track model {model_id}, but the policy was trained with "
                                      f"{self._expected_track_model}")

    # ---- acting ----------------------------------------------------------------------------------------------

    def _matching_images(self, tracks: dict[str, tuple[int, np.ndarray]]) -> dict[str, np.ndarray] | None:
        """The images the tracks were predicted from; None while one has not arrived. Raises MalformedMessage
        when one can no longer arrive (newer images of that view are already here)."""
        images = {}
        for view, (stamp, _) in tracks.items():
            found = next((rgb for s, rgb in self._images[view] if s == stamp), None)
            if found is None:
                if self._images[view] and self._images[view][-1][0] > stamp:
                    raise MalformedMessage("no_matching_image", f"the {view} image the tracks came from was "
                                                                f"not received")
                return None
            images[view] = found
        return images

    def _matching_joint_state(self, stamp: int) -> dict[str, np.ndarray] | None:
        """The joint state closest to `stamp`; None while none within tolerance has arrived yet. Raises
        MalformedMessage when none can arrive any more."""
        tolerance = int(self.params["joint_state_tolerance_s"] * 1e9)
        if not self._joint_states or self._joint_states[-1][0] < stamp - tolerance:
            return None
        js_stamp, proprio = min(self._joint_states, key=lambda entry: abs(entry[0] - stamp))
        if abs(js_stamp - stamp) > tolerance:
            raise MalformedMessage("no_matching_joint_state", f"no joint state within "
                                   f"{self.params['joint_state_tolerance_s']} s of the images")
        return proprio

    def _newest_tracks(self, stamp: int) -> dict[str, np.ndarray] | None:
        """Realtime: the newest tracks predicted from images no newer than `stamp`; None while there are none
        within `max_track_lag_s` (the track model has not caught up)."""
        lag = int(self.params["max_track_lag_s"] * 1e9)
        usable = [(s, t) for s, t in self._tracks if stamp - lag <= s <= stamp]
        return max(usable, key=lambda entry: entry[0])[1] if usable else None

    def _realtime_observation(self) -> Observation | None:
        """The newest image set with its tracks and joint state, once all three are here; None until then."""
        image_set = self._image_sets.newest()
        if image_set is None or not self._image_sets.ready(image_set):
            return None
        stamp = image_set.stamp
        rate = self.params["control_rate_hz"]
        if rate > 0 and self._last_stamp is not None and (stamp - self._last_stamp) * 1e-9 < 0.5 / rate:
            self._image_sets.take(image_set)
            self.health.count("skipped_above_control_rate")
            return None
        tracks = self._newest_tracks(stamp)
        if tracks is None:
            return None
        try:
            proprio = self._matching_joint_state(stamp)
        except MalformedMessage as e:
            self._image_sets.take(image_set)
            self.health.drop(e)
            return None
        if proprio is None:
            return None
        self._image_sets.take(image_set)
        return stamp, dict(zip(self.runner.cfg.views, image_set.images)), proprio, tracks

    def _lockstep_observation(self) -> Observation | None:
        """The pending TrackArray with its images and joint state, once they are here; None until then."""
        if self._pending is None:
            return None
        stamp, tracks = self._pending
        try:
            images = self._matching_images(tracks)
            proprio = self._matching_joint_state(stamp) if images is not None else None
        except MalformedMessage as e:
            self._pending = None
            self.health.drop(e)
            return None
        if images is None or proprio is None:
            return None
        self._pending = None
        return stamp, images, proprio, {v: t for v, (_, t) in tracks.items()}

    def _act_if_ready(self) -> None:
        observation = self._realtime_observation() if self.realtime else self._lockstep_observation()
        if observation is None:
            return
        stamp, images, proprio, tracks = observation
        instruction = self.instruction.value if self.instruction is not None else ""
        if instruction is None:
            self.health.drop("no_instruction", f"no instruction on {topics.INSTRUCTION} yet")
            return
        if self._status_episode != self._episode:
            self.runner.reset()
            self._episode = self._status_episode
        try:
            # Tracks come from the track node; the instruction conditions a multi-task policy (one without
            # instruction input ignores it).
            action = self.runner.step(images, proprio, instruction, tracks)
        except ValueError as e:
            self.health.drop("invalid_observation", str(e))
            return
        header = Header(stamp=ns_to_stamp(stamp))
        self._last_action = action_to_msg(action, header, self.runner.last_latency_ms, self.runner.model_id,
                                          planned=self.runner.last_chunk[1:])
        self._last_stamp = stamp
        self._publisher.publish(self._last_action)
        self._report(stamp)

    def _report(self, stamp: int) -> None:
        self.health.count("actions")
        self._inference_ms.append(self.runner.last_latency_ms)
        self._action_times.append(time.monotonic())
        self.health.values["inference_ms_p50"] = f"{np.percentile(self._inference_ms, 50):.1f}"
        self.health.values["observation_age_ms"] = f"{(self.get_clock().now().nanoseconds - stamp) * 1e-6:.1f}"
        if len(self._action_times) > 1:
            span = self._action_times[-1] - self._action_times[0]
            self.health.values["action_rate_hz"] = f"{(len(self._action_times) - 1) / span:.2f}" if span else "inf"


def main(args: list[str] | None = None) -> NoReturn:
    run_node(PolicyNode, "policy_node", args)


if __name__ == "__main__":
    main()
