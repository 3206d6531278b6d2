"""The policy on ONNX Runtime gives the actions eager torch gives, step by step through `PolicyRunner` (frame stack,
every track-conditioning mode, action chunks), and the runner keeps torch, saying why, where ONNX Runtime is missing."""
import builtins
import dataclasses

import numpy as np
import pytest
import torch

from model_fixtures import tiny_model_configs
from tramoe_ros.config import MaskMode
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


@pytest.mark.parametrize("mask_mode, action_chunk", [*((m, 1) for m in MaskMode), (MaskMode.ADAPTIVE, 4)])
def test_onnxruntime_actions_match_torch_step_by_step(mask_mode, action_chunk):
    _, policy_cfg = tiny_model_configs()
    policy_cfg = dataclasses.replace(policy_cfg, mask_mode=mask_mode, action_chunk=action_chunk)
    torch.manual_seed(0)
    policy = TrackGuidedPolicy(policy_cfg)
    eager = PolicyRunner(policy, None)
    onnx = PolicyRunner(policy, None, onnxruntime=True)
    assert (eager.backend, onnx.backend) == ("torch", "onnxruntime"), onnx.backend_note
    # More steps than the frame stack: the stack fills, then slides.
    for images, proprio, tracks in _observations(policy_cfg, policy_cfg.frame_stack + 3):
        expected = eager.step(images, proprio, "", tracks)
        np.testing.assert_allclose(onnx.step(images, proprio, "", tracks), expected, atol=1e-4)
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
