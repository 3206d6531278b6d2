"""Fixture for training tests: a small generated dataset."""
from __future__ import annotations

import pytest

from tramoe_ros.data.synthetic import synthetic_instructions, write_synthetic_dataset

@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """6 action-labelled episodes (in-domain) and 6 action-free videos (out-of-domain), 64 px, 20 frames."""
    root = tmp_path_factory.mktemp("synthetic")
    instructions = synthetic_instructions()
    write_synthetic_dataset(root / "in_domain", 6, seed=0, instructions=instructions[:3], image_size=64,
                            length=20, domain="robot", progress=False)
    write_synthetic_dataset(root / "ood", 6, seed=1, instructions=instructions[3:9], image_size=64, length=20,
                            with_actions=False, domain="human", progress=False)
    return root
