"""Tra-MoE track transformer: shapes, dense/MoE equivalence, parameter counts and the training loss."""
import re

import pytest
import torch

from tramoe_ros.config import GateMode, TrackLossConfig, TrackModelConfig
from tramoe_ros.models.moe import router_z_loss
from tramoe_ros.models.track_transformer import TrackTransformer, patchify, track_loss


def small_config(**overrides) -> TrackModelConfig:
    values = dict(image_size=64, dim=64, depth=3, heads=4, num_points=8, moe_layers=[0, 2], dropout=0.0)
    values.update(overrides)
    return TrackModelConfig(**values)


def inputs(cfg: TrackModelConfig, batch: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=generator) * 255
    queries = torch.rand(batch, cfg.num_points, 2, generator=generator)
    language = torch.randn(batch, cfg.language_dim, generator=generator)
    return image, queries, language


@pytest.mark.parametrize("moe_layers", [[0, 4, 7], []])
def test_default_config_shapes(moe_layers):
    cfg = TrackModelConfig(moe_layers=moe_layers)
    torch.manual_seed(0)
    model = TrackTransformer(cfg).eval()
    with torch.no_grad():
        out = model(*inputs(cfg, 2))
    assert out.tracks.shape == (2, 16, 32, 2)
    assert out.image_recon.shape == (2, 64, 3 * 16 * 16)
    assert out.image_mask is None
    assert len(out.routing) == len(moe_layers)
    assert out.moe_layers == moe_layers
    for info in out.routing:
        assert info.expert_index.shape == (2 * (128 + 64 + 1), 1)
    fractions = out.expert_fractions()
    assert sorted(fractions) == moe_layers
    for value in fractions.values():
        assert value.shape == (4,) and value.sum().item() == pytest.approx(1.0)


def test_training_mode_masks_a_fixed_fraction_of_image_tokens():
    cfg = small_config(image_mask_ratio=0.5)
    torch.manual_seed(0)
    model = TrackTransformer(cfg).train()
    image, queries, language = inputs(cfg, 3)
    out = model(image, queries, language)
    assert out.image_mask is not None and out.image_mask.shape == (3, 16) and out.image_mask.dtype == torch.bool
    assert out.image_mask.sum(dim=1).tolist() == [8, 8, 8]
    # The mask differs between samples and calls (random), so the masked patches are not fixed.
    assert not torch.equal(out.image_mask, model(image, queries, language).image_mask)
    assert TrackTransformer(small_config(image_mask_ratio=0.0)).train()(image, queries, language).image_mask is None


