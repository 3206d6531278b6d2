"""Geometry read from a MuJoCo model: an object's bodies and geoms, points on their surfaces, poses in the world.

Shared by the scripted expert (grasp and placement planning from collision geoms) and the ground-truth track
labeller (points on visual geoms). Functions take the raw `mujoco.MjModel` / `mujoco.MjData` (robosuite's
``sim.model._model`` / ``sim.data._data``).

MuJoCo geom groups in robosuite scenes: 0 = collision geoms, 1 = visual geoms (the ones rendered).
"""
from __future__ import annotations

import mujoco
import numpy as np

COLLISION_GROUP = 0
VISUAL_GROUP = 1

_UNIT_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


def body_subtree(model: mujoco.MjModel, root_body: int) -> np.ndarray:
    """Ids of `root_body` and all bodies below it in the kinematic tree, (B,) int, root first."""
    if not 0 <= root_body < model.nbody:
        raise ValueError(f"body id {root_body} is out of range [0, {model.nbody})")
    in_subtree = np.zeros(model.nbody, dtype=bool)
    in_subtree[root_body] = True
    # Parents always have smaller ids than their children in a compiled MuJoCo model, so one pass suffices.
    for body in range(root_body + 1, model.nbody):
        in_subtree[body] = in_subtree[model.body_parentid[body]]
    return np.flatnonzero(in_subtree)


def body_id(model: mujoco.MjModel, name: str) -> int:
    """Id of the body called `name`; ValueError naming it when there is none."""
    found = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if found < 0:
        raise ValueError(f"the model has no body named {name!r}")
    return found


def joint_id(model: mujoco.MjModel, name: str) -> int:
    """Id of the joint called `name`; ValueError naming it when there is none."""
    found = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if found < 0:
        raise ValueError(f"the model has no joint named {name!r}")
    return found


def robot_bodies(model: mujoco.MjModel) -> np.ndarray:
    """Ids of the arm's and gripper's bodies (robosuite names them robot0_..., gripper0_...), (B,) int."""
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or "" for body in range(model.nbody)]
    return np.array([body for body, name in enumerate(names) if name.startswith(("robot0_", "gripper0_"))], dtype=int)


def geoms_of_bodies(model: mujoco.MjModel, bodies: np.ndarray, group: int) -> np.ndarray:
    """Ids of the geoms of `group` attached to any of `bodies`, (G,) int."""
    return np.flatnonzero(np.isin(model.geom_bodyid, bodies) & (model.geom_group == group))


def geom_hull_points(model: mujoco.MjModel, geom: int) -> np.ndarray:
    """Points whose convex hull bounds the geom, in the geom's frame, (P, 3) float64.

    Mesh geoms give their vertices (MuJoCo stores them in the geom frame); other geoms the 8 corners of their
    bounding box (exact for boxes, which LIBERO's collision geoms are).
    """
    if model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_MESH:
        mesh = model.geom_dataid[geom]
        start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
        return model.mesh_vert[start:start + count].astype(np.float64)
    center, half_size = model.geom_aabb[geom, :3], model.geom_aabb[geom, 3:]
    return center + _UNIT_BOX_CORNERS * half_size


def mesh_triangles(model: mujoco.MjModel, geom: int) -> np.ndarray:
    """Triangles of a mesh geom in the geom's frame, (F, 3 corners, 3) float64."""
    mesh = model.geom_dataid[geom]
    vertices = model.mesh_vert[model.mesh_vertadr[mesh]:model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh]]
    faces = model.mesh_face[model.mesh_faceadr[mesh]:model.mesh_faceadr[mesh] + model.mesh_facenum[mesh]]
    return vertices[faces].astype(np.float64)


def geom_surface_area(model: mujoco.MjModel, geom: int) -> float:
    """Surface area of a geom (m^2): exact for meshes, boxes, spheres, cylinders; bounding box otherwise."""
    geom_type, size = model.geom_type[geom], model.geom_size[geom]
    if geom_type == mujoco.mjtGeom.mjGEOM_MESH:
        triangles = mesh_triangles(model, geom)
        return float(0.5 * np.linalg.norm(
            np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1
        ).sum())
    if geom_type == mujoco.mjtGeom.mjGEOM_SPHERE:
        return float(4 * np.pi * size[0] ** 2)
    if geom_type in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        return float(4 * np.pi * size[0] * size[1] + 2 * np.pi * size[0] ** 2)
    if geom_type == mujoco.mjtGeom.mjGEOM_PLANE:
        return float(4 * size[0] * size[1])
    half = size if geom_type == mujoco.mjtGeom.mjGEOM_BOX else model.geom_aabb[geom, 3:]
    return float(8 * (half[0] * half[1] + half[1] * half[2] + half[0] * half[2]))


