"""The LIBERO simulation graph: libero_bridge_node -> track_node -> policy_node -> arm_node (libero backend).

    ros2 launch tramoe_ros libero_sim.launch.py task:=libero_object/0 record:=true rviz:=true
    ros2 launch tramoe_ros libero_sim.launch.py --show-args

Nodes, parameters (config/sim.yaml) and arguments come from the graph description, tramoe_ros/ros/graph.py, which
`tramoe-up sim` starts in one process.
"""
from tramoe_ros.ros.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim")
