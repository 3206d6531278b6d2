"""Random-weight checkpoints small enough for tests: what nodes, the graph and evaluation load."""
from __future__ import annotations

from pathlib import Path

from tramoe_ros.bench.models import random_checkpoints
from tramoe_ros.config import PolicyConfig, TrackModelConfig


def tiny_model_configs(action_dim: int = 7, proprio_dims: dict[str, int] | None = None
                       ) -> tuple[TrackModelConfig, PolicyConfig]:
    """A track model of dim 64, depth 2 and one MoE layer, and a policy of frame stack 3."""
    track_cfg = TrackModelConfig(dim=64, depth=2, heads=2, moe_layers=[0], image_size=128)
    policy_cfg = PolicyConfig(
        image_size=128, frame_stack=3, action_dim=action_dim,
        proprio_dims=proprio_dims or {"joint_states": 7, "gripper_states": 2}, dim=32, spatial_depth=1,
        spatial_heads=2, spatial_dim_head=16, spatial_mlp_dim=64, temporal_dim=32, temporal_depth=1,
        temporal_heads=2, temporal_dim_head=16, head_hidden=[64], dropout=0.0)
    return track_cfg, policy_cfg


def write_tiny_models(folder: Path, action_dim: int = 7, proprio_dims: dict[str, int] | None = None,
                      name: str = "tiny") -> tuple[Path, Path]:
    """Random-weight checkpoints of `tiny_model_configs`: (track model, policy)."""
    return random_checkpoints(folder, *tiny_model_configs(action_dim, proprio_dims), name=name)
