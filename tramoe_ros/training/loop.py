"""The training loop shared by `tramoe-train-tracks` and `tramoe-train-policy`.

A `TrainingTask` supplies the model, the data and the loss; `fit` owns everything else: AdamW, linear warm-up +
cosine decay, gradient accumulation, gradient clipping, bf16 autocast, progress bars, validation, checkpoints
(`last.safetensors` + `train_state.pt`, `best.safetensors` by validation loss), resume, `history.json` and a
loss-curve PNG. Under torchrun every rank runs `fit` in lock-step with DistributedDataParallel (see
`tramoe_ros.training.distributed`); rank 0 alone writes the run directory and shows progress.
"""
from __future__ import annotations

import json
import math
import random
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import torch
from tqdm import tqdm

from tramoe_ros.config import OptimConfig, Precision, TrainConfig
from tramoe_ros.models.checkpoint import load_train_state, save_train_state
from tramoe_ros.training.curves import plot_history
from tramoe_ros.training.distributed import DistContext, rank_seed, sync_gradients


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast_dtype(precision: Precision | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of forward passes for `precision` on `device`; None = float32 (no autocast).

    Raises:
        ValueError: bf16 requested on a GPU without bf16 support.
    """
    precision = Precision(precision)
    bf16_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision is Precision.FP32 or (precision is Precision.AUTO and not bf16_gpu):
        return None
    if device.type == "cuda" and not bf16_gpu:
        raise ValueError(f"train.precision=bf16 but {torch.cuda.get_device_name(device)} does not support bf16; "
                         f"use train.precision=fp32")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up from 0 to 1 over `warmup_steps`, then cosine decay to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class TrainingTask(Protocol):
    """What a trainer needs from a model family."""

    model: torch.nn.Module  # the plain module: saved, loaded and validated
    train_model: torch.nn.Module  # what `loss` runs forward passes through; `fit` sets it (DDP under torchrun)
    kind: str  # checkpoint kind

    def train_batches(self, epoch: int) -> Iterable[list[Any]]:
        """One training epoch on this rank: per optimiser step, the list of its micro-batches (the task sets its
        sampler's and dataset's epoch)."""

    def steps_per_epoch(self) -> int: ...

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss over one micro-batch (scalar, with grad, computed through `train_model`) and its named parts
        as floats."""

    def validate(self) -> dict[str, float]:
        """Validation metrics over the whole validation set (each rank evaluates its shard and the sums are
        reduced over ranks); must contain `val_loss` (lower is better)."""

    def save(self, path: Path, extra: dict) -> None:
        """Write a model checkpoint (weights + config) to `path`."""

    def load_weights(self, path: Path) -> None: ...


@dataclass
class FitResult:
    out_dir: Path
    history: dict[str, list] = field(default_factory=dict)
    best_val: float = math.inf
    seconds: float = 0.0


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


def _build_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters; biases and other vectors (norm scales) get no weight decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=optim.lr, betas=optim.betas,
    )


