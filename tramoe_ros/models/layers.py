"""Transformer building blocks shared by the track model and the policy (torch only, no ROS)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal embedding of real-valued positions (channels alternate sin, cos; frequencies as in
    "Attention is all you need").

    Args:
        positions: (...) float
    Returns:
        (..., dim) float32
    """
    if dim % 2:
        raise ValueError(f"sincos needs an even dim, got {dim}")
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
                     * (-math.log(10000.0) / dim))
    angles = positions.float()[..., None] * freq
    return rearrange(torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1), "... d two -> ... (d two)")


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal embedding of positions 0 .. length - 1.

    Returns:
        (length, dim) float32
    """
    return sincos(torch.arange(length), dim)


def sincos_2d_at(points: torch.Tensor, dim: int) -> torch.Tensor:
    """`sincos_2d`'s embedding at real-valued (column, row) positions in patch units, so a point at a patch's
    centre gets exactly that patch's position embedding: first half of the channels the row, second the column.

    Args:
        points: (..., 2) (column, row)
    Returns:
        (..., dim) float32
    """
    if dim % 4:
        raise ValueError(f"sincos_2d_at needs dim divisible by 4, got {dim}")
    return torch.cat([sincos(points[..., 1], dim // 2), sincos(points[..., 0], dim // 2)], dim=-1)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sinusoidal embedding of a grid x grid patch layout (MAE): half the channels encode the row,
    half the column.

    Returns:
        (grid * grid, dim) float32, rows in (h w) order
    """
    if dim % 4:
        raise ValueError(f"sincos_2d needs dim divisible by 4, got {dim}")
    rows, columns = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return sincos_2d_at(rearrange(torch.stack([columns, rows], dim=-1), "h w c -> (h w) c"), dim)


class Attention(nn.Module):
    """Multi-head self-attention with `kv_heads` shared key/value heads (kv_heads=1: multi-query, as ATM's track
    transformer; kv_heads=heads: standard multi-head)."""

    def __init__(self, dim: int, heads: int, dim_head: int, kv_heads: int | None = None, dropout: float = 0.0):
        super().__init__()
        kv_heads = heads if kv_heads is None else kv_heads
        if heads % kv_heads:
            raise ValueError(f"heads {heads} must be a multiple of kv_heads {kv_heads}")
        self.heads, self.kv_heads, self.dim_head = heads, kv_heads, dim_head
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * kv_heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            x: (B, N, dim)
            attn_mask: optional (N, N) bool, True where attention is allowed
        Returns:
            (B, N, dim)
        """
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.to_kv(x), "b n (two h d) -> two b h n d", two=2, h=self.kv_heads)
        if self.kv_heads != self.heads:
            rep = self.heads // self.kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Module):
    """Linear-GELU-Linear FFN (the paper's expert f_i, and the dense block's FFN)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)"""
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + FFN(LN(x)). `attention_dropout` defaults to `dropout`."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0,
                 kv_heads: int | None = None, attention_dropout: float | None = None):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim_head, kv_heads=kv_heads,
                              dropout=dropout if attention_dropout is None else attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, dim) -> (B, N, dim)"""
        x = x + self.attn(self.attn_norm(x), attn_mask)
        return x + self.ffn(self.ffn_norm(x))
