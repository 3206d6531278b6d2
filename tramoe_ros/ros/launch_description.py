"""The launch files' body: a LaunchDescription built from the graph description (`tramoe_ros.ros.graph`).

Each launch argument of the graph becomes a DeclareLaunchArgument; the nodes are launch_ros `Node` actions
created once the arguments are known (an OpaqueFunction), so conditions (record, rviz) and overrides are decided
by the same `resolve` that `tramoe-up` uses. Needs `launch` and `launch_ros` (a ROS 2 install).
"""
from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from tramoe_ros.ros.graph import GRAPHS, resolve


def _nodes(context: LaunchContext, graph: str) -> list[Node]:
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in GRAPHS[graph].arguments}
    nodes = []
    for spec in resolve(graph, values):
        # Typed values: a string such as "0" or "true" must reach the node as a string, not as YAML.
        overrides = {k: ParameterValue(v, value_type=type(v)) for k, v in spec.overrides.items()}
        nodes.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name, output="screen",
            parameters=[spec.params_file, overrides] if spec.params_file else [],
            remappings=list(spec.remappings), arguments=list(spec.arguments)))
    return nodes


def graph_launch_description(graph: str) -> LaunchDescription:
    """Launch arguments and nodes of `graph` ("sim" or "real")."""
    arguments = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                 for a in GRAPHS[graph].arguments]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes, args=[graph])])
