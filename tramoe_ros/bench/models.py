"""Inference speed and size of the track models (Tra-MoE vs dense Tra-baseline) and the policy.

Dense and MoE runs are interleaved (dense, MoE, dense, MoE, ...) so machine noise hits both alike, and the
ratio is taken of medians from the same run.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange
from tqdm import tqdm

from tramoe_ros.config import (PolicyConfig, PolicyTrainConfig, TrackModelConfig, TrackTrainConfig, config_to_dict,
                               load_config)
from tramoe_ros.models.checkpoint import save_checkpoint
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.models.track_transformer import TrackTransformer
from tramoe_ros.paths import config_path


def training_model_configs(track_config: str, policy_config: str) -> tuple[TrackModelConfig, PolicyConfig]:
    """The model sections of a track model and a policy training config under config/."""
    return (load_config(TrackTrainConfig, config_path(track_config)).model,
            load_config(PolicyTrainConfig, config_path(policy_config)).model)


def random_checkpoints(folder: Path, track_cfg: TrackModelConfig, policy_cfg: PolicyConfig,
                       name: str = "random") -> tuple[Path, Path]:
    """Untrained track model and policy of these sizes, saved in `folder` as <name>_track.safetensors and
    <name>_policy.safetensors (the policy names the track model): their speed is that of trained ones."""
    track = save_checkpoint(folder / f"{name}_track.safetensors", TrackTransformer(track_cfg), "track_model",
                            config_to_dict(track_cfg), extra={"language_encoder": "minilm"})
    policy = save_checkpoint(folder / f"{name}_policy.safetensors", TrackGuidedPolicy(policy_cfg), "policy",
                             config_to_dict(policy_cfg), extra={"track_model": str(track)})
    return track, policy


def _track_inputs(cfg: TrackModelConfig, batch: int, gen: torch.Generator):
    image = torch.randint(0, 256, (batch, 3, cfg.image_size, cfg.image_size), generator=gen).float()
    queries = torch.rand(batch, cfg.num_points, 2, generator=gen)
    language = torch.randn(batch, cfg.language_dim, generator=gen)
    return image, queries, language


def _time_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                        desc: str = "") -> dict[str, float]:
    """Median milliseconds per call of each function, calls interleaved round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in tqdm(range(repeats), desc=desc, leave=False):
        for k, fn in fns.items():
            samples[k].append(_time_ms(fn))
    return {k: statistics.median(v) for k, v in samples.items()}


@torch.no_grad()
def bench_models(repeats_b1: int = 30, repeats_b64: int = 7, threads: int | None = None,
                 track_cfg: TrackModelConfig | None = None, policy_cfg: PolicyConfig | None = None) -> dict:
    """Measure the default (paper-size) configs unless others are given; eval mode, fp32, no grad."""
    if threads:
        torch.set_num_threads(threads)
    moe_cfg = track_cfg or TrackModelConfig()
    dense_cfg = TrackModelConfig(**{**moe_cfg.__dict__, "moe_layers": []})
    torch.manual_seed(0)
    moe, dense = TrackTransformer(moe_cfg).eval(), TrackTransformer(dense_cfg).eval()
    gen = torch.Generator().manual_seed(0)
    out: dict[str, float | int | str] = {"threads": torch.get_num_threads()}
    for batch, repeats in ((1, repeats_b1), (64, repeats_b64)):
        inputs = _track_inputs(moe_cfg, batch, gen)
        ms = interleaved_medians({"dense": lambda: dense(*inputs), "moe": lambda: moe(*inputs)}, repeats,
                                 desc=f"track models b{batch}")
        out[f"track_dense_ms_b{batch}"] = round(ms["dense"], 2)
        out[f"track_moe_ms_b{batch}"] = round(ms["moe"], 2)
    out["moe_dense_ratio_b64"] = round(out["track_moe_ms_b64"] / out["track_dense_ms_b64"], 3)
    out["moe_dense_ratio_b1"] = round(out["track_moe_ms_b1"] / out["track_dense_ms_b1"], 3)
    out["track_params"] = moe.num_parameters()
    out["track_active_params"] = moe.num_active_parameters()
    out["track_dense_params"] = dense.num_parameters()

    pcfg = policy_cfg or PolicyConfig()
    policy = TrackGuidedPolicy(pcfg).eval()
    v, t, s = len(pcfg.views), pcfg.frame_stack, pcfg.image_size
    images = torch.randint(0, 256, (1, v, t, 3, s, s), generator=gen).float()
    tracks = torch.rand(1, v, t, pcfg.horizon, pcfg.num_points, 2, generator=gen)
    proprio = {k: torch.randn(1, t, d, generator=gen) for k, d in pcfg.proprio_dims.items()}
    runner = PolicyRunner(policy, predictor=None)
    onnx_runner = PolicyRunner(policy, predictor=None, onnxruntime=True)
    step_images = {view: rearrange(images[0, i, 0], "c h w -> h w c").to(torch.uint8).numpy()
                   for i, view in enumerate(pcfg.views)}
    step_tracks = {view: tracks[0, i, 0].numpy() for i, view in enumerate(pcfg.views)}
    step_proprio = {k: v[0, 0].numpy() for k, v in proprio.items()}
    timed = {"policy": lambda: policy(images, tracks, proprio),
             "step": lambda: runner.step(step_images, step_proprio, "", tracks=step_tracks)}
    if onnx_runner.backend == "onnxruntime":
        timed["onnx_step"] = lambda: onnx_runner.step(step_images, step_proprio, "", tracks=step_tracks)
    ms = interleaved_medians(timed, repeats_b1, desc="policy b1")
    out["policy_ms_b1"] = round(ms["policy"], 2)  # the whole frame stack encoded, as in training
    out["policy_step_ms"] = round(ms["step"], 2)  # closed loop: one new frame encoded, the stack's kept
    if "onnx_step" in ms:  # the same closed-loop step on ONNX Runtime (policy_node's `onnxruntime`)
        out["policy_step_onnxruntime_ms"] = round(ms["onnx_step"], 2)
        out["policy_step_torch_onnxruntime_ratio"] = round(ms["step"] / ms["onnx_step"], 2)
    else:
        out["policy_step_onnxruntime"] = f"unavailable: {onnx_runner.backend_note}"
    out["policy_params"] = policy.num_parameters()
    return out
