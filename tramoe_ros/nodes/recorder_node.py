"""`recorder_node`: records chosen topics into a rosbag2 bag (MCAP storage + metadata.yaml) that `ros2 bag info`,
`ros2 bag play` and `rosbags.highlevel.AnyReader` read.

Topics are subscribed as soon as discovery shows a publisher of them (topics that appear later are picked up; a
topic known only from its subscribers waits, since its QoS comes from its publishers), with the QoS their
publishers offer (reliable / transient local only when every publisher is, as rosbag2 does), and written
as received: the serialized CDR bytes, stamped with the receive time. On SIGINT or SIGTERM the node stops
spinning first, then closes the bag (MCAP summary and metadata.yaml), so every received message is in it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import NoReturn

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from tramoe_ros.ros.bag import BagError, BagWriter, message_class
from tramoe_ros.ros.cpu_share import BackgroundThread
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import NodeStartupError
from tramoe_ros.ros.params import Param, declare_params, not_empty, positive
from tramoe_ros.ros.runtime import run_node

PARAMS = [
    Param("topics", [], "topics to record", not_empty, kind="str[]"),
    Param("output", "", "bag folder to create (must not exist); empty: runs/bags/tramoe_<date>_<time> under the "
                        "working directory (logged as an absolute path)"),
    Param("discovery_period_s", 0.5, "how often to look for recorded topics that have appeared", positive),
    Param("background", False, "write at idle priority: only with the CPU the control path leaves (messages wait "
                               "in the subscriptions' queues meanwhile)"),
]
# Received messages queued per topic before the recorder takes them: enough for a burst while it writes.
QUEUE_DEPTH = 100


def subscription_qos(offered: list[QoSProfile]) -> QoSProfile:
    """A QoS that matches every publisher: reliable / transient local only if all of them are."""
    reliable = bool(offered) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
    latched = bool(offered) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=QUEUE_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        self.bag = None  # set before anything can fail, for destroy_node
        super().__init__("recorder_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        self.path = Path(self.params["output"] or time.strftime("runs/bags/tramoe_%Y%m%d_%H%M%S")).absolute()
        try:
            self.bag = BagWriter(self.path)
        except BagError as e:
            raise NodeStartupError(str(e)) from None
        self._background = BackgroundThread(self.params["background"])
        self._wanted = list(dict.fromkeys(self.params["topics"]))
        self._recording = {}
        self.health = NodeHealth(self, stale_after_s=float("inf"), hardware_id=str(self.path),
                                 state=lambda: {f"messages:{t}": str(n) for t, n in sorted(self.bag.counts.items())})
        self.create_timer(self.params["discovery_period_s"], self._discover)
        self._discover()
        self.get_logger().info(f"recording {self._wanted} to {self.path}")

    def _discover(self) -> None:
        missing = [t for t in self._wanted if t not in self._recording]
        if not missing:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in missing:
            # A topic with subscribers only (a node that listens started first) has no QoS to copy yet: subscribing
            # now would record it best-effort and volatile, and store no offered QoS for replay.
            if topic not in types or not self.get_publishers_info_by_topic(topic):
                continue
            if len(types[topic]) != 1:
                self.health.drop("ambiguous_type", f"{topic} is published with several types {types[topic]}; "
                                                   f"not recorded")
                self._wanted.remove(topic)
                continue
            self._subscribe(topic, types[topic][0])

    def _subscribe(self, topic: str, msgtype: str) -> None:
        offered = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
        try:
            msg_class = message_class(msgtype)
            self.bag.add_topic(topic, msgtype, offered)
        except (BagError, ImportError, AttributeError) as e:
            self.health.drop("unknown_type", f"{topic} ({msgtype}) cannot be recorded: {e}")
            self._wanted.remove(topic)
            return
        self._recording[topic] = self.create_subscription(
            msg_class, topic, lambda data, t=topic: self._write(t, data), subscription_qos(offered),
            raw=True)
        self.get_logger().info(f"recording {topic} ({msgtype})")

    def _write(self, topic: str, data: bytes) -> None:
        self._background.apply()
        self.bag.write(topic, self.get_clock().now().nanoseconds, data)

    def destroy_node(self) -> None:
        # Called after spinning stopped, so no write callback runs any more.
        if self.bag is not None:
            self.bag.close()
            self.get_logger().info(f"bag {self.path}: {sum(self.bag.counts.values())} messages on "
                                   f"{len(self.bag.counts)} topics")
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    run_node(RecorderNode, "recorder_node", args)


if __name__ == "__main__":
    main()
