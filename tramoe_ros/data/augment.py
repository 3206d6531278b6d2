"""Image augmentations for track and policy training (paper Tab. 6/7: ColorJitter, RandomShift), pure torch.

Each call draws ONE set of random parameters and applies it to every image passed, so a frame stack (and the
views of one policy sample) stay mutually consistent: call once per sample, not once per batch.
"""
from __future__ import annotations

import math

import torch

# ITU-R BT.601 luma weights (as torchvision's grayscale).
_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ: Y is luma, (I, Q) the chroma plane in which a rotation shifts hue.
_RGB_TO_YIQ = torch.tensor([
    [0.299, 0.587, 0.114],
    [0.596, -0.274, -0.322],
    [0.211, -0.523, 0.312],
], dtype=torch.float64)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) luma."""
    weights = images.new_tensor(_LUMA)
    return torch.einsum("...chw,c->...hw", images, weights).unsqueeze(-3)


def _hue_rotation(angle: float) -> torch.Tensor:
    """(3, 3) RGB -> RGB matrix rotating hue by `angle` radians in YIQ space (luma unchanged)."""
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]], dtype=torch.float64)
    return torch.linalg.inv(_RGB_TO_YIQ) @ rotation @ _RGB_TO_YIQ


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast, saturation and hue, applied in that order, clamped to [0, 255] after each.

    Factors follow torchvision's ColorJitter(s, s, s, s) (ATM uses s = 0.3): brightness, contrast and
    saturation factors uniform in [max(0, 1 - s), 1 + s]; hue shift uniform in [-h, h] turns with
    h = min(s, 0.5), applied as a rotation of the YIQ chroma plane (close to, not identical with, an HSV hue
    shift). Contrast blends each frame with its own mean luma; saturation with the pixel's luma.

    Args:
        images: (..., 3, H, W) float, 0..255; every image gets the same factors.
        strength: s >= 0; 0 returns the images unchanged.
    Returns:
        (..., 3, H, W) float, 0..255
    """
    if strength < 0:
        raise ValueError(f"color_jitter strength must be >= 0, got {strength}")
    if images.shape[-3] != 3:
        raise ValueError(f"color_jitter expects (..., 3, H, W) RGB images, got shape {tuple(images.shape)}")
    if strength == 0:
        return images
    low = max(0.0, 1.0 - strength)
    brightness, contrast, saturation, hue = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    brightness, contrast, saturation = (low + u * (1.0 + strength - low) for u in (brightness, contrast, saturation))
    hue_turns = (2.0 * hue - 1.0) * min(strength, 0.5)

    out = (images * brightness).clamp(0, 255)
    frame_mean_luma = _grayscale(out).mean(dim=(-3, -2, -1), keepdim=True)
    out = (contrast * out + (1.0 - contrast) * frame_mean_luma).clamp(0, 255)
    out = (saturation * out + (1.0 - saturation) * _grayscale(out)).clamp(0, 255)
    mix = _hue_rotation(2.0 * math.pi * hue_turns).to(images.dtype)
    return torch.einsum("ij,...jhw->...ihw", mix, out).clamp(0, 255)


def random_shift(
    images: torch.Tensor, tracks: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate images by one random integer offset (dx, dy) in [-pad, pad]², filling the border by replicating
    the edge pixels (equivalent to replicate-padding by `pad` and cropping back), and move the tracks with the
    pixels: the content at pixel (x, y) lands at (x + dx, y + dy), so a track's normalised position becomes
    (x + dx / W, y + dy / H). (ATM's reference adds the crop offset instead, which moves tracks the wrong way.)

    Tracks may end up outside [0, 1) near the border; callers update visibility if they use it.

    Args:
        images: (..., C, H, W) float; one shift for all of them.
        tracks: (..., 2) normalised (x, y), any leading dims; shifted by the same offset.
        pad: maximum shift in pixels; 0 returns the inputs unchanged.
    Returns:
        (images, tracks) with the input shapes and dtypes.
    """
    if pad < 0:
        raise ValueError(f"random_shift pad must be >= 0, got {pad}")
    if tracks.shape[-1] != 2:
        raise ValueError(f"random_shift expects tracks (..., 2), got shape {tuple(tracks.shape)}")
    if pad == 0:
        return images, tracks
    height, width = images.shape[-2:]
    dx, dy = torch.randint(-pad, pad + 1, (2,), generator=generator).tolist()
    # Output pixel (y, x) shows input pixel (y - dy, x - dx); clamping the index replicates the border.
    rows = (torch.arange(height, device=images.device) - dy).clamp(0, height - 1)
    cols = (torch.arange(width, device=images.device) - dx).clamp(0, width - 1)
    shifted = images.index_select(-2, rows).index_select(-1, cols)
    offset = tracks.new_tensor([dx / width, dy / height])
    return shifted, tracks + offset
