"""Coarser visual meshes for faster CPU rendering: quadric decimation of a compiled MuJoCo model's visual-only meshes.

On a CPU renderer (Mesa llvmpipe) a LIBERO frame costs time in proportion to the triangles drawn, and most of them
are visual meshes far finer than a 128x128 camera resolves (a 66k-triangle basket, 14-29k-triangle scanned objects
and Panda links). `simplify_visual_meshes` rewrites those meshes in place, in the model's own arrays, so a render
context that uploads them afterwards (`mujoco.mjr_uploadMesh`) draws the coarse versions.

What is safe to change: a mesh is rewritten only when every geom using it neither collides nor is collided with
(contype == 0 and conaffinity == 0) and no sensor refers to it, so contacts, which use the colliding geoms' meshes and
convex hulls, are untouched; masses and inertias were computed from the meshes when the model was compiled and are
not recomputed. MuJoCo's renderer (mjr_uploadMesh) reads a mesh's vertices, faces, normals and texture coordinates
(mesh_vert / mesh_face, mesh_normal / mesh_facenormal, mesh_texcoord / mesh_facetexcoord, through the *adr and *num
fields), and these are what is rewritten. What keeps describing the original mesh: its bounding volumes
(geom_aabb, geom_rbound, the mesh's BVH boxes), which the simplified mesh overshoots by at most a few millimetres
(quadric vertex placement), harmless as nothing collides with a visual-only geom; and the BVH's leaves, which name
original faces, so ray casts (`mj_ray`) mostly pass through simplified meshes (in libero_object, 1 of 54 downward
rays that hit a visual mesh still did). Rays against colliding geoms hit as before.
"""
from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import mujoco
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

# A tetrahedron, the smallest closed triangle mesh.
MIN_FACES = 4
# Original faces whose centroids are nearest a query point, among which the face under it is looked for.
_CANDIDATE_FACES = 8
# Faces meeting at a vertex at a sharper angle than this (60 degrees) keep their own normals there: box edges stay
# crisp, curved surfaces are shaded smoothly.
_CREASE_COSINE = 0.5


@dataclass(frozen=True)
class SimplificationReport:
    """What `simplify_visual_meshes` did.

    simplified: ids of the meshes rewritten; faces_before, faces_after: their faces in total, before and after;
    over_limit: ids of simplified meshes the decimator could not bring down to the limit (many open pieces);
    skipped: ids of visual-only meshes over the limit left as they were (the decimator removed nothing, or the
    mesh's normal or texture-coordinate slots cannot hold the new mesh's).
    """

    simplified: tuple[int, ...]
    faces_before: int
    faces_after: int
    over_limit: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()


def visual_only_meshes(model: mujoco.MjModel) -> np.ndarray:
    """Ids of the meshes drawn by at least one geom and used only by geoms that take part in no contact
    (contype == 0 and conaffinity == 0) and by no sensor, (M,) int, ascending. Meshes no geom uses are left out:
    nothing draws them."""
    mesh_geoms = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_MESH)
    meshes = model.geom_dataid[mesh_geoms]
    colliding = (model.geom_contype[mesh_geoms] != 0) | (model.geom_conaffinity[mesh_geoms] != 0)
    sensed = model.sensor_objid[model.sensor_objtype == mujoco.mjtObj.mjOBJ_MESH]
    return np.setdiff1d(np.unique(meshes), np.concatenate([meshes[colliding], sensed]))


