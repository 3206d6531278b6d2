"""Synthetic episodes for tests and the smoke demo (no simulator).

A scene holds three coloured blocks (squares) or discs on a smooth textured background. The instruction
``"move the <colour> <shape> <direction>"`` names one of them, which then slides in that direction with a
sine speed profile; the others stay put. The motion, and so the actions, are a deterministic function of the
instruction (start positions are random), so a model conditioned on the instruction has something to learn.

Views: the first view is a fixed camera on the whole scene; every further view is a 2x zoomed camera that
follows the moving object (an eye-in-hand camera on a gripper holding it), so there the object stays put and
the background moves. Tracks are the exact positions of points on the objects and on the background (in the
episode format's convention, pixel = floor(x * S)); a point is invisible when it leaves the image or another
object covers it (the point or the centre of its pixel). Actions are the object's velocity scaled to [-1, 1]
in the first two dims, zeros after.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from einops import rearrange
from tqdm import tqdm

from tramoe_ros.data.episode import Episode, ViewData, write_episode

# Saturated colours: every one has a channel outside the background's range [78, 178], so object pixels are
# never mistaken for background.
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 210, 40),
}
SHAPES = ("block", "disc")
# Unit motion in image coordinates (y points down).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
}
_INSTRUCTION = re.compile(r"move the (\w+) (\w+) (\w+)")

NUM_OBJECTS = 3
HALF_SIZE = 0.07  # object half side / radius, world units (the scene spans [0, 1]²)
TRAVEL = 0.35  # the named object's total displacement, world units
FOLLOW_ZOOM = 2.0  # zoom of the cameras after the first
FOLLOW_OFFSET = np.array([0.0, -0.05])  # the following camera looks slightly above the object
INTERIOR = 0.6  # object points lie within this fraction of the half size, well inside the object's pixels
BACKGROUND_MARGIN_PX = 1.5  # background points start at least this far from any object


def synthetic_instructions() -> list[str]:
    """Every instruction the generator understands (colours x shapes x directions)."""
    return [f"move the {c} {s} {d}" for c in OBJECT_COLOURS for s in SHAPES for d in DIRECTIONS]


def parse_instruction(instruction: str) -> tuple[str, str, str]:
    """(colour, shape, direction) of a synthetic instruction; ValueError for anything else."""
    match = _INSTRUCTION.fullmatch(instruction.strip())
    if not match or match[1] not in OBJECT_COLOURS or match[2] not in SHAPES or match[3] not in DIRECTIONS:
        raise ValueError(
            f"synthetic instruction {instruction!r} is not 'move the <colour> <shape> <direction>' with colour in "
            f"{list(OBJECT_COLOURS)}, shape in {list(SHAPES)}, direction in {list(DIRECTIONS)}"
        )
    return match[1], match[2], match[3]


@dataclass
class _SceneObject:
    colour: str
    shape: str
    centres: np.ndarray  # (T, 2) world position per frame

    def contains(self, points: np.ndarray, t: int, half_size: float = HALF_SIZE) -> np.ndarray:
        """(..., 2) world points -> (...,) bool inside the object at frame t."""
        offset = points - self.centres[t]
        if self.shape == "block":
            return (np.abs(offset) <= half_size).all(axis=-1)
        return (offset ** 2).sum(axis=-1) <= half_size ** 2


def _background(world: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Smooth texture in world coordinates, so a static background point keeps its colour: (..., 2) -> (..., 3)
    uint8 in [78, 178]."""
    x, y = world[..., 0, None], world[..., 1, None]
    texture = (
        128
        + 28 * np.sin(2 * np.pi * (3 * x + phases[0])) * np.cos(2 * np.pi * (2 * y + phases[1]))
        + 14 * np.sin(2 * np.pi * (5 * (x + y) + phases[2]))
        + 8 * np.sin(2 * np.pi * phases[3])  # per-channel tint
    )
    return np.clip(np.round(texture), 78, 178).astype(np.uint8)


def _topmost(objects: list[_SceneObject], points: np.ndarray, t: int) -> np.ndarray:
    """Index of the object drawn on top at each (..., 2) world point at frame t, -1 for background."""
    top = np.full(points.shape[:-1], -1)
    for index, obj in enumerate(objects):  # later objects are drawn over earlier ones
        top[obj.contains(points, t)] = index
    return top


