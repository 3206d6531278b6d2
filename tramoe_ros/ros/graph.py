"""The tramoe node graphs, described once: which nodes run in `sim` and `real`, their executables and classes,
the parameters file, the launch arguments and which parameters they override, remappings and conditions.

Both ways of starting a graph read this description: the launch files (`launch/*.launch.py`, launch_ros `Node`
actions, one process per node) and `tramoe-up sim|real` (every node class composed in one process). They cannot
drift apart because neither lists nodes itself.

Data flow (topic names in `tramoe_ros.ros.topics`):
  sim:  libero_bridge_node (images, /joint_states, /instruction) -> track_node -> policy_node -> arm_node (libero)
        -> libero_bridge_node
  real: camera_node x2 + instruction_node + arm_node (/joint_states) -> track_node -> policy_node -> arm_node
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tramoe_ros.paths import config_path
from tramoe_ros.ros.topics import camera_image


class GraphError(ValueError):
    """An unknown graph or launch argument, or an argument value of the wrong type."""


@dataclass(frozen=True)
class Argument:
    """A launch argument (`name:=value` for ros2 launch and tramoe-up)."""

    name: str
    default: str
    description: str


@dataclass(frozen=True)
class Binding:
    """Launch argument -> node parameter. An empty argument value leaves the parameters file's value alone."""

    argument: str
    parameter: str
    kind: type = str  # str, int, float or bool: the parameter's type


