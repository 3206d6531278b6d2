"""`arm_node`: policy actions -> robot commands through a backend (libero, ros2_control, dynamixel), with the
safety common to all backends:

- actions are refused unless the arm is enabled (parameter `enabled`, or the service ~/enable, std_srvs/SetBool);
- each action is clamped to [action_min, action_max] (default [-1, 1]);
- actions computed from images older than `max_action_age_s` are refused (a stalled pipeline does not act on old
  observations);
- a watchdog holds the arm (backend `hold`) when no usable action arrived for `watchdog_timeout_s`, e.g. because
  a camera stopped.
Malformed actions (wrong dimension, NaN) are dropped and counted in /diagnostics, which also give the rate of
fresh actions commanded (`fresh_action_rate_hz`: actions computed from an observation newer than the last
commanded one's, over the last REPORT_WINDOW of them).
"""
from __future__ import annotations

import time
from collections import deque
from typing import NoReturn

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.ros import topics
from tramoe_ros.ros.arm_backends import BACKENDS, ArmNotReady, create_backend
from tramoe_ros.ros.conversions import action_from_msg, action_to_msg, planned_from_msg, stamp_to_ns
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import MalformedMessage, ParameterError
from tramoe_ros.ros.params import Param, allow_runtime_changes, declare_params, non_negative, one_of, positive
from tramoe_ros.ros.qos import RELIABLE_QOS
from tramoe_ros.ros.runtime import run_node

PARAMS = [
    Param("backend", "libero", "where actions go: " + ", ".join(BACKENDS), one_of(*BACKENDS)),
    Param("action_dim", 7, "action dimension (7 for LIBERO, 12 for the dual-arm robot)", positive),
    Param("action_min", [], "per-dimension lower clamp; empty: -1 everywhere", kind="float[]"),
    Param("action_max", [], "per-dimension upper clamp; empty: +1 everywhere", kind="float[]"),
    Param("enabled", False, "actuation on; also switched by the ~/enable service"),
    Param("watchdog_timeout_s", 0.5, "hold the arm after this long without a usable action", positive),
    Param("max_action_age_s", 0.0, "refuse actions computed from images older than this; 0: no limit",
          non_negative),
    Param("stale_after_s", 1.0, "report the action input stale after this long without a usable action", positive),
]
WATCHDOG_PERIOD_S = 0.02
REPORT_WINDOW = 50


class ArmNode(Node):
    def __init__(self, **node_kwargs):
        self.backend = None  # set before anything can fail, for destroy_node
        super().__init__("arm_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        dim = self.params["action_dim"]
        self.action_min = self._limits("action_min", -1.0)
        self.action_max = self._limits("action_max", 1.0)
        if not (self.action_min <= self.action_max).all():
            raise ParameterError(f"{self.get_name()}: action_min must not exceed action_max, got "
                                 f"{self.action_min.tolist()} and {self.action_max.tolist()}")
        self.backend = create_backend(self.params["backend"], self, dim)
        self.enabled: bool = self.params["enabled"]
        self.holding = True  # nothing commanded yet
        self._last_action_time: float | None = None
        self._last_source_stamp = -1  # stamp of the observation the last commanded action came from (ns)
        self._fresh_times: deque[float] = deque(maxlen=REPORT_WINDOW)

        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=self.params["backend"],
                                 state=lambda: {"enabled": str(self.enabled), "holding": str(self.holding),
                                                **self.backend.diagnostics()})
        self.health.watch(topics.POLICY_ACTION)
        allow_runtime_changes(self, PARAMS, {"enabled": self._set_enabled})
        self.create_service(SetBool, "~/enable", self._on_enable_request)
        self.create_subscription(PolicyAction, topics.POLICY_ACTION, self._on_action, RELIABLE_QOS)
        self.create_timer(WATCHDOG_PERIOD_S, self._watchdog)
        self.get_logger().info(f"arm backend {self.params['backend']}, {dim}-d actions, "
                               f"{'enabled' if self.enabled else 'disabled (call ~/enable to actuate)'}")

    def _limits(self, name: str, default: float) -> np.ndarray:
        values = self.params[name]
        dim = self.params["action_dim"]
        if values and len(values) != dim:
            raise ParameterError(f"{self.get_name()}: {name} must have {dim} entries (or none), got {values}")
        return np.array(values if values else [default] * dim, np.float32)

    def _set_enabled(self, enabled: bool) -> None:
        if enabled != self.enabled:
            self.get_logger().info("arm enabled" if enabled else "arm disabled: holding")
        self.enabled = enabled
        if not enabled:
            self._hold("disabled")

    def _on_enable_request(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        result = self.set_parameters([Parameter("enabled", value=request.data)])[0]
        response.success = result.successful
        response.message = ("enabled" if request.data else "disabled") if result.successful else result.reason
        return response

    def _on_action(self, msg: PolicyAction) -> None:
        try:
            action = action_from_msg(msg, self.params["action_dim"])
            planned = planned_from_msg(msg, self.params["action_dim"])
        except MalformedMessage as e:
            self.health.drop(e)
            return
        age_s = (self.get_clock().now().nanoseconds - stamp_to_ns(msg.header.stamp)) * 1e-9
        max_age = self.params["max_action_age_s"]
        if max_age > 0 and age_s > max_age:
            self.health.drop("stale_action", f"action computed from images {age_s:.2f} s old "
                                             f"(max_action_age_s {max_age})")
            return
        self.health.seen(topics.POLICY_ACTION)
        if not self.enabled:
            self.health.count("ignored_while_disabled")
            return
        clamped = np.clip(action, self.action_min, self.action_max)
        clamped_planned = np.clip(planned, self.action_min, self.action_max)
        if not (np.array_equal(clamped, action) and np.array_equal(clamped_planned, planned)):
            self.health.count("clamped")
        try:
            self.backend.command(clamped, action_to_msg(clamped, msg.header, msg.inference_latency_ms, msg.model_id,
                                                        planned=clamped_planned))
        except ArmNotReady as e:
            self.health.drop("arm_not_ready", str(e))
            return
        self.health.count("commanded")
        self._last_action_time = time.monotonic()
        if stamp_to_ns(msg.header.stamp) > self._last_source_stamp:
            self._last_source_stamp = stamp_to_ns(msg.header.stamp)
            self.health.count("fresh_actions")
            self._fresh_times.append(self._last_action_time)
            if len(self._fresh_times) > 1 and self._fresh_times[-1] > self._fresh_times[0]:
                self.health.values["fresh_action_rate_hz"] = \
                    f"{(len(self._fresh_times) - 1) / (self._fresh_times[-1] - self._fresh_times[0]):.2f}"
        if self.holding:
            self.holding = False
            self.get_logger().info("actions flowing: commanding the arm")

    def _watchdog(self) -> None:
        if self.holding or self._last_action_time is None:
            return
        idle = time.monotonic() - self._last_action_time
        if idle > self.params["watchdog_timeout_s"]:
            self._hold(f"no usable action for {idle:.2f} s")

    def _hold(self, reason: str) -> None:
        if not self.holding:
            self.get_logger().warning(f"holding the arm: {reason}")
            self.backend.hold()
            self.health.count("holds")
        self.holding = True

    def destroy_node(self) -> None:
        if self.backend is not None:
            self.backend.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    run_node(ArmNode, "arm_node", args)


if __name__ == "__main__":
    main()
