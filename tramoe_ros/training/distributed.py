"""Scale-out training with torch.distributed: one process per GPU (or per CPU worker), started by torchrun.

`init_distributed` reads torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK; MASTER_ADDR / MASTER_PORT for the
rendezvous) and joins the process group: NCCL on CUDA, gloo on the CPU. Without torchrun (no WORLD_SIZE, or
WORLD_SIZE=1) it returns a single-process context whose collectives are the identity, so the trainers have one
code path.

Batches. `TrainConfig.batch_size` is the global batch of one optimiser step. `plan_batches` gives every rank an
equal share and, when the share exceeds `TrainConfig.micro_batch_size`, splits it into equal micro-batches whose
gradients are accumulated. `EpochShardSampler` draws each epoch's global sample order from a seed all ranks share
(per-domain ratio weights with replacement for the track model, a permutation for the policy) and hands each rank
its contiguous slice of every global batch. The union of the ranks' micro-batches of a step is therefore exactly
the batch one process draws, whatever the world size, and since augmentation is seeded per item index (see
`tramoe_ros.data.datasets`) the samples themselves are identical too.

Gradients. Every micro-batch loss is a per-sample mean, scaled by 1 / accumulation, and DDP averages over ranks, so
a step's gradient is the gradient of the global batch's mean loss. A top-1 MoE layer skips the experts that get no
token, and the skipped set changes from step to step, so models with a `SparseMoE` are wrapped with
``find_unused_parameters=True``: DDP then walks the autograd graph after each forward pass and reduces a skipped
expert's gradient as zero on that rank, while an expert idle on every rank keeps no gradient, exactly as in one
process (AdamW then leaves it alone). The alternatives do not fit: ``static_graph=True`` needs the same used set in
every step, and running idle experts on empty slices would give them zero gradients instead of none, so AdamW would
decay their weights and moments, unlike a single process. Accumulating micro-batches run under ``no_sync()``: one
all-reduce per step; DDP accumulates the used-parameter map over those micro-batches, so an expert used only in an
early micro-batch is still reduced.

Known, documented differences from one process: the load-balancing loss (eq. 7, off by default) multiplies two batch
means, so it is computed per micro-batch and averaged; BatchNorm (the policy's patch encoders) normalises with each
micro-batch's statistics, over all ranks on CUDA (converted to SyncBatchNorm) but per rank on the CPU, where
PyTorch has no SyncBatchNorm.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from tramoe_ros.models.moe import SparseMoE


class DistributedSetupError(RuntimeError):
    """torchrun's environment is incomplete or the process group could not be joined."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank of world_size, its GPU (cuda:local_rank) or the CPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this context joined the process group, so `shutdown` leaves it

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, prints and draws progress bars."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def all_reduce_sum(self, values: Mapping[str, float]) -> dict[str, float]:
        """Sum named scalars over all ranks (in float64); every rank must pass the same names."""
        if not self.is_distributed:
            return {k: float(v) for k, v in values.items()}
        names = sorted(values)
        totals = torch.tensor([float(values[k]) for k in names], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return dict(zip(names, totals.tolist()))

    def all_reduce_mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Average named scalars over all ranks (equal weights: each rank ran the same number of samples)."""
        return {k: v / self.world_size for k, v in self.all_reduce_sum(values).items()}

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to run training forward passes through: `model` itself in one process, else a
        DistributedDataParallel around it (which broadcasts rank 0's weights and buffers to all ranks).

        On CUDA, BatchNorm layers become SyncBatchNorm in place (same parameters and buffers, so `model` still
        saves and loads as before and its optimiser stays valid).
        """
        if not self.is_distributed:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        has_moe = any(isinstance(m, SparseMoE) for m in model.modules())
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       find_unused_parameters=has_moe)

    def shutdown(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise DistributedSetupError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} but {name} is not set; "
                                        f"start the trainer with torchrun")
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedSetupError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(device: torch.device) -> DistContext:
    """Join torchrun's process group, or return the single-process context when not under torchrun.

    Args:
        device: the configured device (`select_device`); under torchrun a CUDA device becomes cuda:LOCAL_RANK.
    Raises:
        DistributedSetupError: missing/invalid torchrun variables, too few GPUs, or a failed rendezvous.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext(device=device)
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank < world_size:
        raise DistributedSetupError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size})")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedSetupError(f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} "
                                        f"GPU(s); start at most that many processes per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if dist.is_initialized():
        return DistContext(rank, world_size, local_rank, device)
    try:
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as e:
        raise DistributedSetupError(
            f"rank {rank} of {world_size} could not join the {backend} process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}: {e}") from None
    return DistContext(rank, world_size, local_rank, device, owns_group=True)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Seed of rank `rank`'s dropout / patch-mask randomness from optimiser step `step`, distinct per rank."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def sync_gradients(model: nn.Module, sync: bool) -> AbstractContextManager:
    """Context for one micro-batch's forward and backward: DDP's `no_sync()` while accumulating (sync=False)."""
    if isinstance(model, DistributedDataParallel) and not sync:
        return model.no_sync()
    return nullcontext()


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split: world_size ranks x accumulation micro-batches x micro_batch samples."""

    global_batch: int
    world_size: int
    micro_batch: int
    accumulation: int

    @property
    def per_rank(self) -> int:
        return self.micro_batch * self.accumulation

    def describe(self) -> str:
        return (f"global batch {self.global_batch} = {self.world_size} process(es) x {self.accumulation} "
                f"micro-batch(es) of {self.micro_batch}")


