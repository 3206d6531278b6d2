"""Scale-out training: torchrun + DDP (gloo on this CPU) gives the single-process run, and its checkpoints resume
under another world size; batch planning, the sharded domain-weighted sampler and gradient accumulation."""
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tramoe_ros.cli.train import main_tracks
from tramoe_ros.config import TrackModelConfig, config_to_dict
from tramoe_ros.data.datasets import domain_sample_weights
from tramoe_ros.models.checkpoint import load_checkpoint, load_weights, save_checkpoint
from tramoe_ros.models.track_transformer import TrackTransformer
from tramoe_ros.training.distributed import (DistContext, DistributedSetupError, EpochShardSampler, init_distributed,
                                             plan_batches)

from training_fixtures import TINY_TRACK, sources

CONFIG = Path(__file__).resolve().parents[2] / "config"
# Six optimiser steps of a global batch of 16. Dropout and MAE patch masking off: their draws come from each
# process's own random stream. Colour jitter and shift stay on: they are seeded per item, so every world size
# sees the same samples.
RUN = ("train.epochs=2", "train.max_steps_per_epoch=3", "model.image_mask_ratio=0.0", "train.precision=fp32")


def _track_args(data, out, *extra):
    return ["--config", str(CONFIG / "smoke_tracks.yaml"), sources(data), f"train.out_dir={out}", *TINY_TRACK, *RUN,
            *extra]


def _history(run: Path) -> dict:
    return json.loads((run / "history.json").read_text())


