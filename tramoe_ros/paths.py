"""Where the package's shipped files live: the source tree in a checkout, share/tramoe_ros when installed by colcon."""
from __future__ import annotations

from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> Path:
    """The folder holding config/, models/ and launch/."""
    if (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    from ament_index_python.packages import get_package_share_directory  # only on a colcon install

    return Path(get_package_share_directory("tramoe_ros"))


def config_path(name: str) -> Path:
    return share_dir() / "config" / name


def model_path(name: str) -> Path:
    return share_dir() / "models" / name


def shipped_policy() -> Path:
    """The shipped adaptive-mask policy (models/README.md), the default of the demo, evaluation and the sim graph."""
    return model_path("policy_adaptive.safetensors")


def shipped_track_model() -> Path:
    """The shipped Tra-MoE track model the shipped policy was trained with."""
    return model_path("track_moe.safetensors")
