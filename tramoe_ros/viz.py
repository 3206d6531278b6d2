"""Drawing predicted tracks on images (the rviz overlay, evaluation videos, demos) and writing GIF/MP4/PNG."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps
from PIL import Image


def time_colors(horizon: int) -> np.ndarray:
    """One RGB colour per trajectory time step (early = dark blue, late = yellow).

    Returns:
        (horizon, 3) uint8
    """
    return (colormaps["viridis"](np.linspace(0.0, 1.0, horizon))[:, :3] * 255).astype(np.uint8)


def draw_tracks(image: np.ndarray, tracks: np.ndarray, scale: int = 1, radius: int = 1) -> np.ndarray:
    """Draw tracks coloured by time step on a copy of `image`.

    Args:
        image: (S, S, 3) uint8 RGB
        tracks: (H, K, 2) normalised x/W, y/H; points outside the image are skipped
        scale: upsampling factor so thin lines stay readable (the output is scale*S)
    Returns:
        (scale*S, scale*S, 3) uint8 RGB
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (S, S, 3), got {image.shape}")
    if tracks.ndim != 3 or tracks.shape[2] != 2:
        raise ValueError(f"tracks must be (H, K, 2), got {tracks.shape}")
    h, w = image.shape[:2]
    canvas = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST) if scale > 1 else image.copy()
    colors = time_colors(tracks.shape[0])
    px = np.stack([tracks[..., 0] * w * scale, tracks[..., 1] * h * scale], axis=-1)
    inside = (tracks >= 0).all(-1) & (tracks < 1).all(-1) & np.isfinite(tracks).all(-1)
    for k in range(tracks.shape[1]):
        for t in range(1, tracks.shape[0]):
            if inside[t - 1, k] and inside[t, k]:
                p0 = tuple(int(v) for v in px[t - 1, k])
                p1 = tuple(int(v) for v in px[t, k])
                cv2.line(canvas, p0, p1, tuple(int(c) for c in colors[t]), max(1, scale // 2), cv2.LINE_AA)
        if inside[0, k]:
            cv2.circle(canvas, tuple(int(v) for v in px[0, k]), radius * scale, (255, 64, 64), -1, cv2.LINE_AA)
    return canvas


def write_animation(frames: list[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write RGB frames as .gif (Pillow) or .mp4 (OpenCV, mp4v), chosen by the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError("no frames to write")
    if path.suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    elif path.suffix == ".mp4":
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()
    else:
        raise ValueError(f"unsupported animation format {path.suffix!r} (use .gif or .mp4)")
    return path


def write_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
