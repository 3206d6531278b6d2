"""NewestImageSet: the views' newest images form a set only when they show one moment and all are new."""
import numpy as np
from std_msgs.msg import Header

from tramoe_ros.ros.image_sets import NewestImageSet

MS = 1_000_000


def add(sets: NewestImageSet, view: str, stamp_ms: int) -> None:
    sets.add(view, stamp_ms * MS, Header(frame_id=view), np.full((4, 4, 3), stamp_ms % 256, np.uint8))


def test_a_set_needs_every_view_within_the_tolerance():
    sets = NewestImageSet(["a", "b"], tolerance_s=0.025)
    add(sets, "a", 100)
    assert sets.newest() is None
    add(sets, "b", 140)  # 40 ms apart: not one moment
    assert not sets.ready(sets.newest())
    add(sets, "a", 150)  # 10 ms apart
    candidate = sets.newest()
    assert sets.ready(candidate)
    assert candidate.stamps == (150 * MS, 140 * MS) and candidate.stamp == 150 * MS
    assert [h.frame_id for h in candidate.headers] == ["a", "b"] and candidate.images[0][0, 0, 0] == 150


def test_a_taken_set_is_a_repeat_and_every_view_must_move_on():
    sets = NewestImageSet(["a", "b"], tolerance_s=0.0)
    add(sets, "a", 100)
    add(sets, "b", 100)
    first = sets.newest()
    sets.take(first)
    assert sets.is_repeat(sets.newest()) and not sets.ready(sets.newest())
    add(sets, "a", 150)  # b has nothing newer yet
    assert not sets.is_repeat(sets.newest()) and not sets.ready(sets.newest())
    add(sets, "b", 150)
    assert sets.ready(sets.newest())
