"""`InstructionInput`: the newest task instruction on /instruction, for the nodes that act on it (track, policy)."""
from __future__ import annotations

from rclpy.node import Node
from std_msgs.msg import String

from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import instruction_from_msg
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import MalformedMessage
from tramoe_ros.ros.qos import LATCHED_QOS


class InstructionInput:
    """Subscribes to /instruction (transient local: a node started later still gets it) and keeps the newest valid
    one in `value` (None before any). A malformed instruction is counted as dropped and the previous one stays; a
    new one is logged."""

    def __init__(self, node: Node, health: NodeHealth):
        self.value: str | None = None
        self._node, self._health = node, health
        health.watch(topics.INSTRUCTION, latched=True)
        node.create_subscription(String, topics.INSTRUCTION, self._on_message, LATCHED_QOS)

    def _on_message(self, msg: String) -> None:
        try:
            instruction = instruction_from_msg(msg)
        except MalformedMessage as e:
            self._health.drop(e)
            return
        self._health.seen(topics.INSTRUCTION)
        if instruction != self.value:
            self._node.get_logger().info(f"instruction: {instruction!r}")
        self.value = instruction
