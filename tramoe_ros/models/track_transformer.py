"""Tra-MoE track transformer (paper Sec. 3.2; layout and sizes from ATM's track transformer), torch only.

Given one image, K query points and an instruction embedding, predict where the points are over the next H steps.
The sequence is [track tokens | image tokens | 1 language token]:

* track tokens: each query point is copied over the H steps and cut into H / track_patch temporal patches by a
  Conv1d, giving (H / track_patch) * K tokens in (t n) order, plus a learnable temporal embedding (sincos init)
  and, with `TrackModelConfig.query_pos_embed`, the image patches' position embedding at the query point;
* image tokens: 16x16 patches -> (image_size / 16)^2 tokens, plus a frozen 2-D sincos embedding; in training a
  random fraction is replaced by a learnable mask token (MAE-style, as ATM);
* language token: a linear projection of the instruction embedding.

Blocks listed in `TrackModelConfig.moe_layers` replace their FFN by a `SparseMoE`; with ``moe_layers=[]`` this is
the dense Tra-baseline (ATM). Heads read absolute point positions from the track tokens and reconstruct the
normalised image patches from the image tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from tramoe_ros.config import GateMode, TrackLossConfig, TrackModelConfig
from tramoe_ros.models.layers import Attention, TransformerBlock, sincos_1d, sincos_2d, sincos_2d_at
from tramoe_ros.models.moe import RoutingInfo, SparseMoE, load_balance_loss, router_z_loss


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """0..255 pixels -> mean .5 std .5 normalisation, i.e. [-1, 1].

    Args:
        image: (B, 3, H, W) float in 0..255
    Returns:
        (B, 3, H, W)
    """
    return (image / 255.0 - 0.5) / 0.5


def patchify(image: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut an image into non-overlapping square patches, row-major, pixels in (p1 p2 c) order (MAE / ATM).

    Args:
        image: (B, C, H, W)
    Returns:
        (B, (H / patch) * (W / patch), patch * patch * C)
    """
    return rearrange(image, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch)


class TrackPatchEmbed(nn.Module):
    """Embed point tracks by temporal patches: Conv1d(2 -> dim, kernel = stride = patch) over each point's track."""

    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv1d(2, dim, kernel_size=patch, stride=patch)

    def forward(self, tracks: torch.Tensor) -> torch.Tensor:
        """
        Args:
            tracks: (B, T, K, 2) normalised x/W, y/H
        Returns:
            (B, T / patch, K, dim)
        """
        batch = tracks.shape[0]
        per_point = rearrange(tracks, "b t k c -> (b k) c t")
        return rearrange(self.proj(per_point), "(b k) d t -> b t k d", b=batch)


