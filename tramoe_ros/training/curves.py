"""Loss curves of a training run as a PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def plot_history(history: dict[str, list[dict]], path: Path) -> Path:
    """Plot the per-step training loss terms (unweighted) and the per-epoch validation loss."""
    train, val = history.get("train", []), history.get("val", [])
    loss_keys = [k for k in (train[0] if train else {}) if k not in ("step", "epoch", "lr", "grad_norm")
                 and not k.startswith("expert")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k in loss_keys:
        axes[0].plot([r["step"] for r in train], [r[k] for r in train], label=k, lw=1)
    axes[0].set(xlabel="step", ylabel="loss", title="training", yscale="log")
    if loss_keys:
        axes[0].legend(fontsize=8)
    val_rows = [r for r in val if "val_loss" in r]
    axes[1].plot([r["epoch"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-")
    axes[1].set(xlabel="epoch", ylabel="val_loss (track or action MSE)", title="validation", yscale="log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
