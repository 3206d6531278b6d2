"""Videos without actions (e.g. human videos, the out-of-domain data) as episodes: decoded, centre-cropped to a
square, resized, and labelled with a point tracker."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from einops import rearrange

from tramoe_ros.data.episode import Episode, write_episode
from tramoe_ros.labeling.point_trackers import PointTracker
from tramoe_ros.labeling.relabel import LabelError, label_view

VIDEO_SUFFIXES = (".mp4", ".avi")


def read_video(path: Path, size: int, stride: int = 1) -> np.ndarray:
    """Frames of a video file, centre-cropped to a square and resized to size x size, every `stride`-th.

    Returns:
        (T, 3, size, size) uint8 RGB.
    Raises:
        LabelError when the file cannot be opened or decoded, or has no frames.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise LabelError(f"{path}: cannot open as a video (unsupported codec or not a video file)")
    frames = []
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % stride == 0:
                height, width = frame.shape[:2]
                side = min(height, width)
                top, left = (height - side) // 2, (width - side) // 2
                square = frame[top:top + side, left:left + side]
                interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
                resized = cv2.resize(square, (size, size), interpolation=interpolation)
                frames.append(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise LabelError(f"{path}: no frames could be decoded")
    return rearrange(np.stack(frames), "t h w c -> t c h w")


def import_video(path: Path, out_path: Path, tracker: PointTracker, sample_queries: Callable[[], np.ndarray], *,
                 size: int, stride: int, view: str, domain: str, instruction: str | None = None) -> list[str]:
    """Write a video file as an action-free episode with one labelled view.

    Args:
        sample_queries: called once: the view's (N, 2) normalised queries at frame 0
        size, stride: as `read_video`
        view, domain: the episode's view name and domain tag
        instruction: the episode's instruction (default: the file name, _ and - read as spaces)
    Returns:
        [view]
    """
    video = read_video(path, size, stride)
    if instruction is None:
        instruction = path.stem.replace("_", " ").replace("-", " ")
    episode = Episode(views={view: label_view(tracker, video, sample_queries())}, instruction=instruction,
                      domain=domain)
    write_episode(out_path, episode)
    return [view]
