"""Speed of the real robot graph on this machine (`tramoe-bench robot`, the `robot_graph_*` numbers).

config/real.yaml started as `ros2 launch tramoe_ros real.launch.py` starts it (one process per node), with two
video files as the cameras (640x480 MJPG, decoded and resized by the camera nodes as a USB camera's frames are),
the two Koch follower arms emulated on pseudo-terminals (the dynamixel backend, enabled), and untrained models
(their speed is that of trained ones) of two sizes: those config/train_*_real.yaml train (`robot_graph_*`) and the
paper's (`robot_graph_paper_size_*`).

Side by side, the rates that have to agree and what the chain sustains:
- `robot_graph_camera_rate_hz` and `robot_graph_policy_control_rate_hz` (config/real.yaml), and
  `robot_graph_teleop_record_rate_hz` (config/robot/teleop.yaml: the rate demonstrations are sampled at, so the
  spacing of the policy's frame stack);
- `robot_graph_images_hz`: image pairs received per second;
- `robot_graph_fresh_action_rate_hz`: actions computed from a newer image than the last commanded one's, per
  second, counted by the arm node (its `fresh_actions` in /diagnostics);
- camera -> action latency p50/p95, and camera -> tracks p50 (the track model runs beside the policy at idle
  priority; the policy takes the newest tracks at most `max_track_lag_s` older than its images).
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image

from tramoe_ros.bench.models import random_checkpoints, training_model_configs
from tramoe_ros.bench.robot import ARMS, EmulatorProcess
from tramoe_ros.config import PolicyConfig, TrackModelConfig, load_config
from tramoe_ros.paths import config_path
from tramoe_ros.robot.teleop import TeleopConfig
from tramoe_ros.ros import topics
from tramoe_ros.ros.graph import resolve
from tramoe_ros.ros.probe import GraphProbe
from tramoe_ros.ros.processes import ProcessGraph
from tramoe_ros.ros.qos import IMAGE_QOS, RELIABLE_QOS

VIEWS = ("agentview", "eye_in_hand")
VIDEO_SIZE = (640, 480)
STARTUP_BUDGET_S = 180.0
WARM_UP_S = 3.0  # after the first action: the models' first calls and DDS discovery are over


def write_camera_video(path: Path, seconds: float = 4.0, fps: float = 20.0, seed: int = 0) -> Path:
    """A 640x480 MJPG video of a textured table with a red disc sweeping across it, as a USB camera delivers."""
    rng = np.random.default_rng(seed)
    width, height = VIDEO_SIZE
    texture = cv2.resize((rng.random((height // 16, width // 16, 3)) * 255).astype(np.uint8), VIDEO_SIZE,
                         interpolation=cv2.INTER_NEAREST)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, VIDEO_SIZE)
    frames = int(seconds * fps)
    for i in range(frames):
        frame = texture.copy()
        cv2.circle(frame, (int(width * (0.2 + 0.6 * i / frames)), height // 2), 40, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path


class ChainCounter(Node):
    """Counts image pairs (agentview frames) and keeps the arm node's newest /diagnostics values with their
    receive time."""

    def __init__(self, **node_kwargs):
        super().__init__("robot_graph_counter", **node_kwargs)
        self._lock = threading.Lock()
        self.frames: list[float] = []  # receive times (monotonic) of agentview frames
        self.arm: tuple[float, dict[str, str]] | None = None
        self.create_subscription(Image, topics.camera_image(VIEWS[0]), self._on_frame, IMAGE_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, RELIABLE_QOS)

    def _on_frame(self, _: Image) -> None:
        with self._lock:
            self.frames.append(time.monotonic())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("/arm_node"):
                with self._lock:
                    self.arm = (time.monotonic(), {kv.key: kv.value for kv in status.values})

    def arm_values(self) -> dict[str, str]:
        """The arm node's newest /diagnostics values."""
        with self._lock:
            return dict(self.arm[1]) if self.arm else {}

    def fresh_actions(self) -> tuple[float, int]:
        """(receive time, the arm node's fresh_actions count) of its newest diagnostics."""
        with self._lock:
            if self.arm is None:
                return time.monotonic(), 0
            received, values = self.arm
            return received, int(values.get("fresh_actions", 0))

    def frames_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(start <= t < end for t in self.frames)