def test_masked_patch_content_does_not_reach_the_output():
    """A masked patch is replaced by the mask token, so changing its pixels changes nothing."""
    cfg = small_config(image_mask_ratio=0.5)
    torch.manual_seed(0)
    model = TrackTransformer(cfg).train()
    image, queries, language = inputs(cfg, 1)
    torch.manual_seed(5)
    out = model(image, queries, language)
    masked = int(out.image_mask[0].nonzero()[0])
    row, col = divmod(masked, cfg.image_size // cfg.image_patch)
    edited = image.clone()
    p = cfg.image_patch
    edited[..., row * p:(row + 1) * p, col * p:(col + 1) * p] = 0.0
    torch.manual_seed(5)
    out_edited = model(edited, queries, language)
    assert torch.equal(out.image_mask, out_edited.image_mask)
    torch.testing.assert_close(out.tracks, out_edited.tracks)


def test_queries_and_language_change_the_prediction():
    cfg = small_config()
    torch.manual_seed(0)
    model = TrackTransformer(cfg).eval()
    image, queries, language = inputs(cfg, 2)
    with torch.no_grad():
        base = model(image, queries, language).tracks
        assert not torch.allclose(base, model(image, queries.flip(-1), language).tracks)
        assert not torch.allclose(base, model(image, queries, language + 1.0).tracks)


def test_dense_equals_moe_with_one_expert():
    """With one expert and the straight-through gate (forward value exactly 1), MoE blocks are dense blocks."""
    dense_cfg = small_config(moe_layers=[])
    moe_cfg = small_config(moe_layers=[0, 1, 2], num_experts=1, top_k=1, gate_mode=GateMode.STRAIGHT_THROUGH)
    torch.manual_seed(0)
    dense = TrackTransformer(dense_cfg).eval()
    moe = TrackTransformer(moe_cfg).eval()
    state = {re.sub(r"^(blocks\.\d+)\.ffn\.", r"\1.moe.experts.0.", key): value
             for key, value in dense.state_dict().items()}
    state.update({key: value for key, value in moe.state_dict().items() if key.endswith("moe.router.weight")})
    moe.load_state_dict(state, strict=True)
    image, queries, language = inputs(dense_cfg, 2)
    with torch.no_grad():
        dense_out = dense(image, queries, language)
        moe_out = moe(image, queries, language)
    assert len(moe_out.routing) == 3
    torch.testing.assert_close(moe_out.tracks, dense_out.tracks, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(moe_out.image_recon, dense_out.image_recon, atol=1e-6, rtol=1e-5)


def test_parameter_counts():
    cfg = TrackModelConfig()
    dense = TrackTransformer(TrackModelConfig(moe_layers=[]))
    moe = TrackTransformer(cfg)
    per_expert = 2 * cfg.dim * cfg.dim * cfg.mlp_ratio + cfg.dim * cfg.mlp_ratio + cfg.dim
    routers = len(cfg.moe_layers) * cfg.dim * cfg.num_experts
    assert dense.num_active_parameters() == dense.num_parameters()
    assert moe.num_parameters() == dense.num_parameters() + len(cfg.moe_layers) * (cfg.num_experts - 1) * per_expert \
        + routers
    # One token touches one expert per MoE layer: the dense model's parameters plus the routers.
    assert moe.num_active_parameters() == dense.num_parameters() + routers


def test_track_loss_terms_and_overfit():
    cfg = small_config()
    torch.manual_seed(0)
    model = TrackTransformer(cfg).train()
    image, queries, language = inputs(cfg, 2)
    target = queries[:, None] + 0.05 * torch.randn(2, cfg.horizon, cfg.num_points, 2).cumsum(dim=1)
    weights = TrackLossConfig(track=10.0, image=1.0, load_balance=0.01, z=1e-3)

    out = model(image, queries, language)
    total, terms = track_loss(out, target, image, weights)
    assert set(terms) == {"track", "image", "load_balance", "z", "total"}
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    z_sum = sum(router_z_loss(info.logits).item() for info in out.routing)
    assert terms["z"] == pytest.approx(z_sum, rel=1e-5)
    assert terms["track"] == pytest.approx(((out.tracks - target) ** 2).mean().item(), rel=1e-5)
    normalised_patches = patchify(image / 127.5 - 1.0, cfg.image_patch)
    assert terms["image"] == pytest.approx(((out.image_recon - normalised_patches) ** 2).mean().item(), rel=1e-5)
    weighted_without_z = 10.0 * terms["track"] + terms["image"] + 0.01 * terms["load_balance"]
    assert total.item() - weighted_without_z == pytest.approx(1e-3 * z_sum, rel=1e-3)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = terms["total"]
    for _ in range(25):
        total, terms = track_loss(model(image, queries, language), target, image, weights)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert terms["total"] < 0.5 * first
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())


def test_track_loss_of_dense_model_has_zero_router_terms():
    cfg = small_config(moe_layers=[])
    model = TrackTransformer(cfg).eval()
    image, queries, language = inputs(cfg, 2)
    total, terms = track_loss(model(image, queries, language), torch.zeros(2, 16, 8, 2), image, TrackLossConfig())
    assert terms["load_balance"] == 0.0 and terms["z"] == 0.0
    assert total.item() == pytest.approx(10.0 * terms["track"] + terms["image"], rel=1e-6)


def test_track_loss_alone_trains_the_routers():
    """With the auxiliary weights at 0 the default (straight-through) routers still get gradient from the task."""
    cfg = small_config()
    assert cfg.gate_mode is GateMode.STRAIGHT_THROUGH
    torch.manual_seed(0)
    model = TrackTransformer(cfg).train()
    image, queries, language = inputs(cfg, 2)
    total, _ = track_loss(model(image, queries, language), torch.rand(2, 16, 8, 2), image,
                          TrackLossConfig(load_balance=0.0, z=0.0))
    total.backward()
    for index in cfg.moe_layers:
        assert model.blocks[index].moe.router.weight.grad.abs().sum() > 0


def test_displacement_head_starts_at_nothing_moves_and_learns_motion():
    """With `predict_displacement` the untrained model repeats each query point over the horizon exactly; the
    absolute head (ATM's) does not. Trained on a drift, the displacement model learns it."""
    image, queries, language = inputs(small_config(), 4)
    torch.manual_seed(0)
    absolute = TrackTransformer(small_config()).eval()
    torch.manual_seed(0)
    displacement = TrackTransformer(small_config(predict_displacement=True)).eval()
    with torch.no_grad():
        still = queries[:, None].expand(-1, displacement.cfg.horizon, -1, -1)
        assert torch.equal(displacement(image, queries, language).tracks, still)
        assert (absolute(image, queries, language).tracks - still).abs().mean() > 0.1

    drift = torch.linspace(0, 0.2, displacement.cfg.horizon)[None, :, None, None] * torch.tensor([1.0, -0.5])
    target = still + drift
    displacement.train()
    optimizer = torch.optim.Adam(displacement.parameters(), lr=1e-3)
    weights = TrackLossConfig(track=10.0, image=0.0, load_balance=0.0, z=0.0)
    first = None
    for _ in range(30):
        total, terms = track_loss(displacement(image, queries, language), target, image, weights)
        first = terms["track"] if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert terms["track"] < 0.2 * first


def test_query_position_embedding_is_the_image_patch_embedding_at_the_query():
    """With `query_pos_embed`, a query at a patch's centre adds exactly that patch's position embedding to its
    track tokens (rows and columns not swapped, no half-patch offset), and a query between two patches gets
    something else; without it the track tokens do not depend on where the image patches are."""
    cfg = small_config(query_pos_embed=True)
    torch.manual_seed(0)
    with_position = TrackTransformer(cfg).eval()
    without = TrackTransformer(small_config())
    without.load_state_dict(with_position.state_dict())
    grid = cfg.image_size // cfg.image_patch
    patch_row, patch_column = torch.tensor([0, 1, 3, 2]), torch.tensor([2, 0, 3, 1])
    centres = torch.stack([(patch_column + 0.5) / grid, (patch_row + 0.5) / grid], dim=-1)[None]  # (1, 4, 2)
    added = with_position._embed_tracks(centres) - without._embed_tracks(centres)
    expected = with_position.image_pos_embed[patch_row * grid + patch_column]  # (4, dim)
    tokens_per_point = cfg.horizon // cfg.track_patch
    torch.testing.assert_close(added[0], expected.repeat(tokens_per_point, 1), atol=1e-5, rtol=0)
    between = centres + torch.tensor([0.5 / grid, 0.0])
    shifted = with_position._embed_tracks(between) - without._embed_tracks(between)
    assert (shifted[0, :4] - expected).abs().max() > 0.1
