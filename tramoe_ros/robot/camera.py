"""Camera capture shared by `camera_node` and `tramoe-teleop`: an OpenCV device index, a device path, or a video
file played in a loop, delivering frames resized to the dataset's square size.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

REOPEN_INTERVAL_S = 1.0  # how often a device that stopped delivering frames is reopened


class CameraError(RuntimeError):
    """A camera source that does not exist or cannot be opened; the message names it."""


class FrameSource:
    """One camera. `source`: a device index ("0"), a device path (/dev/video0) or a video file (looped)."""

    def __init__(self, source: str):
        self.source = source
        self._device: int | str = int(source) if source.isdigit() else source
        self.is_file = Path(source).is_file()
        if not source.isdigit() and not Path(source).exists():
            raise CameraError(f"camera source {source!r} is neither a device index nor an existing device or "
                              f"video file")
        self._capture = cv2.VideoCapture(self._device)
        if not self._capture.isOpened():
            raise CameraError(f"OpenCV cannot open camera source {source!r}")
        if not self.is_file:
            # Keep at most one frame queued in the driver, so each read returns a fresh one.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._last_reopen = time.monotonic()

    def read(self) -> np.ndarray | None:
        """The next frame, (H, W, 3) uint8 BGR as OpenCV delivers it; None when the camera gave none (a device
        that stopped delivering is reopened, at most once every REOPEN_INTERVAL_S)."""
        ok, frame = self._capture.read()
        if not ok and self.is_file:  # end of the video: start it again
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if ok:
            return frame
        if not self.is_file and time.monotonic() - self._last_reopen > REOPEN_INTERVAL_S:
            self._last_reopen = time.monotonic()
            self._capture.release()
            self._capture = cv2.VideoCapture(self._device)
        return None

    def release(self) -> None:
        self._capture.release()


def to_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """A BGR frame as (height, width, 3) uint8 RGB, resized with area averaging when its size differs."""
    if (frame.shape[1], frame.shape[0]) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
