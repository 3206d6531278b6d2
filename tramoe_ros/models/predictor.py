"""`TrackPredictor`: the one inference path of the track model, shared by the ROS track node, policy training
(frozen track model), LIBERO evaluation and the demos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from einops import rearrange, repeat

from tramoe_ros.config import TrackModelConfig
from tramoe_ros.models.checkpoint import load_model
from tramoe_ros.models.language import LanguageEncoder, build_language_encoder
from tramoe_ros.models.track_transformer import TrackTransformer


class TrackPredictor:
    """A frozen track model plus its language encoder.

    `predict(images, queries, instructions)` takes frames as uint8 (B, S, S, 3) HWC or (B, 3, S, S) CHW arrays or
    tensors, queries (K, 2) shared or (B, K, 2), normalised x/W, y/H, and returns (B, H, K, 2) normalised tracks.
    """

    def __init__(self, model: TrackTransformer, encoder: LanguageEncoder, model_id: str = "unsaved",
                 device: str | torch.device = "cpu"):
        if model.cfg.language_dim != encoder.dim:
            raise ValueError(f"track model expects {model.cfg.language_dim}-d instructions, "
                             f"encoder {encoder.name} gives {encoder.dim}-d")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.encoder = encoder
        self.model_id = model_id
        self.cfg: TrackModelConfig = model.cfg
        self.last_expert_fractions: dict[int, np.ndarray] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        language_encoder: str | None = None) -> "TrackPredictor":
        """Load a `track_model` checkpoint; the language encoder defaults to the one it was trained with."""
        model, ckpt = load_model(path, "track_model", TrackModelConfig, TrackTransformer)
        encoder = build_language_encoder(language_encoder or ckpt.extra.get("language_encoder", "minilm"))
        return cls(model, encoder, model_id=ckpt.model_id, device=device)

    def _images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if x.ndim == 3:
            x = x[None]
        s = self.cfg.image_size
        if x.ndim != 4:
            raise ValueError(f"images must be (B, S, S, 3) or (B, 3, S, S), got shape {tuple(x.shape)}")
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = rearrange(x, "b h w c -> b c h w")
        if tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"images must be {s}x{s} RGB, got shape {tuple(x.shape)}")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, queries: np.ndarray | torch.Tensor,
                instructions: str | list[str]) -> torch.Tensor:
        """
        Args:
            images: (B, S, S, 3) or (B, 3, S, S), values 0..255
            queries: (K, 2) or (B, K, 2) normalised
            instructions: one string for the whole batch, or B strings
        Returns:
            (B, H, K, 2) float32 normalised tracks on the CPU
        """
        x = self._images(images)
        b = x.shape[0]
        q = torch.as_tensor(queries, dtype=torch.float32, device=self.device)
        if q.ndim == 2:
            q = repeat(q, "k c -> b k c", b=b)
        if q.shape != (b, self.cfg.num_points, 2):
            raise ValueError(f"queries must be ({self.cfg.num_points}, 2) or ({b}, {self.cfg.num_points}, 2), "
                             f"got {tuple(q.shape)}")
        if not torch.isfinite(q).all() or not torch.isfinite(x).all():
            raise ValueError("images or queries contain NaN or infinite values")
        texts = [instructions] * b if isinstance(instructions, str) else list(instructions)
        if len(texts) != b:
            raise ValueError(f"{len(texts)} instructions for a batch of {b}")
        lang = self.encoder.encode(texts).to(self.device)
        out = self.model(x, q, lang)
        self.last_expert_fractions = {i: r.expert_fractions().cpu().numpy()
                                      for i, r in zip(sorted(self.cfg.moe_layers), out.routing)}
        return out.tracks.float().cpu()