class MoETransformerBlock(nn.Module):
    """Pre-LN block whose FFN is a sparse MoE: x + Attn(LN(x)), then x + MoE(LN(x)).

    Attribute names match `layers.TransformerBlock` (``ffn`` becomes ``moe``), so dense weights map onto it.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, num_experts: int, top_k: int,
                 gate_mode: GateMode, gating_noise: float = 0.0, dropout: float = 0.0, kv_heads: int | None = None):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, kv_heads=kv_heads, dropout=dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.moe = SparseMoE(dim, mlp_dim, num_experts, top_k, gate_mode, gating_noise, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RoutingInfo]:
        """(B, N, dim) -> (B, N, dim) and the routing of its B * N tokens"""
        x = x + self.attn(self.attn_norm(x))
        moe_out, routing = self.moe(self.ffn_norm(x))
        return x + moe_out, routing


@dataclass
class TrackOutput:
    """Track transformer outputs.

    Attributes:
        tracks: (B, H, K, 2) predicted absolute positions, normalised x/W, y/H
        image_recon: (B, P, 3 * p * p) reconstructed normalised image patches, (p1 p2 c) order
        image_mask: (B, P) bool, True where the input patch was replaced by the mask token; None when not masked
        routing: one RoutingInfo per MoE block, in block order (empty for the dense model)
        moe_layers: the block index of each entry of `routing`
    """

    tracks: torch.Tensor
    image_recon: torch.Tensor
    image_mask: torch.Tensor | None
    routing: list[RoutingInfo] = field(default_factory=list)
    moe_layers: list[int] = field(default_factory=list)

    def expert_fractions(self) -> dict[int, torch.Tensor]:
        """Per MoE block index, the fraction of tokens routed (top-1) to each expert: {layer: (N,) detached}."""
        return {layer: info.expert_fractions() for layer, info in zip(self.moe_layers, self.routing)}


class TrackTransformer(nn.Module):
    """Language-conditioned any-point track predictor tau(o_t, p_t, l) -> p_{t:t+H} (paper Sec. 3.1)."""

    def __init__(self, cfg: TrackModelConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.dim
        self.track_tokens_per_point = cfg.horizon // cfg.track_patch
        grid = cfg.image_size // cfg.image_patch
        self.num_image_tokens = grid * grid

        self.track_embed = TrackPatchEmbed(dim, cfg.track_patch)
        self.track_temporal_embed = nn.Parameter(sincos_1d(self.track_tokens_per_point, dim))
        self.image_embed = nn.Conv2d(3, dim, kernel_size=cfg.image_patch, stride=cfg.image_patch)
        self.register_buffer("image_pos_embed", sincos_2d(grid, dim), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.language_proj = nn.Linear(cfg.language_dim, dim)

        self.moe_layers = sorted(set(cfg.moe_layers))
        dim_head = dim // cfg.heads
        mlp_dim = dim * cfg.mlp_ratio
        self.blocks = nn.ModuleList(
            MoETransformerBlock(dim, cfg.heads, dim_head, mlp_dim, cfg.num_experts, cfg.top_k, cfg.gate_mode,
                                cfg.gating_noise, cfg.dropout, cfg.kv_heads)
            if index in self.moe_layers
            else TransformerBlock(dim, cfg.heads, dim_head, mlp_dim, cfg.dropout, cfg.kv_heads)
            for index in range(cfg.depth)
        )
        # ATM has no final norm; one here keeps the heads' input scale fixed as depth grows.
        self.norm = nn.LayerNorm(dim)
        self.track_head = nn.Linear(dim, 2 * cfg.track_patch)
        self.image_head = nn.Linear(dim, 3 * cfg.image_patch * cfg.image_patch)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        if cfg.predict_displacement:
            # Zero displacements at the start: training begins from "nothing moves" instead of from noise.
            nn.init.zeros_(self.track_head.weight)

    def forward(self, image: torch.Tensor, queries: torch.Tensor, language: torch.Tensor) -> TrackOutput:
        """
        Args:
            image: (B, 3, image_size, image_size) float in 0..255
            queries: (B, K, 2) query points at the current step, normalised x/W, y/H in [0, 1]
            language: (B, language_dim) instruction embedding
        Returns:
            TrackOutput with tracks (B, horizon, K, 2), normalised positions (query + predicted displacement when
            `cfg.predict_displacement`)
        """
        batch, num_points = queries.shape[:2]
        track_tokens = self._embed_tracks(queries)
        image_tokens, image_mask = self._embed_image(image)
        language_token = rearrange(self.language_proj(language), "b d -> b 1 d")
        x = torch.cat([track_tokens, image_tokens, language_token], dim=1)

        routing: list[RoutingInfo] = []
        for block in self.blocks:
            if isinstance(block, MoETransformerBlock):
                x, info = block(x)
                routing.append(info)
            else:
                x = block(x)
        x = self.norm(x)

        num_track_tokens = track_tokens.shape[1]
        track_out = self.track_head(x[:, :num_track_tokens])
        tracks = rearrange(track_out, "b (t n) (p c) -> b (t p) n c", n=num_points, c=2)
        if self.cfg.predict_displacement:
            tracks = tracks + rearrange(queries, "b k c -> b 1 k c")
        image_recon = self.image_head(x[:, num_track_tokens:num_track_tokens + self.num_image_tokens])
        return TrackOutput(tracks=tracks, image_recon=image_recon, image_mask=image_mask, routing=routing,
                           moe_layers=list(self.moe_layers))

    def _embed_tracks(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, K, 2) -> (B, (H / track_patch) * K, dim) in (t n) order"""
        tracks = repeat(queries, "b k c -> b t k c", t=self.cfg.horizon)
        tokens = self.track_embed(tracks) + rearrange(self.track_temporal_embed, "t d -> 1 t 1 d")
        if self.cfg.query_pos_embed:
            # Patch (row h, column w) is embedded at (w, h) and covers [w, w + 1) patch widths: its centre is w + .5.
            grid = self.cfg.image_size // self.cfg.image_patch
            position = sincos_2d_at(queries * grid - 0.5, self.cfg.dim).to(tokens.dtype)
            tokens = tokens + rearrange(position, "b k d -> b 1 k d")
        return rearrange(tokens, "b t k d -> b (t k) d")

    def _embed_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, H, W) 0..255 -> tokens (B, P, dim) and the (B, P) bool mask (None outside training)"""
        tokens = rearrange(self.image_embed(normalize_image(image)), "b d h w -> b (h w) d")
        image_mask = None
        if self.training and self.cfg.image_mask_ratio > 0:
            image_mask = self._random_patch_mask(tokens.shape[0], tokens.device)
            tokens = torch.where(rearrange(image_mask, "b p -> b p 1"), self.mask_token.to(tokens.dtype), tokens)
        # Position is added after masking (MAE) so that a masked token still says which patch to reconstruct.
        return tokens + self.image_pos_embed.to(tokens.dtype), image_mask

    def _random_patch_mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """(B, P) bool with exactly round(ratio * P) True entries per sample, uniformly at random"""
        num_masked = round(self.cfg.image_mask_ratio * self.num_image_tokens)
        masked_index = torch.rand(batch, self.num_image_tokens, device=device).topk(num_masked, dim=-1).indices
        mask = torch.zeros(batch, self.num_image_tokens, dtype=torch.bool, device=device)
        return mask.scatter_(1, masked_index, True)

    def num_parameters(self) -> int:
        """All parameters (the frozen 2-D position embedding is a buffer, not counted)."""
        return sum(p.numel() for p in self.parameters())

    def num_active_parameters(self) -> int:
        """Parameters one token touches: the total minus the (N - top_k) / N share of every MoE layer's experts."""
        inactive = 0
        for block in self.blocks:
            if isinstance(block, MoETransformerBlock):
                moe = block.moe
                per_expert = sum(p.numel() for p in moe.experts[0].parameters())
                inactive += (moe.num_experts - moe.top_k) * per_expert
        return self.num_parameters() - inactive


