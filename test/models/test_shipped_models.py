"""The shipped default models (models/, see models/README.md) load, belong together, fit the sim graph and act."""
import numpy as np
import pytest
import yaml

from tramoe_ros.models.checkpoint import load_checkpoint
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.paths import config_path, model_path
from tramoe_ros.sim.libero_env import DEFAULT_VIEWS

TRACK, POLICY = model_path("track_moe.safetensors"), model_path("policy_adaptive.safetensors")
SIZE_LIMIT_BYTES = 50 * 2**20


def test_shipped_files_fit_the_size_limit():
    assert TRACK.stat().st_size + POLICY.stat().st_size <= SIZE_LIMIT_BYTES


def test_the_policy_was_trained_on_the_shipped_track_model():
    track, policy = load_checkpoint(TRACK, kind="track_model"), load_checkpoint(POLICY, kind="policy")
    assert policy.extra["track_model_id"] == track.model_id
    assert track.config["moe_layers"], "the shipped track model is the Tra-MoE one, not the dense baseline"
    assert policy.config["mask_mode"] == "adaptive"


def test_the_sim_graph_config_names_the_shipped_models():
    params = yaml.safe_load(config_path("sim.yaml").read_text())
    names = {key: value for node in params.values() for key, value in node["ros__parameters"].items()
             if key.endswith(("model_path", "policy_path"))}
    assert set(names.values()) == {"models/track_moe.safetensors", "models/policy_adaptive.safetensors"}


@pytest.fixture(scope="module")
def runner():
    return PolicyRunner.from_checkpoints(POLICY)  # the track model comes from the policy checkpoint


def test_runner_predicts_tracks_and_bounded_actions_for_sim_graph_observations(runner):
    assert list(runner.cfg.views) == list(DEFAULT_VIEWS) and runner.cfg.action_dim == 7
    rng = np.random.default_rng(0)
    images = {v: rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for v in runner.cfg.views}
    proprio = {k: rng.normal(size=d).astype(np.float32) for k, d in runner.cfg.proprio_dims.items()}
    tracks = runner.predict_tracks(images, "pick up the alphabet soup and place it in the basket")
    for view_tracks in tracks.values():
        assert view_tracks.shape == (16, 32, 2) and np.isfinite(view_tracks).all()
        # Tracks start at their query points (a trained model; an untrained one scatters them).
        assert np.abs(view_tracks[0] - np.asarray(runner.queries)).max() < 0.1
    runner.reset()
    actions = [runner.step(images, proprio, "pick up the alphabet soup and place it in the basket", tracks)
               for _ in range(3)]
    assert all(a.shape == (7,) and np.isfinite(a).all() and np.abs(a).max() <= 1.0 for a in actions)
