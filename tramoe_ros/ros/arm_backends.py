"""Arm backends: what the arm node's actions become. The arm node owns the safety common to all of them (clamping,
the watchdog, the enable switch); a backend only turns a safe action into commands and knows how to hold.

- `libero`: forwards the action to the LIBERO bridge (/libero/action).
- `ros2_control`: maps the normalised action to joint positions within configured limits and sends a
  trajectory_msgs/JointTrajectory to /<controller>/joint_trajectory (a JointTrajectoryController), reading the
  present positions from /joint_states.
- `dynamixel`: the real dual-arm robot's servo driver, provided by `tramoe_ros.ros.dynamixel_backend`.

A new backend subclasses `ArmBackend` and is named in `BACKENDS` ("module:Class"); it is imported only when
selected, so a backend's dependencies (a serial driver) are not needed by the others.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np
from builtin_interfaces.msg import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import joint_positions
from tramoe_ros.ros.errors import MalformedMessage, NodeStartupError
from tramoe_ros.ros.params import Param, declare_params, non_negative, not_empty, positive
from tramoe_ros.ros.qos import RELIABLE_QOS

BACKENDS = {
    "libero": "tramoe_ros.ros.arm_backends:LiberoBackend",
    "ros2_control": "tramoe_ros.ros.arm_backends:Ros2ControlBackend",
    "dynamixel": "tramoe_ros.ros.dynamixel_backend:DynamixelBackend",
}


class ArmNotReady(RuntimeError):
    """The backend cannot command the arm yet (e.g. its present position is unknown); the action is dropped."""


class ArmBackend(ABC):
    """Turns safe actions into robot commands.

    Args:
        node: the arm node; a backend declares its own parameters on it under "<backend name>." and creates its
            publishers and subscriptions there. Raise NodeStartupError for a configuration that cannot work.
        action_dim: length of the actions `command` receives
    """

    def __init__(self, node: Node, action_dim: int):
        self.node = node
        self.action_dim = action_dim

    @abstractmethod
    def command(self, action: np.ndarray, source: PolicyAction) -> None:
        """Send one action: (action_dim,) float32, already clamped to the arm node's limits, from `source` (the
        policy's message with its action, and any planned actions, clamped alike).

        Raises:
            ArmNotReady: the action cannot be executed now
        """

    @abstractmethod
    def hold(self) -> None:
        """Keep the arm where it is: called once when actions stop (watchdog) or the arm is disabled."""

    def diagnostics(self) -> dict[str, str]:
        """Backend facts for the arm node's diagnostics."""
        return {}

    def close(self) -> None:
        """Release devices; called when the node is destroyed."""


def create_backend(name: str, node: Node, action_dim: int) -> ArmBackend:
    """Import and construct the backend called `name`."""
    if name not in BACKENDS:
        raise NodeStartupError(f"unknown arm backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, class_name = BACKENDS[name].split(":")
    try:
        backend_class = getattr(importlib.import_module(module), class_name)
    except (ImportError, AttributeError) as e:
        raise NodeStartupError(f"arm backend {name!r} ({BACKENDS[name]}) cannot be loaded: {e}") from None
    return backend_class(node, action_dim)


class LiberoBackend(ArmBackend):
    """Forwards actions, and an action-chunk policy's planned ones, to the LIBERO bridge, keeping the source image
    stamp (lock-step mode matches on it; in real time the bridge executes the plan by time).

    Holding needs no command: the bridge applies a zero-motion action on every real-time step that has no fresh
    action, and in lock-step mode the simulation does not advance without one.
    """

    def __init__(self, node: Node, action_dim: int):
        super().__init__(node, action_dim)
        self._publisher = node.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)

    def command(self, action: np.ndarray, source: PolicyAction) -> None:
        self._publisher.publish(source)

    def hold(self) -> None:
        pass


class Ros2ControlBackend(ArmBackend):
    """Normalised actions in [-1, 1] -> joint positions between `lower` and `upper`, limited to `max_step` from
    the present position, sent as a one-point JointTrajectory reached after `time_from_start_s`."""

    def __init__(self, node: Node, action_dim: int):
        super().__init__(node, action_dim)

        def per_joint(values: list) -> str | None:
            return None if len(values) == action_dim else f"must have {action_dim} entries (one per action value)"

        p = declare_params(node, [
            Param("ros2_control.controller", "arm_controller", "JointTrajectoryController name", not_empty),
            Param("ros2_control.joint_names", [], "controlled joints, in action order", per_joint, kind="str[]"),
            Param("ros2_control.lower", [], "joint position at action -1 (rad or m)", per_joint, kind="float[]"),
            Param("ros2_control.upper", [], "joint position at action +1 (rad or m)", per_joint, kind="float[]"),
            Param("ros2_control.max_step", 0.1, "largest move per command from the present position (rad or m); "
                                                "0: unlimited", non_negative),
            Param("ros2_control.time_from_start_s", 0.1, "time to reach each commanded point", positive),
        ])
        self.joint_names: list[str] = p["ros2_control.joint_names"]
        self.lower = np.array(p["ros2_control.lower"], np.float64)
        self.upper = np.array(p["ros2_control.upper"], np.float64)
        if not (self.lower < self.upper).all():
            raise NodeStartupError(f"ros2_control.lower must be below ros2_control.upper for every joint, got "
                                   f"{self.lower.tolist()} and {self.upper.tolist()}")
        self.max_step = p["ros2_control.max_step"]
        seconds = p["ros2_control.time_from_start_s"]
        self._time_from_start = Duration(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))
        self.present: np.ndarray | None = None
        self._publisher = node.create_publisher(
            JointTrajectory, topics.joint_trajectory(p["ros2_control.controller"]), RELIABLE_QOS)
        node.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, RELIABLE_QOS)

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self.present = joint_positions(msg, self.joint_names).astype(np.float64)
        except MalformedMessage:
            pass  # other joints' states (e.g. a second arm's) share the topic; only complete ones are used

    def _send(self, positions: np.ndarray) -> None:
        # A zero header stamp tells the controller to start the trajectory on receipt.
        point = JointTrajectoryPoint(positions=positions.tolist(), time_from_start=self._time_from_start)
        self._publisher.publish(JointTrajectory(joint_names=self.joint_names, points=[point]))

    def command(self, action: np.ndarray, source: PolicyAction) -> None:
        if self.present is None:
            raise ArmNotReady(f"no {topics.JOINT_STATES} with joints {self.joint_names} yet")
        target = self.lower + (action.astype(np.float64) + 1.0) / 2.0 * (self.upper - self.lower)
        if self.max_step > 0:
            target = self.present + np.clip(target - self.present, -self.max_step, self.max_step)
        self._send(target)

    def hold(self) -> None:
        if self.present is not None:
            self._send(self.present)

    def diagnostics(self) -> dict[str, str]:
        return {"present_known": str(self.present is not None)}
