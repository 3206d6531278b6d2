"""The real dual-arm robot graph: camera_node x2 + instruction_node -> track_node -> policy_node -> arm_node
(dynamixel or ros2_control).

    ros2 launch tramoe_ros real.launch.py instruction:="put the red block in the box" record:=true
    ros2 launch tramoe_ros real.launch.py arm_backend:=ros2_control
    ros2 launch tramoe_ros real.launch.py --show-args

Nodes, parameters (config/real.yaml) and arguments come from the graph description, tramoe_ros/ros/graph.py,
which `tramoe-up real` starts in one process. The arm starts disabled: ros2 service call /arm_node/enable
std_srvs/srv/SetBool "{data: true}".
"""
from tramoe_ros.ros.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description("real")