@dataclass(frozen=True)
class NodeSpec:
    name: str
    executable: str  # console script (ros2 launch runs it) ...
    node_class: str | None  # ... and "module:Class" (tramoe-up composes it); None for outside programs (rviz2)
    package: str = "tramoe_ros"
    bindings: tuple[Binding, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    condition: str | None = None  # a boolean launch argument that must be true for the node to run
    rviz_config: bool = False  # pass `-d config/tramoe.rviz` (rviz2 only)
    essential: bool = True  # the graph cannot work without it: its exit ends the launch (not so a viewer)


@dataclass(frozen=True)
class GraphSpec:
    name: str
    params_file: str  # file name under config/
    arguments: tuple[Argument, ...]
    nodes: tuple[NodeSpec, ...]


@dataclass(frozen=True)
class ResolvedNode:
    """One node to start, with everything decided: what launch and tramoe-up both need."""

    name: str
    package: str
    executable: str
    node_class: str | None
    params_file: str | None
    overrides: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    essential: bool = True


_COMMON_ARGUMENTS = (
    Argument("instruction", "", "task instruction; empty: the parameters file's (real) or the task's own (sim)"),
    Argument("track_model", "", "track model checkpoint (.safetensors); empty: the parameters file's"),
    Argument("policy_model", "", "policy checkpoint (.safetensors); empty: the parameters file's"),
    Argument("record", "false", "record the graph's topics to a rosbag2 MCAP bag"),
    Argument("bag", "", "bag folder to create; empty: runs/bags/tramoe_<date>_<time> under the directory the graph "
                        "is started from (the recorder logs the absolute path)"),
    Argument("rviz", "false", "start rviz2 with config/tramoe.rviz (camera images and track overlays)"),
    Argument("params_file", "", "node parameters file; empty: config/<graph>.yaml"),
)

_TRACK_NODE = NodeSpec("track_node", "track_node", "tramoe_ros.nodes.track_node:TrackNode",
                       bindings=(Binding("track_model", "model_path"),))


def _policy_node(*bindings: Binding) -> NodeSpec:
    return NodeSpec("policy_node", "policy_node", "tramoe_ros.nodes.policy_node:PolicyNode",
                    bindings=(Binding("policy_model", "policy_path"), Binding("track_model", "track_model_path"),
                              *bindings))


_OBSERVERS = (
    NodeSpec("recorder_node", "recorder_node", "tramoe_ros.nodes.recorder_node:RecorderNode",
             bindings=(Binding("bag", "output"),), condition="record"),
    NodeSpec("rviz2", "rviz2", None, package="rviz2", condition="rviz", rviz_config=True, essential=False),
)

GRAPHS: dict[str, GraphSpec] = {
    "sim": GraphSpec(
        name="sim",
        params_file="sim.yaml",
        arguments=_COMMON_ARGUMENTS + (
            Argument("task", "", "LIBERO task as <suite>/<task index>, e.g. libero_object/0; empty: the "
                                 "parameters file's"),
            Argument("mode", "", "bridge stepping: realtime (control rate) or lockstep (one step per action, "
                                 "deterministic); empty: the parameters file's"),
            Argument("max_steps", "", "episode step budget; empty: the parameters file's"),
            Argument("init_state", "", "the first episode's fixed initial state (0..49); empty: the parameters "
                                       "file's"),
        ),
        nodes=(
            NodeSpec("libero_bridge_node", "libero_bridge_node",
                     "tramoe_ros.nodes.libero_bridge_node:LiberoBridgeNode",
                     bindings=(Binding("task", "task"), Binding("instruction", "instruction"),
                               Binding("mode", "mode"), Binding("max_steps", "max_steps", int),
                               Binding("init_state", "init_state_index", int))),
            _TRACK_NODE,
            _policy_node(Binding("mode", "mode")),  # the policy forms observations as the bridge steps
            NodeSpec("arm_node", "arm_node", "tramoe_ros.nodes.arm_node:ArmNode"),
            *_OBSERVERS,
        ),
    ),
    "real": GraphSpec(
        name="real",
        params_file="real.yaml",
        arguments=_COMMON_ARGUMENTS + (
            Argument("arm_backend", "", "arm backend: dynamixel or ros2_control; empty: the parameters file's"),
        ),
        nodes=(
            NodeSpec("camera_agentview", "camera_node", "tramoe_ros.nodes.camera_node:CameraNode",
                     remappings=(("image_raw", camera_image("agentview")),)),
            NodeSpec("camera_eye_in_hand", "camera_node", "tramoe_ros.nodes.camera_node:CameraNode",
                     remappings=(("image_raw", camera_image("eye_in_hand")),)),
            NodeSpec("instruction_node", "instruction_node", "tramoe_ros.nodes.instruction_node:InstructionNode",
                     bindings=(Binding("instruction", "instruction"),)),
            _TRACK_NODE,
            _policy_node(),
            NodeSpec("arm_node", "arm_node", "tramoe_ros.nodes.arm_node:ArmNode",
                     bindings=(Binding("arm_backend", "backend"),)),
            *_OBSERVERS,
        ),
    ),
}


def _truth(argument: str, value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise GraphError(f"argument {argument} must be true or false, got {value!r}")


def _typed(binding: Binding, value: str) -> Any:
    if binding.kind is str:
        return value
    if binding.kind is bool:
        return _truth(binding.argument, value)
    try:
        return binding.kind(value)
    except ValueError:
        raise GraphError(f"argument {binding.argument} must be {'an integer' if binding.kind is int else 'a number'}, "
                         f"got {value!r}") from None


def resolve(graph: str, arguments: dict[str, str] | None = None) -> list[ResolvedNode]:
    """The nodes of `graph` with launch `arguments` applied (unknown arguments are an error).

    Raises:
        GraphError: unknown graph or argument, or a value of the wrong type
    """
    if graph not in GRAPHS:
        raise GraphError(f"unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    spec = GRAPHS[graph]
    declared = {a.name: a.default for a in spec.arguments}
    unknown = sorted(set(arguments or {}) - set(declared))
    if unknown:
        raise GraphError(f"unknown argument(s) {unknown} for graph {graph}; known: {', '.join(sorted(declared))}")
    values = {**declared, **(arguments or {})}
    params_file = values["params_file"] or str(config_path(spec.params_file))
    nodes = []
    for node in spec.nodes:
        if node.condition and not _truth(node.condition, values[node.condition]):
            continue
        overrides = {b.parameter: _typed(b, values[b.argument]) for b in node.bindings if values[b.argument] != ""}
        nodes.append(ResolvedNode(
            name=node.name, package=node.package, executable=node.executable, node_class=node.node_class,
            params_file=params_file if node.node_class else None, overrides=overrides,
            remappings=node.remappings,
            arguments=("-d", str(config_path("tramoe.rviz"))) if node.rviz_config else (),
            essential=node.essential))
    return nodes
