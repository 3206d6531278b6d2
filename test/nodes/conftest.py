"""Node tests: DDS over shared memory only (no network traffic at all), a ROS domain of its own per test module
(processes a failed module left behind cannot answer the next one), tiny random-weight models written once per
session, a test-process node per module."""
import itertools
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "SHM")

import pytest  # noqa: E402

from model_fixtures import write_tiny_models  # noqa: E402
from node_fixtures import TestNode  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """(track model, policy) checkpoints for LIBERO-shaped inputs (7-D actions, joint + gripper proprio)."""
    return write_tiny_models(tmp_path_factory.mktemp("models"))


# Domains 100..199 leave room for the ROS default (0) and stay below Fast DDS's limit (232) with their ports.
_module_domains = itertools.count(int(os.environ["ROS_DOMAIN_ID"]) % 100)


@pytest.fixture(scope="module")
def driver():
    """The test process's own node, for publishing inputs and receiving outputs, in the module's own domain
    (node subprocesses started during the module inherit it)."""
    session_domain = os.environ["ROS_DOMAIN_ID"]
    os.environ["ROS_DOMAIN_ID"] = str(100 + next(_module_domains) % 100)
    node = TestNode()
    yield node
    node.close()
    os.environ["ROS_DOMAIN_ID"] = session_domain
