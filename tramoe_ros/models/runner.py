"""`PolicyRunner`: closed-loop inference of the trajectory-guided policy, one observation at a time.

The one inference path shared by the ROS policy node, LIBERO evaluation and the demos: it keeps the frame stack
(padded at the episode start by repeating the first observation, as the training data is), asks the frozen track
model for tracks when none are given, and returns the newest step's action clamped to [-1, 1]. Each frame's
spatial features are computed once, when it arrives, and kept with the stack: the policy encodes frames
independently, so this gives the same actions as re-encoding the whole stack at a tenth of the cost.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from tramoe_ros.config import PolicyConfig
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.models.checkpoint import load_model
from tramoe_ros.models.language import LanguageEncoder, build_language_encoder
from tramoe_ros.models.onnx_policy import OnnxPolicySteps, OnnxUnavailable
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.predictor import TrackPredictor


class PolicyRunner:
    """Frame-stacked closed-loop policy.

    Observations per step: images {view: (S, S, 3) uint8}, proprio {name: (d,)}, the instruction, and optionally
    the tracks {view: (H, K, 2)} already predicted for these images (the ROS graph predicts them in the track
    node); without them the runner's own `TrackPredictor` predicts from the grid queries. A policy conditioned on
    the instruction (`instruction_dim` > 0) gets its embedding from `instruction_encoder`; a new instruction starts
    a new frame stack, since the stacked frames were encoded for the old one.
    """

    def __init__(self, policy: TrackGuidedPolicy, predictor: TrackPredictor | None, model_id: str = "unsaved",
                 device: str | torch.device = "cpu", onnxruntime: bool = False,
                 instruction_encoder: LanguageEncoder | None = None):
        """`onnxruntime`: on the CPU, run the policy's per-step computations with ONNX Runtime (`OnnxPolicySteps`,
        ~2x faster, the same actions to ~1e-5); where it cannot (not installed, export failed, another device) the
        runner keeps torch and `backend_note` says why.

        Raises:
            ValueError: the policy takes an instruction and `instruction_encoder` is missing or of another width
        """
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.cfg: PolicyConfig = policy.cfg
        if self.cfg.instruction_dim and (instruction_encoder is None
                                         or instruction_encoder.dim != self.cfg.instruction_dim):
            got = "none" if instruction_encoder is None else f"{instruction_encoder.name} ({instruction_encoder.dim}-d)"
            raise ValueError(f"the policy takes a {self.cfg.instruction_dim}-d instruction embedding; "
                             f"instruction encoder: {got}")
        self.instruction_encoder = instruction_encoder if self.cfg.instruction_dim else None
        self._instruction: tuple[str, torch.Tensor] | None = None  # the last instruction and its (1, E) embedding
        # What computes encode_frames and actions_from_frames: the torch policy or its ONNX Runtime sessions.
        self.steps: TrackGuidedPolicy | OnnxPolicySteps = self.policy
        self.backend, self.backend_note = "torch", ""
        if onnxruntime and self.device.type != "cpu":
            self.backend_note = f"ONNX Runtime runs on the CPU here; the policy is on {self.device}"
        elif onnxruntime:
            try:
                self.steps, self.backend = OnnxPolicySteps(self.policy), "onnxruntime"
            except OnnxUnavailable as e:
                self.backend_note = str(e)
        self.predictor = predictor
        self.model_id = model_id
        self.queries = sample_double_grid(4)
        if len(self.queries) != self.cfg.num_points:
            raise ValueError(f"policy expects {self.cfg.num_points} points, grid queries give {len(self.queries)}")
        # Per stacked frame: its spatial features (temporal_dim,), tracks (V, H, K, 2) and proprio.
        self._stack: deque[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = deque(
            maxlen=self.cfg.frame_stack)
        self.last_latency_ms = 0.0
        # (C, action_dim) the chunk planned from the last observation (C = cfg.action_chunk; row 0 is the action
        # `step` returned, row i the one planned for i steps later), clamped; None before the first step.
        self.last_chunk: np.ndarray | None = None

    @classmethod
    def from_checkpoints(cls, policy_path: str | Path, track_model_path: str | Path | None = None,
                         device: str | torch.device = "cpu", onnxruntime: bool = False) -> "PolicyRunner":
        """Load a policy checkpoint and, unless `track_model_path` overrides it, the track model it was trained
        with (recorded in the policy checkpoint)."""
        policy, ckpt = load_model(policy_path, "policy", PolicyConfig, TrackGuidedPolicy)
        track_path = track_model_path or ckpt.extra.get("track_model")
        if track_path is not None and not Path(track_path).is_absolute() and not Path(track_path).exists():
            # A shipped policy names its track model relative to the folder both live in.
            track_path = Path(policy_path).parent / Path(track_path).name
        predictor = TrackPredictor.from_checkpoint(track_path, device=device) if track_path else None
        encoder = (build_language_encoder(ckpt.extra.get("language_encoder", "minilm"))
                   if policy.cfg.instruction_dim else None)
        return cls(policy, predictor, model_id=ckpt.model_id, device=device, onnxruntime=onnxruntime,
                   instruction_encoder=encoder)

    def reset(self) -> None:
        """Forget the frame stack (a new episode)."""
        self._stack.clear()
        self.last_chunk = None

    def predict_tracks(self, images: dict[str, np.ndarray], instruction: str) -> dict[str, np.ndarray]:
        """Grid-query tracks of every view, batched over views.

        Returns:
            {view: (H, K, 2) float32}
        """
        if self.predictor is None:
            raise RuntimeError("no track model loaded: pass tracks to step() or load one")
        batch = np.stack([images[v] for v in self.cfg.views])
        tracks = self.predictor.predict(batch, self.queries, instruction).numpy()
        return {v: tracks[i] for i, v in enumerate(self.cfg.views)}

    def still_tracks(self) -> dict[str, np.ndarray]:
        """Tracks that say "nothing moves": each grid query repeated over the horizon, for every view (the
        baseline that shows how much the policy uses its track model).

        Returns:
            {view: (H, K, 2) float32}
        """
        still = np.repeat(self.queries[None], self.cfg.horizon, axis=0)
        return {v: still.copy() for v in self.cfg.views}

    def _check(self, images: dict[str, np.ndarray], tracks: dict[str, np.ndarray],
               proprio: dict[str, np.ndarray]) -> None:
        s = self.cfg.image_size
        for v in self.cfg.views:
            if v not in images:
                raise ValueError(f"missing image for view {v!r} (have {sorted(images)})")
            if images[v].shape != (s, s, 3):
                raise ValueError(f"image {v!r} must be ({s}, {s}, 3), got {images[v].shape}")
            if tracks[v].shape != (self.cfg.horizon, self.cfg.num_points, 2):
                raise ValueError(f"tracks {v!r} must be ({self.cfg.horizon}, {self.cfg.num_points}, 2), "
                                 f"got {tracks[v].shape}")
            if not np.isfinite(tracks[v]).all():
                raise ValueError(f"tracks {v!r} contain NaN or infinite values")
        for name, d in self.cfg.proprio_dims.items():
            if name not in proprio:
                raise ValueError(f"missing proprio {name!r} (have {sorted(proprio)})")
            if np.shape(proprio[name]) != (d,) or not np.isfinite(proprio[name]).all():
                raise ValueError(f"proprio {name!r} must be {d} finite values, got {np.asarray(proprio[name])}")

    def _embed(self, instruction: str) -> torch.Tensor | None:
        """(1, E) embedding of the instruction for a policy that takes one (None otherwise); a changed
        instruction clears the frame stack."""
        if self.instruction_encoder is None:
            return None
        if self._instruction is None or self._instruction[0] != instruction:
            if self._instruction is not None:
                self._stack.clear()
            self._instruction = (instruction, self.instruction_encoder.encode([instruction]).to(self.device))
        return self._instruction[1]

    @torch.no_grad()
    def step(self, images: dict[str, np.ndarray], proprio: dict[str, np.ndarray], instruction: str,
             tracks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Add one observation to the frame stack and return the action for it (the first of its chunk, which
        `last_chunk` holds).

        Returns:
            (action_dim,) float32 in [-1, 1]
        """
        start = time.perf_counter()
        tracks = tracks if tracks is not None else self.predict_tracks(images, instruction)
        self._check(images, tracks, proprio)
        embedding = self._embed(instruction)
        imgs = torch.from_numpy(np.stack([images[v] for v in self.cfg.views])).float()  # (V, S, S, 3)
        imgs = rearrange(imgs, "v h w c -> 1 v 1 c h w").to(self.device)
        trk = torch.from_numpy(np.stack([tracks[v] for v in self.cfg.views]).astype(np.float32)).to(self.device)
        frame = self.steps.encode_frames(imgs, trk[None, :, None], embedding)[0, 0]
        entry = (frame, trk, {k: torch.as_tensor(np.asarray(proprio[k], np.float32), device=self.device)
                              for k in self.cfg.proprio_dims})
        if not self._stack:
            self._stack.extend([entry] * self.cfg.frame_stack)
        else:
            self._stack.append(entry)
        frames = torch.stack([e[0] for e in self._stack])[None]  # (1, T, temporal_dim)
        stacked_tracks = torch.stack([e[1] for e in self._stack], dim=1)[None]  # (1, V, T, H, K, 2)
        prop = {k: torch.stack([e[2][k] for e in self._stack])[None] for k in self.cfg.proprio_dims}
        chunk = self.steps.actions_from_frames(frames, stacked_tracks, prop, embedding)[0, -1].clamp(-1.0, 1.0)
        self.last_chunk = chunk.float().cpu().numpy()
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        return self.last_chunk[0]
