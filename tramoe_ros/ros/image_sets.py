"""`NewestImageSet`: the newest image of every camera view, taken as one observation when the views show one moment.

Used by the track node (one track prediction per set) and by the policy node in real time (one action per set).
The views form a set when their stamps lie within `tolerance_s` (0 for the LIBERO bridge, which stamps all views
of a step alike; about half a frame for real cameras that are not triggered together) and each view's image is
newer than the one in the last set taken, so no image is used twice and a slow consumer skips to the newest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from std_msgs.msg import Header


@dataclass(frozen=True)
class ImageSet:
    """One image per view, in the order of the views.

    stamps: image stamps (ns); headers: the images' headers; images: (S, S, 3) uint8 each."""

    stamps: tuple[int, ...]
    headers: tuple[Header, ...]
    images: tuple[np.ndarray, ...]

    @property
    def stamp(self) -> int:
        """The newest of the views' stamps: the set's stamp."""
        return max(self.stamps)


class NewestImageSet:
    def __init__(self, views: list[str], tolerance_s: float):
        self.views = list(views)
        self.tolerance_ns = int(tolerance_s * 1e9)
        self._latest: dict[str, tuple[int, Header, np.ndarray]] = {}
        self.last_taken: tuple[int, ...] | None = None

    def add(self, view: str, stamp_ns: int, header: Header, rgb: np.ndarray) -> None:
        self._latest[view] = (stamp_ns, header, rgb)

    def newest(self) -> ImageSet | None:
        """The newest image of every view (None until each view has one), whether or not it forms a set."""
        if any(v not in self._latest for v in self.views):
            return None
        entries = [self._latest[v] for v in self.views]
        return ImageSet(tuple(e[0] for e in entries), tuple(e[1] for e in entries), tuple(e[2] for e in entries))

    def is_repeat(self, candidate: ImageSet) -> bool:
        """The same images as the last set taken (a lock-step bridge re-sending its observation)."""
        return candidate.stamps == self.last_taken

    def ready(self, candidate: ImageSet) -> bool:
        """Every view's image is newer than in the last set taken, and the views show one moment."""
        if self.last_taken is not None and any(s <= last for s, last in zip(candidate.stamps, self.last_taken)):
            return False
        return max(candidate.stamps) - min(candidate.stamps) <= self.tolerance_ns

    def take(self, candidate: ImageSet) -> None:
        self.last_taken = candidate.stamps
