"""`libero_bridge_node`: a LIBERO task in the ROS graph, seen exactly as the real robot is.

Publishes, per step and all with one stamp (the render time): /episode_status (EpisodeStatus), /joint_states
(the 7 arm joints and 2 finger joints, robosuite's names), and /cameras/<view>/image_raw (rgb8, upright) for
the rendered views (in real time every round(control_rate_hz / camera_rate_hz)-th step when `camera_rate_hz` is
set, as a real camera runs at its own rate beside the control loop); once, transient local: /instruction (the
task's, or the `instruction` parameter).
Applies actions from /libero/action (PolicyAction, 7-D) and resets through /libero/reset (ResetEpisode).

Modes:
- `realtime`: one env step per control period (`control_rate_hz`) with the newest action received since the last
  step. A step whose observation's action has not arrived at the tick waits for it until `action_grace_s` after
  the tick's scheduled time (a robot applies a command when it arrives, not only on a clock edge). The wait counts
  from the schedule, not from when the tick's callback runs: after a step that overran its period the next one
  waits only for what is left, so the steps stay on the control-rate schedule and the simulation keeps real time
  (a wait counted from the callback made every later step wait the whole grace and miss its action). A step
  without a new action repeats the standing one, as a controller keeps its last command: LIBERO's actions are
  end-effector deltas, so zero motion would be a stall the policy never saw in its demonstrations, while its
  consecutive actions differ little. An action-chunk policy's action carries the actions it planned for the steps
  after (PolicyAction.planned): a step whose own action has not come applies the one the newest observation's
  plan holds for it (row i - 1 when that observation is i steps old), and repeats only past the plan. A standing
  action expires after `command_timeout_s`; then the step applies zero motion and keeps the gripper command (the
  arm holds). Until the episode's first action
  arrives, the world waits and the first observation is re-published each period with a new stamp.
- `lockstep`: one env step per action, and only for the action computed from the current observation (its
  header stamp equals the observation's), so an episode is deterministic whatever the timing. While waiting,
  the observation is re-sent every `resend_period_s` (a node that started late still gets it): unchanged once
  the episode has started, with a new stamp before its first action (as in real time, the world waits).
When an episode ends (success or `max_steps`) the bridge stops stepping; `auto_reset` starts the next
initial state.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, NoReturn

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from builtin_interfaces.msg import Time
from std_msgs.msg import Header, String
from tramoe_msgs.msg import EpisodeStatus, PolicyAction
from tramoe_msgs.srv import ResetEpisode

from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import (MAX_INSTRUCTION_CHARS, action_from_msg, image_from_rgb, instruction_problem,
                                        planned_from_msg, stamp_to_ns)
from tramoe_ros.ros.diagnostics import NodeHealth
from tramoe_ros.ros.errors import MalformedMessage, NodeStartupError
from tramoe_ros.ros.params import Param, declare_params, non_negative, not_empty, one_of, positive
from tramoe_ros.ros.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS, STATUS_QOS
from tramoe_ros.ros.runtime import run_node
from tramoe_ros.sim.libero_env import ACTION_DIM, LiberoEnv, LiberoError

REPORT_WINDOW = 50
# Real time: how many recent observations' steps are remembered, to place a late action's plan in time.
OBSERVATIONS_KEPT = 64


class Command(NamedTuple):
    """A policy's answer to one observation: its action (7,), the actions it planned for the steps after (P, 7),
    and the observation's stamp."""

    action: np.ndarray
    planned: np.ndarray
    stamp: Time


def _task_format(task: str) -> str | None:
    suite, _, index = task.partition("/")
    return None if suite and index.isdigit() else "must be <suite>/<task index>, e.g. libero_object/0"


