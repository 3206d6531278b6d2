"""`tramoe-ablate` on a tiny generated dataset: the four track variants (dense / MoE x in-domain / + out-of-domain)
and the three policy conditionings train, are validated on the same in-domain episodes, and are tabled, plotted
and not trained again when run a second time."""
import json

from training_fixtures import TINY_POLICY, TINY_TRACK, sources

from tramoe_ros.cli.ablate import main
from tramoe_ros.paths import config_path

# Two epochs, validated only after the second: the ablation picks the best among the validated epochs.
SHORT = ["train.epochs=2", "train.max_steps_per_epoch=2", "train.val_every=2", "train.save_every=1"]


def test_track_and_policy_ablations(synthetic_data, tmp_path, capsys):
    out = tmp_path / "ablation"
    args = ["tracks", "--config", str(config_path("smoke_tracks.yaml")), "--in-domain", "robot", "--out", str(out),
            sources(synthetic_data), *TINY_TRACK, *SHORT]
    assert main(args) == 0
    rows = {r["variant"]: r for r in json.loads((out / "tracks.json").read_text())}
    assert list(rows) == ["dense_in", "moe_in", "dense_in_ood", "moe_in_ood"]
    # Dense variants have no experts; MoE variants hold more parameters than they activate.
    assert rows["dense_in"]["params"] == rows["dense_in"]["active_params"]
    assert rows["moe_in"]["params"] > rows["moe_in"]["active_params"] > rows["dense_in"]["active_params"] - 1
    # Out-of-domain episodes add training items; validation is the same in-domain episodes for all four.
    assert rows["moe_in_ood"]["train_items"] > rows["moe_in"]["train_items"]
    assert len({r["val_items"] for r in rows.values()}) == 1
    assert len({r["val_static_mse"] for r in rows.values()}) == 1
    assert all(r["val_track_mse"] > 0 for r in rows.values())
    assert (out / "tracks.png").stat().st_size > 1000
    assert "| Tra-MoE, in + out-of-domain | yes | yes |" in (out / "tracks.md").read_text()

    # A second run reuses every finished variant, and a variant stopped after its last checkpoint but before its
    # result (here: the result removed) continues from its train state instead of training again.
    stamp = (out / "tracks" / "moe_in" / "result.json").stat().st_mtime_ns
    (out / "tracks" / "dense_in" / "result.json").unlink()
    weights = (out / "tracks" / "dense_in" / "last.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "tracks" / "moe_in" / "result.json").stat().st_mtime_ns == stamp
    assert (out / "tracks" / "dense_in" / "last.safetensors").stat().st_mtime_ns == weights
    assert json.loads((out / "tracks.json").read_text())[0] == rows["dense_in"]

    track_model = out / "tracks" / "moe_in_ood" / "best.safetensors"
    assert main(["policy", "--config", str(config_path("smoke_policy.yaml")), "--out", str(out),
                 sources(synthetic_data, with_ood=False), f"track_model={track_model}", *TINY_POLICY, *SHORT]) == 0
    policy_rows = json.loads((out / "policy.json").read_text())
    assert [r["mask_mode"] for r in policy_rows] == ["none", "drawn", "adaptive"]
    assert all(r["val_action_mse"] > 0 for r in policy_rows)
    assert (out / "policy.png").stat().st_size > 1000
    assert "adaptive mask" in capsys.readouterr().out


def test_ablation_needs_an_out_of_domain_source(synthetic_data, tmp_path, capsys):
    assert main(["tracks", "--config", str(config_path("smoke_tracks.yaml")), "--in-domain", "robot",
                 "--out", str(tmp_path), sources(synthetic_data, with_ood=False), *TINY_TRACK, *SHORT]) == 2
    assert "needs out-of-domain sources" in capsys.readouterr().err
