import math
from pathlib import Path

import pytest

from tramoe_ros.config import (ConfigError, GateMode, MaskMode, PolicyTrainConfig, TrackTrainConfig, load_config)
from tramoe_ros.training.loop import warmup_cosine

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_warmup_then_cosine():
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(0.1)
    assert warmup_cosine(9, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(55, total, warm) == pytest.approx(0.5)
    assert warmup_cosine(100, total, warm) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(100, total, warm, min_ratio=0.1) == pytest.approx(0.1)
    values = [warmup_cosine(s, total, warm) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("name,cls", [
    ("train_tracks.yaml", TrackTrainConfig), ("smoke_tracks.yaml", TrackTrainConfig),
    ("train_tracks_cpu.yaml", TrackTrainConfig), ("ablation_tracks_cpu.yaml", TrackTrainConfig),
    ("train_policy.yaml", PolicyTrainConfig), ("smoke_policy.yaml", PolicyTrainConfig),
    ("train_policy_cpu.yaml", PolicyTrainConfig), ("ablation_policy_cpu.yaml", PolicyTrainConfig),
])
def test_shipped_configs_load(name, cls):
    cfg = load_config(cls, CONFIG / name)
    assert cfg.train.epochs > 0 and cfg.data.sources


def test_paper_defaults():
    cfg = load_config(TrackTrainConfig, CONFIG / "train_tracks.yaml")
    assert cfg.model.moe_layers == [0, 4, 7] and cfg.model.num_experts == 4 and cfg.model.top_k == 1
    assert cfg.model.gate_mode is GateMode.STRAIGHT_THROUGH and cfg.model.gating_noise == 0.0
    assert cfg.loss.z == 1e-4 and cfg.loss.load_balance == 0.0
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad, cfg.train.batch_size) == (1e-4, 1e-4, 10, 2048)
    pol = load_config(PolicyTrainConfig, CONFIG / "train_policy.yaml")
    assert pol.model.mask_mode is MaskMode.ADAPTIVE and pol.model.frame_stack == 10
    assert (pol.optim.lr, pol.optim.clip_grad, pol.train.batch_size) == (5e-4, 100, 384)


def test_overrides_and_errors(tmp_path):
    cfg = load_config(TrackTrainConfig, CONFIG / "train_tracks.yaml",
                      ["model.moe_layers=[]", "optim.lr=3e-4", "model.gate_mode=renormalized"])
    assert cfg.model.moe_layers == [] and math.isclose(cfg.optim.lr, 3e-4)
    assert cfg.model.gate_mode is GateMode.RENORMALIZED
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dpth'\]"):
        load_config(TrackTrainConfig, None, ["model.dpth=3"])
    with pytest.raises(ConfigError, match="model.depth: expected an integer"):
        load_config(TrackTrainConfig, None, ["model.depth=deep"])
    with pytest.raises(ConfigError, match="is not one of straight_through, softmax_prob, renormalized"):
        load_config(TrackTrainConfig, None, ["model.gate_mode=noisy"])
    with pytest.raises(ConfigError, match=r"moe_layers \[9\] are outside 0..7"):
        load_config(TrackTrainConfig, None, ["model.moe_layers=[9]"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(TrackTrainConfig, None, ["model.depth"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(TrackTrainConfig, bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(TrackTrainConfig, tmp_path / "missing.yaml")