def _curve(run: Path, key: str = "total") -> np.ndarray:
    return np.array([row[key] for row in _history(run)["train"]])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """In-process runs on one thread, as each torchrun worker (2 cores, shared with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def single_run(synthetic_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    assert main_tracks(_track_args(synthetic_data, out)) == 0
    return out


@pytest.fixture(scope="module")
def torchrun_run(synthetic_data, tmp_path_factory):
    """The real console script under `python -m torch.distributed.run`, 2 processes, gloo on loopback; each
    process accumulates 2 micro-batches of 4 (global batch 16 = 2 x 2 x 4)."""
    out = tmp_path_factory.mktemp("torchrun") / "run"
    script = Path(sys.executable).parent / "tramoe-train-tracks"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1", "--max_restarts=0",
         "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script),
         *_track_args(synthetic_data, out, "train.micro_batch_size=4")],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc.stdout


def test_two_processes_reproduce_the_single_process_run(single_run, torchrun_run):
    out, stdout = torchrun_run
    # Rank 0 alone prints: one banner with the batch plan and one result line.
    assert stdout.count("parameters on cpu") == 1
    assert "global batch 16 = 2 process(es) x 2 micro-batch(es) of 4" in stdout
    assert sum(line.startswith("{") for line in stdout.splitlines()) == 1
    one, two = _history(single_run), _history(out)
    assert [r["step"] for r in two["train"]] == list(range(6))
    for key in ("total", "track", "image", "z", "grad_norm", "expert_l0_e0"):
        np.testing.assert_allclose(_curve(out, key), _curve(single_run, key), rtol=1e-4, err_msg=key)
    # Validation is sharded over the ranks and the squared errors summed: the single-process metric.
    np.testing.assert_allclose([r["val_loss"] for r in two["val"]], [r["val_loss"] for r in one["val"]], rtol=1e-5)
    for name in ("best.safetensors", "last.safetensors", "train_state.pt", "loss_curves.png", "config.json"):
        assert (out / name).is_file(), name
    # The checkpoint holds the bare module, loadable by a plain model.
    assert not any(k.startswith("module.") for k in load_checkpoint(out / "last.safetensors").state_dict)


def test_two_process_checkpoint_resumes_in_one_process(synthetic_data, single_run, torchrun_run, tmp_path):
    out, _ = torchrun_run
    # The same continuation (a third epoch) from the single-process and from the 2-process checkpoint.
    for name, source in (("from_single", single_run), ("from_torchrun", out)):
        assert main_tracks(_track_args(synthetic_data, tmp_path / name, "train.epochs=3",
                                       f"train.resume={source}")) == 0
    resumed, reference = _history(tmp_path / "from_torchrun"), _history(tmp_path / "from_single")
    assert [r["step"] for r in resumed["train"]] == list(range(9))
    np.testing.assert_allclose(_curve(tmp_path / "from_torchrun"), _curve(tmp_path / "from_single"), rtol=1e-4)
    np.testing.assert_allclose(resumed["val"][-1]["val_loss"], reference["val"][-1]["val_loss"], rtol=1e-4)
    assert resumed["val"][-1]["val_loss"] < resumed["val"][0]["val_loss"]


def test_accumulated_micro_batches_make_the_same_step(synthetic_data, single_run, tmp_path, capsys):
    # 16 with at most 5 per micro-batch: the fewest equal micro-batches are 4 of 4.
    assert main_tracks(_track_args(synthetic_data, tmp_path / "acc", "train.micro_batch_size=5")) == 0
    assert "global batch 16 = 1 process(es) x 4 micro-batch(es) of 4" in capsys.readouterr().out
    for key in ("total", "grad_norm", "lr"):
        np.testing.assert_allclose(_curve(tmp_path / "acc", key), _curve(single_run, key), rtol=1e-5, err_msg=key)


def test_plan_batches_splits_the_global_batch():
    plan = plan_batches(2048, 8, 200)
    assert (plan.per_rank, plan.accumulation, plan.micro_batch) == (256, 2, 128)
    plan = plan_batches(2048, 4, 200)  # 512 per rank: 3 micro-batches would be unequal, so 4 of 128
    assert (plan.accumulation, plan.micro_batch) == (4, 128)
    assert plan_batches(384, 4).accumulation == 1 and plan_batches(384, 4).micro_batch == 96
    assert plan_batches(384, 4, 500).accumulation == 1
    with pytest.raises(ValueError, match="batch_size 2048 does not divide by the number of processes 3"):
        plan_batches(2048, 3)


def test_batch_size_not_divisible_by_world_size_is_a_clear_cli_error(synthetic_data, tmp_path, monkeypatch, capsys):
    # Rank 1 of a 3-process job with a global batch of 16: the batch plan fails before any collective, so the
    # context needs no process group.
    monkeypatch.setattr("tramoe_ros.cli.train.init_distributed",
                        lambda device: DistContext(rank=1, world_size=3, local_rank=1, device=device))
    assert main_tracks(_track_args(synthetic_data, tmp_path / "bad")) == 2
    err = capsys.readouterr().err
    assert "batch_size 16 does not divide by the number of processes 3" in err and "rank 1 of 3" in err


def test_incomplete_torchrun_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(DistributedSetupError, match="RANK is not set"):
        init_distributed(torch.device("cpu"))
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(DistributedSetupError, match="RANK='two' is not an integer"):
        init_distributed(torch.device("cpu"))


def test_sharded_sampler_gives_the_single_process_batches_at_the_domain_ratios():
    domains = ["rare"] * 300 + ["common"] * 2700  # the rare domain is to make up 3/4 of the samples
    weights = domain_sample_weights(domains, {"rare": 3.0, "common": 1.0})
    single = EpochShardSampler(len(domains), plan_batches(48, 1), rank=0, seed=7, weights=weights)
    shards = [EpochShardSampler(len(domains), plan_batches(48, 3), rank=r, seed=7, weights=weights) for r in range(3)]
    for epoch in (0, 1):
        for sampler in (single, *shards):
            sampler.set_epoch(epoch)
        single_batches = np.array(list(single)).reshape(-1, 48)
        rank_batches = [np.array(list(s)).reshape(-1, 16) for s in shards]
        assert len(single) == sum(len(s) for s in shards) == 62 * 48
        # Step by step, the ranks' slices put together are the single process's batch.
        np.testing.assert_array_equal(np.sort(np.concatenate(rank_batches, axis=1)), np.sort(single_batches))
        rare = np.mean([domains[i] == "rare" for i in single_batches.ravel()])
        assert rare == pytest.approx(0.75, abs=0.03)
    single.set_epoch(0)
    first = list(single)
    single.set_epoch(1)
    assert list(single) != first


def test_sharded_permutation_sees_every_item_once_per_epoch():
    shards = [EpochShardSampler(50, plan_batches(12, 2), rank=r, seed=0) for r in range(2)]
    seen = Counter(i for s in shards for i in s)
    assert len(seen) == 48 and max(seen.values()) == 1  # 4 global batches; the last 2 items wait for a later epoch


def test_ddp_wrapped_model_saves_as_the_bare_module(tmp_path):
    cfg = TrackModelConfig(image_size=64, dim=32, depth=2, heads=2, moe_layers=[1])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(TrackTransformer(cfg), find_unused_parameters=True)
        path = save_checkpoint(tmp_path / "tm.safetensors", wrapped, "track_model", config_to_dict(cfg))
    finally:
        dist.destroy_process_group()
    plain = TrackTransformer(cfg)
    load_weights(plain, load_checkpoint(path))
    for key, value in wrapped.module.state_dict().items():
        assert torch.equal(value, plain.state_dict()[key]), key

