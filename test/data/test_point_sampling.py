"""The policy's double grid and the track model's variance-filtered point sampling."""
import numpy as np
import pytest

from tramoe_ros.data.sampling import sample_double_grid, sample_track_points, track_variance_px2

S = 128


def test_double_grid_values():
    grid = sample_double_grid(4)
    assert grid.shape == (32, 2) and grid.dtype == np.float32
    first, second = grid[:16], grid[16:]
    np.testing.assert_allclose(np.unique(first[:, 0]), np.linspace(0.05, 0.85, 4), atol=1e-7)
    np.testing.assert_allclose(np.unique(second[:, 1]), np.linspace(0.15, 0.95, 4), atol=1e-7)
    np.testing.assert_allclose(second - first, 0.1, atol=1e-6)  # the second grid is the first moved by 0.1
    # x varies slowest, as ATM's meshgrid: the first four points share x = 0.05
    np.testing.assert_allclose(first[:4], [[0.05, 0.05], [0.05, 0.05 + 0.8 / 3], [0.05, 0.05 + 1.6 / 3], [0.05, 0.85]],
                               atol=1e-6)
    assert sample_double_grid(2).shape == (8, 2)


def moving_and_static_tracks(rng, num_static=100, num_moving=5, horizon=16):
    """(H, N, 2) tracks: static points (tiny jitter, far below 10 px²) followed by points moving 20 px."""
    start = rng.uniform(0.1, 0.9, size=(num_static + num_moving, 2))
    jitter = rng.normal(0, 0.2 / S, size=(horizon, num_static + num_moving, 2))
    tracks = np.repeat(start[None], horizon, axis=0) + jitter
    tracks[:, num_static:, 0] += np.linspace(0, 20 / S, horizon)[:, None]
    return tracks.astype(np.float32)


def test_variance_is_in_pixels_squared():
    # x alternates between two positions 2d px apart: variance d² per axis
    d = 3.0
    x = np.where(np.arange(16) % 2 == 0, 0.5 - d / S, 0.5 + d / S)
    tracks = np.stack([x, np.full(16, 0.5)], axis=-1)[:, None]
    np.testing.assert_allclose(track_variance_px2(tracks, S), [d * d], rtol=1e-5)


def test_moving_points_are_always_chosen():
    rng = np.random.default_rng(0)
    tracks = moving_and_static_tracks(rng)
    visible = np.ones(105, bool)
    for seed in range(20):
        chosen = sample_track_points(tracks, visible, 32, S, 10.0, np.random.default_rng(seed))
        assert chosen.shape == (32,) and chosen.dtype == np.int64
        assert set(range(100, 105)) <= set(chosen.tolist())
        assert len(set(chosen.tolist())) == 32  # enough candidates: no repeats


def test_threshold_separates_moving_from_static():
    # two points with variance 9 and 11 px² around a threshold of 10: only the second counts as moving
    x = np.where(np.arange(16) % 2 == 0, -1.0, 1.0)[:, None] * np.array([3.0, np.sqrt(11.0)]) / S + 0.5
    tracks = np.stack([x, np.full_like(x, 0.5)], axis=-1)
    static = np.full((16, 50, 2), 0.3)
    tracks = np.concatenate([tracks, static], axis=1)
    for seed in range(10):
        chosen = sample_track_points(tracks, np.ones(52, bool), 1, S, 10.0, np.random.default_rng(seed))
        assert chosen.tolist() == [1]


def test_only_points_visible_at_start_are_chosen():
    rng = np.random.default_rng(1)
    tracks = moving_and_static_tracks(rng)
    visible = np.zeros(105, bool)
    visible[:60:2] = True  # 30 static visible points
    visible[100:103] = True  # 3 of the 5 moving points
    for seed in range(10):
        chosen = sample_track_points(tracks, visible, 32, S, 10.0, np.random.default_rng(seed))
        assert visible[chosen].all()
        assert {100, 101, 102} <= set(chosen.tolist())


def test_too_few_visible_points_are_repeated():
    tracks = moving_and_static_tracks(np.random.default_rng(2))
    visible = np.zeros(105, bool)
    visible[[3, 50, 104]] = True
    chosen = sample_track_points(tracks, visible, 32, S, 10.0, np.random.default_rng(0))
    assert chosen.shape == (32,) and set(chosen.tolist()) == {3, 50, 104}


def test_no_visible_point_falls_back_to_all():
    tracks = moving_and_static_tracks(np.random.default_rng(3))
    chosen = sample_track_points(tracks, np.zeros(105, bool), 32, S, 10.0, np.random.default_rng(0))
    assert chosen.shape == (32,) and chosen.min() >= 0 and chosen.max() < 105
    assert set(range(100, 105)) <= set(chosen.tolist())  # moving points are still preferred


def test_sampling_is_deterministic_given_the_generator():
    tracks = moving_and_static_tracks(np.random.default_rng(4))
    visible = np.ones(105, bool)
    draw = lambda seed: sample_track_points(tracks, visible, 32, S, 10.0, np.random.default_rng(seed))
    assert np.array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))


def test_no_points_is_an_error():
    with pytest.raises(ValueError, match="no tracked points"):
        sample_track_points(np.zeros((16, 0, 2)), np.zeros(0, bool), 32, S, 10.0, np.random.default_rng(0))


def test_still_share_reserves_slots_for_static_points():
    """A window with more moving points than slots gives only moving points by the paper's rule; `still_share`
    keeps that share of the slots for static ones, and moving points still fill the rest."""
    rng = np.random.default_rng(0)
    tracks = moving_and_static_tracks(rng, num_static=60, num_moving=60)
    moving = track_variance_px2(tracks, S) > 10.0
    visible = np.ones(120, bool)
    for share, expected_static in [(0.0, 0), (0.25, 8), (0.5, 16), (1.0, 32)]:
        for seed in range(5):
            chosen = sample_track_points(tracks, visible, 32, S, 10.0, np.random.default_rng(seed), share)
            assert len(set(chosen.tolist())) == 32
            assert (~moving[chosen]).sum() == expected_static, (share, seed)


def test_still_share_takes_what_static_points_there_are_and_moving_ones_fill_the_rest():
    rng = np.random.default_rng(1)
    tracks = moving_and_static_tracks(rng, num_static=5, num_moving=60)
    moving = track_variance_px2(tracks, S) > 10.0
    chosen = sample_track_points(tracks, np.ones(65, bool), 32, S, 10.0, np.random.default_rng(0), 0.5)
    assert (~moving[chosen]).sum() == 5 and moving[chosen].sum() == 27
    # few moving points: they are all taken, static ones fill the rest, as without a share
    tracks = moving_and_static_tracks(rng, num_static=100, num_moving=5)
    chosen = sample_track_points(tracks, np.ones(105, bool), 32, S, 10.0, np.random.default_rng(0), 0.5)
    assert set(range(100, 105)) <= set(chosen.tolist())


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_still_share_outside_zero_one_is_refused(share):
    tracks = moving_and_static_tracks(np.random.default_rng(0))
    with pytest.raises(ValueError, match="still_share"):
        sample_track_points(tracks, np.ones(105, bool), 32, S, 10.0, np.random.default_rng(0), share)
