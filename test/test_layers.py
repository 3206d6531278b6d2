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


# Floors, bottom first (README, Layout): a module may import its own package and anything on a lower floor.
FLOORS = (
    ("config", "paths", "viz"),
    ("data",),
    ("models", "robot", "labeling"),
    ("sim",),
    ("training",),
    ("ros",),
    ("nodes", "bench", "cli", "demo", "smoke"),
)


def package_of(module: str) -> str:
    """'tramoe_ros.models.runner' -> 'models'; 'tramoe_ros.viz' -> 'viz'."""
    return module.split(".")[1]


def test_imports_go_down_the_floors_only():
    floor = {name: level for level, names in enumerate(FLOORS) for name in names}
    top_level = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages | top_level == set(floor), "every package and top-level module has a floor"
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        if own == "__init__.py":
            continue
        for module in imported_modules(path):
            if module.startswith("tramoe_ros.") and package_of(module) != own \
                    and floor[package_of(module)] > floor[own]:
                upward.append(f"{relative} imports {module}")
    assert not upward
