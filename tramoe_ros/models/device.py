"""Where models run: one choice of torch device for inference (nodes, evaluation) and training alike."""
from __future__ import annotations

import torch


def select_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU.

    Raises:
        RuntimeError: CUDA requested but not available
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device