def simplify_visual_meshes(model: mujoco.MjModel, max_faces: int) -> SimplificationReport:
    """Replace every visual-only mesh (`visual_only_meshes`) of more than `max_faces` faces by a quadric decimation
    of at most `max_faces` faces, in place in `model`'s arrays. A mesh of many open pieces, which the decimator
    cannot bring down that far, keeps more (`report.over_limit`; see `_decimate`).

    The new mesh takes the first slots of the original's vertex, face, normal and texture-coordinate ranges (it
    needs fewer of each); the counts (mesh_vertnum, mesh_facenum, mesh_normalnum, mesh_texcoordnum) shrink to
    match and the slots after them are left over. Normals are the new surface's, smooth except across edges
    sharper than 60 degrees: point samples of the original's normals would alias its fine facets into blotches.
    Texture coordinates are the original's at the nearest point of its surface, all three corners of a face taken
    from the UV chart under the face's centre, so a face straddling a seam stretches that chart's edge a little
    instead of smearing across the whole texture atlas. Fine texture detail that lies across many small charts
    (LIBERO's woven basket) is where simplified images differ most.

    Render contexts made before this call still hold the original meshes: re-upload the ids in
    `report.simplified` with `mujoco.mjr_uploadMesh` (with the context's GL context current).

    Raises:
        ValueError: max_faces below MIN_FACES.
    """
    if max_faces < MIN_FACES:
        raise ValueError(f"max_faces must be at least {MIN_FACES} (a tetrahedron), got {max_faces}")
    simplified, over_limit, skipped = [], [], []
    faces_before = faces_after = 0
    for mesh in visual_only_meshes(model).tolist():
        face_count = int(model.mesh_facenum[mesh])
        if face_count <= max_faces:
            continue
        new_face_count = _simplify_mesh(model, mesh, max_faces)
        if new_face_count is None:
            skipped.append(mesh)
            continue
        simplified.append(mesh)
        if new_face_count > max_faces:
            over_limit.append(mesh)
        faces_before += face_count
        faces_after += new_face_count
    return SimplificationReport(tuple(simplified), faces_before, faces_after, tuple(over_limit), tuple(skipped))


def _simplify_mesh(model: mujoco.MjModel, mesh: int, max_faces: int) -> int | None:
    """Decimate one mesh and write it into its slots; returns its new face count, or None (mesh untouched) when
    nothing was removed or the new mesh does not fit."""
    vert_start, vert_count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    face_start, face_count = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    normal_start, texcoord_start = model.mesh_normaladr[mesh], model.mesh_texcoordadr[mesh]
    vertices = model.mesh_vert[vert_start:vert_start + vert_count].astype(np.float64)
    faces = model.mesh_face[face_start:face_start + face_count]
    new_vertices, new_faces = _decimate(vertices, faces, max_faces)
    if len(new_faces) >= face_count:
        return None
    normals = _crease_normals(new_vertices, new_faces, model.mesh_normalnum[mesh])
    textured = texcoord_start >= 0
    texcoords = None
    if textured:
        texcoord_of_corner = model.mesh_facetexcoord[face_start:face_start + face_count]
        texcoords = _transfer_texcoords(vertices, faces, model.mesh_texcoord[texcoord_start + texcoord_of_corner],
                                        new_vertices, new_faces, model.mesh_texcoordnum[mesh])
    if normals is None or (textured and texcoords is None):
        return None

    new_face_range = slice(face_start, face_start + len(new_faces))
    model.mesh_vert[vert_start:vert_start + len(new_vertices)] = new_vertices
    model.mesh_vertnum[mesh] = len(new_vertices)
    model.mesh_face[new_face_range] = new_faces
    # Left-over faces become degenerate (zero area), so the BVH leaves that still name them give no ray hits.
    model.mesh_face[face_start + len(new_faces):face_start + face_count] = 0
    model.mesh_facenum[mesh] = len(new_faces)
    values, index = normals
    model.mesh_normal[normal_start:normal_start + len(values)] = values
    model.mesh_normalnum[mesh] = len(values)
    model.mesh_facenormal[new_face_range] = index
    if textured:
        values, index = texcoords
        model.mesh_texcoord[texcoord_start:texcoord_start + len(values)] = values
        model.mesh_texcoordnum[mesh] = len(values)
        model.mesh_facetexcoord[new_face_range] = index
    # The convex hull graph indexes the original vertices; a visual-only geom never collides, so the hull would
    # only be drawn (mjVIS_CONVEXHULL), and wrongly.
    model.mesh_graphadr[mesh] = -1
    return len(new_faces)


