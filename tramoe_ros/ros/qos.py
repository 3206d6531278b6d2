"""QoS profiles of the graph: sensor data for images, reliable for tracks and actions, transient local for the
instruction and the episode status (a node that starts late still gets the current value)."""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

# Camera images: best effort, keep the last 5 (the ROS sensor-data profile).
IMAGE_QOS: QoSProfile = qos_profile_sensor_data
# Images for a consumer that only wants the newest: a slow consumer skips frames instead of working through a
# backlog of old ones (the track node's model can be slower than the camera).
LATEST_IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
# Images a consumer must find again by stamp after a slow step (the policy matches each TrackArray with the images
# it was predicted from): 50 frames = 2.5 s at 20 Hz.
IMAGE_HISTORY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT,
                               durability=DurabilityPolicy.VOLATILE)
# Joint states a consumer must find again by stamp after a slow step: 100 messages = 2 s at 50 Hz.
JOINT_STATE_HISTORY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                                     reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# Tracks, actions, joint states, diagnostics: every message matters.
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
# The instruction: the latest value is kept for subscribers that join later.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
# The episode status, once per simulation step: late joiners get the recent ones, and a history deeper than one
# keeps a burst of steps from replacing statuses before a live subscriber has them.
STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
