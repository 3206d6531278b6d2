"""Speed of the ROS graph on this machine, side by side in one run:

- `env_*` and `bridge_*`: LiberoEnv stepped directly, and the LIBERO bridge node stepped in lock-step by a
  responder that answers each observation at once with a no-op action (the bridge's own cost: publishing images,
  joint states and status, and the action round trip through DDS). The two alternate in rounds, so load from
  other processes hits both alike; `bridge_overhead_ms_per_step` is the difference of their medians.
  Both use the sim graph's `max_visual_faces` (config/sim.yaml).
- `bridge_realtime_*`: the bridge alone in real time at LIBERO's 20 Hz, answered at once, with the cameras rendered
  every step (with the config's simplified visual meshes and with LIBERO's full ones) and at a lower camera rate
  (`camera_rate_hz`): the simulation step rate it keeps.
- `render_*`: LiberoEnv's step time with each rendering option (multisample anti-aliasing, reflections, simplified
  visual meshes), in alternating rounds, and how far its images are from LIBERO's look (anti-aliasing and
  reflections on, full meshes): mean absolute difference in grey levels over both views.
- `graph_*`: the whole sim graph in real time (bridge at its control rate, track, policy and arm nodes, one
  process per node as `ros2 launch` and `tramoe-demo` run them): the rate of fresh actions the simulation applied
  (computed from a new observation; repeated and held steps counted apart), the simulation's step rate, the
  control rate, camera->action latency p50/p95 (receive time of each action minus the stamp of the images it came
  from) and its parts (camera->tracks, the policy's inference).
"""
from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Header
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.bench.models import random_checkpoints, training_model_configs
from tramoe_ros.paths import config_path
from tramoe_ros.ros import topics
from tramoe_ros.ros.compose import BackgroundGraph
from tramoe_ros.ros.conversions import action_to_msg
from tramoe_ros.ros.graph import ResolvedNode, resolve
from tramoe_ros.ros.probe import GraphProbe
from tramoe_ros.ros.processes import ProcessGraph
from tramoe_ros.ros.qos import RELIABLE_QOS
from tramoe_ros.sim.libero_env import DEFAULT_VIEWS, NOOP_ACTION, LiberoEnv

ROUNDS = 5
REALTIME_CAMERA_RATES_HZ = (10.0,)  # besides every step: the bridge's camera rates measured in real time
# Wall-clock allowance for loading the simulator and models, and per step, before a run is cut short.
STARTUP_BUDGET_S = 180.0
STEP_BUDGET_S = 5.0


class BudgetResponder(Node):
    """Answers observations (their /joint_states) with LIBERO's no-op action, stamped like the observation, as a
    policy with zero latency would; only as many as `allow` grants, so a benchmark decides when the bridge steps."""

    def __init__(self, **node_kwargs):
        super().__init__("budget_responder", **node_kwargs)
        self._lock = threading.Lock()
        self._budget = 0
        self._waiting: Header | None = None  # the newest observation not answered yet
        self._publisher = self.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_observation, RELIABLE_QOS)

    def allow(self, steps: int) -> None:
        with self._lock:
            self._budget += steps
            self._answer()

    def _on_observation(self, msg: JointState) -> None:
        with self._lock:
            self._waiting = msg.header
            self._answer()

    def _answer(self) -> None:
        if self._budget > 0 and self._waiting is not None:
            self._publisher.publish(action_to_msg(NOOP_ACTION, self._waiting, 0.0, "noop"))
            self._budget -= 1
            self._waiting = None


def _with_bridge_overrides(nodes: list[ResolvedNode], **overrides) -> list[ResolvedNode]:
    return [dataclasses.replace(n, overrides={**n.overrides, **overrides}) if n.name == "libero_bridge_node" else n
            for n in nodes]


def _bridge_alone(task: str, mode: str, max_steps: int, **overrides) -> list[ResolvedNode]:
    """The sim graph's bridge node only, in `mode`, with parameter `overrides`."""
    nodes = resolve("sim", {"task": task, "mode": mode, "max_steps": str(max_steps)})
    return _with_bridge_overrides([n for n in nodes if n.name == "libero_bridge_node"], **overrides)


