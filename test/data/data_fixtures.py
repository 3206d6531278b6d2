"""Sizes and a constructor of the small synthetic episodes the data tests share (fixtures in conftest.py)."""
import numpy as np

from tramoe_ros.data.synthetic import make_synthetic_episode

IMAGE_SIZE = 64
LENGTH = 24
VIEWS = ("agentview", "eye_in_hand")


def small_episode(seed: int, **kwargs):
    """A 24-frame, 64 px, two-view synthetic episode tracking 48 points per view; kwargs override."""
    options = dict(length=LENGTH, views=VIEWS, image_size=IMAGE_SIZE, num_tracked_points=48)
    options.update(kwargs)
    return make_synthetic_episode(np.random.default_rng(seed), **options)
