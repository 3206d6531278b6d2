"""The policy on ONNX Runtime gives the actions eager torch gives, step by step through `PolicyRunner` (frame stack,
every track-conditioning mode, action chunks, the instruction), and the runner keeps torch, saying why, where ONNX
Runtime is missing."""
import builtins
import dataclasses

import numpy as np
import pytest
import torch

from model_fixtures import tiny_model_configs
from tramoe_ros.config import MaskMode
from tramoe_ros.models.language import build_language_encoder
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.runner import PolicyRunner

pytest.importorskip("onnxruntime")


def _observations(cfg, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        images = {v: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8) for v in cfg.views}
        proprio = {k: rng.standard_normal(d).astype(np.float32) for k, d in cfg.proprio_dims.items()}
        tracks = {v: rng.random((cfg.horizon, cfg.num_points, 2)).astype(np.float32) for v in cfg.views}
        yield images, proprio, tracks


@pytest.mark.parametrize("mask_mode, action_chunk, instructed", [
    *((m, 1, False) for m in MaskMode), (MaskMode.ADAPTIVE, 4, False), (MaskMode.ADAPTIVE, 4, True)])
def test_onnxruntime_actions_match_torch_step_by_step(mask_mode, action_chunk, instructed):
    _, policy_cfg = tiny_model_configs()
    encoder = build_language_encoder("minilm") if instructed else None
    policy_cfg = dataclasses.replace(policy_cfg, mask_mode=mask_mode, action_chunk=action_chunk,
                                     instruction_dim=encoder.dim if instructed else 0)
    torch.manual_seed(0)
    policy = TrackGuidedPolicy(policy_cfg)
    if instructed:  # trained projections, so that the instruction changes the actions
        torch.nn.init.normal_(policy.instruction_spatial.weight)
        torch.nn.init.normal_(policy.instruction_temporal.weight)
    eager = PolicyRunner(policy, None, instruction_encoder=encoder)
    onnx = PolicyRunner(policy, None, onnxruntime=True, instruction_encoder=encoder)
    assert (eager.backend, onnx.backend) == ("torch", "onnxruntime"), onnx.backend_note
    # More steps than the frame stack: the stack fills, then slides (and restarts on the new instruction).
    for i, (images, proprio, tracks) in enumerate(_observations(policy_cfg, policy_cfg.frame_stack + 3)):
        instruction = "pick up the bowl" if i < policy_cfg.frame_stack + 1 else "pick up the ketchup"
        expected = eager.step(images, proprio, instruction, tracks)
        np.testing.assert_allclose(onnx.step(images, proprio, instruction, tracks), expected, atol=1e-4)
        assert onnx.last_chunk.shape == (action_chunk, policy_cfg.action_dim)
        np.testing.assert_allclose(onnx.last_chunk, eager.last_chunk, atol=1e-4)


def test_without_onnxruntime_the_runner_keeps_torch_and_says_why(monkeypatch):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    _, policy_cfg = tiny_model_configs()
    runner = PolicyRunner(TrackGuidedPolicy(policy_cfg), None, onnxruntime=True)
    assert runner.backend == "torch" and "onnxruntime is not installed" in runner.backend_note
    images, proprio, tracks = next(_observations(policy_cfg, 1))
    assert runner.step(images, proprio, "", tracks).shape == (policy_cfg.action_dim,)
