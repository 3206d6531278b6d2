"""The core packages import no ROS: they can be used, installed and tested without it (README, Layout)."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tramoe_ros"
CORE = ("models", "data", "training", "sim", "labeling", "robot")
ROS = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "std_srvs", "tramoe_msgs", "launch", "launch_ros",
       "tramoe_ros.ros", "tramoe_ros.nodes", "tramoe_ros.cli", "tramoe_ros.bench")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", CORE)
def test_core_package_imports_no_ros(package):
    offending = {str(path.relative_to(PACKAGE)): sorted(m for m in imported_modules(path)
                                                        if m.split(".")[0] in ROS or m.startswith(ROS))
                 for path in sorted((PACKAGE / package).rglob("*.py"))}
    assert not {k: v for k, v in offending.items() if v}


def test_sim_does_not_import_labeling():
    """The simulator owns its ground truth; labeling (trackers for videos) may build on sim, never the reverse."""
    uses = {str(path.relative_to(PACKAGE)) for path in (PACKAGE / "sim").rglob("*.py")
            if any(m.startswith("tramoe_ros.labeling") for m in imported_modules(path))}
    assert not uses
