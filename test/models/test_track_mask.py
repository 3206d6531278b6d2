"""Track-mask rasterisation: pixel placement, values, dropping of out-of-image points, overlap rule, gradients."""
import pytest
import torch

from tramoe_ros.config import MaskMode
from tramoe_ros.models.track_mask import (
    AdaptiveTrackMask,
    DrawnTrackMask,
    build_track_mask,
    image_channels,
)

S = 8


def _tracks(points: list[list[tuple[float, float]]]) -> torch.Tensor:
    """points[t][k] = (x, y) -> (1, H, K, 2)"""
    return torch.tensor(points, dtype=torch.float32)[None]


# One point per step, each on its own pixel: (x, y) -> column floor(x*8), row floor(y*8).
FOUR_STEPS = _tracks([[(0.0, 0.0)], [(0.3, 0.6)], [(0.99, 0.5)], [(0.5, 0.125)]])
FOUR_PIXELS = [(0, 0), (4, 2), (4, 7), (1, 4)]  # (row, column) of steps 0..3


def _expected(values: list[float]) -> torch.Tensor:
    out = torch.zeros(1, 1, S, S)
    for (r, c), v in zip(FOUR_PIXELS, values):
        out[0, 0, r, c] = v
    return out


def test_drawn_mask_places_points_with_half_values():
    mask = DrawnTrackMask(horizon=4)(FOUR_STEPS, S)
    assert mask.shape == (1, 1, S, S)
    torch.testing.assert_close(mask, _expected([128.0, 128.0, 255.0, 255.0]), rtol=0, atol=0)


def test_drawn_mask_odd_horizon_splits_at_half():
    module = DrawnTrackMask(horizon=5)
    assert module.values().tolist() == [128.0, 128.0, 128.0, 255.0, 255.0]
    assert list(module.parameters()) == []


def test_adaptive_mask_uses_255_times_step_parameter():
    module = AdaptiveTrackMask(horizon=4)
    assert sum(p.numel() for p in module.parameters()) == 4
    torch.testing.assert_close(module.step_values.detach(), torch.full((4,), 0.5))
    with torch.no_grad():
        module.step_values.copy_(torch.tensor([0.1, 0.4, 0.7, 1.0]))
    mask = module(FOUR_STEPS, S)
    torch.testing.assert_close(mask, _expected([25.5, 102.0, 178.5, 255.0]))


def test_batch_elements_do_not_mix():
    tracks = torch.cat([FOUR_STEPS, _tracks([[(0.9, 0.9)], [(0.9, 0.9)], [(0.9, 0.9)], [(0.9, 0.9)]])])
    mask = DrawnTrackMask(horizon=4)(tracks, S)
    torch.testing.assert_close(mask[:1], _expected([128.0, 128.0, 255.0, 255.0]), rtol=0, atol=0)
    assert mask[1].count_nonzero() == 1 and mask[1, 0, 7, 7] == 255.0


@pytest.mark.parametrize("outside", [(-0.01, 0.5), (1.0, 0.5), (1.5, 0.5), (0.5, -0.01), (0.5, 1.0), (0.5, 2.3),
                                     (-1.0, -1.0), (float("nan"), 0.5)])
def test_out_of_image_points_are_dropped_not_clamped(outside):
    # Step 0 is out of the image, step 1 is a valid point at pixel (row 2, column 3).
    tracks = _tracks([[outside], [(0.4, 0.3)]])
    for module in (DrawnTrackMask(horizon=2), AdaptiveTrackMask(horizon=2)):
        mask = module(tracks, S)
        assert mask.count_nonzero() == 1, f"{outside} left a trace: {mask.nonzero().tolist()}"
        assert mask[0, 0, 2, 3] > 0


def test_latest_step_wins_on_shared_pixel_regardless_of_values_and_point_order():
    module = AdaptiveTrackMask(horizon=4)
    with torch.no_grad():
        module.step_values.copy_(torch.tensor([0.9, 0.8, 0.2, 0.1]))  # earlier steps have LARGER values
    # Point 0 visits pixel (1, 1) at step 1, point 1 at step 3: step 3 must win (not the max value).
    tracks = _tracks([[(0.9, 0.9), (0.6, 0.6)],
                      [(0.15, 0.15), (0.6, 0.6)],
                      [(0.9, 0.9), (0.6, 0.6)],
                      [(0.9, 0.9), (0.15, 0.15)]])
    for order in ([0, 1], [1, 0]):
        mask = module(tracks[:, :, order], S)
        assert mask[0, 0, 1, 1].item() == pytest.approx(255 * 0.1)
        assert mask[0, 0, 7, 7].item() == pytest.approx(255 * 0.1)  # point 0's steps 0, 2, 3 -> step 3
        assert mask[0, 0, 4, 4].item() == pytest.approx(255 * 0.2)  # point 1's steps 0..2 -> step 2
        assert mask.count_nonzero() == 3


def test_adaptive_gradient_reaches_exactly_the_steps_in_the_image():
    module = AdaptiveTrackMask(horizon=6)
    inside = {0: (0.05, 0.05), 2: (0.55, 0.3), 5: (0.8, 0.95)}
    tracks = _tracks([[inside.get(t, (1.2, 0.5))] for t in range(6)])
    weights = torch.arange(1.0, S * S + 1).view(1, 1, S, S)
    (module(tracks, S) * weights).sum().backward()
    grad = module.step_values.grad
    for t in range(6):
        if t in inside:
            x, y = inside[t]
            assert grad[t].item() == pytest.approx(255 * weights[0, 0, int(y * S), int(x * S)].item())
        else:
            assert grad[t].item() == 0.0


def test_build_track_mask_and_channel_count():
    assert build_track_mask(MaskMode.NONE, 16) is None
    assert isinstance(build_track_mask(MaskMode.DRAWN, 16), DrawnTrackMask)
    adaptive = build_track_mask(MaskMode.ADAPTIVE, 16)
    assert isinstance(adaptive, AdaptiveTrackMask) and adaptive.step_values.numel() == 16
    assert [image_channels(m) for m in (MaskMode.NONE, MaskMode.DRAWN, MaskMode.ADAPTIVE)] == [3, 4, 4]


def test_wrong_horizon_is_rejected():
    with pytest.raises(ValueError, match="tracks must be"):
        AdaptiveTrackMask(horizon=16)(torch.rand(2, 8, 32, 2), S)
