"""`tramoe-bench models` reports every number the issue asks for (values are measured, not asserted)."""
import json

import pytest

from tramoe_ros.bench.models import bench_models
from tramoe_ros.cli import bench as bench_cli
from tramoe_ros.config import PolicyConfig, TrackModelConfig

KEYS = {"track_dense_ms_b1", "track_moe_ms_b1", "track_dense_ms_b64", "track_moe_ms_b64", "moe_dense_ratio_b64",
        "track_params", "track_active_params", "policy_ms_b1", "policy_params"}
TRACK = TrackModelConfig(image_size=64, dim=32, depth=3, heads=2, moe_layers=[0, 2])
POLICY = PolicyConfig(image_size=64, frame_stack=2, dim=16, spatial_depth=1, spatial_heads=2, spatial_dim_head=8,
                      spatial_mlp_dim=32, temporal_dim=16, temporal_depth=1, temporal_heads=2, temporal_dim_head=8,
                      head_hidden=[32])


def test_bench_models_reports_sizes_and_side_by_side_times():
    result = bench_models(repeats_b1=2, repeats_b64=2, track_cfg=TRACK, policy_cfg=POLICY)
    assert KEYS <= set(result)
    assert result["moe_dense_ratio_b64"] == pytest.approx(result["track_moe_ms_b64"] / result["track_dense_ms_b64"],
                                                          rel=1e-2)
    # Two of three FFNs are 4-expert MoEs: a token touches one expert there, so 3 experts' weights
    # (Linear 32->128 and 128->32 with biases) per MoE layer are inactive; the routers are all that is extra.
    idle_experts = 2 * 3 * (32 * 128 + 128 + 128 * 32 + 32)
    assert result["track_active_params"] == result["track_params"] - idle_experts
    assert result["track_active_params"] - result["track_dense_params"] == 2 * 32 * 4  # two routers
    assert all(result[k] > 0 for k in KEYS)


def test_cli_prints_one_json_object(monkeypatch, capsys):
    monkeypatch.setattr(bench_cli, "bench_models",
                        lambda **kw: bench_models(repeats_b1=1, repeats_b64=1, track_cfg=TRACK, policy_cfg=POLICY))
    assert bench_cli.main(["models", "--json"]) == 0
    assert KEYS <= set(json.loads(capsys.readouterr().out))
