"""Robot tests: emulated servo buses on pseudo-terminals (tramoe_ros.robot.emulator) driven through the real
dynamixel_sdk path. Node tests here reuse test/nodes' process helpers and keep DDS on shared memory."""
import os
import sys
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nodes"))  # node_fixtures
