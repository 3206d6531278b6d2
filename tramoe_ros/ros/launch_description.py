"""The launch files' body: a LaunchDescription built from the graph description (`tramoe_ros.ros.graph`).

Each launch argument of the graph becomes a DeclareLaunchArgument; the nodes are launch_ros `Node` actions
created once the arguments are known (an OpaqueFunction), so conditions (record, rviz) and overrides are decided
by the same `resolve` that `tramoe-up` uses. When an essential node exits (one that cannot start prints why), the
launch shuts down instead of running on with what is left; an outside program that is not installed (rviz2) is
left out with a message instead of failing the launch after the other nodes started. Needs `launch` and
`launch_ros` (a ROS 2 install).
"""
from __future__ import annotations

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import Action, LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from tramoe_ros.ros.graph import GRAPHS, resolve


def package_installed(package: str) -> bool:
    """Whether the ament index knows `package` (how launch_ros finds a node's executable)."""
    try:
        get_package_prefix(package)
    except PackageNotFoundError:
        return False
    return True


def _nodes(context: LaunchContext, graph: str) -> list[Action]:
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in GRAPHS[graph].arguments}
    actions: list[Action] = []
    for spec in resolve(graph, values):
        if spec.node_class is None and not package_installed(spec.package):
            actions.append(LogInfo(msg=f"[tramoe] {spec.package} is not installed: the {graph} graph starts without "
                                       f"{spec.name}"))
            continue
        # Typed values: a string such as "0" or "true" must reach the node as a string, not as YAML.
        overrides = {k: ParameterValue(v, value_type=type(v)) for k, v in spec.overrides.items()}
        on_exit = Shutdown(reason=f"{spec.name} exited; the {graph} graph cannot work without it") \
            if spec.essential else None
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name, output="screen",
            parameters=[spec.params_file, overrides] if spec.params_file else [],
            remappings=list(spec.remappings), arguments=list(spec.arguments), on_exit=on_exit))
    return actions


def graph_launch_description(graph: str) -> LaunchDescription:
    """Launch arguments and nodes of `graph` ("sim" or "real")."""
    arguments = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                 for a in GRAPHS[graph].arguments]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes, args=[graph])])
