"""Point trackers for videos without a simulator and `tramoe-label-tracks`: Lucas-Kanade accuracy and occlusion
handling on generated videos, the CoTracker backend's errors and its protocol, video import, relabelling, and the
comparison with ground truth."""
import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tramoe_ros.cli.label_tracks import main
from tramoe_ros.data.episode import Episode, EpisodeFile, ViewData, read_episode, validate_episode, write_episode
from tramoe_ros.data.synthetic import make_synthetic_episode
from tramoe_ros.labeling.evaluate_tracker import ViewComparison, summarize
from tramoe_ros.labeling.point_trackers import (
    CoTrackerTracker,
    LucasKanadeTracker,
    TrackerUnavailableError,
    sample_label_queries,
)

SIZE = 64
LENGTH = 20
SQUARE = 30  # side of the moving square, px
VELOCITY = np.array([0.7, 0.45])  # px per frame: sub-pixel, so interpolation matters


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random grey-level texture (height, width, 3) uint8 with strong gradients, good for Lucas-Kanade."""
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 1.5)
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 220 + 20
    return np.repeat(noise[..., None], 3, axis=2).astype(np.uint8)


def moving_square_video(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A textured square sliding with VELOCITY over a static textured background.

    Returns:
        video (LENGTH, SIZE, SIZE, 3) uint8; corners (LENGTH, 2) the square's top-left corner in continuous pixel
        coordinates (pixel c spans [c, c + 1)).
    """
    background = texture(rng, SIZE, SIZE)
    patch = texture(rng, SQUARE, SQUARE)
    corners = np.array([8.0, 10.0]) + np.arange(LENGTH)[:, None] * VELOCITY
    frames = []
    for corner in corners:
        # Sub-pixel placement: warp the patch by the corner offset (bilinear), paste where the warped mask covers.
        shift = np.float32([[1, 0, corner[0]], [0, 1, corner[1]]])
        warped = cv2.warpAffine(patch, shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.full((SQUARE, SQUARE), 255, np.uint8), shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
        alpha = mask[..., None].astype(np.float32) / 255
        frames.append((alpha * warped + (1 - alpha) * background).round().astype(np.uint8))
    return np.stack(frames), corners


def square_queries(rng: np.random.Generator, corner: np.ndarray, count: int) -> np.ndarray:
    """(count, 2) normalised points in the inner part of the square (clear of its edges by > half the window)."""
    inner = rng.uniform(8, SQUARE - 8, size=(count, 2))
    return (corner + inner) / SIZE


def test_lk_tracks_a_moving_textured_square_within_a_pixel():
    rng = np.random.default_rng(0)
    video, corners = moving_square_video(rng)
    queries = square_queries(rng, corners[0], 25)
    tracks, visibility = LucasKanadeTracker().track(video, queries)
    assert tracks.shape == (LENGTH, 25, 2) and tracks.dtype == np.float32
    assert visibility.shape == (LENGTH, 25) and visibility.all()
    expected = queries[None] + (corners - corners[0])[:, None] / SIZE
    error_px = np.linalg.norm(tracks - expected, axis=-1) * SIZE
    assert error_px.max() < 1.0, f"largest error {error_px.max():.2f} px"
    assert np.median(error_px[-1]) < 0.3


def test_lk_tracks_backward_from_a_later_query_frame():
    rng = np.random.default_rng(1)
    video, corners = moving_square_video(rng)
    query_frame = LENGTH // 2
    points = square_queries(rng, corners[query_frame], 10)
    queries = np.concatenate([np.full((10, 1), query_frame), points], axis=1)
    tracks, visibility = LucasKanadeTracker().track(video, queries)
    expected = points[None] + (corners - corners[query_frame])[:, None] / SIZE
    assert visibility.all()
    np.testing.assert_allclose(tracks[query_frame], points, atol=1e-6)
    assert np.linalg.norm(tracks - expected, axis=-1).max() * SIZE < 1.0


def test_forward_backward_check_marks_occluded_points_invisible_and_recovers_them():
    rng = np.random.default_rng(2)
    scene = texture(rng, SIZE, SIZE)
    occluder = texture(rng, 28, 28)
    occluded_frames = range(6, 11)
    video = np.repeat(scene[None], 16, axis=0)
    for t in occluded_frames:  # an unrelated patch suddenly covers the top-left region, then leaves
        video[t, 4:32, 4:32] = occluder
    hidden = rng.uniform(12, 24, size=(12, 2))  # well inside the occluder
    clear = rng.uniform(42, 58, size=(12, 2))  # far from it
    queries = (np.concatenate([hidden, clear]) + 0.5) / SIZE

    tracks, visibility = LucasKanadeTracker().track(video, queries)
    during = list(occluded_frames)
    assert not visibility[during, :12].any(), "points under the occluder must be invisible"
    # Lost points stay where they were last seen (frame 5), not dragged along by the occluder.
    np.testing.assert_allclose(tracks[during, :12], np.broadcast_to(tracks[5, :12], (len(during), 12, 2)), atol=1e-6)
    assert visibility[:, 12:].all(), "points away from the occluder stay visible"
    # Once the occluder is gone they are found again, in place.
    assert visibility[11:, :12].all()
    assert np.abs(tracks[11:] - queries[None]).max() * SIZE < 0.2

    # Without the forward-backward and residual tests the same points would count as visible.
    _, lax = LucasKanadeTracker(fb_threshold_px=1e6, max_residual=1e6).track(video, queries)
    assert lax[during, :12].mean() > visibility[during, :12].mean()


def test_tracker_input_errors_name_the_problem():
    video = np.zeros((3, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(T, S, S, 3\) uint8"):
        LucasKanadeTracker().track(video[..., 0], np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\) x, y or \(N, 3\)"):
        LucasKanadeTracker().track(video, np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"query frames must be integers in \[0, 3\)"):
        LucasKanadeTracker().track(video, np.array([[5, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="window_px"):
        LucasKanadeTracker(window_px=10)


def test_label_queries_are_random_points_then_the_double_grid():
    queries = sample_label_queries(30, 3, np.random.default_rng(0))
    assert queries.shape == (30 + 18, 2) and queries.dtype == np.float32
    assert ((queries >= 0) & (queries < 1)).all()
    np.testing.assert_allclose(queries[30], [0.05, 0.05])  # the grid starts where ATM's does
    np.testing.assert_array_equal(queries[:30], sample_label_queries(30, 0, np.random.default_rng(0)))


# ---------------------------------------------------------------------------------------------------------------
# CoTracker backend


def test_cotracker_backend_names_what_is_missing(tmp_path, monkeypatch, capsys):
    with pytest.raises(TrackerUnavailableError, match="needs a local checkpoint"):
        CoTrackerTracker(None)
    with pytest.raises(TrackerUnavailableError, match=r"missing\.pth does not exist"):
        CoTrackerTracker(tmp_path / "missing.pth")
    checkpoint = tmp_path / "scaled_offline.pth"
    checkpoint.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "cotracker", None)  # import cotracker fails, installed or not
    with pytest.raises(TrackerUnavailableError, match="needs the 'cotracker' package"):
        CoTrackerTracker(checkpoint)
    video_dir = tmp_path / "videos"
    video_dir.mkdir()
    assert main([str(video_dir), "--out", str(tmp_path / "out"), "--backend", "cotracker"]) == 2
    assert "needs a local checkpoint" in capsys.readouterr().err


def _install_fake_cotracker(monkeypatch, calls: list) -> None:
    """A stand-in for the `cotracker` package (which is not on PyPI and needs weights): `CoTrackerPredictor` with
    the real constructor and call signature, loading the checkpoint with torch.load and returning every query
    point moving one pixel right per frame from its query frame, in CoTracker's pixel convention."""

    class CoTrackerPredictor(torch.nn.Module):
        def __init__(self, checkpoint="./checkpoints/scaled_offline.pth", offline=True, v2=False, window_len=60):
            super().__init__()
            self.state = torch.load(checkpoint)
            self.bias = torch.nn.Parameter(self.state["bias"])

        def forward(self, video, queries=None, segm_mask=None, grid_size=0, grid_query_frame=0,
                    backward_tracking=False):
            calls.append({"video": video, "queries": queries, "backward_tracking": backward_tracking})
            length = video.shape[1]
            steps = torch.arange(length, dtype=torch.float32)[None, :, None] - queries[:, None, :, 0]
            tracks = queries[:, None, :, 1:].repeat(1, length, 1, 1)
            tracks[..., 0] += steps + self.bias
            return tracks, torch.ones(tracks.shape[:3], dtype=torch.bool)

    package = types.ModuleType("cotracker")
    predictor = types.ModuleType("cotracker.predictor")
    predictor.CoTrackerPredictor = CoTrackerPredictor
    package.predictor = predictor
    monkeypatch.setitem(sys.modules, "cotracker", package)
    monkeypatch.setitem(sys.modules, "cotracker.predictor", predictor)


def test_cotracker_backend_speaks_the_predictor_protocol(tmp_path, monkeypatch):
    calls: list = []
    _install_fake_cotracker(monkeypatch, calls)
    checkpoint = tmp_path / "scaled_offline.pth"
    torch.save({"bias": torch.tensor(0.0)}, checkpoint)
    tracker = CoTrackerTracker(checkpoint, device="cpu")
    video = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    queries = np.array([[0, 0.25, 0.5], [2, 0.5, 0.75]])
    tracks, visibility = tracker.track(video, queries)

    sent = calls[0]
    assert sent["video"].shape == (1, 6, 3, 32, 32) and sent["video"].dtype == torch.float32
    np.testing.assert_array_equal(sent["video"][0, 3].permute(1, 2, 0).numpy(), video[3])  # 0..255, RGB, CHW
    # Normalised x / S -> CoTracker pixels (centres at integers): 0.25 * 32 - 0.5 = 7.5.
    np.testing.assert_allclose(sent["queries"][0].numpy(), [[0, 7.5, 15.5], [2, 15.5, 23.5]])
    assert sent["backward_tracking"] is True
    assert tracks.shape == (6, 2, 2) and visibility.shape == (6, 2) and visibility.dtype == bool
    expected_x = queries[:, 1][None] + (np.arange(6)[:, None] - queries[:, 0][None]) / 32
    np.testing.assert_allclose(tracks[..., 0], expected_x, atol=1e-6)
    np.testing.assert_allclose(tracks[..., 1], np.broadcast_to(queries[:, 2], (6, 2)), atol=1e-6)

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(TrackerUnavailableError, match=r"corrupt\.pth does not load"):
        CoTrackerTracker(corrupt, device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# tramoe-label-tracks


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> None:
    """(T, H, W, 3) RGB frames -> an .avi (MJPG) or .mp4 (mp4v) file."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (frames.shape[2], frames.shape[1]))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_import_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(3)
    video, _ = moving_square_video(rng)
    # A wide frame: the square scene in the middle, red bars left and right that the centre crop removes.
    wide = np.zeros((LENGTH, SIZE, SIZE + 32, 3), np.uint8)
    wide[..., 0] = 255
    wide[:, :, 16:16 + SIZE] = video
    source = tmp_path / "human" / "kitchen" / f"open_the_drawer{suffix}"
    source.parent.mkdir(parents=True)
    write_video(source, wide)
    (tmp_path / "human" / "notes.txt").write_text("not a video")

    out = tmp_path / "out"
    args = [str(tmp_path / "human"), "--out", str(out), "--size", "32", "--stride", "2", "--points", "40",
            "--grid", "3", "--domain", "human"]
    assert main(args) == 0
    episode_path = out / "kitchen" / "open_the_drawer.hdf5"
    validate_episode(episode_path)
    episode = read_episode(episode_path)
    assert episode.instruction == "open the drawer" and episode.domain == "human"
    assert episode.actions is None and episode.proprio == {}
    view = episode.views["agentview"]
    assert view.video.shape == (LENGTH // 2, 3, 32, 32)
    assert view.tracks.shape == (LENGTH // 2, 40 + 18, 2) and view.visibility[0].all()
    expected = cv2.resize(video[2], (32, 32), interpolation=cv2.INTER_AREA).astype(float)
    decoded = view.video[1].transpose(1, 2, 0).astype(float)
    assert np.abs(decoded - expected).mean() < 12, "frame 2 (stride 2) should be the centre crop, resized"


def test_relabel_fills_empty_views_and_keeps_everything_else(tmp_path):
    source = make_synthetic_episode(np.random.default_rng(4), length=12, image_size=32, num_tracked_points=16)
    # A teleop recording: agentview without tracks (N = 0), eye_in_hand already labelled.
    empty = ViewData(source.views["agentview"].video, np.zeros((12, 0, 2), np.float32), np.zeros((12, 0), bool))
    episode = Episode({"agentview": empty, "eye_in_hand": source.views["eye_in_hand"]}, source.actions,
                      source.proprio, source.instruction, "robot")
    path = write_episode(tmp_path / "teleop" / "episode_0.hdf5", episode)
    validate_episode(path)  # views with zero points are valid
    before = path.read_bytes()

    out = tmp_path / "labelled"
    assert main([str(tmp_path / "teleop"), "--out", str(out), "--only-empty", "--points", "20", "--grid", "2"]) == 0
    assert path.read_bytes() == before, "with --out the input is left alone"
    labelled = read_episode(out / "episode_0.hdf5")
    np.testing.assert_array_equal(labelled.actions, episode.actions)
    for name, values in episode.proprio.items():
        np.testing.assert_array_equal(labelled.proprio[name], values)
    assert (labelled.instruction, labelled.domain) == (episode.instruction, "robot")
    np.testing.assert_array_equal(labelled.views["agentview"].video, empty.video)
    assert labelled.views["agentview"].tracks.shape == (12, 28, 2)
    assert labelled.views["agentview"].visibility[0].all()
    np.testing.assert_array_equal(labelled.views["eye_in_hand"].tracks, episode.views["eye_in_hand"].tracks)

    # In place, all views: every view gets the new queries, the file stays a valid episode with its actions.
    assert main([str(path), "--points", "10", "--grid", "0"]) == 0
    relabelled = EpisodeFile(path)
    assert relabelled.num_points == {"agentview": 10, "eye_in_hand": 10} and relabelled.has_actions
    np.testing.assert_array_equal(relabelled.actions(0, 12), episode.actions)
    assert not list(path.parent.glob("*.tmp"))


def test_label_errors_name_the_input(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err
    video = tmp_path / "clip.mp4"
    write_video(video, np.zeros((4, 16, 16, 3), np.uint8))
    assert main([str(video)]) == 2
    assert "give --out" in capsys.readouterr().err
    broken = tmp_path / "broken" / "episode.hdf5"
    broken.parent.mkdir()
    broken.write_bytes(b"not hdf5")
    assert main([str(broken.parent), "--out", str(tmp_path / "out")]) == 1
    assert f"{broken}: not a readable HDF5 file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------
# Comparison with ground truth


def test_summary_metrics_pool_every_frame_but_the_query_frame():
    errors = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, 10.0]])
    comparison = ViewComparison(
        episode=Path("e.hdf5"), view="v", query_frame=0, error_px=errors,
        predicted_visible=np.array([[True, True], [True, False], [True, True]]),
        true_visible=np.array([[True, True], [True, True], [False, True]]),
        frame=np.zeros((4, 4, 3), np.uint8), true_tracks=np.zeros((3, 2, 2)), predicted_tracks=np.zeros((3, 2, 2)),
    )
    metrics = summarize([comparison])
    # Ground-truth-visible entries after frame 0: 1, 3, 10 (the 2.0 is occluded).
    assert metrics["epe_px_median"] == 3.0 and metrics["epe_px_mean"] == pytest.approx(14 / 3)
    assert metrics["epe_px_p90"] == pytest.approx(np.percentile([1, 3, 10], 90))
    assert metrics["within_1px"] == 0.0 and metrics["within_4px"] == pytest.approx(2 / 3)
    assert metrics["visibility_accuracy"] == 0.5  # right: (1, 0), (2, 1); wrong: (1, 1), (2, 0)
    assert metrics["visible_recall"] == pytest.approx(2 / 3) and metrics["occluded_recall"] == 0.0
    assert metrics["epe_px_median_both_visible"] == 5.5  # entries 1 and 10


def test_compare_ground_truth_on_a_generated_episode(tmp_path, capsys):
    episode = make_synthetic_episode(np.random.default_rng(5), length=16, image_size=64, num_tracked_points=48)
    write_episode(tmp_path / "episodes" / "episode_0.hdf5", episode)
    out = tmp_path / "report"
    assert main(["--compare-ground-truth", str(tmp_path / "episodes"), "--out", str(out)]) == 0
    assert "epe_px_median" in capsys.readouterr().out
    report = json.loads((out / "tracker_vs_ground_truth.json").read_text())
    assert set(report["views"]) == {"agentview", "eye_in_hand"}
    agentview = report["views"]["agentview"]
    assert agentview["points"] == int(episode.views["agentview"].visibility[0].sum())
    # The fixed camera sees mostly static textured background: sub-pixel there (px at 128, so 2x the video's).
    assert agentview["epe_px_median"] < 0.5 and agentview["within_2px"] > 0.8
    assert len(report["epe_px_by_frame"]["agentview"]["median"]) == 16
    png = out / "tracker_vs_ground_truth.png"
    assert png.stat().st_size > 10_000 and cv2.imread(str(png)) is not None
