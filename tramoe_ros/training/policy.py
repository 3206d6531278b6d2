"""Trajectory-guided policy training task (paper Sec. 3.3, Tab. 7): behaviour cloning with MSE on in-domain demos,
conditioned on the frozen track model's predictions."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tramoe_ros.config import PolicyTrainConfig, config_to_dict
from tramoe_ros.data.datasets import PolicyDataset
from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from tramoe_ros.models.language import build_language_encoder
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.training.batches import BatchedTask
from tramoe_ros.training.data_split import split_episodes
from tramoe_ros.training.distributed import DistContext


def _cache_file(cache_dir: Path, model_id: str, path: Path, views: list[str]) -> Path:
    """Where one episode's predictions by one track model are kept: keyed by the model's weights (its id) and the
    episode file's identity (path, size, modification time), so a changed file or model is never served stale."""
    stat = Path(path).stat()
    key = hashlib.sha1(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{','.join(views)}".encode())
    return cache_dir / model_id / f"{key.hexdigest()[:20]}.npz"


def _load_cached(file: Path, views: list[str], length: int, shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """The cached predictions if the file holds every view with the expected (T, H, K, 2) shape, else None."""
    try:
        with np.load(file) as data:
            tracks = {view: data[view] for view in views}
    except (OSError, KeyError, ValueError):
        return None
    if any(t.shape != (length, *shape, 2) or t.dtype != np.float32 for t in tracks.values()):
        return None
    return tracks


def predict_episode_tracks(predictor: TrackPredictor, episodes: list, views: list[str], batch_size: int = 64,
                           progress: bool = True, cache_dir: str | Path | None = None
                           ) -> dict[int, dict[str, np.ndarray]]:
    """Run the frozen track model once on every frame of every view with the policy's grid queries.

    The track model is frozen during policy training (paper Sec. 3.3), so its predictions on the un-augmented
    frames are computed once; RandomShift then moves them together with the pixels (see PolicyDataset). With
    `cache_dir` they are also kept on disk per (track model, episode) and reused by later runs (the ablation's
    variants, resumed runs), which on a CPU saves most of a policy run's start-up.

    Returns:
        {episode index: {view: (T, H, K, 2) float32}}
    """
    queries = sample_double_grid(4)
    if len(queries) != predictor.cfg.num_points:
        raise ValueError(f"policy uses {len(queries)} grid queries, the track model expects "
                         f"{predictor.cfg.num_points} points")
    shape = (predictor.cfg.horizon, predictor.cfg.num_points)
    cache: dict[int, dict[str, np.ndarray]] = {}
    total = sum(EpisodeFile(p).length for p, _, _ in episodes) * len(views)
    with tqdm(total=total, desc="predicting tracks", unit="frame", dynamic_ncols=True, disable=not progress) as bar:
        for i, (path, _, _) in enumerate(episodes):
            ep = EpisodeFile(path)
            file = _cache_file(Path(cache_dir), predictor.model_id, path, views) if cache_dir else None
            cached = _load_cached(file, views, ep.length, shape) if file is not None and file.exists() else None
            if cached is not None:
                cache[i] = cached
                bar.update(ep.length * len(views))
                continue
            cache[i] = {}
            for view in views:
                chunks = []
                for t0 in range(0, ep.length, batch_size):
                    ts = list(range(t0, min(ep.length, t0 + batch_size)))
                    chunks.append(predictor.predict(ep.frames(view, ts), queries, ep.instruction).numpy())
                    bar.update(len(ts))
                cache[i][view] = np.concatenate(chunks).astype(np.float32)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npz")
                np.savez(tmp, **cache[i])
                tmp.replace(file)
    return cache


class PolicyTrainingTask(BatchedTask):
    """Every training item once per epoch in a shuffled order, the same global batches whatever the number of
    processes (see `tramoe_ros.training.distributed`)."""

    kind = "policy"

    def __init__(self, cfg: PolicyTrainConfig, device: torch.device, dist_ctx: DistContext | None = None):
        self.cfg, self.device = cfg, device
        self.dist = dist_ctx or DistContext(device=device)
        train_eps, val_eps = split_episodes(cfg.data, cfg.train.seed)
        self.predictor = TrackPredictor.from_checkpoint(cfg.track_model, device=device)
        if self.predictor.cfg.horizon != cfg.model.horizon:
            raise ValueError(f"policy horizon {cfg.model.horizon} != track model horizon "
                             f"{self.predictor.cfg.horizon}")
        views = cfg.model.views
        common = dict(views=views, frame_stack=cfg.model.frame_stack, image_size=cfg.model.image_size,
                      seed=cfg.train.seed, action_chunk=cfg.model.action_chunk)
        self.train_set = PolicyDataset(train_eps, color_jitter=cfg.data.color_jitter,
                                       random_shift_pad=cfg.data.random_shift_pad, train=True,
                                       track_cache=predict_episode_tracks(self.predictor, train_eps, views,
                                                                          progress=self.dist.is_main,
                                                                          cache_dir=cfg.track_cache_dir or None),
                                       **common)
        val_eps = val_eps or train_eps
        self.val_set = PolicyDataset(val_eps, color_jitter=0.0, random_shift_pad=0, train=False,
                                     track_cache=predict_episode_tracks(self.predictor, val_eps, views,
                                                                        progress=self.dist.is_main,
                                                                        cache_dir=cfg.track_cache_dir or None),
                                     **common)
        self.instruction_encoder = None
        if cfg.model.instruction_dim:
            self.instruction_encoder = build_language_encoder(cfg.language_encoder)
            if self.instruction_encoder.dim != cfg.model.instruction_dim:
                raise ValueError(f"model.instruction_dim {cfg.model.instruction_dim} != the "
                                 f"{self.instruction_encoder.dim}-d embeddings of {cfg.language_encoder!r}")
        self.model = TrackGuidedPolicy(cfg.model).to(device)
        self.train_model = self.model
        self._build_loaders(cfg.train, cfg.data.num_workers)

    def _squared_error(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed squared action error over the chunk steps inside the episode, and how many values it sums."""
        proprio = {k: batch["proprio"][k].to(self.device) for k in self.cfg.model.proprio_dims}
        instruction = None
        if self.instruction_encoder is not None:
            instruction = self.instruction_encoder.encode(list(batch["instruction"])).to(self.device)  # (B, E)
        pred = model(batch["images"].to(self.device), batch["tracks"].to(self.device), proprio,
                     instruction)  # (B, T, C, A)
        mask = batch["action_mask"].to(self.device)[..., None]  # (B, T, C, 1)
        se = ((pred - batch["actions"].to(self.device)) ** 2 * mask).sum()
        return se, mask.sum() * pred.shape[-1]

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        se, n = self._squared_error(self.train_model, batch)
        loss = se / n.clamp(min=1)
        return loss, {"total": loss.item(), "action_mse": loss.item()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        se, n = 0.0, 0
        for batch in self.val_loader:
            batch_se, batch_n = self._squared_error(self.model, batch)
            se += batch_se.item()
            n += int(batch_n.item())
        self.model.train()
        total = self.dist.all_reduce_sum({"se": se, "n": n})
        mse = total["se"] / max(total["n"], 1)
        return {"val_loss": mse, "val_action_mse": mse}

    def save(self, path: Path, extra: dict) -> None:
        save_checkpoint(path, self.model, self.kind, config_to_dict(self.cfg.model),
                        {**extra, "track_model": str(self.cfg.track_model),
                         "language_encoder": self.cfg.language_encoder,
                         "track_model_id": self.predictor.model_id, "train_config": config_to_dict(self.cfg)})

    def load_weights(self, path: Path) -> None:
        """Start from a policy checkpoint's weights; those of a one-action policy also start a chunk policy
        (`TrackGuidedPolicy.widen_one_action_weights`), those of a policy without instruction input one with it
        (`TrackGuidedPolicy.with_instruction_weights`)."""
        ckpt = load_checkpoint(path, kind=self.kind)
        if ckpt.config.get("instruction_dim", 0) == 0 and self.cfg.model.instruction_dim:
            ckpt = dataclasses.replace(ckpt, state_dict=self.model.with_instruction_weights(ckpt.state_dict))
        if ckpt.config.get("action_chunk", 1) == 1 and self.cfg.model.action_chunk > 1:
            try:
                ckpt = dataclasses.replace(ckpt, state_dict=self.model.widen_one_action_weights(ckpt.state_dict))
            except ValueError as e:
                raise CheckpointError(f"checkpoint {path}: {e}") from None
        load_weights(self.model, ckpt)
