"""`GraphProbe`: a node that watches a running graph from the outside, for the demo and the graph benchmark.

It measures end-to-end latency the way the stamps define it (receive time of each /policy/action minus its
header stamp, which is the capture/render time of the images it came from), the achieved control rate (distinct
actions per second) and the simulation's step rate (from the stamps on /episode_status).
"""
from __future__ import annotations

import threading

import numpy as np
from rclpy.node import Node
from tramoe_msgs.msg import EpisodeStatus, PolicyAction, TrackArray

from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import stamp_to_ns
from tramoe_ros.ros.qos import RELIABLE_QOS, STATUS_QOS


class GraphProbe(Node):
    def __init__(self, **node_kwargs):
        super().__init__("graph_probe", **node_kwargs)
        self.actions: dict[int, int] = {}  # image stamp -> first receive time (ns); re-sent actions count once
        self.tracks: dict[int, int] = {}  # image stamp -> first receive time (ns) of the TrackArray
        self.policy_ms: list[float] = []  # the policy's own inference time per action
        self.statuses: list[EpisodeStatus] = []
        self.episode_done = threading.Event()
        self._status_arrived = threading.Condition()
        self.create_subscription(PolicyAction, topics.POLICY_ACTION, self._on_action, RELIABLE_QOS)
        self.create_subscription(TrackArray, topics.TRACKS, self._on_tracks, RELIABLE_QOS)
        self.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, self._on_status, STATUS_QOS)

    def _on_action(self, msg: PolicyAction) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp not in self.actions:
            self.actions[stamp] = self.get_clock().now().nanoseconds
            self.policy_ms.append(msg.inference_latency_ms)

    def _on_tracks(self, msg: TrackArray) -> None:
        self.tracks.setdefault(stamp_to_ns(msg.header.stamp), self.get_clock().now().nanoseconds)

    def _on_status(self, msg: EpisodeStatus) -> None:
        with self._status_arrived:
            self.statuses.append(msg)
            self._status_arrived.notify_all()
        if msg.done:
            self.episode_done.set()

    def wait_for_step(self, step: int, timeout: float) -> bool:
        """Block until a status of `step` or later has arrived; False on timeout."""
        with self._status_arrived:
            return self._status_arrived.wait_for(lambda: self.statuses and self.statuses[-1].step >= step, timeout)

    def summary(self) -> dict:
        """steps, success, done; control_rate_hz (distinct actions per second), sim_rate_hz (simulation steps per
        second, from the stamps of the observations after each step); latency_ms_p50/p95/max (camera -> action),
        its parts tracks_latency_ms_p50 (camera -> tracks) and policy_inference_ms_p50; the number of actions."""
        last = self.statuses[-1] if self.statuses else None
        stepped = {s.step: stamp_to_ns(s.header.stamp) for s in self.statuses if s.step > 0}
        steps = sorted(stepped.items())
        sim_rate = _rate(steps[-1][0] - steps[0][0], steps[-1][1] - steps[0][1]) if len(steps) > 1 else 0.0
        received = sorted(self.actions.values())
        control_rate = _rate(len(received) - 1, received[-1] - received[0]) if len(received) > 1 else 0.0
        latencies = _latencies_ms(self.actions)
        return {
            "steps": last.step if last else 0,
            "success": bool(last.success) if last else False,
            "done": bool(last.done) if last else False,
            "control_rate_hz": control_rate,
            "sim_rate_hz": sim_rate,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
            "latency_ms_max": round(float(latencies.max()), 1),
            "tracks_latency_ms_p50": round(float(np.percentile(_latencies_ms(self.tracks), 50)), 1),
            "policy_inference_ms_p50": round(float(np.percentile(self.policy_ms or [np.nan], 50)), 1),
            "actions": len(self.actions),
        }


def _latencies_ms(received: dict[int, int]) -> np.ndarray:
    return np.array([(t - stamp) * 1e-6 for stamp, t in received.items()]) if received else np.array([np.nan])


def _rate(count: int, span_ns: int) -> float:
    return round(count / (span_ns * 1e-9), 2) if span_ns > 0 else 0.0
