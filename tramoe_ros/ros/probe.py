"""`GraphProbe`: a node that watches a running graph from the outside, for the demo and the graph benchmark.

It measures end-to-end latency the way the stamps define it (receive time of each /policy/action minus its
header stamp, which is the capture/render time of the images it came from), the achieved control rate (distinct
actions per second), the simulation's step rate (from the stamps on /episode_status) and the rate of fresh
actions the simulation applied (steps whose action came from an observation not acted on before; a repeated or
held step is not fresh), per episode.
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
        self.policy_ms: dict[int, float] = {}  # image stamp -> the policy's own inference time for its action
        self.statuses: list[EpisodeStatus] = []
        self.finished: set[int] = set()  # episodes whose last status said done
        self.episode_done = threading.Event()
        self._status_arrived = threading.Condition()
        self.create_subscription(PolicyAction, topics.POLICY_ACTION, self._on_action, RELIABLE_QOS)
        self.create_subscription(TrackArray, topics.TRACKS, self._on_tracks, RELIABLE_QOS)
        self.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, self._on_status, STATUS_QOS)

    def _on_action(self, msg: PolicyAction) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp not in self.actions:
            self.actions[stamp] = self.get_clock().now().nanoseconds
            self.policy_ms[stamp] = msg.inference_latency_ms

    def _on_tracks(self, msg: TrackArray) -> None:
        self.tracks.setdefault(stamp_to_ns(msg.header.stamp), self.get_clock().now().nanoseconds)

    def _on_status(self, msg: EpisodeStatus) -> None:
        with self._status_arrived:
            self.statuses.append(msg)
            if msg.done:
                self.finished.add(msg.episode)
            self._status_arrived.notify_all()
        if msg.done:
            self.episode_done.set()

    def wait_for_episode_end(self, episode: int, timeout: float) -> bool:
        """Block until `episode` is done; False on timeout."""
        with self._status_arrived:
            return self._status_arrived.wait_for(lambda: episode in self.finished, timeout)

    def wait_for_step(self, step: int, timeout: float) -> bool:
        """Block until a status of `step` or later has arrived; False on timeout."""
        with self._status_arrived:
            return self._status_arrived.wait_for(lambda: self.statuses and self.statuses[-1].step >= step, timeout)

    def latencies_ms(self) -> np.ndarray:
        """Camera -> action latency of every action seen, in ms."""
        return _latencies_ms(self.actions)

    def summary(self, episode: int | None = None) -> dict:
        """Of `episode` (default: the last one seen): steps, success, done; sim_rate_hz (simulation steps per
        second, from the stamps of the observations after each step); fresh_action_rate_hz (steps that applied a
        fresh action per second), repeated_steps and hold_steps; on_time_steps (steps that applied the action
        computed from the observation just before them, as lock-step always does), planned_steps (steps that
        applied the action an older observation's chunk planned for them: their own came late) and late_steps
        (steps that applied an older observation's own action as theirs); control_rate_hz (distinct actions per second),
        latency_ms_p50/p95/max (camera -> action), its parts tracks_latency_ms_p50 (camera -> tracks) and
        policy_inference_ms_p50, and the number of actions, over the episode's span."""
        if episode is None and self.statuses:
            episode = self.statuses[-1].episode
        statuses = [s for s in self.statuses if s.episode == episode]
        last = statuses[-1] if statuses else None
        stepped = {s.step: s for s in statuses if s.step > 0}
        steps = sorted((step, stamp_to_ns(s.header.stamp)) for step, s in stepped.items())
        span = (steps[-1][1] - steps[0][1]) if len(steps) > 1 else 0
        # The observations of each step (before the first action, the world waits and re-stamps step 0's).
        observed: dict[int, set[int]] = {}
        for s in statuses:
            observed.setdefault(s.step, set()).add(stamp_to_ns(s.header.stamp))
        fresh, on_time, planned, late, seen = 0, 0, 0, 0, set()
        for step, s in sorted(stepped.items()):
            stamp = stamp_to_ns(s.action_stamp)
            if stamp and not s.action_repeated:
                fresh += stamp not in seen
                if s.action_offset:
                    planned += 1
                elif stamp in observed.get(step - 1, ()):
                    on_time += 1
                else:
                    late += 1
            seen.add(stamp)
        # Actions, tracks and policy times of observations within the episode (start: its first status).
        start = stamp_to_ns(statuses[0].header.stamp) if statuses else 0
        end = stamp_to_ns(last.header.stamp) if last else 0
        actions = {k: t for k, t in self.actions.items() if start <= k <= end}
        policy_ms = [self.policy_ms[k] for k in actions]
        received = sorted(actions.values())
        control_rate = _rate(len(received) - 1, received[-1] - received[0]) if len(received) > 1 else 0.0
        latencies = _latencies_ms(actions)
        return {
            "steps": last.step if last else 0,
            "success": bool(last.success) if last else False,
            "done": bool(last.done) if last else False,
            "sim_rate_hz": _rate(steps[-1][0] - steps[0][0], span) if len(steps) > 1 else 0.0,
            # Fresh steps after the first, over the time from the first step to the last.
            "fresh_action_rate_hz": _rate(fresh - 1, span) if len(steps) > 1 else 0.0,
            "repeated_steps": sum(s.action_repeated for s in stepped.values()),
            "hold_steps": sum(stamp_to_ns(s.action_stamp) == 0 for s in stepped.values()),
            "on_time_steps": on_time,
            "planned_steps": planned,
            "late_steps": late,
            "control_rate_hz": control_rate,
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
            "latency_ms_max": round(float(latencies.max()), 1),
            "tracks_latency_ms_p50": round(float(np.percentile(
                _latencies_ms({k: t for k, t in self.tracks.items() if start <= k <= end}), 50)), 1),
            "policy_inference_ms_p50": round(float(np.percentile(policy_ms or [np.nan], 50)), 1),
            "actions": len(actions),
        }


def _latencies_ms(received: dict[int, int]) -> np.ndarray:
    return np.array([(t - stamp) * 1e-6 for stamp, t in received.items()]) if received else np.array([np.nan])


def _rate(count: int, span_ns: int) -> float:
    return round(count / (span_ns * 1e-9), 2) if span_ns > 0 else 0.0
