"""RandomShift moves tracks with their pixels; ColorJitter changes colours consistently across frames."""
import torch

from tramoe_ros.data.augment import color_jitter, random_shift

S = 48
PAD = 4


def marked_frames(num_frames=3, num_marks=6, seed=0):
    """Black frames with distinct single-pixel colour marks at (moving) track positions.

    Returns images (T, 3, S, S) 0..255, tracks (T, K, 2) at the marks' pixel centres, colours (K, 3).
    """
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(PAD, S - PAD, (num_frames, num_marks, 2), generator=g)
    colours = torch.stack([torch.tensor([40.0 + 30 * k, 250.0 - 30 * k, 100.0 + 20 * k]) for k in range(num_marks)])
    images = torch.zeros(num_frames, 3, S, S)
    for t in range(num_frames):
        for k in range(num_marks):
            x, y = pixels[t, k].tolist()
            images[t, :, y, x] = colours[k]
    return images, (pixels.float() + 0.5) / S, colours


def colour_at(images, tracks):
    """(T, 3, S, S), (T, K, 2) -> (T, K, 3) colour of the pixel holding each track (floor convention)."""
    cols, rows = (tracks * S).floor().long().unbind(-1)
    t = torch.arange(images.shape[0])[:, None]
    return images[t, :, rows, cols]


def test_shift_keeps_tracks_on_their_pixels():
    images, tracks, colours = marked_frames()
    assert torch.equal(colour_at(images, tracks), colours.expand(3, -1, -1))
    signs = set()
    for seed in range(30):
        shifted, moved = random_shift(images, tracks, PAD, torch.Generator().manual_seed(seed))
        assert shifted.shape == images.shape and moved.shape == tracks.shape
        offset = (moved - tracks) * S
        assert torch.allclose(offset, offset[0, 0].expand_as(offset), atol=1e-4)  # one shift for all frames
        dx, dy = offset[0, 0].round().tolist()
        assert max(abs(dx), abs(dy)) <= PAD
        signs.update({("x", (dx > 0) - (dx < 0)), ("y", (dy > 0) - (dy < 0))})
        assert torch.equal(colour_at(shifted, moved), colours.expand(3, -1, -1)), (seed, dx, dy)
    assert {("x", 1), ("x", -1), ("y", 1), ("y", -1)} <= signs


def test_shift_accepts_any_leading_dims_and_replicates_the_border():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 3, S, S, generator=g) * 255  # (views, frames, 3, S, S)
    tracks = torch.rand(2, 3, 5, 7, 2, generator=g)  # (views, frames, H, K, 2)
    for seed in range(10):
        shifted, moved = random_shift(images, tracks, PAD, torch.Generator().manual_seed(seed))
        dx, dy = ((moved - tracks)[0, 0, 0, 0] * S).round().long().tolist()
        # interior pixels come from (y - dy, x - dx); the revealed border repeats the edge
        src_rows = (torch.arange(S) - dy).clamp(0, S - 1)
        src_cols = (torch.arange(S) - dx).clamp(0, S - 1)
        assert torch.equal(shifted, images[..., src_rows[:, None], src_cols[None, :]])
        if dx > 0:  # the dx revealed columns all repeat the (row-shifted) first column
            assert torch.equal(shifted[..., :, :dx], shifted[..., :, dx:dx + 1].expand(*images.shape[:-1], dx))


def test_shift_with_zero_pad_is_identity():
    images, tracks, _ = marked_frames()
    shifted, moved = random_shift(images, tracks, 0)
    assert shifted is images and moved is tracks


def test_color_jitter_changes_colours_keeps_shape_and_range():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, S, S, generator=g) * 255
    out = color_jitter(images, 0.3, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 255
    assert (out - images).abs().mean() > 1.0
    assert torch.equal(out, color_jitter(images, 0.3, torch.Generator().manual_seed(1)))  # deterministic
    assert color_jitter(images, 0.0) is images


def test_color_jitter_uses_the_same_factors_for_every_frame():
    g = torch.Generator().manual_seed(2)
    frame_a, frame_b = torch.rand(2, 3, S, S, generator=g) * 255
    for seed in range(5):
        stack = color_jitter(torch.stack([frame_a, frame_b, frame_a]), 0.4, torch.Generator().manual_seed(seed))
        alone = color_jitter(frame_a, 0.4, torch.Generator().manual_seed(seed))
        assert torch.allclose(stack[0], alone, atol=1e-3) and torch.allclose(stack[2], alone, atol=1e-3)
    outputs = [color_jitter(frame_a, 0.4, torch.Generator().manual_seed(seed)) for seed in range(5)]
    assert all((outputs[0] - o).abs().mean() > 0.5 for o in outputs[1:])  # fresh factors per draw


def test_hue_shift_keeps_grey_grey():
    grey = torch.full((3, 8, 8), 90.0)
    out = color_jitter(grey, 0.5, torch.Generator().manual_seed(3))
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-3)