def _graph_params(folder: Path, followers: EmulatorProcess) -> Path:
    """config/real.yaml with the videos as cameras and the emulated arms, enabled."""
    params = yaml.safe_load(config_path("real.yaml").read_text())
    for view in VIEWS:
        video = write_camera_video(folder / f"{view}.avi", seed=VIEWS.index(view))
        params[f"camera_{view}"]["ros__parameters"]["source"] = str(video)
    arm = params["arm_node"]["ros__parameters"]
    arm["enabled"] = True
    for side in arm["dynamixel"]["arms"]:
        arm["dynamixel"][side].update(port=followers.ports[side], calibration=str(followers.calibrations[side]))
    path = folder / "real.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def measure_real_graph(seconds: float, track_cfg: TrackModelConfig, policy_cfg: PolicyConfig, prefix: str) -> dict:
    """The real graph with untrained models of these sizes, measured for `seconds` after its first action and a
    warm-up."""
    policy_params = yaml.safe_load(config_path("real.yaml").read_text())["policy_node"]["ros__parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        track, policy = random_checkpoints(folder, track_cfg, policy_cfg)
        followers = EmulatorProcess(list(ARMS), folder)
        try:
            nodes = resolve("real", {"params_file": str(_graph_params(folder, followers)),
                                     "track_model": str(track), "policy_model": str(policy)})
            with ProcessGraph(nodes, extra_nodes=lambda ctx: [GraphProbe(context=ctx), ChainCounter(context=ctx)],
                              log_dir=folder / "logs") as graph:
                probe: GraphProbe = graph.node("graph_probe")
                counter: ChainCounter = graph.node("robot_graph_counter")
                graph.wait_for(lambda s: _wait_until(lambda: bool(probe.actions), s), STARTUP_BUDGET_S,
                               "the real graph's first action")
                time.sleep(WARM_UP_S)
                start, fresh_start = counter.fresh_actions()
                start_ns = probe.get_clock().now().nanoseconds
                time.sleep(seconds)
                graph.check()
                end, fresh_end = counter.fresh_actions()
                end_ns = probe.get_clock().now().nanoseconds
                actions = {k: t for k, t in probe.actions.items() if start_ns <= t < end_ns}
                tracks = {k: t for k, t in probe.tracks.items() if start_ns <= t < end_ns}
                images = counter.frames_between(start, end)
                arm = counter.arm_values()
        finally:
            followers.stop()
    span = max(end - start, 1e-9)
    return {
        f"{prefix}track_model": f"dim {track_cfg.dim}, depth {track_cfg.depth}, MoE layers {track_cfg.moe_layers}",
        f"{prefix}policy": f"dim {policy_cfg.dim}, spatial depth {policy_cfg.spatial_depth}, "
                           f"stem {policy_cfg.stem_channels}, frame stack {policy_cfg.frame_stack}",
        f"{prefix}images_hz": round(images / span, 2),
        f"{prefix}fresh_action_rate_hz": round((fresh_end - fresh_start) / span, 2),
        f"{prefix}latency_ms_p50": _percentile_ms(actions, 50),
        f"{prefix}latency_ms_p95": _percentile_ms(actions, 95),
        f"{prefix}tracks_per_s": round(len(tracks) / span, 2),
        f"{prefix}tracks_latency_ms_p50": _percentile_ms(tracks, 50),
        f"{prefix}max_track_lag_ms": round(policy_params["max_track_lag_s"] * 1e3, 1),
        # The margins of the arm node's safety limits under this load (since start): transactions repeated and
        # failed, faults latched, commands refused (e.g. joint positions older than stale_after_ms).
        f"{prefix}bus_retries": int(arm.get("bus_retries", 0)),
        f"{prefix}bus_failures": int(arm.get("bus_failures", 0)),
        f"{prefix}arm_faults": int(arm.get("faults", 0)),
        f"{prefix}refused_commands": int(arm.get("dropped/arm_not_ready", 0)),
        f"{prefix}joint_states_gap_ms_max": float(arm.get("joint_states_gap_ms_max", "nan")),
        f"{prefix}stale_after_ms": float(arm.get("stale_after_ms", "nan")),
    }


def bench_robot_graph(seconds: float = 10.0) -> dict:
    """The real graph with the models config/train_*_real.yaml train, and with the paper's model sizes."""
    params = yaml.safe_load(config_path("real.yaml").read_text())
    out = {"robot_graph_camera_rate_hz": params["camera_agentview"]["ros__parameters"]["rate_hz"],
           "robot_graph_policy_control_rate_hz": params["policy_node"]["ros__parameters"]["control_rate_hz"],
           "robot_graph_teleop_record_rate_hz": load_config(TeleopConfig,
                                                            config_path("robot/teleop.yaml")).record_rate_hz}
    track_cfg, policy_cfg = training_model_configs("train_tracks_real.yaml", "train_policy_real.yaml")
    out.update(measure_real_graph(seconds, track_cfg, policy_cfg, "robot_graph_"))
    paper_policy = PolicyConfig(views=policy_cfg.views, action_dim=policy_cfg.action_dim,
                                proprio_dims=policy_cfg.proprio_dims)
    out.update(measure_real_graph(seconds, TrackModelConfig(), paper_policy, "robot_graph_paper_size_"))
    return out


def _percentile_ms(received: dict[int, int], q: float) -> float:
    """Percentile `q` of receive time minus stamp (both ns), in ms."""
    if not received:
        return float("nan")
    return round(float(np.percentile([(t - stamp) * 1e-6 for stamp, t in received.items()], q)), 1)


def _wait_until(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not predicate() and time.monotonic() < end:
        time.sleep(0.05)
    return predicate()
