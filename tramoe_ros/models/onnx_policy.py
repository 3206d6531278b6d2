"""`OnnxPolicySteps`: the policy's two closed-loop computations run by ONNX Runtime instead of eager torch.

`PolicyRunner` calls `encode_frames` once per new observation and `actions_from_frames` once per action (the
shapes below, batch 1, the full frame stack). Both are exported from the loaded torch policy (torch.onnx, into
memory) when the runner is made, and run on the CPU with one intra-op thread. Why: on a 2-core CPU the policy is
on the real-time graph's critical path (camera -> action), and ONNX Runtime runs it ~2x faster than eager torch
(`tramoe-bench models`: policy_step_ms against policy_step_onnxruntime_ms), with the same outputs to ~1e-5
(test/models/test_onnx_policy.py). Without onnxruntime (or when the export fails) `OnnxUnavailable` says why and
the runner keeps torch.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch
from torch import nn

from tramoe_ros.models.policy import TrackGuidedPolicy


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot run this policy here (package missing, or the export failed); the message says why."""


class _EncodeFrames(nn.Module):
    """`encode_frames`; the instruction embedding is a third input only for a policy that takes one."""

    def __init__(self, policy: TrackGuidedPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, images: torch.Tensor, tracks: torch.Tensor, *instruction: torch.Tensor) -> torch.Tensor:
        return self.policy.encode_frames(images, tracks, *instruction)


class _ActionsFromFrames(nn.Module):
    """`actions_from_frames` with the proprio inputs as positional tensors, in the config's order, then the
    instruction embedding for a policy that takes one."""

    def __init__(self, policy: TrackGuidedPolicy):
        super().__init__()
        self.policy = policy
        self.proprio_names = list(policy.cfg.proprio_dims)

    def forward(self, frames: torch.Tensor, tracks: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        n = len(self.proprio_names)
        instruction = inputs[n] if len(inputs) > n else None
        return self.policy.actions_from_frames(frames, tracks, dict(zip(self.proprio_names, inputs[:n])), instruction)


def _session(module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int):
    import onnxruntime

    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # notes on operator sets this model does not use (torchvision's)
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's progress notes and version advice
            program = torch.onnx.export(module, inputs, dynamo=True, verbose=False)
    finally:
        exporter_log.setLevel(level)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(program.model_proto.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


class OnnxPolicySteps:
    """ONNX Runtime sessions for a policy in eval mode, on the CPU.

    Raises:
        OnnxUnavailable: onnxruntime (or the exporter's onnx/onnxscript) is not installed, or the export failed
    """

    def __init__(self, policy: TrackGuidedPolicy, threads: int = 1):
        try:
            import onnxruntime  # noqa: F401  (the sessions need it; fail before the export's seconds)
        except ImportError as e:
            raise OnnxUnavailable(f"onnxruntime is not installed ({e})") from None
        cfg = policy.cfg
        policy = policy.eval()
        v, t, s = len(cfg.views), cfg.frame_stack, cfg.image_size
        images = torch.zeros(1, v, 1, 3, s, s)
        tracks = torch.zeros(1, v, 1, cfg.horizon, cfg.num_points, 2)
        frames = torch.zeros(1, t, cfg.temporal_dim)
        stacked = torch.zeros(1, v, t, cfg.horizon, cfg.num_points, 2)
        proprio = tuple(torch.zeros(1, t, d) for d in cfg.proprio_dims.values())
        instruction = (torch.zeros(1, cfg.instruction_dim),) if cfg.instruction_dim else ()
        try:
            self._encode = _session(_EncodeFrames(policy), (images, tracks, *instruction), threads)
            self._act = _session(_ActionsFromFrames(policy), (frames, stacked, *proprio, *instruction), threads)
        except ImportError as e:
            raise OnnxUnavailable(f"the ONNX exporter needs onnx and onnxscript ({e})") from None
        except Exception as e:  # the exporter raises many kinds; any of them means: keep torch
            raise OnnxUnavailable(f"exporting the policy to ONNX failed: {type(e).__name__}: {e}") from None
        self.proprio_names = list(cfg.proprio_dims)
        self.instruction_dim = cfg.instruction_dim

    def encode_frames(self, images: torch.Tensor, tracks: torch.Tensor,
                      instruction: torch.Tensor | None = None) -> torch.Tensor:
        """images (1, V, 1, 3, S, S) 0..255, tracks (1, V, 1, H, K, 2), instruction (1, E) or None as the
        policy's -> (1, 1, temporal_dim)."""
        return torch.from_numpy(self._run(self._encode, images, tracks, *self._optional(instruction)))

    def actions_from_frames(self, frames: torch.Tensor, tracks: torch.Tensor, proprio: dict[str, torch.Tensor],
                            instruction: torch.Tensor | None = None) -> torch.Tensor:
        """frames (1, T, temporal_dim), tracks (1, V, T, H, K, 2), proprio name -> (1, T, d), instruction
        (1, E) or None -> (1, T, C, action_dim), unclamped (T: the config's frame stack, C: its action chunk)."""
        return torch.from_numpy(self._run(self._act, frames, tracks, *(proprio[k] for k in self.proprio_names),
                                          *self._optional(instruction)))

    def _optional(self, instruction: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The instruction as the sessions' last input: present exactly when the exported policy takes one."""
        if (instruction is None) != (self.instruction_dim == 0):
            raise ValueError(f"the exported policy takes {'an' if self.instruction_dim else 'no'} instruction "
                             f"(instruction_dim {self.instruction_dim})")
        return () if instruction is None else (instruction,)

    @staticmethod
    def _run(session, *tensors: torch.Tensor) -> np.ndarray:
        feed = {i.name: t.detach().cpu().numpy().astype(np.float32, copy=False)
                for i, t in zip(session.get_inputs(), tensors)}
        return session.run(None, feed)[0]