def to_world(data: mujoco.MjData, geoms: np.ndarray, local_points: np.ndarray) -> np.ndarray:
    """Points given in their geoms' frames moved to the world frame with the current geom poses.

    Args:
        geoms: (P,) geom id of each point; local_points: (P, 3) in that geom's frame.
    Returns:
        (P, 3) world positions (m).
    """
    return rotate_to_world(data, geoms, local_points) + data.geom_xpos[geoms]


def rotate_to_world(data: mujoco.MjData, geoms: np.ndarray, local_vectors: np.ndarray) -> np.ndarray:
    """Directions (P, 3) given in their geoms' frames, rotated into the world frame (no translation)."""
    return np.einsum("pij,pj->pi", data.geom_xmat[geoms].reshape(-1, 3, 3), local_vectors)


def hull_points_world(model: mujoco.MjModel, data: mujoco.MjData, geoms: np.ndarray) -> np.ndarray:
    """World positions of the hull points (`geom_hull_points`) of all `geoms`, (P, 3)."""
    if len(geoms) == 0:
        return np.zeros((0, 3))
    per_geom = [geom_hull_points(model, geom) for geom in geoms]
    owners = np.concatenate([np.full(len(points), geom) for geom, points in zip(geoms, per_geom)])
    return to_world(data, owners, np.concatenate(per_geom))


def geom_surface_points(
    model: mujoco.MjModel, geom: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` points on the surface of a geom with their outward unit normals, both in the geom's frame.

    Meshes: uniform over the triangles' area (points inside faces rather than on vertices, which sit on edges
    and corners and so often on an image silhouette); the normal follows the triangle's winding (MuJoCo meshes
    wind counter-clockwise seen from outside).
    Primitives: uniform over the surface of a box or sphere, over the side and caps of a cylinder or capsule
    (capsule caps approximated by discs), uniform over the plane's visible rectangle.

    Returns:
        points (count, 3), normals (count, 3), float64.
    """
    geom_type = model.geom_type[geom]
    size = model.geom_size[geom]
    if geom_type == mujoco.mjtGeom.mjGEOM_MESH:
        triangles = mesh_triangles(model, geom)
        cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        areas = 0.5 * np.linalg.norm(cross, axis=1)
        faces = rng.choice(len(triangles), count, p=areas / areas.sum())
        chosen = triangles[faces]
        # Uniform barycentric coordinates: fold points of the unit square's upper half back into the triangle.
        u, v = rng.random(count), rng.random(count)
        outside = u + v > 1
        u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
        points = chosen[:, 0] + u[:, None] * (chosen[:, 1] - chosen[:, 0]) + v[:, None] * (chosen[:, 2] - chosen[:, 0])
        return points, cross[faces] / (2 * areas[faces, None])
    if geom_type == mujoco.mjtGeom.mjGEOM_SPHERE or geom_type == mujoco.mjtGeom.mjGEOM_ELLIPSOID:
        directions = rng.normal(size=(count, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radii = size if geom_type == mujoco.mjtGeom.mjGEOM_ELLIPSOID else np.full(3, size[0])
        normals = directions / radii  # gradient of the ellipsoid's implicit function
        return directions * radii, normals / np.linalg.norm(normals, axis=1, keepdims=True)
    if geom_type in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        radius, half_length = size[0], size[1]
        side_area, cap_area = 4 * np.pi * radius * half_length, np.pi * radius**2
        on_side = rng.random(count) < side_area / (side_area + 2 * cap_area)
        angle = rng.uniform(0, 2 * np.pi, count)
        radial = np.where(on_side, radius, radius * np.sqrt(rng.random(count)))
        cap_sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
        z = np.where(on_side, rng.uniform(-half_length, half_length, count), cap_sign * half_length)
        points = np.stack([radial * np.cos(angle), radial * np.sin(angle), z], axis=1)
        normals = np.where(on_side[:, None], np.stack([np.cos(angle), np.sin(angle), np.zeros(count)], axis=1),
                           np.stack([np.zeros(count), np.zeros(count), cap_sign], axis=1))
        return points, normals
    if geom_type == mujoco.mjtGeom.mjGEOM_PLANE:
        points = np.stack([rng.uniform(-size[0], size[0], count), rng.uniform(-size[1], size[1], count),
                           np.zeros(count)], axis=1)
        return points, np.tile([0.0, 0.0, 1.0], (count, 1))
    # Box, and any other primitive through its bounding box: pick faces by area, then a point on the face.
    half = model.geom_aabb[geom, 3:] if geom_type != mujoco.mjtGeom.mjGEOM_BOX else size
    face_areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    axis = rng.choice(3, count, p=face_areas / face_areas.sum())
    side = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    points = rng.uniform(-1, 1, (count, 3)) * half
    points[np.arange(count), axis] = side * half[axis]
    normals = np.zeros((count, 3))
    normals[np.arange(count), axis] = side
    center = model.geom_aabb[geom, :3] if geom_type != mujoco.mjtGeom.mjGEOM_BOX else 0.0
    return points + center, normals
