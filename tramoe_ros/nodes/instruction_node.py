"""`instruction_node`: publishes the task instruction (parameter `instruction`) on /instruction, transient local,
so the track node gets it whenever it starts. Setting the parameter at runtime publishes the new instruction.
In simulation the LIBERO bridge publishes its task's instruction instead.
"""
from __future__ import annotations

from typing import NoReturn

from rclpy.node import Node
from std_msgs.msg import String

from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import MAX_INSTRUCTION_CHARS, instruction_problem
from tramoe_ros.ros.params import Param, allow_runtime_changes, declare_params
from tramoe_ros.ros.qos import LATCHED_QOS
from tramoe_ros.ros.runtime import run_node

PARAMS = [Param("instruction", "", "the task instruction, e.g. 'put the bowl on the plate' (at most "
                                   f"{MAX_INSTRUCTION_CHARS} characters)", instruction_problem)]


class InstructionNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("instruction_node", **node_kwargs)
        params = declare_params(self, PARAMS)
        self._publisher = self.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS)
        allow_runtime_changes(self, PARAMS, {"instruction": self.publish_instruction})
        self.publish_instruction(params["instruction"])

    def publish_instruction(self, instruction: str) -> None:
        self._publisher.publish(String(data=instruction))
        self.get_logger().info(f"instruction: {instruction!r}")


def main(args: list[str] | None = None) -> NoReturn:
    run_node(InstructionNode, "instruction_node", args)


if __name__ == "__main__":
    main()