def _build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int,
                     epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LR schedule of a run of `epochs` epochs: `warmup_cosine` with `optim.warmup_epochs` of warm-up."""
    total_steps = steps_per_epoch * epochs
    warmup_steps = int(round(optim.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, warmup_steps, optim.min_lr_ratio)
    )


def _load_start(task: TrainingTask, train: TrainConfig, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LambdaLR, result: FitResult, device: torch.device,
                dist_ctx: DistContext) -> tuple[int, int]:
    """Load what the run starts from: a resumed run's weights, optimiser, schedule, history and (rank 0's) random
    state, or `train.init_weights`, or nothing.

    Returns:
        (first epoch, first optimiser step) to run
    """
    if train.resume:
        # Every rank reads the same files (on multi-node jobs the run directory must be on a shared file system).
        resume = Path(train.resume)
        run_dir = resume if resume.is_dir() else resume.parent
        task.load_weights(run_dir / "last.safetensors")
        state = load_train_state(run_dir / "train_state.pt")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result.history, result.best_val = state["history"], state["best_val"]
        if dist_ctx.is_main:
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            tqdm.write(f"resumed {run_dir} at epoch {state['epoch']}, step {state['step']} (written by "
                       f"{state.get('world_size', 1)} process(es), now {dist_ctx.world_size})")
        return state["epoch"], state["step"]
    if train.init_weights:
        task.load_weights(Path(train.init_weights))
    return 0, 0


def _train_epoch(task: TrainingTask, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                 clip_grad: float, device: torch.device, dtype: torch.dtype | None, dist_ctx: DistContext,
                 epoch: int, first_step: int, steps_per_epoch: int, history: list[dict]) -> list[dict[str, float]]:
    """Run one epoch's optimiser steps, appending each step's logs to `history`.

    Returns:
        per step: its loss terms averaged over the global batch, the gradient norm before clipping and the LR
    Raises:
        FloatingPointError: a step's total loss is not finite.
    """
    task.train_model.train()
    rows = []
    bar = tqdm(task.train_batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch}", leave=False,
               unit="step", dynamic_ncols=True, disable=not dist_ctx.is_main)
    for step, micro_batches in enumerate(bar, start=first_step):
        optimizer.zero_grad(set_to_none=True)
        logs = dist_ctx.all_reduce_mean(_mean(_accumulate_gradients(task, micro_batches, device, dtype)))
        if not math.isfinite(logs["total"]):
            raise FloatingPointError(f"non-finite loss at epoch {epoch} step {step}: {logs}")
        grad_norm = torch.nn.utils.clip_grad_norm_(task.model.parameters(), clip_grad)
        optimizer.step()
        scheduler.step()
        logs = {**logs, "grad_norm": float(grad_norm), "lr": scheduler.get_last_lr()[0]}
        rows.append(logs)
        history.append({"step": step, "epoch": epoch, **logs})
        bar.set_postfix(loss=f"{logs['total']:.4f}")
    return rows


def _accumulate_gradients(task: TrainingTask, micro_batches: list[Any], device: torch.device,
                          dtype: torch.dtype | None) -> list[dict[str, float]]:
    """Forward and backward passes of one step's micro-batches, each loss scaled by 1 / their number so the
    accumulated gradient is the mean's; under DDP only the last backward pass all-reduces.

    Returns:
        each micro-batch's named loss terms
    """
    parts = []
    for i, batch in enumerate(micro_batches):
        with sync_gradients(task.train_model, sync=i == len(micro_batches) - 1):
            with autocast(device, dtype):
                loss, logs = task.loss(batch)
            (loss / len(micro_batches)).backward()
        parts.append(logs)
    return parts


def _validate(task: TrainingTask, device: torch.device, dtype: torch.dtype | None, result: FitResult, epoch: int,
              save_best: bool) -> dict[str, float]:
    """The task's validation metrics; a new lowest `val_loss` becomes `result.best_val` and, with `save_best`,
    `best.safetensors`."""
    with autocast(device, dtype):
        metrics = task.validate()
    if metrics["val_loss"] < result.best_val:
        result.best_val = metrics["val_loss"]
        if save_best:
            task.save(result.out_dir / "best.safetensors", {"epoch": epoch, "val_loss": metrics["val_loss"]})
    return metrics


def _save_resumable(task: TrainingTask, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LambdaLR, result: FitResult, epoch: int, step: int,
                    device: torch.device, world_size: int) -> None:
    """Write `last.safetensors` and `train_state.pt`: everything `train.resume` continues from after `epoch`."""
    task.save(result.out_dir / "last.safetensors", {"epoch": epoch})
    save_train_state(result.out_dir / "train_state.pt", {
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
        "step": step, "history": result.history, "best_val": result.best_val,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "world_size": world_size,
    })


def fit(task: TrainingTask, train: TrainConfig, optim: OptimConfig, device: torch.device,
        config_dict: dict, dist_ctx: DistContext | None = None) -> FitResult:
    """Train `task.model` for `train.epochs` epochs; resumes from `train.resume` when set, else starts from the
    weights in `train.init_weights` when set.

    Each optimiser step runs this rank's micro-batches (gradients accumulated, all-reduced once under DDP) and
    logs the step's loss terms averaged over micro-batches and ranks, i.e. over the global batch.

    Args:
        dist_ctx: this process's rank (`init_distributed`); None = a single process on `device`.
    """
    dist_ctx = dist_ctx or DistContext(device=device)
    main = dist_ctx.is_main
    out_dir = Path(train.out_dir)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config_dict, indent=2))
    dtype = autocast_dtype(train.precision, device)
    optimizer = _build_optimizer(task.model, optim)
    steps_per_epoch = task.steps_per_epoch()
    scheduler = _build_scheduler(optimizer, optim, steps_per_epoch, train.epochs)
    result = FitResult(out_dir=out_dir, history={"train": [], "val": []})
    start_epoch, step = _load_start(task, train, optimizer, scheduler, result, device, dist_ctx)
    if not main:
        # Rank 0 keeps a single process's random stream; the others draw their own dropout and patch masks.
        torch.manual_seed(rank_seed(train.seed, dist_ctx.rank, step))
    # Wrapped after loading, so DDP's initial broadcast starts every rank from the resumed weights.
    task.train_model = dist_ctx.wrap(task.model)

    started = time.perf_counter()
    epochs = tqdm(range(start_epoch, train.epochs), desc="epochs", unit="ep", initial=start_epoch,
                  total=train.epochs, dynamic_ncols=True, disable=not main)
    for epoch in epochs:
        rows = _train_epoch(task, optimizer, scheduler, optim.clip_grad, device, dtype, dist_ctx, epoch, step,
                            steps_per_epoch, result.history["train"])
        step += len(rows)
        summary = {"epoch": epoch, "step": step, **{f"train_{k}": v for k, v in _mean(rows).items()}}
        last_epoch = epoch == train.epochs - 1
        if (epoch + 1) % train.val_every == 0 or last_epoch:
            summary.update(_validate(task, device, dtype, result, epoch, save_best=main))
        result.history["val"].append(summary)
        epochs.set_postfix({k: f"{v:.4g}" for k, v in summary.items() if k in ("train_total", "val_loss")})
        if main and ((epoch + 1) % train.save_every == 0 or last_epoch):
            _save_resumable(task, optimizer, scheduler, result, epoch, step, device, dist_ctx.world_size)
        if main:
            (out_dir / "history.json").write_text(json.dumps(result.history))
            plot_history(result.history, out_dir / "loss_curves.png")
    # No rank returns before rank 0 has written the checkpoints a caller may read next.
    dist_ctx.barrier()
    result.seconds = time.perf_counter() - started
    return result
