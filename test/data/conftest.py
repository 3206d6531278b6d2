"""Shared fixtures: small synthetic episodes written once per test session."""
from pathlib import Path

import pytest

from data_fixtures import small_episode
from tramoe_ros.data.episode import write_episode


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """Three action-labelled demos (domain "robot") under demos/ and one action-free video under videos/."""
    root = tmp_path_factory.mktemp("episodes")
    for seed in range(3):
        write_episode(root / "demos" / f"demo_{seed}.hdf5", small_episode(seed, domain="robot"))
    write_episode(root / "videos" / "video_0.hdf5", small_episode(10, with_actions=False, domain="human"))
    return root


@pytest.fixture(scope="session")
def demo_paths(demo_dir) -> list[Path]:
    return sorted((demo_dir / "demos").glob("*.hdf5"))