def _init_weights(module: nn.Module) -> None:
    """ATM's init: truncated normal std .02 for linear weights, zero biases, LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def track_loss(out: TrackOutput, target_tracks: torch.Tensor, image: torch.Tensor,
               weights: TrackLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Paper eq. 9 plus ATM's image reconstruction term:
    λ_track MSE(tracks) + λ_image MSE(patches) + λ_lb Σ_layers L_lb + λ_z Σ_layers L_z.

    The reconstruction is scored on all patches, masked or not, as ATM does.

    Args:
        out: the model's output for `image`
        target_tracks: (B, H, K, 2) normalised ground-truth tracks
        image: (B, 3, H_img, W_img) the input image, 0..255
        weights: the λs
    Returns:
        total loss (scalar tensor) and the detached terms {"track", "image", "load_balance", "z", "total"}, each
        unweighted except "total"
    """
    patch = round((out.image_recon.shape[-1] / 3) ** 0.5)
    track_term = F.mse_loss(out.tracks, target_tracks)
    image_term = F.mse_loss(out.image_recon, patchify(normalize_image(image), patch))
    zero = track_term.new_zeros(())
    balance_term = sum((load_balance_loss(r.probs, r.expert_index) for r in out.routing), zero)
    z_term = sum((router_z_loss(r.logits) for r in out.routing), zero)
    total = (weights.track * track_term + weights.image * image_term
             + weights.load_balance * balance_term + weights.z * z_term)
    terms = {"track": track_term, "image": image_term, "load_balance": balance_term, "z": z_term, "total": total}
    return total, {name: float(value.detach()) for name, value in terms.items()}
