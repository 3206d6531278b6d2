import pytest
import torch

from tramoe_ros.config import TrackModelConfig, config_to_dict
from tramoe_ros.models.checkpoint import (CheckpointError, load_checkpoint, load_train_state, load_weights,
                                            save_checkpoint)
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.models.track_transformer import TrackTransformer

CFG = TrackModelConfig(image_size=64, dim=32, depth=2, heads=2, moe_layers=[1])


def _saved(tmp_path):
    torch.manual_seed(0)
    model = TrackTransformer(CFG)
    path = save_checkpoint(tmp_path / "tm.safetensors", model, "track_model", config_to_dict(CFG),
                           {"language_encoder": "minilm"})
    return model, path


def test_round_trip_restores_weights_config_and_id(tmp_path):
    model, path = _saved(tmp_path)
    ckpt = load_checkpoint(path, kind="track_model")
    assert ckpt.config == config_to_dict(CFG)
    assert ckpt.extra["language_encoder"] == "minilm"
    assert ckpt.model_id.startswith("tm-") and len(ckpt.model_id) == len("tm-") + 10
    other = TrackTransformer(CFG)
    load_weights(other, ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k


def test_model_id_changes_with_weights(tmp_path):
    model, path = _saved(tmp_path)
    first = load_checkpoint(path).model_id
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(path, model, "track_model", config_to_dict(CFG))
    assert load_checkpoint(path).model_id != first


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothere.safetensors does not exist"):
        load_checkpoint(tmp_path / "nothere.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        TrackPredictor.from_checkpoint(tmp_path / "nothere.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, damage):
    _, path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a checkpoint" * 10,
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=f"{path.name} is not a readable safetensors file"):
        load_checkpoint(path)


def test_wrong_kind_and_foreign_safetensors_are_rejected(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="holds a track_model, expected a policy"):
        load_checkpoint(path, kind="policy")
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no tramoe metadata"):
        load_checkpoint(foreign)


def test_shape_mismatch_names_the_tensors(tmp_path):
    _, path = _saved(tmp_path)
    bigger = TrackTransformer(TrackModelConfig(image_size=64, dim=64, depth=2, heads=2, moe_layers=[1]))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(bigger, load_checkpoint(path))
    deeper = TrackTransformer(TrackModelConfig(image_size=64, dim=32, depth=3, heads=2, moe_layers=[1]))
    with pytest.raises(CheckpointError, match=r"missing \['blocks\.2"):
        load_weights(deeper, load_checkpoint(path))


def test_corrupt_train_state_is_a_clear_error(tmp_path):
    bad = tmp_path / "train_state.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="train_state.pt is unreadable"):
        load_train_state(bad)
