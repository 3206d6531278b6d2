"""Track-model training task (paper Sec. 3.3, Tab. 6): Tra-MoE or the dense Tra-baseline on mixed in-domain and
out-of-domain videos."""
from __future__ import annotations

from pathlib import Path

import torch

from tramoe_ros.config import TrackTrainConfig, config_to_dict
from tramoe_ros.data.datasets import TrackDataset, domain_sample_weights
from tramoe_ros.models.checkpoint import load_checkpoint, load_weights, save_checkpoint
from tramoe_ros.models.language import build_language_encoder
from tramoe_ros.models.track_transformer import TrackTransformer, track_loss
from tramoe_ros.training.batches import BatchedTask
from tramoe_ros.training.data_split import domain_ratios, split_episodes
from tramoe_ros.training.distributed import DistContext


class TrackTrainingTask(BatchedTask):
    """Training items are drawn with replacement at the configured per-domain ratios, the same global batches
    whatever the number of processes (see `tramoe_ros.training.distributed`)."""

    kind = "track_model"

    def __init__(self, cfg: TrackTrainConfig, device: torch.device, dist_ctx: DistContext | None = None):
        self.cfg, self.device = cfg, device
        self.dist = dist_ctx or DistContext(device=device)
        train_eps, val_eps = split_episodes(cfg.data, cfg.train.seed)
        common = dict(views=cfg.data.views, horizon=cfg.model.horizon, num_points=cfg.model.num_points,
                      image_size=cfg.model.image_size, variance_threshold_px2=cfg.data.variance_threshold_px2,
                      still_point_share=cfg.data.still_point_share, seed=cfg.train.seed)
        self.train_set = TrackDataset(train_eps, color_jitter=cfg.data.color_jitter,
                                      random_shift_pad=cfg.data.random_shift_pad, train=True, **common)
        self.val_set = TrackDataset(val_eps or train_eps, color_jitter=0.0, random_shift_pad=0, train=False,
                                    **common)
        self.encoder = build_language_encoder(cfg.language_encoder)
        if self.encoder.dim != cfg.model.language_dim:
            raise ValueError(f"model.language_dim is {cfg.model.language_dim} but encoder "
                             f"{cfg.language_encoder!r} gives {self.encoder.dim}-d embeddings")
        self.model = TrackTransformer(cfg.model).to(device)
        self.train_model = self.model
        weights = domain_sample_weights(self.train_set.item_domains(), domain_ratios(cfg.data))
        self._build_loaders(cfg.train, cfg.data.num_workers, weights)

    def _forward(self, model: torch.nn.Module, batch):
        image = batch["image"].to(self.device)
        tracks = batch["tracks"].to(self.device)
        lang = self.encoder.encode(batch["instruction"]).to(self.device)
        out = model(image, batch["queries"].to(self.device), lang)
        return out, image, tracks

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        out, image, tracks = self._forward(self.train_model, batch)
        total, parts = track_loss(out, tracks, image, self.cfg.loss)
        for layer, r in zip(sorted(self.cfg.model.moe_layers), out.routing):
            for e, q in enumerate(r.expert_fractions().tolist()):
                parts[f"expert_l{layer}_e{e}"] = q
        return total, parts

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation track MSE (normalised coordinates, the paper's track-model metric), no image masking, and
        the MSE of the 'nothing moves' baseline that keeps every point at its query, for reference; squared
        errors and counts are summed over ranks."""
        self.model.eval()
        se, se_static, n = 0.0, 0.0, 0
        for batch in self.val_loader:
            out, _, tracks = self._forward(self.model, batch)
            se += torch.nn.functional.mse_loss(out.tracks, tracks, reduction="sum").item()
            se_static += torch.nn.functional.mse_loss(tracks[:, :1].expand_as(tracks), tracks, reduction="sum").item()
            n += tracks.numel()
        self.model.train()
        total = self.dist.all_reduce_sum({"se": se, "se_static": se_static, "n": n})
        n = max(total["n"], 1)
        return {"val_loss": total["se"] / n, "val_track_mse": total["se"] / n, "val_static_mse": total["se_static"] / n}

    def save(self, path: Path, extra: dict) -> None:
        save_checkpoint(path, self.model, self.kind, config_to_dict(self.cfg.model),
                        {**extra, "language_encoder": self.cfg.language_encoder,
                         "train_config": config_to_dict(self.cfg)})

    def load_weights(self, path: Path) -> None:
        load_weights(self.model, load_checkpoint(path, kind=self.kind))
