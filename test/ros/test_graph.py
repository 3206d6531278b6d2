"""The graph description is consistent with the nodes, the parameters files, the rviz config and the launch
arguments, and `resolve` applies arguments the way both the launch files and tramoe-up rely on."""
import importlib

import pytest
import yaml
from rclpy.node import Node

from tramoe_ros.cli.up import parse_launch_arguments
from tramoe_ros.paths import config_path
from tramoe_ros.ros import topics
from tramoe_ros.ros.compose import node_type
from tramoe_ros.ros.graph import GRAPHS, GraphError, resolve

COMPOSED = [(graph, node) for graph, spec in GRAPHS.items() for node in spec.nodes if node.node_class]


@pytest.mark.parametrize("graph, node", COMPOSED, ids=[f"{g}-{n.name}" for g, n in COMPOSED])
def test_every_node_is_a_class_and_a_console_script(graph, node):
    assert issubclass(node_type(node.node_class), Node)
    module = importlib.import_module(node.node_class.split(":")[0])
    assert callable(module.main)
    assert module.__name__.rsplit(".", 1)[1] == node.executable  # console script name = module name


@pytest.mark.parametrize("graph", GRAPHS)
def test_parameters_file_has_one_section_per_node(graph):
    sections = yaml.safe_load(config_path(GRAPHS[graph].params_file).read_text())
    assert set(sections) == {n.name for n in GRAPHS[graph].nodes if n.node_class}
    assert all(set(s) == {"ros__parameters"} for s in sections.values())


@pytest.mark.parametrize("graph, node", COMPOSED, ids=[f"{g}-{n.name}" for g, n in COMPOSED])
def test_bindings_and_parameters_file_name_declared_parameters(graph, node):
    declared = {p.name for p in importlib.import_module(node.node_class.split(":")[0]).PARAMS}
    assert {b.parameter for b in node.bindings} <= declared
    values = yaml.safe_load(config_path(GRAPHS[graph].params_file).read_text())[node.name]["ros__parameters"]
    # Nested sections are parameters declared later: proprio.* by the policy, <backend>.* by the arm backend.
    assert {k for k, v in values.items() if not isinstance(v, dict)} <= declared


@pytest.mark.parametrize("graph", GRAPHS)
def test_every_argument_is_used(graph):
    spec = GRAPHS[graph]
    used = {b.argument for n in spec.nodes for b in n.bindings} | {n.condition for n in spec.nodes} | {"params_file"}
    assert {a.name for a in spec.arguments} <= used


def test_defaults_start_the_core_nodes_only():
    assert [n.name for n in resolve("sim")] == ["libero_bridge_node", "track_node", "policy_node", "arm_node"]
    assert [n.name for n in resolve("real")] == ["camera_agentview", "camera_eye_in_hand", "instruction_node",
                                                  "track_node", "policy_node", "arm_node"]
    assert all(n.overrides == {} and n.params_file == str(config_path("sim.yaml")) for n in resolve("sim"))


def test_arguments_override_typed_parameters_and_enable_optional_nodes():
    nodes = {n.name: n for n in resolve("sim", {"task": "libero_goal/3", "max_steps": "50", "track_model": "t.st",
                                                "record": "true", "rviz": "True", "bag": "/tmp/b"})}
    assert nodes["libero_bridge_node"].overrides == {"task": "libero_goal/3", "max_steps": 50}
    assert nodes["track_node"].overrides == {"model_path": "t.st"}
    assert nodes["policy_node"].overrides == {"track_model_path": "t.st"}
    assert nodes["recorder_node"].overrides == {"output": "/tmp/b"}
    assert nodes["rviz2"].node_class is None and nodes["rviz2"].package == "rviz2"
    # Closing the viewer must not stop the robot; every other node is essential (its exit ends a launch).
    assert [n for n, spec in nodes.items() if not spec.essential] == ["rviz2"]
    assert nodes["rviz2"].arguments == ("-d", str(config_path("tramoe.rviz")))
    camera = next(n for n in resolve("real") if n.name == "camera_agentview")
    assert camera.remappings == (("image_raw", topics.camera_image("agentview")),)


@pytest.mark.parametrize("arguments, message", [
    ({"taks": "x"}, "unknown argument(s) ['taks'] for graph sim"),
    ({"max_steps": "many"}, "argument max_steps must be an integer, got 'many'"),
    ({"record": "yes"}, "argument record must be true or false, got 'yes'"),
])
def test_bad_arguments_are_clear_errors(arguments, message):
    with pytest.raises(GraphError) as error:
        resolve("sim", arguments)
    assert message in str(error.value)


def test_launch_argument_syntax():
    assert parse_launch_arguments(["instruction:=put it: there", "record:=true"]) == {
        "instruction": "put it: there", "record": "true"}
    with pytest.raises(GraphError, match="name:=value"):
        parse_launch_arguments(["record=true"])


def test_rviz_config_shows_cameras_and_track_overlays():
    displays = yaml.safe_load(config_path("tramoe.rviz").read_text())["Visualization Manager"]["Displays"]
    shown = {d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    views = ["agentview", "eye_in_hand"]
    assert shown == {topics.track_overlay(v) for v in views} | {topics.camera_image(v) for v in views}
