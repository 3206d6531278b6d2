"""The launch files (when launch_ros is importable: a ROS 2 install) declare the graph's arguments and produce the
graph description's nodes, with the parameters file, typed overrides and remappings that tramoe-up uses."""
import importlib.util
from pathlib import Path

import pytest
import yaml

pytest.importorskip("launch_ros.actions", reason="launch_ros is not installed (it is not on PyPI)")

from launch import LaunchContext  # noqa: E402
from launch.actions import LogInfo, OpaqueFunction, Shutdown  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from tramoe_ros.ros import launch_description as graph_launch  # noqa: E402
from tramoe_ros.ros.graph import GRAPHS, resolve  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
CASES = [("libero_sim.launch.py", "sim", {"record": "true", "rviz": "true", "task": "libero_goal/3",
                                          "max_steps": "40", "instruction": "0"}),
         ("real.launch.py", "real", {"record": "true", "arm_backend": "ros2_control", "instruction": "true"})]


def launch_description(file_name: str):
    spec = importlib.util.spec_from_file_location(file_name.replace(".", "_"), LAUNCH / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def nodes_of(description, arguments: dict[str, str]):
    context = LaunchContext()
    for declared in description.get_launch_arguments():
        context.launch_configurations[declared.name] = arguments.get(
            declared.name, "".join(s.perform(context) for s in declared.default_value))
    opaque = next(e for e in description.entities if isinstance(e, OpaqueFunction))
    actions = opaque.execute(context)
    for action in actions:
        if isinstance(action, Node):
            action._perform_substitutions(context)  # names, parameter files and remappings, as executing would
    return actions


@pytest.fixture(autouse=True)
def every_package_installed(monkeypatch):
    """rviz2 counts as installed unless a test says otherwise: the node lists do not depend on this machine."""
    monkeypatch.setattr(graph_launch, "package_installed", lambda package: True)


def on_exit_actions(node: Node) -> list:
    """The actions a launch_ros Node runs when its process exits (launch keeps them in a private attribute of the
    class that defines them: ExecuteProcess, or ExecuteLocal in newer releases)."""
    for cls in type(node).__mro__:
        value = node.__dict__.get(f"_{cls.__name__}__on_exit")
        if value is not None:
            return value if isinstance(value, list) else [value]
    return []


@pytest.mark.parametrize("file_name, graph, arguments", CASES, ids=[c[1] for c in CASES])
def test_launch_file_declares_the_graph_arguments(file_name, graph, arguments):
    declared = {a.name for a in launch_description(file_name).get_launch_arguments()}
    assert declared == {a.name for a in GRAPHS[graph].arguments}


@pytest.mark.parametrize("file_name, graph, arguments", CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("with_arguments", [False, True], ids=["defaults", "arguments"])
def test_launch_file_starts_the_described_nodes(file_name, graph, arguments, with_arguments):
    given = arguments if with_arguments else {}
    nodes = nodes_of(launch_description(file_name), given)
    expected = resolve(graph, given)
    assert [(n.node_package, n.node_executable, n.node_name.rsplit("/", 1)[1]) for n in nodes] == \
        [(e.package, e.executable, e.name) for e in expected]
    for node, spec in zip(nodes, expected):
        assert list(node.expanded_remapping_rules or []) == list(spec.remappings)
        files = [path for path, is_file in node._Node__expanded_parameter_arguments or [] if is_file]
        if spec.params_file is None:
            assert files == []
            continue
        assert files[0] == spec.params_file
        overrides = {}
        for path in files[1:]:  # launch_ros writes the overrides to temporary files
            for section in yaml.safe_load(Path(path).read_text()).values():
                overrides.update(section["ros__parameters"])
            Path(path).unlink()
        assert overrides == spec.overrides  # typed: instruction "0" stays a string, max_steps an integer


@pytest.mark.parametrize("file_name, graph, arguments", CASES, ids=[c[1] for c in CASES])
def test_an_essential_node_that_exits_ends_the_launch(file_name, graph, arguments):
    nodes = nodes_of(launch_description(file_name), arguments)
    for node in nodes:
        name = node.node_name.rsplit("/", 1)[1]
        shuts_down = any(isinstance(a, Shutdown) for a in on_exit_actions(node))
        assert shuts_down == (name != "rviz2"), name  # closing the viewer does not stop the robot


def test_rviz_that_is_not_installed_is_left_out_with_a_message(monkeypatch):
    monkeypatch.setattr(graph_launch, "package_installed", lambda package: package != "rviz2")
    actions = nodes_of(launch_description("libero_sim.launch.py"), {"rviz": "true"})
    nodes = [a for a in actions if isinstance(a, Node)]
    assert [n.node_name.rsplit("/", 1)[1] for n in nodes] == [s.name for s in resolve("sim", {"rviz": "false"})]
    (message,) = [a for a in actions if isinstance(a, LogInfo)]
    assert "rviz2 is not installed" in "".join(str(getattr(m, "text", m)) for m in message.msg)
