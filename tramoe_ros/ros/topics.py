"""Topic and service names of the tramoe graph, defined once. Point a node elsewhere with ROS remapping rules
(`-r /tracks:=/other`, or `remappings` in the graph description)."""
from __future__ import annotations

INSTRUCTION = "/instruction"  # std_msgs/String, transient local
JOINT_STATES = "/joint_states"  # sensor_msgs/JointState
TRACKS = "/tracks"  # tramoe_msgs/TrackArray
POLICY_ACTION = "/policy/action"  # tramoe_msgs/PolicyAction, from the policy to the arm node
LIBERO_ACTION = "/libero/action"  # tramoe_msgs/PolicyAction, from the arm node (after its safety checks) to the sim
EPISODE_STATUS = "/episode_status"  # tramoe_msgs/EpisodeStatus, transient local
LIBERO_RESET = "/libero/reset"  # tramoe_msgs/srv/ResetEpisode
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray


def camera_image(view: str) -> str:
    """sensor_msgs/Image of one camera view (rgb8), published by a camera node or the LIBERO bridge."""
    return f"/cameras/{view}/image_raw"


def track_overlay(view: str) -> str:
    """sensor_msgs/Image: the view's image with its predicted tracks drawn on it (for rviz)."""
    return f"/tracks/{view}/overlay"


def joint_trajectory(controller: str) -> str:
    """trajectory_msgs/JointTrajectory input of a ros2_control JointTrajectoryController."""
    return f"/{controller}/joint_trajectory"
