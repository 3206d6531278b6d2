"""The track benchmark's metrics on made-up ground truth: ADE/FDE against "nothing moves", TAP-Vid's delta_avg,
static drift, and which points are scored."""
import numpy as np
import pytest

from tramoe_ros.bench.tracks import DriftSums, ErrorSums, score_windows
from tramoe_ros.sim.heldout_tracks import EpisodeWindows, ViewWindows

S, H, K = 128, 16, 4


def windows(episodes: int = 3) -> EpisodeWindows:
    """Per window: point 0 moves right 1 px per step, point 1 down 0.5 px per step, points 2 and 3 stand still;
    point 3 is hidden at the query frame."""
    steps = np.arange(H, dtype=np.float32)
    tracks = np.tile(np.array([[40, 40], [60, 60], [80, 80], [100, 100]], np.float32), (episodes, H, 1, 1))
    tracks[:, :, 0, 0] += steps
    tracks[:, :, 1, 1] += 0.5 * steps
    visibility = np.ones((episodes, H, K), bool)
    visibility[:, 0, 3] = False
    images = np.zeros((episodes, S, S, 3), np.uint8)
    view = ViewWindows(images, tracks / S, visibility, tracks / S, visibility.copy())
    return EpisodeWindows(0, 30, "do it", True, np.arange(episodes) * 8, {"agentview": view})


def shifted(px: float):
    """A predictor that is right except for a constant offset of `px` pixels in x after the query step."""
    truth = windows().views["agentview"].grid_tracks

    def predict(images, queries, instruction):
        out = truth[: len(images)].copy()
        out[:, 1:, :, 0] += px / S
        return out
    return predict


def still(images, queries, instruction):
    return np.repeat(queries[:, None], H, axis=1)


def test_perfect_prediction_scores_zero_error_and_full_delta():
    scores = score_windows(shifted(0.0), windows(), S, variance_threshold_px2=10.0)
    grid, moving = scores.sets["grid"].metrics(), scores.sets["moving"].metrics()
    assert grid["ade_px"] == 0 and grid["fde_px"] == 0 and grid["ratio"] == 0 and grid["delta_avg"] == 1.0
    # "Nothing moves" on the grid set: point 0 is i px off at step i, point 1 i/2 px, points 2 still.
    assert grid["ade_static_baseline_px"] == pytest.approx((8.0 + 4.0 + 0.0) / 3)
    assert grid["fde_static_baseline_px"] == pytest.approx((15.0 + 7.5 + 0.0) / 3)
    assert grid["points"] == 3 * 3  # three windows; the point hidden at its query is not scored
    # The moving set scores only points whose variance exceeds the threshold: point 0 (var 21.25 px²), not
    # point 1 (5.3 px²).
    assert moving["points"] == 3 and moving["ade_static_baseline_px"] == pytest.approx(8.0)
    assert scores.drift.value() == 0.0


def test_nothing_moves_scores_ratio_one_and_no_drift():
    scores = score_windows(still, windows(), S, variance_threshold_px2=10.0)
    for metrics in (scores.sets["grid"].metrics(), scores.sets["moving"].metrics()):
        assert metrics["ratio"] == 1.0
        assert metrics["delta_avg"] == metrics["delta_avg_static_baseline"] < 1.0
    assert scores.drift.value() == 0.0


def test_a_constant_offset_shows_in_ade_delta_and_static_drift():
    scores = score_windows(shifted(3.0), windows(), S, variance_threshold_px2=10.0)
    grid = scores.sets["grid"].metrics()
    assert grid["ade_px"] == pytest.approx(3.0) and grid["fde_px"] == pytest.approx(3.0)
    assert grid["delta_avg"] == pytest.approx(3 / 5)  # within 4, 8 and 16 px; not within 1 or 2
    # Still points (point 2, both sets) are predicted 3 px away from where they stay.
    assert scores.drift.value() == pytest.approx(3.0)
    assert scores.drift.points == 2 * 3


def test_sums_merge_over_episodes_as_one_run():
    one, two = ErrorSums(), ErrorSums()
    truth = windows().views["agentview"].grid_tracks * S
    visibility = windows().views["agentview"].grid_visibility
    scored = visibility[:, 0]
    predicted = truth + 2.0
    one.add(predicted[:1], truth[:1], visibility[:1], scored[:1])
    two.add(predicted[1:], truth[1:], visibility[1:], scored[1:])
    one.merge(two)
    whole = ErrorSums()
    whole.add(predicted, truth, visibility, scored)
    assert one.metrics() == whole.metrics()
    drift = DriftSums()
    drift.add(predicted, truth, scored)
    assert drift.value() == pytest.approx(np.hypot(2.0, 2.0), abs=1e-3)
