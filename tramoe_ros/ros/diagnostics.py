"""`NodeHealth`: what a node counts (received, dropped by reason), how fresh its inputs are, and a
diagnostic_msgs/DiagnosticArray on /diagnostics that reports both, once per period.

Dropped messages are logged with a warning throttled per reason, so a flood of bad input neither floods the log
nor hides a second, different problem.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from tramoe_ros.ros import topics
from tramoe_ros.ros.errors import MalformedMessage, bounded
from tramoe_ros.ros.qos import RELIABLE_QOS

WARNING_INTERVAL_S = 5.0


class NodeHealth:
    """Counters, input freshness and periodic diagnostics of one node.

    Args:
        node: the node whose name the status carries
        stale_after_s: an input not seen for longer is reported stale (diagnostics level WARN)
        period_s: diagnostics publishing period
        hardware_id: what the node talks to (a camera source, a simulator), shown by diagnostic tools
        state: called at each report for facts that change by themselves (a backend's state)
    """

    def __init__(self, node: Node, stale_after_s: float, period_s: float = 1.0, hardware_id: str = "",
                 state: Callable[[], dict[str, str]] | None = None):
        self._node = node
        self.stale_after_s = stale_after_s
        self.hardware_id = hardware_id
        self.counts: Counter[str] = Counter()
        self.values: dict[str, str] = {}  # node-specific facts to report (rates, latencies, expert usage)
        self._state = state
        self._last_seen: dict[str, float | None] = {}
        self._latched: set[str] = set()
        self._last_warning: dict[str, float] = {}
        self._stale_reported: set[str] = set()
        self._drops_at_last_report = 0
        self._publisher = node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE_QOS)
        self._timer = node.create_timer(period_s, self.publish)

    def watch(self, name: str, latched: bool = False) -> None:
        """Report `name` as stale until it is first seen, and whenever it has not been seen for `stale_after_s`;
        a `latched` input (a transient-local value published once) only until it is first seen."""
        self._last_seen.setdefault(name, None)
        if latched:
            self._latched.add(name)

    def seen(self, name: str) -> None:
        """`name` (an input topic) just delivered a usable message."""
        self._last_seen[name] = time.monotonic()
        if name in self._stale_reported:
            self._stale_reported.discard(name)
            self._node.get_logger().info(f"input {name} is back")

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def drop(self, error: MalformedMessage | str, detail: str = "") -> None:
        """Count a dropped message under its reason and warn, at most once per reason every few seconds."""
        reason = error.reason if isinstance(error, MalformedMessage) else error
        detail = bounded(str(error) if isinstance(error, MalformedMessage) else detail)
        self.counts[f"dropped/{reason}"] += 1
        now = time.monotonic()
        if now - self._last_warning.get(reason, -WARNING_INTERVAL_S) >= WARNING_INTERVAL_S:
            self._last_warning[reason] = now
            self._node.get_logger().warning(
                f"dropped a message ({reason}, {self.counts[f'dropped/{reason}']} so far): {detail}")

    @property
    def dropped(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("dropped/"))

    def input_ages(self) -> dict[str, float]:
        """Seconds since each watched input was last seen (inf: never)."""
        now = time.monotonic()
        return {name: (now - t if t is not None else float("inf")) for name, t in self._last_seen.items()}

    def stale_inputs(self) -> dict[str, float]:
        return {name: age for name, age in self.input_ages().items()
                if age > self.stale_after_s and (name not in self._latched or age == float("inf"))}

    def status(self) -> DiagnosticStatus:
        stale = self.stale_inputs()
        for name in stale.keys() - self._stale_reported:
            self._node.get_logger().warning(f"input {name} is stale: nothing usable for "
                                            f"{'ever' if stale[name] == float('inf') else f'{stale[name]:.1f} s'}")
        self._stale_reported |= stale.keys()
        new_drops = self.dropped - self._drops_at_last_report
        self._drops_at_last_report = self.dropped
        problems = [f"stale input {name} ({'never received' if age == float('inf') else f'{age:.1f} s'})"
                    for name, age in sorted(stale.items())]
        if new_drops:
            problems.append(f"dropped {new_drops} malformed or unusable messages")
        values = {**{k: str(v) for k, v in sorted(self.counts.items())},
                  **{f"age_s:{name}": ("never" if age == float("inf") else f"{age:.3f}")
                     for name, age in sorted(self.input_ages().items())},
                  **self.values, **(self._state() if self._state else {})}
        return DiagnosticStatus(level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
                                name=self._node.get_fully_qualified_name(),
                                message="; ".join(problems) or "ok", hardware_id=self.hardware_id,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def publish(self) -> None:
        array = DiagnosticArray(status=[self.status()])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
