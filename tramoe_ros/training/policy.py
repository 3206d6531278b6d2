"""Trajectory-guided policy training task (paper Sec. 3.3, Tab. 7): behaviour cloning with MSE on in-domain demos,
conditioned on the frozen track model's predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from tramoe_ros.config import PolicyTrainConfig, config_to_dict
from tramoe_ros.data.datasets import PolicyDataset
from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.training.checkpoint import load_checkpoint, load_weights, save_checkpoint
from tramoe_ros.training.data_split import split_episodes


def predict_episode_tracks(predictor: TrackPredictor, episodes: list, views: list[str], batch_size: int = 64
                           ) -> dict[int, dict[str, np.ndarray]]:
    """Run the frozen track model once on every frame of every view with the policy's grid queries.

    The track model is frozen during policy training (paper Sec. 3.3), so its predictions on the un-augmented
    frames are computed once; RandomShift then moves them together with the pixels (see PolicyDataset).

    Returns:
        {episode index: {view: (T, H, K, 2) float32}}
    """
    queries = sample_double_grid(4)
    if len(queries) != predictor.cfg.num_points:
        raise ValueError(f"policy uses {len(queries)} grid queries, the track model expects "
                         f"{predictor.cfg.num_points} points")
    cache: dict[int, dict[str, np.ndarray]] = {}
    total = sum(EpisodeFile(p).length for p, _, _ in episodes) * len(views)
    with tqdm(total=total, desc="predicting tracks", unit="frame", dynamic_ncols=True) as bar:
        for i, (path, _, _) in enumerate(episodes):
            ep = EpisodeFile(path)
            cache[i] = {}
            for view in views:
                chunks = []
                for t0 in range(0, ep.length, batch_size):
                    ts = list(range(t0, min(ep.length, t0 + batch_size)))
                    chunks.append(predictor.predict(ep.frames(view, ts), queries, ep.instruction).numpy())
                    bar.update(len(ts))
                cache[i][view] = np.concatenate(chunks)
    return cache


class PolicyTrainingTask:
    kind = "policy"

    def __init__(self, cfg: PolicyTrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        train_eps, val_eps = split_episodes(cfg.data, cfg.train.seed)
        self.predictor = TrackPredictor.from_checkpoint(cfg.track_model, device=device)
        if self.predictor.cfg.horizon != cfg.model.horizon:
            raise ValueError(f"policy horizon {cfg.model.horizon} != track model horizon "
                             f"{self.predictor.cfg.horizon}")
        views = cfg.model.views
        common = dict(views=views, frame_stack=cfg.model.frame_stack, image_size=cfg.model.image_size,
                      seed=cfg.train.seed)
        self.train_set = PolicyDataset(train_eps, color_jitter=cfg.data.color_jitter,
                                       random_shift_pad=cfg.data.random_shift_pad, train=True,
                                       track_cache=predict_episode_tracks(self.predictor, train_eps, views),
                                       **common)
        val_eps = val_eps or train_eps
        self.val_set = PolicyDataset(val_eps, color_jitter=0.0, random_shift_pad=0, train=False,
                                     track_cache=predict_episode_tracks(self.predictor, val_eps, views), **common)
        self.model = TrackGuidedPolicy(cfg.model).to(device)
        self.batch_size = min(cfg.train.batch_size, len(self.train_set))
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.loader = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                                 generator=self.generator, num_workers=cfg.data.num_workers,
                                 persistent_workers=cfg.data.num_workers > 0)
        self.val_loader = DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False,
                                     num_workers=cfg.data.num_workers)

    def steps_per_epoch(self) -> int:
        cap = self.cfg.train.max_steps_per_epoch
        return min(len(self.loader), cap) if cap > 0 else len(self.loader)

    def train_batches(self, epoch: int):
        self.train_set.set_epoch(epoch)
        self.generator.manual_seed(self.cfg.train.seed + epoch)
        for i, batch in enumerate(self.loader):
            if i >= self.steps_per_epoch():
                break
            yield batch

    def _predict(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        proprio = {k: batch["proprio"][k].to(self.device) for k in self.cfg.model.proprio_dims}
        pred = self.model(batch["images"].to(self.device), batch["tracks"].to(self.device), proprio)
        return pred, batch["actions"].to(self.device)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        pred, actions = self._predict(batch)
        loss = torch.nn.functional.mse_loss(pred, actions)
        return loss, {"total": loss.item(), "action_mse": loss.item()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        se, n = 0.0, 0
        for batch in self.val_loader:
            pred, actions = self._predict(batch)
            se += torch.nn.functional.mse_loss(pred, actions, reduction="sum").item()
            n += actions.numel()
        self.model.train()
        return {"val_loss": se / max(n, 1), "val_action_mse": se / max(n, 1)}

    def save(self, path: Path, extra: dict) -> None:
        save_checkpoint(path, self.model, self.kind, config_to_dict(self.cfg.model),
                        {**extra, "track_model": str(self.cfg.track_model),
                         "track_model_id": self.predictor.model_id, "train_config": config_to_dict(self.cfg)})

    def load_weights(self, path: Path) -> None:
        load_weights(self.model, load_checkpoint(path, kind=self.kind))