PARAMS = [
    Param("task", "libero_object/0", "LIBERO task as <suite>/<task index>", _task_format),
    Param("init_state_index", 0, "initial state of the first episode (0..49)", non_negative),
    Param("views", ["agentview", "eye_in_hand"], "cameras to render and publish (only these are rendered)",
          not_empty),
    Param("camera_size", 128, "image side in pixels", positive),
    Param("max_steps", 600, "episode step budget", positive),
    Param("reflections", True, "render reflections as LIBERO's datasets do; false renders faster"),
    Param("antialiasing", False, "4x multisampling as LIBERO's datasets; off (as the shipped models' data) is "
                                 "~40% faster"),
    Param("max_visual_faces", 0, "simplify every visual-only mesh to at most this many triangles (0: LIBERO's "
                                  "meshes); rendering costs time in proportion to triangles on a CPU",
          non_negative),
    Param("render_threads", 0, "threads of Mesa's software rasteriser (llvmpipe, LP_NUM_THREADS), set before the "
                               "simulator's GL context exists; 0: Mesa's default (one per core). 1 leaves the "
                               "other core to the models; the images are the same", non_negative),
    Param("mode", "realtime", "realtime: step at control_rate_hz; lockstep: one step per action (deterministic)",
          one_of("realtime", "lockstep")),
    Param("control_rate_hz", 20.0, "realtime stepping rate (LIBERO's control rate is 20 Hz)", positive),
    Param("camera_rate_hz", 0.0, "realtime: render and publish the cameras at this rate of simulated time, every "
                                 "round(control_rate_hz / camera_rate_hz)-th step (0: every step); rendering is "
                                 "most of a step. Lockstep renders every step", non_negative),
    Param("action_grace_s", 0.02, "realtime: at a step's tick, wait at most this long for the action computed "
                                  "from the last observation before stepping without it (0: never wait)",
          non_negative),
    Param("command_timeout_s", 0.15, "realtime: a step without a new action repeats the standing one until it is "
                                     "this old, then holds the arm (zero motion)", non_negative),
    Param("instruction", "", f"instruction to publish (at most {MAX_INSTRUCTION_CHARS} characters); empty: the "
                             "task's own", lambda text: instruction_problem(text) if text else None),
    Param("auto_reset", False, "start the next initial state when an episode ends"),
    Param("resend_period_s", 1.0, "lockstep: re-send the waiting observation this often", positive),
    Param("stale_after_s", 2.0, "report the action input stale after this long without a usable action",
          positive),
]


def grace_left_ns(grace_ns: int, period_ns: int, until_next_tick_ns: int) -> int:
    """How long a real-time tick may still wait for its observation's action (<= 0: not at all). The grace counts
    from the tick's scheduled time, one period before the next tick's (rcl schedules the next one when it hands
    out this one), not from when the tick's callback runs, which is later when the previous step overran."""
    lateness = min(max(period_ns - until_next_tick_ns, 0), period_ns)
    return grace_ns - lateness


