"""Tiny end-to-end runs of both training CLIs on generated data."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tramoe_ros.cli.train import main_policy, main_tracks
from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.checkpoint import load_checkpoint
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.training.policy import predict_episode_tracks
from tramoe_ros.training.tracks import TrackTrainingTask

from training_fixtures import TINY_POLICY, TINY_TRACK, sources

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _train_tracks(data, out, *extra):
    return main_tracks(["--config", str(CONFIG / "smoke_tracks.yaml"), sources(data), f"train.out_dir={out}",
                        *TINY_TRACK, *extra])


def _losses(run: Path, key: str) -> np.ndarray:
    return np.array([r[key] for r in json.loads((run / "history.json").read_text())["train"]])


@pytest.fixture(scope="module")
def track_run(synthetic_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tracks"
    assert _train_tracks(synthetic_data, out, "train.epochs=4") == 0
    return out


def test_track_training_drives_track_and_image_losses_down(track_run):
    for key, factor in (("track", 0.5), ("total", 0.5), ("image", 0.8)):
        losses = _losses(track_run, key)
        assert losses[-5:].mean() < factor * losses[:5].mean(), key
    history = json.loads((track_run / "history.json").read_text())
    assert "expert_l0_e0" in history["train"][0]  # expert usage is logged per MoE layer
    val = [r["val_loss"] for r in history["val"]]
    assert val[-1] < val[0]
    for name in ("best.safetensors", "last.safetensors", "train_state.pt", "loss_curves.png", "config.json"):
        assert (track_run / name).is_file(), name


def test_trained_track_model_predicts_through_the_shared_inference_path(track_run, synthetic_data):
    predictor = TrackPredictor.from_checkpoint(track_run / "best.safetensors")
    episode = EpisodeFile(sorted((synthetic_data / "in_domain").glob("*.hdf5"))[0])
    tracks = predictor.predict(episode.frames("agentview", [0, 5]), sample_double_grid(4), episode.instruction)
    assert tracks.shape == (2, 16, 32, 2) and torch.isfinite(tracks).all()
    assert set(predictor.last_expert_fractions) == {0}
    assert predictor.last_expert_fractions[0].sum() == pytest.approx(1.0)


def test_track_predictions_are_kept_on_disk_and_reused(track_run, synthetic_data, tmp_path):
    predictor = TrackPredictor.from_checkpoint(track_run / "best.safetensors")
    episodes = [(p, "robot", 1.0) for p in sorted((synthetic_data / "in_domain").glob("*.hdf5"))[:2]]
    first = predict_episode_tracks(predictor, episodes, ["agentview"], progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.rglob("*.npz"))) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("the track model ran although its predictions were cached")

    predictor.predict = refuse
    second = predict_episode_tracks(predictor, episodes, ["agentview"], progress=False, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[1]["agentview"], second[1]["agentview"])
    # A cache file that does not hold what is expected is recomputed, not trusted.
    next(tmp_path.rglob("*.npz")).write_bytes(b"truncated")
    with pytest.raises(AssertionError, match="track model ran"):
        predict_episode_tracks(predictor, episodes, ["agentview"], progress=False, cache_dir=tmp_path)


def test_policy_training_drives_action_loss_down_and_runs_closed_loop(track_run, synthetic_data, tmp_path):
    out = tmp_path / "policy"
    rc = main_policy(["--config", str(CONFIG / "smoke_policy.yaml"), sources(synthetic_data, with_ood=False),
                      f"track_model={track_run / 'best.safetensors'}", f"train.out_dir={out}", "train.epochs=6",
                      *TINY_POLICY])
    assert rc == 0
    losses = _losses(out, "action_mse")
    assert losses[-4:].mean() < 0.6 * losses[:4].mean()
    runner = PolicyRunner.from_checkpoints(out / "best.safetensors")
    episode = EpisodeFile(sorted((synthetic_data / "in_domain").glob("*.hdf5"))[0])
    for t in range(4):
        images = {v: np.moveaxis(episode.frame(v, t), 0, -1) for v in runner.cfg.views}
        proprio = {k: episode.proprio(k, t, t + 1)[0] for k in runner.cfg.proprio_dims}
        action = runner.step(images, proprio, episode.instruction)
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)


def test_resume_after_a_crash_continues_the_same_run(synthetic_data, tmp_path, monkeypatch):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    plan = ("train.epochs=2", "train.max_steps_per_epoch=4", "train.save_every=1")
    assert _train_tracks(synthetic_data, straight, *plan) == 0

    real_loss, calls = TrackTrainingTask.loss, []

    def crash_in_second_epoch(self, batch):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # the user's Ctrl-C (or a killed job) in the middle of epoch 1
        return real_loss(self, batch)

    monkeypatch.setattr(TrackTrainingTask, "loss", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        _train_tracks(synthetic_data, crashed, *plan)
    monkeypatch.setattr(TrackTrainingTask, "loss", real_loss)
    assert _train_tracks(synthetic_data, crashed, *plan, f"train.resume={crashed}") == 0
    a, b = _losses(straight, "total"), _losses(crashed, "total")
    assert len(a) == len(b) == 8
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_a_run_can_start_from_another_runs_weights(track_run, synthetic_data, tmp_path, capsys):
    plan = ("train.epochs=1", "train.max_steps_per_epoch=2", "optim.lr=0.0")  # lr 0: the weights stay as loaded
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    assert _train_tracks(synthetic_data, tuned, *plan, f"train.init_weights={track_run / 'last.safetensors'}") == 0
    assert _train_tracks(synthetic_data, fresh, *plan) == 0
    start = load_checkpoint(track_run / "last.safetensors").state_dict
    for name, tensor in load_checkpoint(tuned / "last.safetensors").state_dict.items():
        torch.testing.assert_close(tensor, start[name], msg=name)
    # A new run (its own step count and schedule) whose losses are the trained model's, not a fresh model's.
    assert [r["step"] for r in json.loads((tuned / "history.json").read_text())["train"]] == [0, 1]
    assert _losses(tuned, "track").mean() < 0.7 * _losses(fresh, "track").mean()
    # Weights of another architecture are refused with a message naming the checkpoint.
    rc = _train_tracks(synthetic_data, tmp_path / "wider", *plan, "model.dim=48",
                       f"train.init_weights={track_run / 'last.safetensors'}")
    assert rc == 2
    assert "last.safetensors does not fit the model" in capsys.readouterr().err


def test_same_seed_same_run(synthetic_data, tmp_path):
    for name in ("a", "b"):
        assert _train_tracks(synthetic_data, tmp_path / name, "train.epochs=1", "train.max_steps_per_epoch=3") == 0
    np.testing.assert_array_equal(_losses(tmp_path / "a", "total"), _losses(tmp_path / "b", "total"))


def test_missing_dataset_is_a_clear_cli_error(tmp_path, capsys):
    rc = main_tracks(["--config", str(CONFIG / "smoke_tracks.yaml"),
                      f"data.sources=[{{path: {tmp_path / 'nowhere'}, domain: robot}}]", *TINY_TRACK])
    assert rc == 2
    assert "nowhere" in capsys.readouterr().err


def test_corrupt_track_checkpoint_is_a_clear_cli_error(synthetic_data, tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    rc = main_policy(["--config", str(CONFIG / "smoke_policy.yaml"), sources(synthetic_data, with_ood=False),
                      f"track_model={bad}", f"train.out_dir={tmp_path / 'p'}", *TINY_POLICY])
    assert rc == 2
    assert "bad.safetensors is not a readable safetensors file" in capsys.readouterr().err


def test_shape_mismatch_between_policy_and_track_model_is_a_clear_error(track_run, synthetic_data, tmp_path, capsys):
    rc = main_policy(["--config", str(CONFIG / "smoke_policy.yaml"), sources(synthetic_data, with_ood=False),
                      f"track_model={track_run / 'best.safetensors'}", f"train.out_dir={tmp_path / 'p'}",
                      *TINY_POLICY, "model.horizon=8"])
    assert rc == 2
    assert "horizon" in capsys.readouterr().err


def test_a_chunk_policy_starts_from_a_one_action_policy(track_run, synthetic_data, tmp_path):
    """`model.action_chunk=3 model.instruction_dim=384` started from a one-action run's weights without instruction
    input (learning rate 0): the chunk's loss (each step's next 3 actions, masked past the episode end) is finite,
    every action of the chunk is that run's, and the checkpoint brings its instruction encoder."""
    common = ["--config", str(CONFIG / "smoke_policy.yaml"), sources(synthetic_data, with_ood=False),
              f"track_model={track_run / 'best.safetensors'}", *TINY_POLICY]
    one, widened = tmp_path / "one", tmp_path / "widened"
    assert main_policy([*common, f"train.out_dir={one}", "train.epochs=1", "train.max_steps_per_epoch=2"]) == 0
    assert main_policy([*common, f"train.out_dir={widened}", "train.epochs=1", "train.max_steps_per_epoch=2",
                        "optim.lr=0.0", "model.action_chunk=3", "model.instruction_dim=384",
                        f"train.init_weights={one / 'last.safetensors'}"]) == 0
    assert np.isfinite(_losses(widened, "action_mse")).all()
    runners = [PolicyRunner.from_checkpoints(run / "last.safetensors") for run in (one, widened)]
    assert runners[0].instruction_encoder is None and runners[1].instruction_encoder.name == "minilm"
    episode = EpisodeFile(sorted((synthetic_data / "in_domain").glob("*.hdf5"))[0])
    images = {v: np.moveaxis(episode.frame(v, 0), 0, -1) for v in runners[0].cfg.views}
    proprio = {k: episode.proprio(k, 0, 1)[0] for k in runners[0].cfg.proprio_dims}
    action = runners[0].step(images, proprio, episode.instruction)
    runners[1].step(images, proprio, episode.instruction)
    assert runners[1].last_chunk.shape == (3, 7)
    # Each action of the chunk comes from the one-action head; the weights are unchanged (learning rate 0), only
    # the image stems' BatchNorm statistics moved a little in the two steps.
    for planned in runners[1].last_chunk:
        np.testing.assert_allclose(planned, runners[1].last_chunk[0], atol=1e-6)
        np.testing.assert_allclose(planned, action, atol=5e-3)