def _decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation of vertices (V, 3) / faces (F, 3) to at most max_faces faces where the decimator gets
    there: new vertices (V', 3) and faces (F', 3) int32.

    The decimator never collapses an edge of an open border into the interior, so a mesh of many open pieces can
    stall above the limit (LIBERO's robot pedestal at 5810 faces), after forcing collapses of any error on the way.
    Such a mesh gets the result of the lowest of 2, 4, 8, ... times the limit that the decimator reaches.
    """
    # Meshes loaded from OBJ files are often triangle soups (three vertices of their own per face, for per-corner
    # normals); edges can only collapse once coincident vertices are one.
    vertex_of = _equal_row_ids(vertices)
    welded = np.zeros((vertex_of.max() + 1, 3))
    welded[vertex_of] = vertices
    welded_faces = vertex_of[faces]
    proper = ((welded_faces[:, 0] != welded_faces[:, 1]) & (welded_faces[:, 1] != welded_faces[:, 2])
              & (welded_faces[:, 0] != welded_faces[:, 2]))
    welded_faces = welded_faces[proper]
    target = max_faces
    while target < len(welded_faces):
        decimated_vertices, decimated_faces = fast_simplification.simplify(welded, welded_faces, target_count=target)
        if len(decimated_faces) <= target:
            welded, welded_faces = decimated_vertices, decimated_faces
            break
        target *= 2
    # The decimator can leave a sliver of three collinear vertices; it draws nothing and has no normal.
    extent = np.ptp(welded, axis=0).max()
    welded_faces = welded_faces[np.linalg.norm(_face_normals(welded, welded_faces), axis=1) > 1e-12 * extent ** 2]
    used, welded_faces = np.unique(welded_faces, return_inverse=True)
    return welded[used], welded_faces.reshape(-1, 3).astype(np.int32)


def _equal_row_ids(rows: np.ndarray) -> np.ndarray:
    """One id per distinct row of `rows` (N, C), as float32 values: (N,) int64 in [0, distinct rows).

    Column by column, the ids so far and the column's bits make a 64-bit key, one 1-D sort each: about three times
    faster than np.unique(rows, axis=0) on the 200k corners of a scanned object.
    """
    ids = np.zeros(len(rows), dtype=np.uint64)
    for column in np.asarray(rows, dtype=np.float32).T:
        # Adding zero turns -0.0 into 0.0, which compare equal but differ in bits.
        bits = (column + np.float32(0)).view(np.uint32).astype(np.uint64)
        _, ids = np.unique((ids << np.uint64(32)) | bits, return_inverse=True)
        ids = ids.astype(np.uint64)
    return ids.astype(np.int64)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows of `vectors` (N, 3) scaled to length 1 (zero rows stay zero)."""
    lengths = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(lengths, 1e-12)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Normals of faces (F, 3) scaled by twice their areas, (F, 3)."""
    corners = vertices[faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted mean of the normals of the faces around each vertex, (V, 3) unit."""
    summed = np.zeros_like(vertices)
    area_normals = _face_normals(vertices, faces)
    for corner in range(3):
        np.add.at(summed, faces[:, corner], area_normals)
    return _unit(summed)


def _crease_normals(vertices: np.ndarray, faces: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Normals of the mesh vertices (V, 3) / faces (F, 3) for `slots` normal slots: values (N, 3) unit and each
    face corner's index into them (F, 3) int32; None when even per-vertex normals do not fit.

    Per face corner (N = 3 F) where the slots allow: the area-weighted mean of the normals of the faces around the
    corner's vertex that meet the corner's face at under 60 degrees. Else per vertex (N = V), smooth everywhere
    (MuJoCo draws an untextured face flat where a vertex normal is off its own by more than ~37 degrees).
    """
    if 3 * len(faces) > slots:
        if len(vertices) > slots:
            return None
        return _vertex_normals(vertices, faces).astype(np.float32), faces
    area_normals = _face_normals(vertices, faces)
    face_normals = _unit(area_normals)
    corner_vertex = faces.reshape(-1)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    # Every (corner, face around the corner's vertex) pair: corners sorted by vertex list each vertex's faces.
    by_vertex = np.argsort(corner_vertex, kind="stable")
    degree = np.bincount(corner_vertex, minlength=len(vertices))
    first_of_vertex = np.cumsum(degree) - degree
    pair_count = degree[corner_vertex]
    pair_corner = np.repeat(np.arange(len(corner_vertex)), pair_count)
    rank = np.arange(pair_count.sum()) - np.repeat(np.cumsum(pair_count) - pair_count, pair_count)
    pair_face = corner_face[by_vertex[first_of_vertex[corner_vertex[pair_corner]] + rank]]
    smooth = np.einsum("pd,pd->p", face_normals[corner_face[pair_corner]], face_normals[pair_face]) > _CREASE_COSINE
    summed = np.zeros((len(corner_vertex), 3))
    np.add.at(summed, pair_corner[smooth], area_normals[pair_face[smooth]])
    return _unit(summed).astype(np.float32), np.arange(len(corner_vertex), dtype=np.int32).reshape(-1, 3)


def _transfer_texcoords(
    vertices: np.ndarray,
    faces: np.ndarray,
    corner_texcoords: np.ndarray,
    new_vertices: np.ndarray,
    new_faces: np.ndarray,
    slots: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Texture coordinates for the new mesh new_vertices (V', 3) / new_faces (F', 3) from the original vertices
    (V, 3) / faces (F, 3) / corner_texcoords (F, 3, 2), for `slots` texture-coordinate slots: values (N, 2) and each
    new face corner's index into them (F', 3) int32; None when they do not fit.

    Per face corner (N = 3 F') where the slots allow, each face's corners from the UV chart under its centre. Else
    per vertex (N = V'), from the nearest point of any chart, which smears faces along the seams.
    """
    original = _OriginalSurface(vertices, faces, corner_texcoords)
    face_normals = _unit(_face_normals(new_vertices, new_faces))
    if 3 * len(new_faces) <= slots:
        corners = new_vertices[new_faces]
        centre_faces, _ = original.locate(corners.mean(axis=1), face_normals)
        source, weights = original.locate(corners.reshape(-1, 3), np.repeat(face_normals, 3, axis=0),
                                          np.repeat(centre_faces, 3))
        index = np.arange(3 * len(new_faces), dtype=np.int32).reshape(-1, 3)
    elif len(new_vertices) <= slots:
        source, weights = original.locate(new_vertices, _vertex_normals(new_vertices, new_faces))
        index = new_faces
    else:
        return None
    return np.einsum("qc,qcd->qd", weights, corner_texcoords[source]).astype(np.float32), index


def _uv_charts(corners: np.ndarray, corner_texcoords: np.ndarray) -> np.ndarray:
    """UV chart of each face, (F,) int, from corners (F, 3, 3) and corner_texcoords (F, 3, 2): faces are in one
    chart when they share a corner's position and texture coordinate alike."""
    corner_vertex = _equal_row_ids(np.concatenate([corners, corner_texcoords], axis=2).reshape(-1, 5))
    face_count, vertex_count = len(corners), corner_vertex.max() + 1
    # Faces and texture vertices as one graph, faces first, each face linked to its three corners' vertices.
    links = coo_matrix((np.ones(3 * face_count), (np.repeat(np.arange(face_count), 3),
                                                  face_count + corner_vertex.reshape(-1))),
                       shape=(face_count + vertex_count,) * 2)
    _, component = connected_components(links, directed=False)
    return component[:face_count]


class _OriginalSurface:
    """The original mesh, for finding where points near its surface lie on it."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, corner_texcoords: np.ndarray) -> None:
        """vertices (V, 3), faces (F, 3); corner_texcoords (F, 3, 2) give the UV charts."""
        self.corners = vertices[faces]
        area_normals = _face_normals(vertices, faces)
        self.normals = _unit(area_normals)
        self.charts = _uv_charts(self.corners, corner_texcoords)
        # Zero-area faces (at the pole of a latitude-longitude sphere, say) hold no surface to interpolate over.
        self.proper_faces = np.flatnonzero(
            np.linalg.norm(area_normals, axis=1) > 1e-12 * np.ptp(vertices, axis=0).max() ** 2)
        self.tree = cKDTree(self.corners[self.proper_faces].mean(axis=1))

    def locate(
        self, points: np.ndarray, directions: np.ndarray, reference: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """For points (Q, 3): the original face (Q,) under each and the barycentric weights (Q, 3) of the point
        there (its projection onto the face, moved onto the face where it falls outside).

        Faces whose normals point against the point's direction (Q, 3) are passed over unless all near ones do
        (at a thin wall's rim, say). With reference faces (Q,), only faces in the UV chart of the point's reference
        face count, the reference face among them.
        """
        candidate_count = min(_CANDIDATE_FACES, len(self.proper_faces))
        _, nearest = self.tree.query(points, k=candidate_count)
        candidates = self.proper_faces[nearest.reshape(len(points), candidate_count)]
        excluded = np.einsum("qkd,qd->qk", self.normals[candidates], directions) <= 0
        excluded &= ~excluded.all(axis=1, keepdims=True)
        if reference is not None:
            candidates = np.concatenate([candidates, reference[:, None]], axis=1)
            excluded = np.concatenate([excluded, np.zeros((len(points), 1), dtype=bool)], axis=1)
            excluded |= self.charts[candidates] != self.charts[reference][:, None]
        weights = self._barycentric_on_face(points, candidates)
        on_face = np.einsum("qkc,qkcd->qkd", weights, self.corners[candidates])
        distance = np.where(excluded, np.inf, np.linalg.norm(on_face - points[:, None], axis=2))
        best = np.argmin(distance, axis=1)
        rows = np.arange(len(points))
        return candidates[rows, best], weights[rows, best]

    def _barycentric_on_face(self, points: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Barycentric weights (Q, K, 3) of each point's projection onto the plane of each of its candidate faces
        (Q, K), negative weights clipped to 0 and the rest rescaled: a point on the face near the closest one,
        enough to rank the candidates and to interpolate without extrapolating."""
        triangle = self.corners[candidates]
        edge1 = triangle[:, :, 1] - triangle[:, :, 0]
        edge2 = triangle[:, :, 2] - triangle[:, :, 0]
        offset = points[:, None] - triangle[:, :, 0]
        d11 = np.einsum("qkd,qkd->qk", edge1, edge1)
        d12 = np.einsum("qkd,qkd->qk", edge1, edge2)
        d22 = np.einsum("qkd,qkd->qk", edge2, edge2)
        o1 = np.einsum("qkd,qkd->qk", offset, edge1)
        o2 = np.einsum("qkd,qkd->qk", offset, edge2)
        determinant = d11 * d22 - d12 * d12
        # Cancellation can leave a thin sliver's determinant at zero: its centroid then, not a division by zero.
        proper = np.abs(determinant) > 1e-30
        safe = np.where(proper, determinant, 1.0)
        second = np.where(proper, (d22 * o1 - d12 * o2) / safe, 1 / 3)
        third = np.where(proper, (d11 * o2 - d12 * o1) / safe, 1 / 3)
        weights = np.clip(np.stack([1 - second - third, second, third], axis=2), 0, None)
        return weights / weights.sum(axis=2, keepdims=True)
