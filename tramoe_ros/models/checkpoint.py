"""Model checkpoints (safetensors: weights + the config that built them) and resumable training state.

A model checkpoint is one `.safetensors` file whose metadata holds `tramoe_kind` (track_model | policy), the
model config as JSON and a short `model_id`; it can be shipped alone. The optimiser, scheduler, epoch and RNG
states needed to resume a run live next to it in `train_state.pt`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, safe_open
from torch.nn.parallel import DistributedDataParallel

from tramoe_ros.config import config_from_dict

KINDS = ("track_model", "policy")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, of the wrong kind or does not fit the model."""


@dataclass
class Checkpoint:
    path: Path
    kind: str
    config: dict  # the model config as a plain mapping (see tramoe_ros.config.config_to_dict)
    model_id: str
    state_dict: dict[str, torch.Tensor]
    extra: dict  # anything else the trainer stored (e.g. data summary, epoch)


def save_checkpoint(path: str | Path, model: torch.nn.Module, kind: str, config: dict,
                    extra: dict | None = None) -> Path:
    """Write the model's weights and config to `path` atomically (a crash never leaves half a file).

    A DistributedDataParallel wrapper is saved as the module it wraps (no ``module.`` key prefix), so checkpoints
    load into a plain model and resume under any number of processes.
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r} is not one of {KINDS}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    digest = hashlib.sha256()
    for k in sorted(state):
        digest.update(k.encode())
        digest.update(state[k].reshape(-1).view(torch.uint8).numpy().tobytes())
    metadata = {
        "tramoe_kind": kind,
        "config": json.dumps(config),
        "model_id": f"{path.stem}-{digest.hexdigest()[:10]}",
        "extra": json.dumps(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`; every failure is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({e})") from None
    found = metadata.get("tramoe_kind")
    if found not in KINDS:
        raise CheckpointError(f"checkpoint {path} has no tramoe metadata (tramoe_kind={found!r})")
    if kind is not None and found != kind:
        raise CheckpointError(f"checkpoint {path} holds a {found}, expected a {kind}")
    try:
        config = json.loads(metadata["config"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} has a malformed config in its metadata ({e})") from None
    return Checkpoint(path=path, kind=found, config=config, model_id=metadata.get("model_id", path.stem),
                      state_dict=state, extra=extra)


def load_weights(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    """Load `ckpt` into `model`, naming missing, unexpected and mis-shaped tensors on mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(ckpt.state_dict))
    unexpected = sorted(set(ckpt.state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(ckpt.state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(ckpt.state_dict)) if own[k].shape != ckpt.state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"checkpoint {ckpt.path} does not fit the model: " + ", ".join(parts))
    model.load_state_dict(ckpt.state_dict)


def load_model(path: str | Path, kind: str, config_cls: type, model_cls: type) -> tuple[torch.nn.Module, Checkpoint]:
    """Build `model_cls(config)` from the config stored in a checkpoint and load its weights.

    Returns:
        (model, checkpoint); every failure is a CheckpointError naming the file
    """
    ckpt = load_checkpoint(path, kind=kind)
    try:
        cfg = config_from_dict(config_cls, ckpt.config, where=f"{path} config")
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    model = model_cls(cfg)
    load_weights(model, ckpt)
    return model, ckpt


def save_train_state(path: str | Path, state: dict[str, Any]) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_train_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a damaged pickle/zip; all mean the same here
        raise CheckpointError(f"training state {path} is unreadable ({type(e).__name__}: {e})") from None
