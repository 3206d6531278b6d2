"""Synthetic episodes: valid files, tracks that sit on the rendered objects, instruction-determined motion."""
import numpy as np
import pytest

from data_fixtures import small_episode
from tramoe_ros.data.episode import read_episode, validate_episode, write_episode
from tramoe_ros.data.synthetic import (
    DIRECTIONS,
    OBJECT_COLOURS,
    parse_instruction,
    synthetic_instructions,
    write_synthetic_dataset,
)

S = 64


def colours_under_tracks(view):
    """(T, N, 3) colour of the pixel holding each track (clipped into the image; check visibility first)."""
    cols, rows = np.clip(np.floor(view.tracks * S).astype(int), 0, S - 1).transpose(2, 0, 1)
    t = np.arange(len(view.video))[:, None]
    return view.video[t, :, rows, cols]


def object_colour_mask(colours):
    """(..., 3) -> (...,) whether the colour is one of the objects' colours."""
    return np.any([np.all(colours == c, axis=-1) for c in OBJECT_COLOURS.values()], axis=0)


@pytest.mark.parametrize("with_actions", [True, False])
def test_synthetic_episodes_pass_the_validator(tmp_path, with_actions):
    path = write_episode(tmp_path / "synthetic.hdf5", small_episode(4, with_actions=with_actions))
    validate_episode(path)


@pytest.mark.parametrize("seed", range(4))
def test_tracks_land_on_the_object_colours(seed):
    episode = small_episode(seed)
    colour, _, direction = parse_instruction(episode.instruction)
    for name, view in episode.views.items():
        under = colours_under_tracks(view)
        start_visible = view.visibility[0]
        on_object = start_visible & object_colour_mask(under[0])
        assert on_object.sum() >= 5, name
        # a point that starts on an object keeps exactly that colour whenever it is visible
        same = np.all(under == under[0][None], axis=-1)
        assert same[:, on_object][view.visibility[:, on_object]].all(), name
        outside = ((view.tracks < 0) | (view.tracks >= 1)).any(-1)
        assert not view.visibility[outside].any(), name
    agentview = episode.views["agentview"]
    under = colours_under_tracks(agentview)
    moving = np.abs(agentview.tracks[-1] - agentview.tracks[0]).max(-1) > 1e-6
    assert moving.any()
    # in the fixed camera exactly the named object's points move, in the named direction
    start_colours = under[0][moving & agentview.visibility[0]]
    assert (start_colours == OBJECT_COLOURS[colour]).all()
    named = agentview.visibility[0] & np.all(under[0] == OBJECT_COLOURS[colour], axis=-1)
    assert (moving[named]).all()
    displacement = (agentview.tracks[-1] - agentview.tracks[0])[moving].mean(0)
    assert np.sign(displacement).tolist() == [float(np.sign(d)) for d in DIRECTIONS[direction]]


def test_actions_are_the_instruction_determined_velocity():
    instruction = "move the blue disc up"
    a, b = small_episode(0, instruction=instruction), small_episode(1, instruction=instruction)
    assert np.array_equal(a.actions, b.actions) and a.actions.shape == (24, 7)
    assert np.abs(a.actions).max() <= 1.0 and np.isclose(a.actions[:, 1].min(), -1.0)
    assert (a.actions[:, 0] == 0).all() and (a.actions[:, 2:] == 0).all() and (a.actions[:, 1] < 0).all()
    # the named object's per-frame displacement in the fixed camera is proportional to the action
    view = a.views["agentview"]
    moving = np.abs(view.tracks[-1] - view.tracks[0]).max(-1) > 1e-6
    step = np.diff(view.tracks[:, moving], axis=0).mean(1)  # (T-1, 2)
    ratio = step[:, 1] / a.actions[:-1, 1]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    assert a.proprio["joint_states"].shape == (24, 7) and a.proprio["gripper_states"].shape == (24, 2)
    assert not np.array_equal(small_episode(0, instruction="move the blue disc left").actions, a.actions)


def test_instructions_are_checked():
    assert len(synthetic_instructions()) == len(set(synthetic_instructions())) == 32
    with pytest.raises(ValueError, match="'move the purple block left'"):
        small_episode(0, instruction="move the purple block left")


def test_write_synthetic_dataset(tmp_path):
    paths = write_synthetic_dataset(tmp_path / "set", 3, seed=5, instructions=["move the red block right"],
                                    progress=False, length=8, image_size=32, views=("agentview",))
    assert [p.name for p in paths] == ["episode_00000.hdf5", "episode_00001.hdf5", "episode_00002.hdf5"]
    episodes = [read_episode(p) for p in paths]
    assert {e.instruction for e in episodes} == {"move the red block right"}
    again = write_synthetic_dataset(tmp_path / "again", 2, seed=5, instructions=["move the red block right"],
                                    progress=False, length=8, image_size=32, views=("agentview",))
    assert np.array_equal(read_episode(again[1]).views["agentview"].video, episodes[1].views["agentview"].video)