class LiberoBridgeNode(Node):
    def __init__(self, **node_kwargs):
        self.env = None  # set before anything can fail, for destroy_node
        super().__init__("libero_bridge_node", **node_kwargs)
        self.params = declare_params(self, PARAMS)
        suite, _, index = self.params["task"].partition("/")
        # MuJoCo renders through an EGL context bound to the thread that created it, while an executor may run
        # callbacks on another thread than the one that built the node: every env call runs on this one thread.
        self._sim_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="libero")
        if self.params["render_threads"]:
            # Read by Mesa when the first GL context of the process is made (the env's, below).
            os.environ["LP_NUM_THREADS"] = str(self.params["render_threads"])
        try:
            self.env = self._sim(LiberoEnv, suite, int(index), views=self.params["views"],
                                 camera_size=self.params["camera_size"], max_steps=self.params["max_steps"],
                                 reflections=self.params["reflections"],
                                 antialiasing=self.params["antialiasing"],
                                 max_visual_faces=self.params["max_visual_faces"] or None)
        except LiberoError as e:
            self._sim_thread.shutdown()
            raise NodeStartupError(str(e)) from None
        except ImportError as e:
            self._sim_thread.shutdown()
            raise NodeStartupError(f"LIBERO is not importable ({e}); install the simulation dependencies") from None
        robot = self.env.robosuite_env.robots[0]
        self.joint_names = list(robot.robot_joints) + list(robot.gripper.joints)
        self.instruction = self.params["instruction"] or self.env.instruction
        self.lockstep = self.params["mode"] == "lockstep"

        self.episode = -1  # the first reset makes it 0
        self.success = False
        self.done = False
        self._observation = None
        self._stamp = None
        self._started = False  # the episode's first action has arrived
        self._newest_action: Command | None = None  # realtime: received since the last step
        self._standing: Command | None = None  # realtime: the newest command applied ...
        self._standing_since = 0.0  # ... and when (time.monotonic())
        self._observed_steps: dict[int, int] = {}  # realtime: observation stamp (ns) -> the env step it showed
        self._applied_stamp = Time()  # stamp of the action the last step applied; zero: a hold
        self._applied_repeat = False
        self._applied_offset = 0  # which step of its observation's plan the last step applied (0: its action)
        self._applied_action: np.ndarray | None = None
        self._gripper_command = -1.0  # open, as LIBERO's no-op action
        self._published_at = 0.0
        self._step_ms: deque[float] = deque(maxlen=REPORT_WINDOW)
        self._step_times: deque[float] = deque(maxlen=REPORT_WINDOW)
        # Realtime: when each new action arrived, measured from the start of the step whose observation it answers;
        # beyond one control period it misses the next step.
        self._action_arrival_ms: deque[float] = deque(maxlen=REPORT_WINDOW)
        self._step_started = 0.0
        self._waiting_since: float | None = None  # realtime: a tick is waiting for the last observation's action
        self._grace_timer = None

        self.health = NodeHealth(self, self.params["stale_after_s"], hardware_id=f"LIBERO {self.params['task']}",
                                 state=self._state)
        self._status_pub = self.create_publisher(EpisodeStatus, topics.EPISODE_STATUS, STATUS_QOS)
        self._joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS)
        self._image_pubs = {v: self.create_publisher(Image, topics.camera_image(v), IMAGE_QOS)
                            for v in self.params["views"]}
        self._instruction_pub = self.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS)
        self._instruction_pub.publish(String(data=self.instruction))
        self.health.watch(topics.LIBERO_ACTION)
        self.create_subscription(PolicyAction, topics.LIBERO_ACTION, self._on_action, RELIABLE_QOS)
        self.create_service(ResetEpisode, topics.LIBERO_RESET, self._on_reset)
        if self.lockstep:
            self.create_timer(self.params["resend_period_s"], self._resend_if_waiting)
        else:
            self._tick_timer = self.create_timer(1.0 / self.params["control_rate_hz"], self._realtime_tick)
            grace = self.params["action_grace_s"]
            self._grace_timer = self.create_timer(grace, self._grace_expired, autostart=False) if grace else None
        try:
            self._reset(self.params["init_state_index"])
        except LiberoError as e:
            raise NodeStartupError(str(e)) from None
        self.get_logger().info(f"LIBERO {self.params['task']} ({self.env.task_name}), {self.params['mode']}, "
                               f"views {list(self.params['views'])}: {self.instruction!r}")

    def _sim(self, function, *args, **kwargs):
        """Run `function` on the simulator's thread and return its result."""
        return self._sim_thread.submit(function, *args, **kwargs).result()

    # ---- episode ---------------------------------------------------------------------------------------------

    def _reset(self, init_state_index: int) -> None:
        self._observation = self._sim(self.env.reset, init_state_index)
        self.init_state_index = init_state_index
        self.episode += 1
        self.success = self.done = self._started = False
        self._newest_action = self._standing = self._waiting_since = self._applied_action = None
        self._observed_steps.clear()
        self._applied_stamp, self._applied_repeat, self._applied_offset = Time(), False, 0
        self._gripper_command = -1.0
        self._publish_observation(new_stamp=True)

    def _render_due(self) -> bool:
        """Whether the coming step renders: always in lockstep or without a camera rate; in real time every
        `control_rate_hz / camera_rate_hz`-th step (rounded), a camera rate in simulated time. (A wall-clock rate
        would defeat itself: while rendering keeps steps slower than the camera period, every step is due.)"""
        rate = self.params["camera_rate_hz"]
        if self.lockstep or rate <= 0:
            return True
        every = max(1, round(self.params["control_rate_hz"] / rate))
        return (self.env.steps + 1) % every == 0

    def _step(self, action: np.ndarray, stamp: Time, repeated: bool = False, offset: int = 0) -> None:
        """One env step with `action`, computed from the observation stamped `stamp` (zero: a hold), for the
        `offset`-th step after that observation (0: its own action; > 0: from its plan)."""
        start = time.perf_counter()
        self._step_started = time.monotonic()
        self._applied_stamp, self._applied_repeat, self._applied_offset = stamp, repeated, offset
        self._applied_action = action
        render = self._render_due()
        self._observation, self.success, self.done = self._sim(self.env.step, action, render)
        self._step_ms.append((time.perf_counter() - start) * 1e3)
        self._step_times.append(time.monotonic())
        self._gripper_command = float(action[-1])
        self._publish_observation(new_stamp=True)
        if self.done:
            self.get_logger().info(f"episode {self.episode} ended after {self.env.steps} steps: "
                                   f"{'success' if self.success else 'failure'}")
            if self.params["auto_reset"]:
                self._reset((self.init_state_index + 1) % self.env.num_init_states)

    def _publish_observation(self, new_stamp: bool) -> None:
        """Status, joint states and images, all with one stamp: a new one (a new observation) or the last one
        (the same observation re-sent). Status and joint states go first, so a policy has them when tracks
        computed from the images reach it."""
        if new_stamp:
            self._stamp = self.get_clock().now().to_msg()
            self._observed_steps[stamp_to_ns(self._stamp)] = self.env.steps
            if len(self._observed_steps) > OBSERVATIONS_KEPT:
                del self._observed_steps[next(iter(self._observed_steps))]
        header = Header(stamp=self._stamp)
        obs = self._observation
        self._status_pub.publish(EpisodeStatus(
            header=header, suite=self.env.suite, task_index=self.env.task_index, instruction=self.instruction,
            episode=self.episode, step=self.env.steps, horizon=self.env.max_steps, success=self.success,
            done=self.done, action_stamp=self._applied_stamp, action_repeated=self._applied_repeat,
            action_offset=self._applied_offset))
        self._joint_pub.publish(JointState(
            header=header, name=self.joint_names,
            position=np.concatenate([obs.joint_states, obs.gripper_states]).astype(np.float64).tolist()))
        for view, publisher in self._image_pubs.items():
            if view in obs.images:  # not on real-time steps between camera frames (camera_rate_hz)
                publisher.publish(image_from_rgb(obs.images[view], Header(stamp=self._stamp, frame_id=view)))
        self._published_at = time.monotonic()

    # ---- actions ---------------------------------------------------------------------------------------------

    def _on_action(self, msg: PolicyAction) -> None:
        try:
            action = action_from_msg(msg, ACTION_DIM)
            planned = planned_from_msg(msg, ACTION_DIM)
        except MalformedMessage as e:
            self.health.drop(e)
            return
        self.health.seen(topics.LIBERO_ACTION)
        if self.done:
            self.health.count("ignored_after_done")
            return
        if not self.lockstep:
            awaited = self._waiting_since is not None and stamp_to_ns(msg.header.stamp) == stamp_to_ns(self._stamp)
            if self._newest_action is not None:
                self.health.count("superseded_actions")  # two actions within one control period
            if stamp_to_ns(msg.header.stamp) == stamp_to_ns(self._stamp):
                self._action_arrival_ms.append((time.monotonic() - self._step_started) * 1e3)
            self._newest_action = Command(action, planned, msg.header.stamp)
            self._started = True
            if awaited:
                self.health.count("waited_steps")
                self._grace_timer.cancel()
                self._advance()
            return
        if stamp_to_ns(msg.header.stamp) != stamp_to_ns(self._stamp):
            self.health.count("ignored_not_for_current_observation")  # a duplicate, or for an earlier step
            return
        self._started = True
        self._step(action, msg.header.stamp)

    def _realtime_tick(self) -> None:
        if self.done:
            return
        if not self._started:
            self._publish_observation(new_stamp=True)  # the world waits for its controller
            return
        newest = self._newest_action
        answered = newest is not None and stamp_to_ns(newest.stamp) == stamp_to_ns(self._stamp)
        if self._grace_timer is None or answered or self._waiting_since is not None:
            self._advance()
            return
        grace_left = grace_left_ns(int(self.params["action_grace_s"] * 1e9), self._tick_timer.timer_period_ns,
                                   self._tick_timer.time_until_next_call() or 0)
        if grace_left <= 0:
            self.health.count("late_ticks")  # the previous step overran the grace: no time left to wait
            self._advance()
            return
        self._waiting_since = time.monotonic()
        self._grace_timer.timer_period_ns = grace_left
        self._grace_timer.reset()

    def _grace_expired(self) -> None:
        self._grace_timer.cancel()
        if self._waiting_since is not None and not self.done:
            self._advance()

    def _advance(self) -> None:
        """Real-time step: what the newest command holds for this step (its action when its observation is the
        last one, else the row of its plan for this step), else a repeat of the last applied action until the
        command expires, else a hold."""
        self._waiting_since = None
        now = time.monotonic()
        newest, self._newest_action = self._newest_action, None
        # An action computed from an observation already acted on (a re-sent one) does not replace the standing one.
        fresh = newest is not None and (self._standing is None
                                        or stamp_to_ns(newest.stamp) > stamp_to_ns(self._standing.stamp))
        if fresh:
            self._standing, self._standing_since = newest, now
        command = self._standing
        observed = self._observed_steps.get(stamp_to_ns(command.stamp)) if command is not None else None
        offset = self.env.steps - observed if observed is not None else 0
        if command is not None and 1 <= offset <= len(command.planned):
            self.health.count("fresh_steps" if fresh else "planned_steps")
            self._step(command.planned[offset - 1], command.stamp, offset=offset)
        elif fresh:
            self.health.count("fresh_steps")
            self._step(command.action, command.stamp)
        elif command is not None and now - self._standing_since <= self.params["command_timeout_s"]:
            self.health.count("repeated_steps")
            self._step(self._applied_action, command.stamp, repeated=True)
        else:
            self.health.count("hold_steps")
            self._step(np.array([0, 0, 0, 0, 0, 0, self._gripper_command], np.float32), Time())

    def _resend_if_waiting(self) -> None:
        if not self.done and time.monotonic() - self._published_at >= self.params["resend_period_s"]:
            self.health.count("resent")
            self._publish_observation(new_stamp=not self._started)

    def _on_reset(self, request: ResetEpisode.Request, response: ResetEpisode.Response) -> ResetEpisode.Response:
        index = request.init_state_index
        if index < 0:
            index = (self.init_state_index + 1) % self.env.num_init_states
        try:
            self._reset(index)
        except LiberoError as e:
            response.success, response.message = False, str(e)
            return response
        response.success = True
        response.message = f"episode {self.episode}: initial state {index}"
        response.instruction = self.instruction
        return response

    def _state(self) -> dict[str, str]:
        state = {"episode": str(self.episode), "step": str(self.env.steps), "success": str(self.success),
                 "done": str(self.done)}
        if self._step_ms:
            state["env_step_ms_p50"] = f"{np.percentile(self._step_ms, 50):.1f}"
            state["env_step_ms_p95"] = f"{np.percentile(self._step_ms, 95):.1f}"
        if self._action_arrival_ms:
            state["action_arrival_after_step_start_ms_p50"] = f"{np.percentile(self._action_arrival_ms, 50):.1f}"
            state["action_arrival_after_step_start_ms_p95"] = f"{np.percentile(self._action_arrival_ms, 95):.1f}"
        if len(self._step_times) > 1 and self._step_times[-1] > self._step_times[0]:
            state["step_rate_hz"] = f"{(len(self._step_times) - 1) / (self._step_times[-1] - self._step_times[0]):.2f}"
        return state

    def destroy_node(self) -> None:
        if self.env is not None:
            self._sim(self.env.close)
            self._sim_thread.shutdown()
        super().destroy_node()


def main(args: list[str] | None = None) -> NoReturn:
    run_node(LiberoBridgeNode, "libero_bridge_node", args)


if __name__ == "__main__":
    main()
