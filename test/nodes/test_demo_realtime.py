"""tramoe-demo in real time on short episodes: the graph runs one process per node, one episode per initial state
(the later ones through /libero/reset), and summary.json holds each episode's steps and the rate of fresh actions
the simulation applied; a node that cannot start ends the demo with its name and its error."""
import importlib.util
import json

import pytest

from tramoe_ros.cli.demo import main

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libero") is None, reason="LIBERO is not installed")

STEPS = 12


def test_realtime_episodes_through_the_graph(tiny_models, tmp_path, driver):
    track, policy = tiny_models
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--policy", str(policy), "--track-model", str(track), "--steps", str(STEPS),
                 "--init-states", "30-31"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "realtime"
    assert [e["init_state"] for e in summary["episodes"]] == [30, 31]
    for episode in summary["episodes"]:
        assert episode["steps"] == STEPS and episode["done"]
        # Every step applied one thing: its observation's action (on time), what an older observation's chunk
        # planned for it, an older observation's own action (late), a repeat, or a hold.
        assert episode["on_time_steps"] + episode["planned_steps"] + episode["late_steps"] \
            + episode["repeated_steps"] + episode["hold_steps"] == STEPS
        assert episode["on_time_steps"] > 0
        assert 0 < episode["fresh_action_rate_hz"] <= 21.0
        assert 15.0 < episode["sim_rate_hz"] <= 21.0
        assert episode["latency_ms_p50"] > 0
    assert 0 < summary["fresh_action_rate_hz"] <= 21.0 and summary["success_rate"] == 0.0
    assert (out / "tracks.mp4").stat().st_size > 0 and (out / "bag" / "metadata.yaml").exists()
    assert {p.name for p in (out / "logs").iterdir()} >= {"libero_bridge_node.log", "policy_node.log"}


def test_a_node_that_cannot_start_ends_the_demo_with_its_error(tiny_models, tmp_path, driver, capsys):
    track, _ = tiny_models
    code = main(["--out", str(tmp_path / "demo"), "--policy", str(tmp_path / "missing.safetensors"),
                 "--track-model", str(track), "--steps", "5", "--no-record"])
    assert code == 1
    error = capsys.readouterr().err
    assert "policy_node exited with status 1" in error and "missing.safetensors" in error
