"""Ground-truth point tracks from the simulator: exact positions and visibility for any number of points.

Each point is fixed to one geom (a random point on a visual geom's surface, or a surface point found by
unprojecting a pixel through the depth map), stored in that geom's frame, moved to the world with the geom's pose
every step and projected into each camera with robosuite's camera matrices. Positions are sub-pixel (the matrix is
applied here; robosuite's `project_points_from_world_to_camera` rounds and clamps). The matrices follow the OpenCV
convention (row 0 at the top), so the tracks match the upright images `LiberoEnv` returns.

A point is visible when it projects inside the image, in front of the camera, its surface faces the camera, and its
camera depth agrees with the rendered depth map at its pixel (nothing nearer hides it). The facing test catches
what the depth test cannot: faces resting on another surface (an object's bottom on the table) sit at the depth of
that surface. Points are drawn inside mesh triangles rather than on vertices: vertices sit on edges, which are
often silhouettes where a pixel shows whatever lies behind.

Track coordinates are normalised as the episode format wants: x = column / S, y = row / S, so pixel column c covers
[c / S, (c + 1) / S).
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from tramoe_ros.sim import geometry
from tramoe_ros.sim.libero_env import CAMERA_NAMES, LiberoEnv, LiberoObservation

# Depth agreement (m) for a visible point: absolute slack plus a fraction of the depth, since one pixel covers
# more surface (and so more depth change on slanted surfaces) further away.
DEPTH_TOLERANCE = 0.01
DEPTH_TOLERANCE_RELATIVE = 0.01
# Candidate surface points drawn per requested point before spreading the points over the image.
CANDIDATES_PER_POINT = 20
# mujoco.mjtObj.mjOBJ_GEOM in the first channel of a segmentation render.
_SEGMENT_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)


def camera_matrix(env: LiberoEnv, view: str) -> np.ndarray:
    """World -> pixel projection (4, 4) of `view` at the current state (the eye-in-hand camera moves)."""
    from robosuite.utils.camera_utils import get_camera_transform_matrix

    return get_camera_transform_matrix(env.sim, CAMERA_NAMES[view], env.camera_size, env.camera_size)


def project(points: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points with a `camera_matrix`.

    Args:
        points: (P, 3) world positions (m); matrix: (4, 4).
    Returns:
        pixels: (P, 2) sub-pixel (column, row) in the upright image, continuous coordinates (pixel c spans [c, c+1));
        depth: (P,) distance in front of the camera along its optical axis (m; negative behind it).
    """
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ matrix.T
    depth = homogeneous[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = homogeneous[:, :2] / depth[:, None]
    return pixels, depth


def visible(pixels: np.ndarray, depth: np.ndarray, depth_map: np.ndarray) -> np.ndarray:
    """Which projected points are seen: inside the image, in front, and at the depth the depth map shows at their
    pixel (within DEPTH_TOLERANCE + DEPTH_TOLERANCE_RELATIVE * depth), i.e. nothing nearer hides them.

    Args:
        pixels: (P, 2) column, row; depth: (P,) camera depth (m); depth_map: (S, S) metric depth, upright.
    Returns:
        (P,) bool
    """
    size = depth_map.shape[0]
    inside = np.isfinite(pixels).all(1) & (pixels >= 0).all(1) & (pixels < size).all(1) & (depth > 0)
    result = np.zeros(len(depth), dtype=bool)
    column, row = np.floor(pixels[inside]).astype(int).T
    tolerance = DEPTH_TOLERANCE + DEPTH_TOLERANCE_RELATIVE * depth[inside]
    result[inside] = np.abs(depth_map[row, column] - depth[inside]) < tolerance
    return result


def facing(normals: np.ndarray, points: np.ndarray, camera_position: np.ndarray) -> np.ndarray:
    """Which surface points face the camera: normals (P, 3) and points (P, 3) in the world, camera_position (3,).
    Returns (P,) bool."""
    return np.einsum("pi,pi->p", normals, camera_position - points) > 0


def camera_position(env: LiberoEnv, view: str) -> np.ndarray:
    """World position (3,) of the camera of `view` at the current state."""
    return env.sim.data.cam_xpos[env.sim.model.camera_name2id(CAMERA_NAMES[view])].copy()


def segmentation(env: LiberoEnv, view: str) -> np.ndarray:
    """Geom id under each pixel of `view` (S, S) int, upright; -1 where no geom (background).

    Sites are hidden for this render: they are drawn into segmentations even where they are transparent in RGB
    (LIBERO's region sites) and would hide the geoms behind them.
    """
    size = env.camera_size
    env.make_render_current()
    options = env.sim._render_context_offscreen.vopt
    site_groups = options.sitegroup.copy()
    options.sitegroup[:] = 0
    try:
        segments = env.sim.render(camera_name=CAMERA_NAMES[view], width=size, height=size, segmentation=True)[::-1]
    finally:
        options.sitegroup[:] = site_groups
    return np.where(segments[..., 0] == _SEGMENT_GEOM, segments[..., 1], -1)


def object_bodies(env: LiberoEnv) -> np.ndarray:
    """Ids of the bodies of every LIBERO object and fixture of the scene (with their subtrees, e.g. drawers)."""
    model = env.sim.model._model
    roots = env.robosuite_env.obj_body_id.values()
    return np.unique(np.concatenate([geometry.body_subtree(model, root) for root in roots]))


@dataclass
class AnchoredPoints:
    """Points fixed to geoms: geoms (N,) geom id of each point; local (N, 3) position in that geom's frame (m);
    normals (N, 3) outward unit surface normal in that frame."""

    geoms: np.ndarray
    local: np.ndarray
    normals: np.ndarray

    def world(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """World positions (N, 3) and normals (N, 3) at the current state."""
        return geometry.to_world(data, self.geoms, self.local), geometry.rotate_to_world(data, self.geoms, self.normals)

    def subset(self, index: np.ndarray) -> AnchoredPoints:
        return AnchoredPoints(self.geoms[index], self.local[index], self.normals[index])

    @staticmethod
    def concatenate(parts: list[AnchoredPoints]) -> AnchoredPoints:
        return AnchoredPoints(*(np.concatenate([getattr(part, name) for part in parts])
                                for name in ("geoms", "local", "normals")))


def surface_candidates(env: LiberoEnv, count: int, rng: np.random.Generator) -> AnchoredPoints:
    """`count` random points (with normals) on the visual geoms of the robot and of every object, geoms drawn with
    probability proportional to their surface area (`geometry.geom_surface_area`)."""
    model = env.sim.model._model
    bodies = np.union1d(geometry.robot_bodies(model), object_bodies(env))
    geoms = geometry.geoms_of_bodies(model, bodies, geometry.VISUAL_GROUP)
    geoms = geoms[model.geom_rgba[geoms, 3] > 0]  # transparent geoms are not seen
    if len(geoms) == 0:
        raise ValueError(f"{env.task_name}: no visual geoms on the robot or the objects")
    areas = np.array([geometry.geom_surface_area(model, geom) for geom in geoms])
    chosen = rng.choice(geoms, count, p=areas / areas.sum())
    local, normals = np.zeros((count, 3)), np.zeros((count, 3))
    for geom in np.unique(chosen):
        mask = chosen == geom
        local[mask], normals[mask] = geometry.geom_surface_points(model, geom, int(mask.sum()), rng)
    return AnchoredPoints(chosen, local, normals)


def spread_over_image(pixels: np.ndarray, candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Pick `count` of `candidates` (indices into `pixels`) spread evenly over the image: covered pixels are drawn
    uniformly and one candidate from each (again over the pixels once all are used), so dense meshes do not
    crowd the tracks. Returns (min(count, len(candidates)),) indices."""
    if len(candidates) <= count:
        return candidates
    pixel_keys = np.floor(pixels[candidates]).astype(np.int64) @ np.array([1, 1 << 20])
    shuffled = rng.permutation(len(candidates))
    _, pixel_of = np.unique(pixel_keys[shuffled], return_inverse=True)
    # The k-th candidate (in shuffled order) of each pixel gets rank k; taking ranks in increasing order picks one
    # per pixel, then a second per pixel, and so on.
    by_pixel = np.argsort(pixel_of, kind="stable")
    group_start = np.searchsorted(pixel_of[by_pixel], pixel_of[by_pixel])
    rank = np.empty(len(shuffled), dtype=np.int64)
    rank[by_pixel] = np.arange(len(shuffled)) - group_start
    picked = shuffled[np.lexsort((rng.random(len(shuffled)), rank))[:count]]
    return candidates[picked]


def grid_points(env: LiberoEnv, view: str, depth_map: np.ndarray, grid_size: int) -> AnchoredPoints:
    """A grid_size x grid_size grid of pixels unprojected through the depth map and fixed to the geom under each
    pixel (table, floor, objects, robot alike); pixels over no geom are left out.

    Returns:
        AnchoredPoints with at most grid_size**2 points.
    """
    size = env.camera_size
    # Pixel centres: the depth map holds the depth rasterised at the centre of each pixel.
    indices = np.floor((np.arange(grid_size) + 0.5) * size / grid_size).astype(int)
    column_grid, row_grid = np.meshgrid(indices, indices)
    points, on_geom = points_at_pixels(env, view, depth_map, np.stack([column_grid.ravel(), row_grid.ravel()], 1) + 0.5)
    return points.subset(on_geom)


def points_at_pixels(env: LiberoEnv, view: str, depth_map: np.ndarray,
                     pixels: np.ndarray) -> tuple[AnchoredPoints, np.ndarray]:
    """The surface points seen at `pixels` of `view` now, unprojected through the depth map and fixed to the geom
    under each pixel (table, floor, objects, robot alike): what a query point at that pixel tracks.

    Args:
        pixels: (P, 2) sub-pixel (column, row) in the upright image, inside it.
    Returns:
        AnchoredPoints for all P (a pixel over no geom gets geom 0, the world, where it stays put) and (P,) bool:
        whether a geom is under the pixel.
    """
    column_index, row_index = np.floor(pixels).astype(int).T
    geoms = segmentation(env, view)[row_index, column_index]
    depth = depth_map[row_index, column_index].astype(np.float64)
    on_geom = geoms >= 0
    geoms = np.where(on_geom, geoms, 0)
    # Invert the projection: camera-frame point from pixel and depth, then camera -> world.
    matrix = camera_matrix(env, view)
    homogeneous = np.concatenate([pixels * depth[:, None], depth[:, None], np.ones((len(depth), 1))], axis=1)
    world = (homogeneous @ np.linalg.inv(matrix).T)[:, :3]
    data = env.sim.data._data
    # The surface was seen from the camera, so its normal points towards it; the direction to the camera stands in.
    towards_camera = camera_position(env, view) - world
    towards_camera /= np.linalg.norm(towards_camera, axis=1, keepdims=True)
    rotations = data.geom_xmat[geoms].reshape(-1, 3, 3)
    local = np.einsum("pji,pj->pi", rotations, world - data.geom_xpos[geoms])
    return AnchoredPoints(geoms, local, np.einsum("pji,pj->pi", rotations, towards_camera)), on_geom


def observe(env: LiberoEnv, points: AnchoredPoints, view: str, depth_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions (N, 2) and visibility (N,) of `points` in `view` now, given the view's depth map now.
    Points behind the camera have no meaningful projection: they are put far outside the image (the episode format
    wants finite tracks)."""
    world, normals = points.world(env.sim.data._data)
    pixels, depth = project(world, camera_matrix(env, view))
    seen = visible(pixels, depth, depth_map) & facing(normals, world, camera_position(env, view))
    pixels = np.where(np.isfinite(pixels) & (depth > 0)[:, None], pixels, -env.camera_size)
    return pixels, seen


class SimTrackRecorder:
    """Records ground-truth tracks of points on the robot and the objects while an episode runs.

    Call `start(obs)` right after `env.reset` (it samples the points and records frame 0), then `record(obs)` after
    every `env.step`; `tracks()` returns what was recorded. The env must render depth (``LiberoEnv(depth=True)``).

    Per view, `num_points` surface points visible in the first frame are chosen, spread evenly over the image area
    the robot and objects cover, followed by `grid_size`**2 grid points (fewer where the grid sees no geom).

    Args:
        env: the environment (its views are the views tracked).
        num_points: surface points per view.
        grid_size: side of the background grid per view (0: none).
        seed: for the point sampling.
    """

    def __init__(self, env: LiberoEnv, num_points: int = 1000, grid_size: int = 0, seed: int = 0) -> None:
        if not env.depth:
            raise ValueError("SimTrackRecorder needs depth maps: create the env with LiberoEnv(..., depth=True)")
        if not env.views:
            raise ValueError("SimTrackRecorder needs at least one rendered view")
        if num_points < 0 or grid_size < 0 or num_points + grid_size == 0:
            raise ValueError(f"need num_points >= 0, grid_size >= 0, not both 0; got {num_points}, {grid_size}")
        self.env = env
        self.num_points = num_points
        self.grid_size = grid_size
        self._rng = np.random.default_rng(seed)
        self.points: dict[str, AnchoredPoints] = {}
        self._tracks: dict[str, list[np.ndarray]] = {}
        self._visibility: dict[str, list[np.ndarray]] = {}

    def start(self, obs: LiberoObservation) -> None:
        """Sample each view's points on the current state and record them as frame 0."""
        candidates = surface_candidates(self.env, CANDIDATES_PER_POINT * self.num_points, self._rng)
        self.points = {}
        for view in self.env.views:
            pixels, seen = observe(self.env, candidates, view, obs.depths[view])
            chosen = spread_over_image(pixels, np.flatnonzero(seen), self.num_points, self._rng)
            if len(chosen) < self.num_points:  # too little of the scene in view: top up with hidden points
                hidden = np.setdiff1d(np.arange(len(seen)), chosen)
                extra = self._rng.choice(hidden, self.num_points - len(chosen), replace=False)
                chosen = np.concatenate([chosen, extra])
            parts = [candidates.subset(chosen)]
            if self.grid_size:
                parts.append(grid_points(self.env, view, obs.depths[view], self.grid_size))
            self.points[view] = AnchoredPoints.concatenate(parts)
        self._tracks = {view: [] for view in self.env.views}
        self._visibility = {view: [] for view in self.env.views}
        self.record(obs)

    def record(self, obs: LiberoObservation) -> None:
        """Append the current positions and visibility of every view's points (call after each env step)."""
        if not self.points:
            raise RuntimeError("call start(obs) after env.reset before record(obs)")
        size = self.env.camera_size
        for view, points in self.points.items():
            pixels, seen = observe(self.env, points, view, obs.depths[view])
            self._tracks[view].append((pixels / size).astype(np.float32))
            self._visibility[view].append(seen)

    def tracks(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """view -> (tracks (T, N, 2) float32 normalised x / S, y / S; visibility (T, N) bool)."""
        return {
            view: (np.stack(self._tracks[view]), np.stack(self._visibility[view])) for view in self._tracks
        }
