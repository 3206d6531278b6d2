"""TrackGuidedPolicy: shapes over mask modes / views / action sizes, block-causality, late fusion, input checks,
and that a few optimiser steps fit a small batch."""
import pytest
import torch
import torch.nn.functional as F

from tramoe_ros.config import ConfigError, MaskMode, PolicyConfig
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.track_mask import AdaptiveTrackMask

PROPRIO = {"joint_states": 7, "gripper_states": 2}


def small_cfg(**kw) -> PolicyConfig:
    base = dict(
        views=["agentview", "eye_in_hand"], image_size=64, frame_stack=3, action_dim=7, proprio_dims=dict(PROPRIO),
        num_points=8, horizon=8, mask_mode=MaskMode.ADAPTIVE, dim=32, spatial_depth=1, spatial_heads=2,
        spatial_dim_head=16, spatial_mlp_dim=64, temporal_dim=32, temporal_depth=2, temporal_heads=2,
        temporal_dim_head=16, head_hidden=[64, 64], dropout=0.1,
    )
    base.update(kw)
    return PolicyConfig(**base)


def make_inputs(cfg: PolicyConfig, batch: int = 2, steps: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = cfg.frame_stack if steps is None else steps
    v, s = len(cfg.views), cfg.image_size
    images = torch.rand(batch, v, t, 3, s, s, generator=g) * 255
    # Mostly inside the image, some points outside (they must be dropped by the mask, still fed to the head).
    tracks = torch.rand(batch, v, t, cfg.horizon, cfg.num_points, 2, generator=g) * 1.1 - 0.05
    proprio = {k: torch.randn(batch, t, d, generator=g) for k, d in cfg.proprio_dims.items()}
    return images, tracks, proprio


@pytest.mark.parametrize("mode", list(MaskMode))
@pytest.mark.parametrize("views", [["agentview"], ["agentview", "eye_in_hand"]])
@pytest.mark.parametrize("action_dim", [7, 12])
def test_output_shapes_and_input_channels(mode, views, action_dim):
    cfg = small_cfg(mask_mode=mode, views=views, action_dim=action_dim)
    policy = TrackGuidedPolicy(cfg)
    out = policy(*make_inputs(cfg))
    assert out.shape == (2, cfg.frame_stack, 1, action_dim)
    assert torch.isfinite(out).all()
    assert len(policy.image_encoders) == len(views)
    first_conv = policy.image_encoders[0].net[0]
    assert first_conv.in_channels == (3 if mode == MaskMode.NONE else 4)
    assert isinstance(policy.track_mask, AdaptiveTrackMask) == (mode == MaskMode.ADAPTIVE)


@pytest.mark.parametrize("proprio_dims", [{}, {"ee_pos": 3}, {"left_joints": 6, "right_joints": 6, "grippers": 2}])
def test_any_proprio_set(proprio_dims):
    cfg = small_cfg(proprio_dims=proprio_dims)
    policy = TrackGuidedPolicy(cfg)
    assert policy(*make_inputs(cfg)).shape == (2, 3, 1, 7)


def test_num_parameters_counts_all_and_trainable():
    policy = TrackGuidedPolicy(small_cfg())
    assert policy.num_parameters() == sum(p.numel() for p in policy.parameters())
    policy.track_mask.step_values.requires_grad_(False)
    assert policy.num_parameters(trainable_only=True) == policy.num_parameters() - 8


@pytest.mark.parametrize("attention_dropout, random", [(0.0, False), (0.5, True)])
def test_attention_dropout_is_its_own_switch(attention_dropout, random):
    """With FFN/head dropout off, training-mode outputs vary between calls only through attention dropout."""
    policy = TrackGuidedPolicy(small_cfg(dropout=0.0, attention_dropout=attention_dropout)).train()
    inputs = make_inputs(policy.cfg)
    torch.manual_seed(0)
    first = policy(*inputs)
    second = policy(*inputs)
    assert torch.allclose(first, second, atol=1e-6) != random


def test_block_causal_later_frames_do_not_change_earlier_outputs():
    cfg = small_cfg()
    policy = TrackGuidedPolicy(cfg).eval()
    images, tracks, proprio = make_inputs(cfg)
    with torch.no_grad():
        base = policy(images, tracks, proprio)
        images2, tracks2 = images.clone(), tracks.clone()
        images2[:, :, -1] = 255 - images2[:, :, -1]
        tracks2[:, :, -1] = tracks2[:, :, -1].flip(-1)
        proprio2 = {k: torch.cat([v[:, :-1], v[:, -1:] + 3.0], dim=1) for k, v in proprio.items()}
        changed = policy(images2, tracks2, proprio2)
        torch.testing.assert_close(changed[:, :-1], base[:, :-1])
        assert not torch.allclose(changed[:, -1], base[:, -1], atol=1e-4)
        # The first frame does reach later steps (the mask is not blocking everything).
        images3 = images.clone()
        images3[:, :, 0] = 255 - images3[:, :, 0]
        assert not torch.allclose(policy(images3, tracks, proprio)[:, 1:], base[:, 1:], atol=1e-4)
        # Fewer frames (start of an episode) give the same outputs as the prefix of a full stack.
        short = policy(images[:, :, :2], tracks[:, :, :2], {k: v[:, :2] for k, v in proprio.items()})
        torch.testing.assert_close(short, base[:, :2])


def test_late_fusion_uses_raw_tracks_without_mask():
    cfg = small_cfg(mask_mode=MaskMode.NONE)
    policy = TrackGuidedPolicy(cfg).eval()
    images, tracks, proprio = make_inputs(cfg)
    with torch.no_grad():
        base = policy(images, tracks, proprio)
        moved = policy(images, tracks + 0.05, proprio)
    assert not torch.allclose(base, moved, atol=1e-4)

    tracks.requires_grad_(True)
    policy(images, tracks, proprio).pow(2).sum().backward()
    assert tracks.grad is not None and tracks.grad.abs().sum() > 0
    # The columns of the head's first layer that read the raw tracks get gradient.
    first = policy.head[0]
    assert first.in_features == cfg.temporal_dim + 2 * cfg.horizon * cfg.num_points * 2
    assert first.weight.grad[:, cfg.temporal_dim:].abs().sum() > 0


def test_act_returns_clamped_last_step_and_needs_eval():
    cfg = small_cfg(mask_mode=MaskMode.DRAWN)
    policy = TrackGuidedPolicy(cfg)
    inputs = make_inputs(cfg)
    with pytest.raises(RuntimeError, match="eval"):
        policy.act(*inputs)
    policy.eval()
    with torch.no_grad():
        # Scale the last layer so that some actions exceed [-1, 1] and the clamp matters.
        policy.head[-1].weight.mul_(50.0)
        full = policy(*inputs)
    action = policy.act(*inputs)
    assert action.shape == (2, 1, 7)
    assert full.abs().max() > 1.0
    torch.testing.assert_close(action, full[:, -1].clamp(-1, 1))


def _bad(cfg, what):
    images, tracks, proprio = make_inputs(cfg)
    if what == "images_channels":
        images = images[:, :, :, :2]
    elif what == "images_views":
        images = images[:, :1]
    elif what == "images_size":
        images = images[..., :32, :32]
    elif what == "images_too_many_frames":
        images = torch.cat([images, images[:, :, :1]], dim=2)
    elif what == "images_dims":
        images = images[:, 0]
    elif what == "tracks_frames":
        tracks = tracks[:, :, :2]
    elif what == "tracks_points":
        tracks = tracks[..., :4, :]
    elif what == "tracks_horizon":
        tracks = tracks[:, :, :, :4]
    elif what == "proprio_missing":
        proprio.pop("gripper_states")
    elif what == "proprio_extra":
        proprio["ee_pos"] = torch.zeros(2, 3, 3)
    elif what == "proprio_dim":
        proprio["joint_states"] = proprio["joint_states"][..., :6]
    elif what == "proprio_steps":
        proprio["joint_states"] = proprio["joint_states"][:, :2]
    return images, tracks, proprio


@pytest.mark.parametrize("what, message", [
    ("images_channels", r"images must be \(B, V=2, T, 3, 64, 64\)"),
    ("images_views", r"images must be \(B, V=2"),
    ("images_size", r"images must be .*64, 64"),
    ("images_too_many_frames", r"T=4 frames; expected 1..frame_stack=3"),
    ("images_dims", r"images must be"),
    ("tracks_frames", r"tracks must be \(B, V, T, H, K, 2\) = \(2, 2, 3, 8, 8, 2\)"),
    ("tracks_points", r"tracks must be"),
    ("tracks_horizon", r"tracks must be"),
    ("proprio_missing", r"proprio keys"),
    ("proprio_extra", r"proprio keys"),
    ("proprio_dim", r"proprio\['joint_states'\] must be \(B, T, d\) = \(2, 3, 7\)"),
    ("proprio_steps", r"proprio\['joint_states'\]"),
])
def test_bad_shapes_raise_value_error(what, message):
    cfg = small_cfg()
    policy = TrackGuidedPolicy(cfg)
    with pytest.raises(ValueError, match=message):
        policy(*_bad(cfg, what))


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="multiple of 16"):
        TrackGuidedPolicy(small_cfg(image_size=72))
    with pytest.raises(ValueError, match="identifiers"):
        TrackGuidedPolicy(small_cfg(proprio_dims={"joint.states": 7}))


