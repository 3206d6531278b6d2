"""Random-weight checkpoints small enough for tests: what nodes, the graph and evaluation load."""
from __future__ import annotations

from pathlib import Path

from tramoe_ros.config import PolicyConfig, TrackModelConfig, config_to_dict
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.track_transformer import TrackTransformer
from tramoe_ros.training.checkpoint import save_checkpoint


def write_tiny_models(folder: Path, action_dim: int = 7, proprio_dims: dict[str, int] | None = None,
                      name: str = "tiny") -> tuple[Path, Path]:
    """Random-weight track model (dim 64, depth 2, one MoE layer) and policy (frame stack 3) checkpoints."""
    track_cfg = TrackModelConfig(dim=64, depth=2, heads=2, moe_layers=[0], image_size=128)
    track = save_checkpoint(folder / f"{name}_track.safetensors", TrackTransformer(track_cfg), "track_model",
                            config_to_dict(track_cfg), extra={"language_encoder": "minilm"})
    policy_cfg = PolicyConfig(
        image_size=128, frame_stack=3, action_dim=action_dim,
        proprio_dims=proprio_dims or {"joint_states": 7, "gripper_states": 2}, dim=32, spatial_depth=1,
        spatial_heads=2, spatial_dim_head=16, spatial_mlp_dim=64, temporal_dim=32, temporal_depth=1,
        temporal_heads=2, temporal_dim_head=16, head_hidden=[64], dropout=0.0)
    policy = save_checkpoint(folder / f"{name}_policy.safetensors", TrackGuidedPolicy(policy_cfg), "policy",
                             config_to_dict(policy_cfg), extra={"track_model": str(track)})
    return track, policy