def plan_batches(global_batch: int, world_size: int, micro_batch_limit: int = 0) -> BatchPlan:
    """Split the global batch over ranks, then each rank's share into the fewest equal micro-batches of at most
    `micro_batch_limit` samples (0 = no limit).

    E.g. 2048 over 8 GPUs with a limit of 200: 256 per GPU, 2 micro-batches of 128.

    Raises:
        ValueError: the global batch does not divide by the world size.
    """
    if global_batch % world_size:
        raise ValueError(f"train.batch_size {global_batch} does not divide by the number of processes "
                         f"{world_size}; use a multiple of {world_size}")
    per_rank = global_batch // world_size
    if micro_batch_limit <= 0 or micro_batch_limit >= per_rank:
        return BatchPlan(global_batch, world_size, per_rank, 1)
    accumulation = next(a for a in range(math.ceil(per_rank / micro_batch_limit), per_rank + 1) if per_rank % a == 0)
    return BatchPlan(global_batch, world_size, per_rank // accumulation, accumulation)


class EpochShardSampler(Sampler[int]):
    """This rank's item indices of one epoch, in micro-batch order.

    The epoch's global order is drawn with the generator seeded by seed + epoch, identically on every rank:
    `num_items` draws with replacement from `weights` (per-domain mixing ratios, see
    `tramoe_ros.data.datasets.domain_sample_weights`), or a permutation when `weights` is None. It is cut into
    global batches (a trailing partial batch is dropped) and each rank takes its contiguous slice of every batch.

    Args:
        num_items: dataset length
        plan: the batch split (global batch, world size)
        rank: this process's rank
        seed: shared by all ranks
        weights: (num_items,) non-negative sampling weights, or None
    """

    def __init__(self, num_items: int, plan: BatchPlan, rank: int, seed: int,
                 weights: torch.Tensor | Sequence[float] | None = None) -> None:
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64)
            if weights.shape != (num_items,):
                raise ValueError(f"sampling weights have shape {tuple(weights.shape)}, expected ({num_items},)")
        if not 0 <= rank < plan.world_size:
            raise ValueError(f"rank {rank} is outside 0..{plan.world_size - 1}")
        self.num_items, self.plan, self.rank, self.seed = num_items, plan, rank, seed
        self.weights = weights
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def num_steps(self) -> int:
        """Global batches (optimiser steps) in one epoch."""
        return self.num_items // self.plan.global_batch

    def global_order(self) -> torch.Tensor:
        """(num_items,) int64: the epoch's item order over all ranks."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            return torch.randperm(self.num_items, generator=generator)
        return torch.multinomial(self.weights, self.num_items, replacement=True, generator=generator)

    def __iter__(self) -> Iterator[int]:
        steps, plan = self.num_steps(), self.plan
        batches = self.global_order()[: steps * plan.global_batch].view(steps, plan.world_size, plan.per_rank)
        return iter(batches[:, self.rank].reshape(-1).tolist())

    def __len__(self) -> int:
        return self.num_steps() * self.plan.per_rank


class StepLoader:
    """One rank's training data, grouped by optimiser step: each item of `epoch(e)` is the list of this rank's
    `plan.accumulation` micro-batches (collated dicts of `plan.micro_batch` samples) of one step.

    Args:
        dataset: a map-style dataset with `set_epoch` left to the caller
        plan, dist: the batch split and this process's rank
        seed: the run's seed (shared by all ranks)
        num_workers: DataLoader workers (each opens its own HDF5 handles)
        max_steps: cap on steps per epoch, 0 = none
        weights: per-item sampling weights (with replacement), or None for a permutation
    """

    def __init__(self, dataset: Dataset, plan: BatchPlan, dist_ctx: DistContext, seed: int, num_workers: int,
                 max_steps: int = 0, weights: torch.Tensor | None = None) -> None:
        self.plan, self.max_steps = plan, max_steps
        self.sampler = EpochShardSampler(len(dataset), plan, dist_ctx.rank, seed, weights)
        if self.sampler.num_steps() == 0:
            raise ValueError(f"the training set has {len(dataset)} samples, fewer than one global batch of "
                             f"{plan.global_batch}; lower train.batch_size")
        self.loader = DataLoader(dataset, batch_size=plan.micro_batch, sampler=self.sampler, num_workers=num_workers,
                                 persistent_workers=num_workers > 0, pin_memory=dist_ctx.device.type == "cuda")

    def steps_per_epoch(self) -> int:
        steps = self.sampler.num_steps()
        return min(steps, self.max_steps) if self.max_steps > 0 else steps

    def epoch(self, epoch: int) -> Iterator[list]:
        self.sampler.set_epoch(epoch)
        steps, micro_batches = 0, []
        for batch in self.loader:
            micro_batches.append(batch)
            if len(micro_batches) == self.plan.accumulation:
                yield micro_batches
                steps, micro_batches = steps + 1, []
                if steps == self.steps_per_epoch():
                    return


def shard_loader(dataset: Dataset, batch_size: int, dist_ctx: DistContext, num_workers: int) -> DataLoader:
    """Evaluation loader over this rank's items rank, rank + W, ...: every item is seen by exactly one rank, so
    sums reduced over ranks (`DistContext.all_reduce_sum`) equal the single-process sums."""
    indices = list(range(dist_ctx.rank, len(dataset), dist_ctx.world_size))
    return DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=num_workers)