def test_tiny_overfit_adaptive_mask():
    torch.manual_seed(0)
    cfg = small_cfg(mask_mode=MaskMode.ADAPTIVE, dropout=0.0)
    policy = TrackGuidedPolicy(cfg).train()
    images, tracks, proprio = make_inputs(cfg, batch=4, seed=1)
    target = torch.rand(4, cfg.frame_stack, 1, cfg.action_dim) * 2 - 1
    before = policy.track_mask.step_values.detach().clone()
    # No weight decay, so that any change of the mask parameters comes from their gradient.
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        loss = F.mse_loss(policy(images, tracks, proprio), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses
    after = policy.track_mask.step_values.detach()
    assert (after != before).all() and (after - before).abs().max() > 1e-3, (before, after)


def test_action_chunk_head_predicts_the_next_actions_of_every_step():
    cfg = small_cfg(action_chunk=4)
    policy = TrackGuidedPolicy(cfg).eval()
    inputs = make_inputs(cfg)
    out = policy(*inputs)
    assert out.shape == (2, cfg.frame_stack, 4, 7)
    # The chunk's steps are separate outputs, not one action repeated.
    assert not torch.allclose(out[:, :, 0], out[:, :, 1])
    torch.testing.assert_close(policy.act(*inputs), out[:, -1].clamp(-1, 1))
    with pytest.raises(ConfigError, match="action_chunk"):
        small_cfg(action_chunk=0)


def test_a_one_action_policy_widened_into_a_chunk_policy_acts_as_before():
    one = TrackGuidedPolicy(small_cfg()).eval()
    chunked = TrackGuidedPolicy(small_cfg(action_chunk=3)).eval()
    chunked.load_state_dict(chunked.widen_one_action_weights(one.state_dict()))
    inputs = make_inputs(small_cfg())
    before, after = one(*inputs), chunked(*inputs)
    assert after.shape == (2, 3, 3, 7)
    for c in range(3):
        torch.testing.assert_close(after[:, :, c], before[:, :, 0])
    with pytest.raises(ValueError, match="one-action"):
        chunked.widen_one_action_weights(chunked.state_dict())


def test_the_instruction_conditions_a_policy_grown_from_one_without_it():
    """`instruction_dim` > 0: the embedding steers the actions once trained; completed with zero projections
    (`with_instruction_weights`), a policy without instruction input acts exactly as before whatever the
    instruction."""
    torch.manual_seed(0)
    plain = TrackGuidedPolicy(small_cfg(dropout=0.0)).eval()
    cfg = small_cfg(dropout=0.0, instruction_dim=6)
    conditioned = TrackGuidedPolicy(cfg).eval()
    conditioned.load_state_dict(conditioned.with_instruction_weights(plain.state_dict()))
    inputs = make_inputs(cfg)
    first, second = torch.randn(2, 6), torch.randn(2, 6)
    torch.testing.assert_close(conditioned(*inputs, first), plain(*inputs))
    torch.testing.assert_close(conditioned(*inputs, second), plain(*inputs))

    conditioned.train()
    opt = torch.optim.AdamW(conditioned.parameters(), lr=1e-3, weight_decay=0.0)
    targets = torch.rand(2, 2, cfg.frame_stack, 1, cfg.action_dim) * 2 - 1  # one target per instruction
    for _ in range(30):
        loss = sum(F.mse_loss(conditioned(*inputs, e), y) for e, y in zip((first, second), targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
    conditioned.eval()
    gap = (conditioned(*inputs, first) - conditioned(*inputs, second)).abs().mean()
    assert gap > 0.1, gap
    # Both the spatial and the temporal query learnt from the instruction.
    assert conditioned.instruction_spatial.weight.abs().sum() > 0
    assert conditioned.instruction_temporal.weight.abs().sum() > 0


def test_instruction_inputs_are_checked():
    needs = TrackGuidedPolicy(small_cfg(instruction_dim=6))
    inputs = make_inputs(needs.cfg)
    with pytest.raises(ValueError, match=r"instruction must be the \(B, instruction_dim\) = \(2, 6\) embedding, "
                                         r"got None"):
        needs(*inputs)
    with pytest.raises(ValueError, match=r"= \(2, 6\) embedding, got \(2, 5\)"):
        needs(*inputs, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="takes no instruction"):
        TrackGuidedPolicy(small_cfg())(*inputs, torch.zeros(2, 6))
    with pytest.raises(ConfigError, match="instruction_dim"):
        small_cfg(instruction_dim=-1)