def _camera(view_index: int, objects: list[_SceneObject], length: int) -> tuple[np.ndarray, float]:
    """(T, 2) world point at each frame's image centre, and the zoom, of view `view_index`."""
    if view_index == 0:
        return np.full((length, 2), 0.5), 1.0
    return objects[-1].centres + FOLLOW_OFFSET, FOLLOW_ZOOM


def _sample_points(
    rng: np.random.Generator,
    objects: list[_SceneObject],
    camera_centre: np.ndarray,
    zoom: float,
    image_size: int,
    num_points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Points to track in one view, at frame 0: half on the objects' interiors, half on background visible in
    the view and clear of every object. Returns world positions (N, 2) and owners (N,) (-1 = background)."""
    num_on_objects = num_points // 2
    per_object = np.full(NUM_OBJECTS, num_on_objects // NUM_OBJECTS)
    per_object[-1] += num_on_objects - per_object.sum()
    positions, owners = [], []
    for index, (obj, count) in enumerate(zip(objects, per_object)):
        if obj.shape == "block":
            offsets = rng.uniform(-INTERIOR * HALF_SIZE, INTERIOR * HALF_SIZE, size=(count, 2))
        else:
            radius = INTERIOR * HALF_SIZE * np.sqrt(rng.uniform(size=count))
            angle = rng.uniform(0, 2 * np.pi, size=count)
            offsets = rearrange([radius * np.cos(angle), radius * np.sin(angle)], "c n -> n c")
        positions.append(obj.centres[0] + offsets)
        owners.append(np.full(count, index))

    num_background = num_points - num_on_objects
    margin = BACKGROUND_MARGIN_PX / (image_size * zoom)
    background = np.empty((0, 2))
    while len(background) < num_background:
        view_points = rng.uniform(0, 1, size=(4 * num_background, 2))
        world = (view_points - 0.5) / zoom + camera_centre[0]
        clear = ~np.any([obj.contains(world, 0, HALF_SIZE + margin) for obj in objects], axis=0)
        background = np.concatenate([background, world[clear]])
    positions.append(background[:num_background])
    owners.append(np.full(num_background, -1))
    return np.concatenate(positions), np.concatenate(owners)


def make_synthetic_episode(
    rng: np.random.Generator,
    length: int = 40,
    views: Sequence[str] = ("agentview", "eye_in_hand"),
    image_size: int = 128,
    num_tracked_points: int = 64,
    with_actions: bool = True,
    action_dim: int = 7,
    instruction: str | None = None,
    domain: str = "synthetic",
) -> Episode:
    """One synthetic episode (see the module docstring).

    Args:
        rng: source of the scene layout, texture, the instruction (when not given) and the tracked points.
        instruction: "move the <colour> <shape> <direction>" (`synthetic_instructions()`); random when None.
        with_actions: False gives an action-free video (no actions, no proprio).
    Returns:
        Episode with views (T, 3, S, S) video, (T, N, 2) tracks, (T, N) visibility; actions (T, action_dim);
        proprio joint_states (T, 7) and gripper_states (T, 2).
    """
    if length < 2:
        raise ValueError(f"synthetic episodes need at least 2 frames, got length {length}")
    if with_actions and action_dim < 2:
        raise ValueError(f"synthetic actions need action_dim >= 2 (x, y velocity), got {action_dim}")
    if instruction is None:
        instruction = str(rng.choice(synthetic_instructions()))
    colour, shape, direction = parse_instruction(instruction)

    # Sine speed profile: starts and ends at rest; fractions sum to 1 over the episode, so it travels TRAVEL.
    profile = np.sin(np.pi * (np.arange(length) + 0.5) / length)
    step_fraction = profile / profile.sum()
    velocity = TRAVEL * step_fraction[:, None] * np.array(DIRECTIONS[direction])  # (T, 2) world units per frame

    other_colours = [c for c in OBJECT_COLOURS if c != colour]
    colours = [str(c) for c in rng.choice(other_colours, size=NUM_OBJECTS - 1, replace=False)] + [colour]
    shapes = [str(s) for s in rng.choice(SHAPES, size=NUM_OBJECTS - 1)] + [shape]
    starts: list[np.ndarray] = []
    while len(starts) < NUM_OBJECTS:  # rejection sampling keeps objects apart at the start
        candidate = rng.uniform(0.15, 0.85, size=2)
        if all(np.linalg.norm(candidate - s) > 2.5 * HALF_SIZE for s in starts):
            starts.append(candidate)
    # The named object is last: drawn on top, and followed by the eye-in-hand cameras.
    target_path = starts[-1] + np.concatenate([np.zeros((1, 2)), np.cumsum(velocity, axis=0)[:-1]])
    objects = [_SceneObject(c, s, np.repeat(p[None], length, axis=0)) for c, s, p in zip(colours, shapes, starts)]
    objects[-1].centres = target_path
    phases = rng.uniform(0, 1, size=(4, 3))

    pixel_centres = (np.arange(image_size) + 0.5) / image_size
    view_grid = np.stack(np.meshgrid(pixel_centres, pixel_centres, indexing="xy"), axis=-1)  # (S, S, 2) x, y
    view_data = {}
    for view_index, view in enumerate(views):
        camera_centre, zoom = _camera(view_index, objects, length)
        world_points, owners = _sample_points(rng, objects, camera_centre, zoom, image_size, num_tracked_points)
        video = np.empty((length, 3, image_size, image_size), np.uint8)
        tracks = np.empty((length, len(owners), 2), np.float32)
        visibility = np.empty((length, len(owners)), bool)
        background_centre, background = None, None
        for t in range(length):
            world_grid = (view_grid - 0.5) / zoom + camera_centre[t]
            if background_centre is None or not np.array_equal(camera_centre[t], background_centre):
                background_centre, background = camera_centre[t], _background(world_grid, phases)
            frame = background.copy()
            for obj in objects:
                frame[obj.contains(world_grid, t)] = OBJECT_COLOURS[obj.colour]
            video[t] = rearrange(frame, "h w c -> c h w")
            # Points on the named object ride along with it; all other points stay where they are.
            on_target = (owners == NUM_OBJECTS - 1)[:, None]
            moved = world_points + np.where(on_target, objects[-1].centres[t] - objects[-1].centres[0], 0.0)
            view_points = (moved - camera_centre[t]) * zoom + 0.5
            tracks[t] = view_points
            in_image = ((view_points >= 0) & (view_points < 1)).all(axis=-1)
            # Occluded when another object covers the point or the centre of the pixel showing it, so a visible
            # point's pixel always shows its own surface (also within a pixel of an occluder's edge).
            pixel_centres = (np.floor(view_points * image_size) + 0.5) / image_size
            pixel_centres_world = (pixel_centres - 0.5) / zoom + camera_centre[t]
            visibility[t] = (
                in_image
                & (_topmost(objects, moved, t) == owners)
                & (_topmost(objects, pixel_centres_world, t) == owners)
            )
        view_data[view] = ViewData(video, tracks, visibility)

    actions, proprio = None, {}
    if with_actions:
        speed = step_fraction / step_fraction.max()  # (T,) in [0, 1]
        scaled_velocity = speed[:, None] * np.array(DIRECTIONS[direction])  # (T, 2) in [-1, 1]
        actions = np.zeros((length, action_dim), np.float32)
        actions[:, :2] = scaled_velocity
        x, y = target_path[:, 0], target_path[:, 1]
        proprio = {
            "joint_states": np.stack(
                [x, y, x * x, y * y, x * y, scaled_velocity[:, 0], scaled_velocity[:, 1]], axis=-1
            ).astype(np.float32),
            # The gripper closes (width 0) while the object moves and opens (0.04 per finger) at rest.
            "gripper_states": (np.stack([1 - speed, speed - 1], axis=-1) * 0.04).astype(np.float32),
        }
    return Episode(views=view_data, actions=actions, proprio=proprio, instruction=instruction, domain=domain)


def write_synthetic_dataset(
    out_dir: str | Path,
    num_episodes: int,
    seed: int = 0,
    *,
    instructions: Sequence[str] | None = None,
    progress: bool = True,
    **episode_kwargs,
) -> list[Path]:
    """Write `num_episodes` synthetic episodes to out_dir/episode_00000.hdf5, ... and return their paths.

    Episode i uses the generator seeded by (seed, i), so it does not depend on how many are written.
    instructions: cycled through episode by episode (a fixed task set, as in LIBERO); None draws one per episode.
    episode_kwargs: passed to `make_synthetic_episode` (length, views, image_size, with_actions, domain, ...).
    """
    out_dir = Path(out_dir)
    paths = []
    for index in tqdm(range(num_episodes), desc=f"synthetic episodes -> {out_dir}", disable=not progress):
        rng = np.random.default_rng([seed, index])
        instruction = instructions[index % len(instructions)] if instructions else None
        episode = make_synthetic_episode(rng, instruction=instruction, **episode_kwargs)
        paths.append(write_episode(out_dir / f"episode_{index:05d}.hdf5", episode))
    return paths