def _bridge_config() -> dict:
    """The LIBERO bridge's parameters in the sim graph's config (config/sim.yaml)."""
    params = yaml.safe_load(config_path("sim.yaml").read_text())
    return params["libero_bridge_node"]["ros__parameters"]


def _env_and_bridge(task: str, steps: int, reflections: bool, views: tuple[str, ...]) -> dict:
    """Median milliseconds per step of the env stepped directly and of the bridge, in alternating rounds."""
    suite, _, index = task.partition("/")
    per_round = max(1, steps // ROUNDS)
    bridge_nodes = _bridge_alone(task, "lockstep", per_round * ROUNDS + 1, reflections=reflections, views=list(views))
    max_faces = _bridge_config()["max_visual_faces"] or None
    env_ms, bridge_ms = [], []
    with LiberoEnv(suite, int(index), views=views, reflections=reflections, max_steps=steps + 2,
                   max_visual_faces=max_faces) as env, \
            BackgroundGraph(bridge_nodes, extra_nodes=lambda ctx: [GraphProbe(context=ctx),
                                                                   BudgetResponder(context=ctx)]) as graph:
        env.reset(0)
        env.step(NOOP_ACTION)  # the first step after a reset allocates render buffers
        probe: GraphProbe = graph.node("graph_probe")
        responder: BudgetResponder = graph.node("budget_responder")
        responder.allow(1)  # the same first step for the bridge, once the graph is connected
        if not probe.wait_for_step(1, STARTUP_BUDGET_S):
            raise RuntimeError("the bridge did not step")
        for r in range(ROUNDS):
            start = time.perf_counter()
            for _ in range(per_round):
                env.step(NOOP_ACTION)
            env_ms.append((time.perf_counter() - start) * 1e3 / per_round)
            start = time.perf_counter()
            responder.allow(per_round)
            if not probe.wait_for_step(1 + (r + 1) * per_round, STEP_BUDGET_S * per_round):
                raise RuntimeError("the bridge stopped stepping")
            bridge_ms.append((time.perf_counter() - start) * 1e3 / per_round)
    env_median, bridge_median = statistics.median(env_ms), statistics.median(bridge_ms)
    return {"env_ms_per_step": round(env_median, 1), "env_steps_per_s": round(1e3 / env_median, 2),
            "bridge_ms_per_step": round(bridge_median, 1), "bridge_steps_per_s": round(1e3 / bridge_median, 2),
            "bridge_overhead_ms_per_step": round(bridge_median - env_median, 1)}


def _realtime_bridge(task: str, steps: int, reflections: bool, views: tuple[str, ...],
                     camera_rates_hz: tuple[float, ...]) -> dict:
    """The bridge alone in real time at its control rate (a zero-latency responder answers every observation),
    with the cameras rendered every step (with the config's visual meshes and with LIBERO's full ones) and at each
    of `camera_rates_hz`: the simulation steps it achieves."""
    out = {"bridge_max_visual_faces": _bridge_config()["max_visual_faces"]}
    runs = [("every_step_full_meshes", 0.0, {"max_visual_faces": 0}), ("every_step", 0.0, {})]
    runs += [(f"{rate:g}hz", rate, {}) for rate in camera_rates_hz]
    for cameras, rate, meshes in runs:
        nodes = _bridge_alone(task, "realtime", steps, reflections=reflections, views=list(views),
                              camera_rate_hz=rate, **meshes)
        with BackgroundGraph(nodes, extra_nodes=lambda ctx: [GraphProbe(context=ctx),
                                                             BudgetResponder(context=ctx)]) as graph:
            graph.node("budget_responder").allow(steps + 1)
            probe: GraphProbe = graph.node("graph_probe")
            if not probe.episode_done.wait(STARTUP_BUDGET_S + STEP_BUDGET_S * steps):
                raise RuntimeError(f"the real-time bridge did not finish {steps} steps in time")
            sim_rate = probe.summary()["sim_rate_hz"]
        out[f"bridge_realtime_cameras_{cameras}_sim_rate_hz"] = sim_rate
    return out


def _render_options(task: str, steps: int, views: tuple[str, ...]) -> dict:
    """Median ms per env step and image difference from LIBERO's look for each rendering option: anti-aliasing and
    reflections on and off, and the sim graph's simplified visual meshes (LIBERO's look: the first two on)."""
    suite, _, index = task.partition("/")
    per_round = max(1, steps // ROUNDS)
    max_faces = _bridge_config()["max_visual_faces"]
    options = {f"render_aa_{'on' if aa else 'off'}_reflections_{'on' if refl else 'off'}":
               dict(antialiasing=aa, reflections=refl) for aa, refl in ((False, True), (True, True), (False, False),
                                                                        (True, False))}
    if max_faces:
        options[f"render_aa_off_reflections_on_meshes_{max_faces}"] = dict(antialiasing=False, reflections=True,
                                                                           max_visual_faces=max_faces)
    envs = [LiberoEnv(suite, int(index), views=views, max_steps=steps + 2, **kwargs) for kwargs in options.values()]
    try:
        first = [env.reset(0) for env in envs]
        reference = first[list(options).index("render_aa_on_reflections_on")]
        times: list[list[float]] = [[] for _ in envs]
        for _ in range(ROUNDS):
            for env, ms in zip(envs, times):
                start = time.perf_counter()
                for _ in range(per_round):
                    env.step(NOOP_ACTION)
                ms.append((time.perf_counter() - start) * 1e3 / per_round)
    finally:
        for env in envs:
            env.close()
    out = {}
    for name, obs, ms in zip(options, first, times):
        diff = np.mean([np.abs(obs.images[v].astype(np.int16) - reference.images[v]).mean() for v in views])
        out[f"{name}_ms_per_step"] = round(statistics.median(ms), 1)
        out[f"{name}_diff_from_libero"] = round(float(diff), 2)
    return out


def _realtime_graph(task: str, steps: int, reflections: bool, views: tuple[str, ...], policy_path: Path,
                    track_model_path: Path) -> dict:
    """The whole sim graph in real time, one process per node as the launch file starts it (config/sim.yaml)."""
    nodes = _with_bridge_overrides(
        resolve("sim", {"task": task, "mode": "realtime", "max_steps": str(steps), "policy_model": str(policy_path),
                        "track_model": str(track_model_path)}), reflections=reflections, views=list(views))
    with ProcessGraph(nodes, extra_nodes=lambda ctx: [GraphProbe(context=ctx)]) as graph:
        probe: GraphProbe = graph.node("graph_probe")
        graph.wait_for(lambda seconds: probe.wait_for_episode_end(0, seconds),
                       STARTUP_BUDGET_S + STEP_BUDGET_S * steps, f"the graph's {steps} steps")
        result = probe.summary(0)
    bridge = _bridge_config()
    out = {"graph_target_rate_hz": bridge["control_rate_hz"], "graph_camera_rate_hz": bridge["camera_rate_hz"]}
    for key in ("fresh_action_rate_hz", "sim_rate_hz", "control_rate_hz", "on_time_steps", "planned_steps",
                "late_steps", "repeated_steps", "hold_steps", "latency_ms_p50", "latency_ms_p95", "latency_ms_max",
                "tracks_latency_ms_p50", "policy_inference_ms_p50", "actions", "steps", "success"):
        out[f"graph_{key}"] = result[key]
    return out


def bench_graph(task: str = "libero_object/0", policy_path: str | Path | None = None,
                track_model_path: str | Path | None = None, steps: int = 100, reflections: bool = True,
                views: tuple[str, ...] = DEFAULT_VIEWS) -> dict:
    """Measure on `task` ("<suite>/<index>") with `steps` simulation steps per measurement.

    Without model paths, untrained models of the shipped models' sizes are timed.
    """
    out: dict = {"task": task, "steps": steps, "views": list(views), "reflections": reflections}
    out.update(_env_and_bridge(task, steps, reflections, views))
    out.update(_realtime_bridge(task, steps, reflections, views, REALTIME_CAMERA_RATES_HZ))
    out.update(_render_options(task, steps, views))
    with tempfile.TemporaryDirectory() as scratch:
        if policy_path is None or track_model_path is None:
            track_model_path, policy_path = random_checkpoints(
                Path(scratch), *training_model_configs("train_tracks_cpu.yaml", "train_policy_cpu.yaml"))
            out["models"] = "untrained, the shipped models' sizes"
        else:
            out["models"] = f"{policy_path}, {track_model_path}"
        out.update(_realtime_graph(task, steps, reflections, views, Path(policy_path), Path(track_model_path)))
    return out
