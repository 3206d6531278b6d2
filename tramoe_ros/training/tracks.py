"""Track-model training task (paper Sec. 3.3, Tab. 6): Tra-MoE or the dense Tra-baseline on mixed in-domain and
out-of-domain videos."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from tramoe_ros.config import TrackTrainConfig, config_to_dict
from tramoe_ros.data.datasets import TrackDataset, domain_sample_weights
from tramoe_ros.models.language import build_language_encoder
from tramoe_ros.models.track_transformer import TrackTransformer, track_loss
from tramoe_ros.training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from tramoe_ros.training.data_split import domain_ratios, split_episodes


class TrackTrainingTask:
    kind = "track_model"

    def __init__(self, cfg: TrackTrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        train_eps, val_eps = split_episodes(cfg.data, cfg.train.seed)
        common = dict(views=cfg.data.views, horizon=cfg.model.horizon, num_points=cfg.model.num_points,
                      image_size=cfg.model.image_size, variance_threshold_px2=cfg.data.variance_threshold_px2,
                      seed=cfg.train.seed)
        self.train_set = TrackDataset(train_eps, color_jitter=cfg.data.color_jitter,
                                      random_shift_pad=cfg.data.random_shift_pad, train=True, **common)
        self.val_set = TrackDataset(val_eps or train_eps, color_jitter=0.0, random_shift_pad=0, train=False,
                                    **common)
        self.encoder = build_language_encoder(cfg.language_encoder)
        if self.encoder.dim != cfg.model.language_dim:
            raise ValueError(f"model.language_dim is {cfg.model.language_dim} but encoder "
                             f"{cfg.language_encoder!r} gives {self.encoder.dim}-d embeddings")
        self.model = TrackTransformer(cfg.model).to(device)
        weights = domain_sample_weights(self.train_set.item_domains(), domain_ratios(cfg.data))
        self.batch_size = min(cfg.train.batch_size, len(self.train_set))
        self.sampler = WeightedRandomSampler(weights, num_samples=len(self.train_set), replacement=True,
                                             generator=torch.Generator().manual_seed(cfg.train.seed))
        self.loader = DataLoader(self.train_set, batch_size=self.batch_size, sampler=self.sampler,
                                 num_workers=cfg.data.num_workers, drop_last=True,
                                 persistent_workers=cfg.data.num_workers > 0)
        self.val_loader = DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False,
                                     num_workers=cfg.data.num_workers)

    def steps_per_epoch(self) -> int:
        n = len(self.loader)
        cap = self.cfg.train.max_steps_per_epoch
        return min(n, cap) if cap > 0 else n

    def train_batches(self, epoch: int):
        self.train_set.set_epoch(epoch)
        self.sampler.generator.manual_seed(self.cfg.train.seed + epoch)
        for i, batch in enumerate(self.loader):
            if i >= self.steps_per_epoch():
                break
            yield batch

    def _forward(self, batch):
        image = batch["image"].to(self.device)
        tracks = batch["tracks"].to(self.device)
        lang = self.encoder.encode(batch["instruction"]).to(self.device)
        out = self.model(image, batch["queries"].to(self.device), lang)
        return out, image, tracks

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        out, image, tracks = self._forward(batch)
        total, parts = track_loss(out, tracks, image, self.cfg.loss)
        for layer, r in zip(sorted(self.cfg.model.moe_layers), out.routing):
            for e, q in enumerate(r.expert_fractions().tolist()):
                parts[f"expert_l{layer}_e{e}"] = q
        return total, parts

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation track MSE (normalised coordinates, the paper's track-model metric), no image masking, and
        the MSE of the 'nothing moves' baseline that keeps every point at its query, for reference."""
        self.model.eval()
        se, se_static, n = 0.0, 0.0, 0
        for batch in self.val_loader:
            out, _, tracks = self._forward(batch)
            se += torch.nn.functional.mse_loss(out.tracks, tracks, reduction="sum").item()
            se_static += torch.nn.functional.mse_loss(tracks[:, :1].expand_as(tracks), tracks, reduction="sum").item()
            n += tracks.numel()
        self.model.train()
        return {"val_loss": se / max(n, 1), "val_track_mse": se / max(n, 1), "val_static_mse": se_static / max(n, 1)}

    def save(self, path: Path, extra: dict) -> None:
        save_checkpoint(path, self.model, self.kind, config_to_dict(self.cfg.model),
                        {**extra, "language_encoder": self.cfg.language_encoder,
                         "train_config": config_to_dict(self.cfg)})

    def load_weights(self, path: Path) -> None:
        load_weights(self.model, load_checkpoint(path, kind=self.kind))
