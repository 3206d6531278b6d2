"""The launch files (when launch_ros is importable: a ROS 2 install) declare the graph's arguments and produce the
graph description's nodes, with the parameters file, typed overrides and remappings that tramoe-up uses."""
import importlib.util
from pathlib import Path

import pytest
import yaml

pytest.importorskip("launch_ros.actions", reason="launch_ros is not installed (it is not on PyPI)")

from launch import LaunchContext  # noqa: E402
from launch.actions import OpaqueFunction  # noqa: E402

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
    nodes = opaque.execute(context)
    for node in nodes:
        node._perform_substitutions(context)  # names, parameter files and remappings, as executing would
    return nodes


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
