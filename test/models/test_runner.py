"""PolicyRunner: the closed-loop inference path shared by the policy node, evaluation and demos."""
import numpy as np
import pytest
import torch
from einops import rearrange

from tramoe_ros.config import PolicyConfig, TrackModelConfig, config_to_dict
from tramoe_ros.models.checkpoint import save_checkpoint
from tramoe_ros.models.language import build_language_encoder
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.models.track_transformer import TrackTransformer

POLICY = PolicyConfig(image_size=64, frame_stack=3, dim=16, spatial_depth=1, spatial_heads=2, spatial_dim_head=8,
                      spatial_mlp_dim=32, temporal_dim=16, temporal_depth=1, temporal_heads=2, temporal_dim_head=8,
                      head_hidden=[32], dropout=0.0)
TRACK = TrackModelConfig(image_size=64, dim=32, depth=2, heads=2, moe_layers=[1], dropout=0.0)


def _observation(rng, t):
    images = {v: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for v in POLICY.views}
    tracks = {v: rng.random((16, 32, 2), dtype=np.float32) for v in POLICY.views}
    proprio = {"joint_states": rng.standard_normal(7).astype(np.float32) + t,
               "gripper_states": rng.standard_normal(2).astype(np.float32)}
    return images, tracks, proprio


def _batch(observations):
    images = torch.from_numpy(np.stack([np.stack([o[0][v] for v in POLICY.views]) for o in observations], 1))
    tracks = torch.from_numpy(np.stack([np.stack([o[1][v] for v in POLICY.views]) for o in observations], 1))
    proprio = {k: torch.from_numpy(np.stack([o[2][k] for o in observations]))[None] for k in POLICY.proprio_dims}
    return rearrange(images.float(), "v t h w c -> 1 v t c h w"), tracks[None], proprio


def test_frame_stack_pads_with_the_first_observation_then_slides():
    torch.manual_seed(0)
    policy = TrackGuidedPolicy(POLICY).eval()
    runner = PolicyRunner(policy, predictor=None)
    rng = np.random.default_rng(0)
    obs = [_observation(rng, t) for t in range(5)]
    got = [runner.step(o[0], o[2], "pick up the bowl", tracks=o[1]) for o in obs]
    # Step 0 sees [o0, o0, o0] (padding as in the training data), step 4 sees [o2, o3, o4].
    expected0 = policy.act(*_batch([obs[0]] * 3))[0, 0].numpy()
    expected4 = policy.act(*_batch(obs[2:5]))[0, 0].numpy()
    np.testing.assert_allclose(got[0], expected0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[4], expected4, rtol=1e-5, atol=1e-6)
    assert all(np.all(np.abs(a) <= 1) for a in got)
    runner.reset()
    np.testing.assert_allclose(runner.step(obs[0][0], obs[0][2], "x", tracks=obs[0][1]), expected0, rtol=1e-5,
                               atol=1e-6)
    assert runner.last_latency_ms > 0


def test_bad_observations_are_rejected_with_the_name_of_the_input():
    runner = PolicyRunner(TrackGuidedPolicy(POLICY).eval(), predictor=None)
    images, tracks, proprio = _observation(np.random.default_rng(1), 0)
    with pytest.raises(ValueError, match="missing image for view 'eye_in_hand'"):
        runner.step({"agentview": images["agentview"]}, proprio, "x", tracks=tracks)
    with pytest.raises(ValueError, match="image 'agentview' must be"):
        runner.step({**images, "agentview": images["agentview"][:32]}, proprio, "x", tracks=tracks)
    bad = {**tracks, "agentview": tracks["agentview"].copy()}
    bad["agentview"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="tracks 'agentview' contain NaN"):
        runner.step(images, proprio, "x", tracks=bad)
    with pytest.raises(ValueError, match="proprio 'joint_states' must be 7 finite values"):
        runner.step(images, {**proprio, "joint_states": np.zeros(6)}, "x", tracks=tracks)
    with pytest.raises(RuntimeError, match="no track model loaded"):
        runner.step(images, proprio, "x")


def test_runner_loads_policy_and_its_track_model_from_checkpoints(tmp_path):
    torch.manual_seed(0)
    track_path = save_checkpoint(tmp_path / "track.safetensors", TrackTransformer(TRACK), "track_model",
                                 config_to_dict(TRACK), {"language_encoder": "minilm"})
    policy_path = save_checkpoint(tmp_path / "policy.safetensors", TrackGuidedPolicy(POLICY), "policy",
                                  config_to_dict(POLICY), {"track_model": "elsewhere/track.safetensors"})
    # The recorded track model path does not exist here; the runner finds it next to the policy.
    runner = PolicyRunner.from_checkpoints(policy_path)
    images, _, proprio = _observation(np.random.default_rng(2), 0)
    tracks = runner.predict_tracks(images, "pick up the bowl")
    assert set(tracks) == set(POLICY.views) and tracks["agentview"].shape == (16, 32, 2)
    action = runner.step(images, proprio, "pick up the bowl")
    assert action.shape == (7,) and np.isfinite(action).all()
    assert runner.model_id.startswith("policy-") and runner.predictor.model_id.startswith("track-")


def test_runner_keeps_the_chunk_planned_from_the_last_observation():
    import dataclasses

    torch.manual_seed(0)
    policy = TrackGuidedPolicy(dataclasses.replace(POLICY, action_chunk=3)).eval()
    runner = PolicyRunner(policy, predictor=None)
    assert runner.last_chunk is None
    obs = _observation(np.random.default_rng(1), 0)
    action = runner.step(obs[0], obs[2], "pick up the bowl", tracks=obs[1])
    expected = policy.act(*_batch([obs] * 3))[0].numpy()
    assert runner.last_chunk.shape == (3, POLICY.action_dim)
    np.testing.assert_allclose(runner.last_chunk, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(action, runner.last_chunk[0])
    runner.reset()
    assert runner.last_chunk is None


def test_an_instructed_policy_acts_on_its_instruction_and_restarts_the_stack_on_a_new_one():
    import dataclasses

    encoder = build_language_encoder("minilm")
    torch.manual_seed(0)
    policy = TrackGuidedPolicy(dataclasses.replace(POLICY, instruction_dim=encoder.dim)).eval()
    torch.nn.init.normal_(policy.instruction_spatial.weight)  # as trained: the instruction changes the actions
    torch.nn.init.normal_(policy.instruction_temporal.weight)
    with pytest.raises(ValueError, match="384-d instruction embedding; instruction encoder: none"):
        PolicyRunner(policy, predictor=None)
    runner = PolicyRunner(policy, predictor=None, instruction_encoder=encoder)
    rng = np.random.default_rng(0)
    obs = [_observation(rng, t) for t in range(5)]
    bowl, ketchup = encoder.encode(["pick up the bowl"]), encoder.encode(["pick up the ketchup"])
    got = [runner.step(o[0], o[2], "pick up the bowl", tracks=o[1]) for o in obs]
    np.testing.assert_allclose(got[4], policy.act(*_batch(obs[2:5]), bowl)[0, 0].numpy(), rtol=1e-5, atol=1e-6)
    # A new instruction is a new task: the stack starts again from this observation alone.
    switched = runner.step(obs[4][0], obs[4][2], "pick up the ketchup", tracks=obs[4][1])
    np.testing.assert_allclose(switched, policy.act(*_batch([obs[4]] * 3), ketchup)[0, 0].numpy(), rtol=1e-5,
                               atol=1e-6)
    assert np.abs(switched - policy.act(*_batch([obs[4]] * 3), bowl)[0, 0].numpy()).max() > 1e-3
