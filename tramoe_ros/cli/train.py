"""`tramoe-train-tracks` and `tramoe-train-policy`: a YAML config from config/ plus key=value overrides.

Both run unchanged under torchrun (``torchrun --nproc_per_node=N tramoe-train-tracks ...``): every process trains
its share of each global batch with DistributedDataParallel and rank 0 alone prints and writes the run directory
(see README "Scale-out" and `tramoe_ros.training.distributed`).
"""
from __future__ import annotations

import argparse
import json
import sys

from tramoe_ros.config import (ConfigError, PolicyTrainConfig, TrackTrainConfig, config_to_dict, load_config)
from tramoe_ros.data.episode import EpisodeFormatError
from tramoe_ros.models.checkpoint import CheckpointError
from tramoe_ros.models.device import select_device
from tramoe_ros.paths import config_path
from tramoe_ros.training.distributed import DistContext, DistributedSetupError, init_distributed
from tramoe_ros.training.loop import fit, seed_everything
from tramoe_ros.training.policy import PolicyTrainingTask
from tramoe_ros.training.tracks import TrackTrainingTask


def _run(prog: str, cfg_cls, task_cls, default_config: str, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--config", default=str(config_path(default_config)),
                        help=f"YAML training config (default: config/{default_config})")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="dotted overrides, e.g. train.epochs=3 model.moe_layers=[] optim.lr=3e-4")
    args = parser.parse_args(argv)
    dist_ctx = DistContext()
    try:
        cfg = load_config(cfg_cls, args.config, args.overrides)
        dist_ctx = init_distributed(select_device(cfg.train.device))
        # The same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        seed_everything(cfg.train.seed)
        task = task_cls(cfg, dist_ctx.device, dist_ctx)
        if dist_ctx.is_main:
            print(f"{prog}: {type(task.model).__name__} with {sum(p.numel() for p in task.model.parameters()):,} "
                  f"parameters on {dist_ctx.device}; {len(task.train_set)} training samples; "
                  f"{task.plan.describe()}; out {cfg.train.out_dir}")
        result = fit(task, cfg.train, cfg.optim, dist_ctx.device, config_to_dict(cfg), dist_ctx)
    except (ConfigError, CheckpointError, EpisodeFormatError, FileNotFoundError, ValueError,
            DistributedSetupError) as e:
        where = f" (rank {dist_ctx.rank} of {dist_ctx.world_size})" if dist_ctx.is_distributed else ""
        print(f"{prog}: error{where}: {e}", file=sys.stderr)
        return 2
    finally:
        dist_ctx.shutdown()
    if not dist_ctx.is_main:
        return 0
    final = result.history["val"][-1] if result.history["val"] else {}
    print(json.dumps({"out_dir": str(result.out_dir), "best_val_loss": result.best_val,
                      "seconds": round(result.seconds, 1),
                      **{k: v for k, v in final.items() if k.startswith("val_")}}))
    return 0


def main_tracks(argv: list[str] | None = None) -> int:
    return _run("tramoe-train-tracks", TrackTrainConfig, TrackTrainingTask, "train_tracks.yaml", argv)


def main_policy(argv: list[str] | None = None) -> int:
    return _run("tramoe-train-policy", PolicyTrainConfig, PolicyTrainingTask, "train_policy.yaml", argv)
