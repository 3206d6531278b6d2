"""Trajectory-guided ViLT policy (ATM) with Tra-MoE's adaptive policy conditioning (paper Sec. 3.2, Fig. 3b).

Data flow for a frame stack of T steps, V views, K tracked points of horizon H:

1. per view and frame: RGB (+ the track mask channel rasterised from that view/frame's predicted tracks) / 255
   -> a per-view `PatchEncoder` -> (S/16)^2 image tokens + a learned per-view position embedding;
2. per view and point: the predicted track (H, 2) ++ a one-hot view id -> `TrackPatchEmbed` -> 1 track token;
3. spatial transformer per frame over [CLS, image tokens of all views, track tokens of all views] (early fusion)
   -> CLS -> Linear(dim -> temporal_dim);
4. temporal transformer over the stack, per step [action CLS, spatial feature, one token per proprio entry],
   sinusoidal step embedding, block-causal attention;
5. late fusion: action-CLS output ++ the raw predicted tracks of all views at that step -> MLP head -> the
   step's action and the next `action_chunk` - 1 (an action chunk; one action with the default 1).

With `instruction_dim` > 0 the instruction embedding (E,) conditions both transformers as ATM's language tokens
do: projected, it is added to the spatial CLS and to the action CLS, the queries whose outputs are read (ATM's
temporal transformer reads its output at the language token). The projections start at zero, so a policy grown
from one without instruction input (`with_instruction_weights`) first acts exactly as that one did.
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from tramoe_ros.config import PolicyConfig
from tramoe_ros.models.layers import TransformerBlock, sincos_1d
from tramoe_ros.models.track_mask import build_track_mask, image_channels

IMAGE_DOWNSAMPLE = 16  # conv7x7 stride 2, then 8x8 patches: one token per 16x16 pixels


class PatchEncoder(nn.Module):
    """ATM's image tokeniser: conv7x7 s2 (C -> stem_channels, ATM: 64) + BN + ReLU, conv8x8 s8 (-> dim) + BN."""

    def __init__(self, in_channels: int, dim: int, stem_channels: int = 64):
        super().__init__()
        # No conv biases: each conv is followed by BatchNorm, whose shift makes a bias redundant.
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_channels, dim, kernel_size=8, stride=8, bias=False),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) in 0..1 -> (N, (S/16)^2, dim) tokens in (row column) order"""
        return rearrange(self.net(x), "n d h w -> n (h w) d")


class TrackPatchEmbed(nn.Module):
    """One token per track: Conv1d over the time axis with kernel = stride = the temporal patch (ATM's
    TrackPatchEmbed; the policy uses patch = H, so the whole trajectory becomes one token)."""

    def __init__(self, in_dim: int, dim: int, patch: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, dim, kernel_size=patch, stride=patch)

    def forward(self, tracks: torch.Tensor) -> torch.Tensor:
        """(N, H, K, in_dim) -> (N, K * H/patch, dim), tokens in (point patch) order"""
        n = tracks.shape[0]
        x = self.conv(rearrange(tracks, "n h k c -> (n k) c h"))
        return rearrange(x, "(n k) d p -> n (k p) d", n=n)


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear layers between consecutive `sizes`, ReLU + dropout between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class TrackGuidedPolicy(nn.Module):
    """ATM's trajectory-guided ViLT policy with the track-mask conditioning of `cfg.mask_mode` (none / drawn /
    adaptive, see `tramoe_ros.models.track_mask`).

    The mask channel is rasterised here from the very tracks passed to `forward`. Keeping it aligned with the pixels
    under augmentation (random shift, crops) is the data pipeline's job: it must move the tracks with the pixels;
    then the mask, drawn from those tracks, moves with them too.

    `forward` accepts 1..frame_stack steps (fewer at the start of an episode): the temporal transformer is
    block-causal and its step embedding starts at the oldest frame, so the outputs for the first t steps do not
    depend on how many later steps follow.
    """

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        if cfg.image_size % IMAGE_DOWNSAMPLE:
            raise ValueError(f"image_size {cfg.image_size} must be a multiple of {IMAGE_DOWNSAMPLE}")
        if cfg.temporal_dim % 2:
            raise ValueError(f"temporal_dim {cfg.temporal_dim} must be even (sinusoidal step embedding)")
        bad_keys = [k for k in cfg.proprio_dims if not k.isidentifier()]
        if bad_keys:
            raise ValueError(f"proprio names {bad_keys} must be identifiers (they name sub-modules)")
        self.cfg = cfg
        num_views = len(cfg.views)
        tokens_per_view = (cfg.image_size // IMAGE_DOWNSAMPLE) ** 2

        self.track_mask = build_track_mask(cfg.mask_mode, cfg.horizon)
        channels = image_channels(cfg.mask_mode)
        # Separate weights per view: the wrist and the scene cameras see very different statistics.
        self.image_encoders = nn.ModuleList(PatchEncoder(channels, cfg.dim, cfg.stem_channels) for _ in cfg.views)
        self.image_pos = nn.Parameter(torch.randn(num_views, tokens_per_view, cfg.dim) * 0.02)
        # No per-point position embedding for track tokens: the K query points are a set, and the one-hot view id
        # already tells the views apart.
        self.track_embed = TrackPatchEmbed(2 + num_views, cfg.dim, patch=cfg.horizon)

        self.spatial_cls = nn.Parameter(torch.randn(cfg.dim) * 0.02)
        self.spatial_blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.spatial_heads, cfg.spatial_dim_head, cfg.spatial_mlp_dim, cfg.dropout,
                             attention_dropout=cfg.attention_dropout)
            for _ in range(cfg.spatial_depth)
        )
        # Final LayerNorm: the pre-LN residual stream is un-normalised at the end of the stack.
        self.spatial_norm = nn.LayerNorm(cfg.dim)
        self.spatial_out = nn.Linear(cfg.dim, cfg.temporal_dim)

        self.action_cls = nn.Parameter(torch.randn(cfg.temporal_dim) * 0.02)
        self.instruction_spatial = self.instruction_temporal = None
        if cfg.instruction_dim:
            self.instruction_spatial = nn.Linear(cfg.instruction_dim, cfg.dim)
            self.instruction_temporal = nn.Linear(cfg.instruction_dim, cfg.temporal_dim)
            for projection in (self.instruction_spatial, self.instruction_temporal):
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)
        self.proprio_embed = nn.ModuleDict({k: nn.Linear(d, cfg.temporal_dim) for k, d in cfg.proprio_dims.items()})
        self.register_buffer("step_pos", sincos_1d(cfg.frame_stack, cfg.temporal_dim), persistent=False)
        # PolicyConfig has no temporal MLP width; 4 x temporal_dim gives ATM's 256 at the default width 64.
        self.temporal_blocks = nn.ModuleList(
            TransformerBlock(cfg.temporal_dim, cfg.temporal_heads, cfg.temporal_dim_head, 4 * cfg.temporal_dim,
                             cfg.dropout, attention_dropout=cfg.attention_dropout)
            for _ in range(cfg.temporal_depth)
        )
        self.temporal_norm = nn.LayerNorm(cfg.temporal_dim)

        raw_track_dim = num_views * cfg.horizon * cfg.num_points * 2
        self.head = _mlp([cfg.temporal_dim + raw_track_dim, *cfg.head_hidden, cfg.action_chunk * cfg.action_dim],
                         cfg.dropout)

    def widen_one_action_weights(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights of this architecture with a one-action head (action_chunk 1), made to fit this policy's
        chunk head: every action of the chunk starts as the one action (the next ones "the same again"), so the
        widened policy acts as the one-action policy did until it is fine-tuned on chunks.

        Raises:
            ValueError: the weights are not those of this architecture with one action per step
        """
        last = f"head.{len(self.head) - 1}"
        weight, bias = state_dict.get(f"{last}.weight"), state_dict.get(f"{last}.bias")
        if weight is None or bias is None or weight.shape[0] != self.cfg.action_dim:
            raise ValueError(f"not a one-action policy head: {last} has "
                             f"{None if weight is None else tuple(weight.shape)}, expected "
                             f"({self.cfg.action_dim}, ...)")
        widened = dict(state_dict)
        widened[f"{last}.weight"] = repeat(weight, "a i -> (c a) i", c=self.cfg.action_chunk)
        widened[f"{last}.bias"] = repeat(bias, "a -> (c a)", c=self.cfg.action_chunk)
        return widened

    def with_instruction_weights(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights of this architecture without instruction input, completed with this policy's (zero)
        instruction projections: the completed policy acts as the one without instruction did until it is
        fine-tuned with instructions."""
        added = {f"{name}.{key}": value.detach().clone()
                 for name in ("instruction_spatial", "instruction_temporal")
                 if getattr(self, name) is not None
                 for key, value in getattr(self, name).state_dict().items()}
        return {**state_dict, **{k: v for k, v in added.items() if k not in state_dict}}

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of parameter elements (only those with requires_grad if `trainable_only`)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _check_instruction(self, instruction: torch.Tensor | None, batch: int) -> None:
        """Raise ValueError unless `instruction` is (B, instruction_dim) for a policy that takes one, None else."""
        e = self.cfg.instruction_dim
        if not e and instruction is not None:
            raise ValueError("this policy takes no instruction (instruction_dim 0); pass instruction=None")
        if e and (instruction is None or tuple(instruction.shape) != (batch, e)):
            got = None if instruction is None else tuple(instruction.shape)
            raise ValueError(f"instruction must be the (B, instruction_dim) = {(batch, e)} embedding, got {got}")

    def _check_inputs(self, images: torch.Tensor, tracks: torch.Tensor, proprio: dict[str, torch.Tensor],
                      instruction: torch.Tensor | None) -> None:
        """Raise ValueError naming the first input whose shape does not match the config."""
        cfg = self.cfg
        v, s = len(cfg.views), cfg.image_size
        if images.dim() != 6 or images.shape[1] != v or images.shape[3] != 3 or images.shape[4:] != (s, s):
            raise ValueError(f"images must be (B, V={v}, T, 3, {s}, {s}) float 0..255, got {tuple(images.shape)}")
        b, _, t = images.shape[:3]
        if not 1 <= t <= cfg.frame_stack:
            raise ValueError(f"images has T={t} frames; expected 1..frame_stack={cfg.frame_stack}")
        want = (b, v, t, cfg.horizon, cfg.num_points, 2)
        if tuple(tracks.shape) != want:
            raise ValueError(
                f"tracks must be (B, V, T, H, K, 2) = {want} (B, V, T as images), got {tuple(tracks.shape)}"
            )
        if set(proprio) != set(cfg.proprio_dims):
            raise ValueError(f"proprio keys {sorted(proprio)} do not match proprio_dims {sorted(cfg.proprio_dims)}")
        for k, d in cfg.proprio_dims.items():
            if tuple(proprio[k].shape) != (b, t, d):
                raise ValueError(f"proprio[{k!r}] must be (B, T, d) = {(b, t, d)}, got {tuple(proprio[k].shape)}")
        self._check_instruction(instruction, b)

    def encode_frames(self, images: torch.Tensor, tracks: torch.Tensor,
                      instruction: torch.Tensor | None = None) -> torch.Tensor:
        """Early fusion of each frame's images and tracks. Frames are encoded independently, so in eval mode a
        closed-loop runner can encode each new frame once and keep the features of the stack (`PolicyRunner`).

        Args:
            images: (B, V, T, 3, S, S) 0..255
            tracks: (B, V, T, H, K, 2)
            instruction: (B, instruction_dim) embedding, or None for a policy without instruction input
        Returns:
            (B, T, temporal_dim) per-frame feature
        """
        b, v, t = images.shape[:3]
        if self.track_mask is not None:
            mask = self.track_mask(rearrange(tracks, "b v t h k c -> (b v t) h k c"), self.cfg.image_size)
            images = torch.cat([images, rearrange(mask, "(b v t) 1 s w -> b v t 1 s w", b=b, v=v)], dim=3)
        images = images / 255.0
        img_tokens = torch.cat([
            enc(rearrange(images[:, i], "b t c s w -> (b t) c s w")) + self.image_pos[i]
            for i, enc in enumerate(self.image_encoders)
        ], dim=1)  # ((B T), V * (S/16)^2, dim)

        view_id = torch.eye(v, dtype=tracks.dtype, device=tracks.device)
        view_id = repeat(view_id, "v c -> b v t h k c", b=b, t=t, h=tracks.shape[3], k=tracks.shape[4])
        track_in = rearrange(torch.cat([tracks, view_id], dim=-1), "b v t h k c -> (b t v) h k c")
        track_tokens = rearrange(self.track_embed(track_in), "(bt v) k d -> bt (v k) d", v=v)  # ((B T), V*K, dim)

        cls = repeat(self.spatial_cls, "d -> b t 1 d", b=b, t=t)
        if self.instruction_spatial is not None:
            cls = cls + rearrange(self.instruction_spatial(instruction), "b d -> b 1 1 d")
        cls = rearrange(cls, "b t 1 d -> (b t) 1 d")
        x = torch.cat([cls, img_tokens, track_tokens], dim=1)
        for block in self.spatial_blocks:
            x = block(x)
        feat = self.spatial_out(self.spatial_norm(x[:, 0]))
        return rearrange(feat, "(b t) d -> b t d", b=b)

    def _temporal(self, spatial: torch.Tensor, proprio: dict[str, torch.Tensor],
                  instruction: torch.Tensor | None) -> torch.Tensor:
        """Block-causal transformer over the frame stack.

        Args:
            spatial: (B, T, temporal_dim)
            proprio: name -> (B, T, d)
            instruction: (B, instruction_dim) or None
        Returns:
            (B, T, temporal_dim) action-CLS output per step
        """
        b, t, _ = spatial.shape
        action_query = repeat(self.action_cls, "d -> b t d", b=b, t=t)
        if self.instruction_temporal is not None:
            action_query = action_query + rearrange(self.instruction_temporal(instruction), "b d -> b 1 d")
        tokens = [action_query, spatial]
        tokens += [self.proprio_embed[k](proprio[k]) for k in self.proprio_embed]
        x = torch.stack(tokens, dim=2) + rearrange(self.step_pos[:t], "t d -> 1 t 1 d")  # (B, T, M, temporal_dim)
        m = x.shape[2]
        step = torch.arange(t, device=x.device).repeat_interleave(m)
        allowed = step[:, None] >= step[None, :]  # (T*M, T*M): a token sees its own and earlier steps
        x = rearrange(x, "b t m d -> b (t m) d")
        for block in self.temporal_blocks:
            x = block(x, allowed)
        x = rearrange(self.temporal_norm(x), "b (t m) d -> b t m d", m=m)
        return x[:, :, 0]

    def forward(self, images: torch.Tensor, tracks: torch.Tensor, proprio: dict[str, torch.Tensor],
                instruction: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            images: (B, V, T, 3, S, S) float, 0..255; V = len(cfg.views), 1 <= T <= cfg.frame_stack
            tracks: (B, V, T, H, K, 2) predicted tracks (frozen track model, per view and frame), normalised x/W, y/H
            proprio: name -> (B, T, d), exactly the entries of cfg.proprio_dims
            instruction: (B, instruction_dim) embedding of the instruction (cfg.instruction_dim > 0), else None
        Returns:
            (B, T, C, action_dim) unclamped action chunks for every step, C = cfg.action_chunk: step t's own
            action, then those of t+1 .. t+C-1 (training regresses all T with MSE, as ATM)
        """
        self._check_inputs(images, tracks, proprio, instruction)
        return self.actions_from_frames(self.encode_frames(images, tracks, instruction), tracks, proprio, instruction)

    def actions_from_frames(self, frames: torch.Tensor, tracks: torch.Tensor, proprio: dict[str, torch.Tensor],
                            instruction: torch.Tensor | None = None) -> torch.Tensor:
        """Temporal fusion and the action head over per-frame features from `encode_frames`.

        Args:
            frames: (B, T, temporal_dim)
            tracks: (B, V, T, H, K, 2) the raw tracks for late fusion
            proprio: name -> (B, T, d)
            instruction: (B, instruction_dim) or None, as `forward`
        Returns:
            (B, T, C, action_dim) unclamped
        """
        feat = self._temporal(frames, proprio, instruction)
        # Late fusion: the raw trajectories join the fused feature right before the head (paper Sec. 3.2).
        raw = rearrange(tracks, "b v t h k c -> b t (v h k c)")
        return rearrange(self.head(torch.cat([feat, raw], dim=-1)), "b t (c a) -> b t c a", c=self.cfg.action_chunk)

    @torch.no_grad()
    def act(self, images: torch.Tensor, tracks: torch.Tensor, proprio: dict[str, torch.Tensor],
            instruction: torch.Tensor | None = None) -> torch.Tensor:
        """Inference: the action chunk of the newest frame, clamped to [-1, 1]. Inputs as `forward`.

        Returns:
            (B, C, action_dim)
        """
        if self.training:
            # Dropout and batch-statistics BatchNorm would make the action depend on the batch; fail loudly.
            raise RuntimeError("TrackGuidedPolicy.act needs eval mode; call .eval() first")
        return self.forward(images, tracks, proprio, instruction)[:, -1].clamp(-1.0, 1.0)
