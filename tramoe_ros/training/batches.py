"""The data side both training tasks share: the batch plan, the step-grouped training loader and the sharded
validation loader (see `tramoe_ros.training.distributed`)."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from tramoe_ros.config import TrainConfig
from tramoe_ros.data.datasets import PolicyDataset, TrackDataset
from tramoe_ros.training.distributed import BatchPlan, DistContext, StepLoader, plan_batches, shard_loader


class BatchedTask:
    """Base of the training tasks: serves `TrainingTask.steps_per_epoch` and `train_batches` from the loaders
    `_build_loaders` makes over `train_set` and `val_set`.

    Attributes:
        plan: the global batch's split over processes and micro-batches
        train_loader: this rank's training micro-batches, grouped by optimiser step
        val_loader: this rank's shard of the validation set, in micro-batches
    """

    train_set: TrackDataset | PolicyDataset
    val_set: TrackDataset | PolicyDataset
    dist: DistContext
    plan: BatchPlan
    train_loader: StepLoader
    val_loader: DataLoader

    def _build_loaders(self, train: TrainConfig, num_workers: int, weights: torch.Tensor | None = None) -> None:
        """Plan the batches (a global batch of at most the training set's size) and build both loaders.

        Args:
            weights: (len(train_set),) sampling weights drawn with replacement, or None for a permutation per epoch
        """
        self.plan = plan_batches(min(train.batch_size, len(self.train_set)), self.dist.world_size,
                                 train.micro_batch_size)
        self.train_loader = StepLoader(self.train_set, self.plan, self.dist, train.seed, num_workers,
                                       train.max_steps_per_epoch, weights)
        self.val_loader = shard_loader(self.val_set, self.plan.micro_batch, self.dist, num_workers)

    def steps_per_epoch(self) -> int:
        return self.train_loader.steps_per_epoch()

    def train_batches(self, epoch: int) -> Iterator[list]:
        self.train_set.set_epoch(epoch)
        return self.train_loader.epoch(epoch)
