"""Tiny model configs and dataset-source overrides for the training tests."""
from __future__ import annotations

TINY_TRACK = [
    "model.image_size=64", "model.dim=32", "model.depth=2", "model.heads=2", "model.moe_layers=[0]",
    "model.dropout=0.0", "data.num_workers=0", "data.val_fraction=0.2", "train.batch_size=16",
    "train.device=cpu", "optim.warmup_epochs=0.2", "optim.lr=2e-3",
]
TINY_POLICY = [
    "model.image_size=64", "model.frame_stack=3", "model.dim=16", "model.spatial_depth=1", "model.spatial_heads=2",
    "model.spatial_dim_head=8", "model.spatial_mlp_dim=32", "model.temporal_dim=16", "model.temporal_depth=1",
    "model.temporal_heads=2", "model.temporal_dim_head=8", "model.head_hidden=[64]", "model.dropout=0.0",
    "data.num_workers=0", "data.val_fraction=0.2", "train.batch_size=16", "train.device=cpu", "optim.lr=2e-3",
]


def sources(root, with_ood: bool = True) -> str:
    items = [f"{{path: {root / 'in_domain'}, domain: robot, weight: 1.0}}"]
    if with_ood:
        items.append(f"{{path: {root / 'ood'}, domain: human, weight: 1.0}}")
    return "data.sources=[" + ", ".join(items) + "]"
