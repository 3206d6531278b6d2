"""Speed of the ROS graph on this machine, three measurements side by side in one run:

- `env_*`: LiberoEnv stepped directly in a loop (what the simulator costs by itself);
- `bridge_*`: the LIBERO bridge node in lock-step with an instant responder that answers every observation
  with a zero action (the bridge's own cost: publishing images, joint states and status, and the action round
  trip through DDS); `bridge_overhead_ms_per_step` is the difference to stepping the env directly;
- `graph_*`: the whole sim graph in real time (bridge at its control rate, track, policy and arm nodes, in one
  process as `tramoe-up sim` runs it): camera->action latency p50/p95 (receive time of each action minus the
  stamp of the images it came from) and the achieved control rate.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import yaml
from rclpy.node import Node
from sensor_msgs.msg import JointState
from tramoe_msgs.msg import PolicyAction

from tramoe_ros.config import PolicyConfig, TrackModelConfig, config_to_dict
from tramoe_ros.ros import topics
from tramoe_ros.ros.compose import BackgroundGraph
from tramoe_ros.ros.conversions import action_to_msg
from tramoe_ros.ros.graph import ResolvedNode, resolve
from tramoe_ros.ros.probe import GraphProbe
from tramoe_ros.ros.qos import RELIABLE_QOS
from tramoe_ros.sim.libero_env import DEFAULT_VIEWS, NOOP_ACTION, LiberoEnv

# Wall-clock allowance for loading the simulator and models, and per step, before a run is cut short.
STARTUP_BUDGET_S = 180.0
STEP_BUDGET_S = 2.0


class InstantResponder(Node):
    """Answers each observation (its /joint_states) at once with LIBERO's no-op action, stamped like the
    observation, as a policy with zero latency would."""

    def __init__(self, **node_kwargs):
        super().__init__("instant_responder", **node_kwargs)
        self._publisher = self.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)
        self.create_subscription(JointState, topics.JOINT_STATES, self._respond, RELIABLE_QOS)

    def _respond(self, msg: JointState) -> None:
        self._publisher.publish(action_to_msg(NOOP_ACTION, msg.header, 0.0, "noop"))


def random_checkpoints(folder: Path) -> tuple[Path, Path]:
    """Untrained track model and policy of the default (paper) sizes: their speed is that of trained ones."""
    from tramoe_ros.models.policy import TrackGuidedPolicy
    from tramoe_ros.models.track_transformer import TrackTransformer
    from tramoe_ros.training.checkpoint import save_checkpoint

    track_cfg, policy_cfg = TrackModelConfig(), PolicyConfig()
    track = save_checkpoint(folder / "track_random.safetensors", TrackTransformer(track_cfg), "track_model",
                            config_to_dict(track_cfg), extra={"language_encoder": "minilm"})
    policy = save_checkpoint(folder / "policy_random.safetensors", TrackGuidedPolicy(policy_cfg), "policy",
                             config_to_dict(policy_cfg), extra={"track_model": str(track)})
    return track, policy


def _with_bridge_overrides(nodes: list[ResolvedNode], **overrides) -> list[ResolvedNode]:
    return [dataclasses.replace(n, overrides={**n.overrides, **overrides}) if n.name == "libero_bridge_node" else n
            for n in nodes]


def _run(nodes: list[ResolvedNode], steps: int, extra=()) -> dict:
    with BackgroundGraph(nodes, extra_nodes=lambda ctx: [GraphProbe(context=ctx)] + [e(context=ctx) for e in extra]) \
            as graph:
        probe: GraphProbe = graph.node("graph_probe")
        if not probe.episode_done.wait(STARTUP_BUDGET_S + STEP_BUDGET_S * steps):
            raise RuntimeError(f"the graph did not finish {steps} steps in time")
        return probe.summary()


def bench_graph(task: str = "libero_object/0", policy_path: str | Path | None = None,
                track_model_path: str | Path | None = None, steps: int = 100, reflections: bool = True,
                views: tuple[str, ...] = DEFAULT_VIEWS) -> dict:
    """Run the three measurements on `task` ("<suite>/<index>") for `steps` steps each.

    Without model paths, untrained models of the paper's sizes are timed.
    """
    suite, _, index = task.partition("/")
    out: dict = {"task": task, "steps": steps, "views": list(views), "reflections": reflections}

    with LiberoEnv(suite, int(index), views=views, reflections=reflections, max_steps=steps + 1) as env:
        env.reset(0)
        env.step(NOOP_ACTION)  # the first step after a reset allocates render buffers
        start = time.perf_counter()
        for _ in range(steps):
            env.step(NOOP_ACTION)
        env_ms = (time.perf_counter() - start) * 1e3 / steps
    out["env_ms_per_step"] = round(env_ms, 1)
    out["env_steps_per_s"] = round(1e3 / env_ms, 2)

    with tempfile.TemporaryDirectory() as scratch:
        if policy_path is None or track_model_path is None:
            track_model_path, policy_path = random_checkpoints(Path(scratch))
            out["models"] = "untrained, default sizes"
        else:
            out["models"] = f"{policy_path}, {track_model_path}"
        arguments = {"task": task, "max_steps": str(steps), "policy_model": str(policy_path),
                     "track_model": str(track_model_path)}
        bridge_only = [n for n in resolve("sim", {**arguments, "mode": "lockstep"}) if n.name == "libero_bridge_node"]
        bridge = _run(_with_bridge_overrides(bridge_only, reflections=reflections, views=list(views)), steps,
                      extra=[InstantResponder])
        out["bridge_steps_per_s"] = bridge["sim_rate_hz"]
        out["bridge_ms_per_step"] = round(1e3 / bridge["sim_rate_hz"], 1)
        out["bridge_overhead_ms_per_step"] = round(out["bridge_ms_per_step"] - env_ms, 1)

        realtime = _with_bridge_overrides(resolve("sim", {**arguments, "mode": "realtime"}),
                                          reflections=reflections, views=list(views))
        graph = _run(realtime, steps)
    params = yaml.safe_load(Path(realtime[0].params_file).read_text())
    out["graph_target_rate_hz"] = params["libero_bridge_node"]["ros__parameters"]["control_rate_hz"]
    out["graph_control_rate_hz"] = graph["control_rate_hz"]
    out["graph_sim_rate_hz"] = graph["sim_rate_hz"]
    for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_max", "tracks_latency_ms_p50",
                "policy_inference_ms_p50", "actions"):
        out[f"graph_{key}"] = graph[key]
    return out
