"""`LiberoEnv`: one LIBERO task, headless, with upright images and the project's observation names.

LIBERO (robosuite 1.4 + MuJoCo) renders with OpenGL, whose pixel rows run bottom to top: every image and depth map
is flipped here (rows reversed) so row 0 is the top of the picture, the orientation the track labels and the
policy use. Rendering is most of the step cost on a CPU (llvmpipe), so only the cameras named in `views` are
rendered, multisample anti-aliasing is off unless asked for, reflections can be switched off, and the visual meshes
can be simplified (`max_visual_faces`).

An episode is a function of its initial state's index: the reset that comes before the state is set also places
the fixtures (cabinets, stoves), which the state cannot hold, and it places them from a generator seeded by the
index (`_placed_reset`), not from whatever episodes ran before (LIBERO's own evaluation does the latter).

Headless rendering uses EGL: ``MUJOCO_GL=egl`` is set (unless already set) before robosuite is first imported.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tramoe_ros.sim.visual_lod import SimplificationReport

# The project's view names -> robosuite camera names.
CAMERA_NAMES = {"agentview": "agentview", "eye_in_hand": "robot0_eye_in_hand"}
DEFAULT_VIEWS = ("agentview", "eye_in_hand")
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# Longest human demonstration per suite in the original LIBERO datasets (steps at 20 Hz): a budget for the
# scripted expert and data collection.
DEMO_MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
# ATM / Tra-MoE evaluate every suite with a 600-step budget; the default `max_steps` for policy evaluation.
EVAL_MAX_STEPS = 600
# No-op action: zero pose delta, gripper open (-1). LIBERO evaluation lets objects settle for a few of them.
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)
SETTLE_STEPS = 5
ACTION_DIM = 7


class LiberoError(ValueError):
    """A LIBERO suite, task or initial state that does not exist, or a wrong action."""


@dataclass
class LiberoObservation:
    """One observation, images upright.

    images: view -> (S, S, 3) uint8 RGB; depths: view -> (S, S) float32 metric depth along the optical axis
    (metres), present only when the env was made with ``depth=True``; joint_states: (7,) arm joint angles (rad);
    gripper_states: (2,) finger joint positions (m); eef_pos: (3,) end-effector position in the world frame (m);
    eef_quat: (4,) end-effector orientation, quaternion x, y, z, w; raw: robosuite's observation dict as returned
    (images still upside down), for object poses and anything else.
    """

    images: dict[str, np.ndarray]
    depths: dict[str, np.ndarray]
    joint_states: np.ndarray
    gripper_states: np.ndarray
    eef_pos: np.ndarray
    eef_quat: np.ndarray
    raw: dict[str, Any] = field(repr=False)


def _benchmark(suite: str):
    if suite not in SUITES:
        raise LiberoError(f"unknown LIBERO suite {suite!r}; expected one of {', '.join(SUITES)}")
    from libero.libero import benchmark

    with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints its task order on every construction
        return benchmark.get_benchmark_dict()[suite]()


def num_tasks(suite: str) -> int:
    """Number of tasks in `suite` (10, or 90 for libero_90)."""
    return _benchmark(suite).get_num_tasks()


def task_name(suite: str, task_index: int) -> str:
    """The name of a task (its BDDL file's), without making its environment."""
    return _benchmark(suite).get_task(task_index).name


def task_names(suite: str) -> list[str]:
    """The names of `suite`'s tasks in LIBERO's task order."""
    return _benchmark(suite).get_task_names()


def _last_value_sensor(observable, sensor):
    """A stand-in for a robosuite camera sensor that renders nothing: it returns the observable's last value."""

    def last_value(obs_cache):
        return observable._current_observed_value

    last_value.__modality__ = sensor.__modality__  # robosuite groups observables by their sensor's modality
    return last_value


class LiberoEnv:
    """One task of a LIBERO suite.

    Args:
        suite: one of SUITES.
        task_index: task in LIBERO's default task order, 0 <= task_index < num_tasks(suite).
        views: cameras to render, from CAMERA_NAMES; only these are rendered each step (empty: none, 6-9 ms steps).
        camera_size: square image side S in pixels.
        max_steps: step budget; `done` becomes true at it. Default EVAL_MAX_STEPS (600, the ATM / Tra-MoE
            evaluation protocol); DEMO_MAX_STEPS[suite] is the length of the longest human demo.
        depth: also render metric depth maps (needed for track visibility).
        reflections: render the table reflections as LIBERO's datasets do; False cuts the step time of table
            scenes by ~40% (floor scenes, libero_object, have none).
        antialiasing: 4x multisample anti-aliasing, as MuJoCo and LIBERO's datasets render by default. Off (the
            project's default) a libero_object step with both cameras takes ~60 instead of ~97 ms of CPU; images
            differ only at edges (mean 1.7-2.1 grey levels of 255). Data and evaluation must use the same setting.
        settle_steps: no-op steps after an initial state is set so objects come to rest (LIBERO uses 5).
        sampled_init_states: this many more initial states, after the task's fixed ones (indices
            num_fixed_init_states ..), drawn from the task's BDDL placement regions as LIBERO drew its fixed ones
            (the env's own reset sampler), reproducibly from `init_state_seed`. More varied demonstrations than the
            50 fixed states, without touching the fixed states evaluation uses.
        init_state_seed: seed of the sampled initial states and of where each initial state's fixtures stand
            (`_placed_reset`).
        max_visual_faces: simplify every visual-only mesh (one no geom collides with) of more than this many
            triangles to at most this many (`visual_lod.simplify_visual_meshes`, ~2-3 s when the env is made);
            None (the default) keeps LIBERO's meshes. A llvmpipe frame costs time in proportion to its triangles
            (libero_object: ~309k per camera). At 2000, both 128x128 cameras with depth render in ~14 instead of
            ~69 ms in libero_object and ~40 instead of ~146 ms in libero_spatial (reflections on); images differ
            by ~0.8-1.2 grey levels of 255 on average in libero_spatial and ~2.3-2.4 in libero_object, most of it
            the woven basket, whose fine geometry carries its texture. At 4000: ~21 and ~55 ms, 0.6-0.8 and
            1.7-2.0 grey levels. Physics is unchanged (colliding meshes are never touched); data and evaluation
            must use the same setting.

    Attributes:
        suite, task_index, task_name, instruction, views, camera_size, max_steps, num_init_states (fixed +
        sampled), num_fixed_init_states, steps (taken since the last reset), robosuite_env (the underlying
        robosuite environment), sim (its MjSim), bddl_file, max_visual_faces, visual_simplification (the
        `SimplificationReport` of the meshes simplified, None without `max_visual_faces`).
    """

    def __init__(
        self,
        suite: str,
        task_index: int,
        *,
        views: tuple[str, ...] | list[str] = DEFAULT_VIEWS,
        camera_size: int = 128,
        max_steps: int = EVAL_MAX_STEPS,
        depth: bool = False,
        reflections: bool = True,
        antialiasing: bool = False,
        settle_steps: int = SETTLE_STEPS,
        sampled_init_states: int = 0,
        init_state_seed: int = 0,
        max_visual_faces: int | None = None,
    ) -> None:
        bench = _benchmark(suite)
        if not 0 <= task_index < bench.get_num_tasks():
            raise LiberoError(
                f"task index {task_index} is out of range for {suite}, which has tasks 0..{bench.get_num_tasks() - 1}"
            )
        unknown = [view for view in views if view not in CAMERA_NAMES]
        if unknown:
            raise LiberoError(f"unknown views {unknown}; expected names from {list(CAMERA_NAMES)}")
        if max_steps < 1 or camera_size < 1 or settle_steps < 0 or sampled_init_states < 0:
            raise LiberoError(
                f"need max_steps >= 1, camera_size >= 1, settle_steps >= 0, sampled_init_states >= 0; got "
                f"{max_steps}, {camera_size}, {settle_steps}, {sampled_init_states}"
            )
        # robosuite picks its GL backend when first imported; Mesa's shader cache stays out of the home folder.
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("MESA_SHADER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tramoe_mesa_shader_cache"))
        from libero.libero.envs import OffScreenRenderEnv

        if max_visual_faces is not None:
            from tramoe_ros.sim.visual_lod import MIN_FACES

            if max_visual_faces < MIN_FACES:
                raise LiberoError(
                    f"max_visual_faces must be at least {MIN_FACES} (a tetrahedron), got {max_visual_faces}")

        task = bench.get_task(task_index)
        self.suite = suite
        self.task_index = task_index
        self.task_name: str = task.name
        self.instruction: str = task.language
        self.bddl_file: str = bench.get_task_bddl_file_path(task_index)
        self.views = tuple(views)
        self.camera_size = camera_size
        self.max_steps = max_steps
        self.depth = depth
        self.reflections = reflections
        self.antialiasing = antialiasing
        self.settle_steps = settle_steps
        self.max_visual_faces = max_visual_faces
        self.visual_simplification: SimplificationReport | None = None
        self._init_states = list(bench.get_task_init_states(task_index))
        self.num_fixed_init_states = len(self._init_states)
        self.steps = 0
        self._env = OffScreenRenderEnv(
            bddl_file_name=self.bddl_file,
            camera_names=[CAMERA_NAMES[view] for view in self.views],
            use_camera_obs=bool(self.views),
            camera_heights=camera_size,
            camera_widths=camera_size,
            camera_depths=depth,
            # A soft reset keeps the model and renderer; set_init_state then overwrites the whole physics state,
            # so episodes are as reproducible as with LIBERO's hard reset, ~2 s faster per episode.
            hard_reset=False,
            # The step budget is this wrapper's (`max_steps`); robosuite's own horizon would refuse further steps.
            ignore_done=True,
        )
        self._env.seed(0)
        self._env.reset()
        self._configure_renderer()
        self._simplify_visual_meshes()
        self._apply_render_flags()
        self._init_state_seed = init_state_seed
        self._init_states += self._sample_init_states(sampled_init_states)

    def _sample_init_states(self, count: int) -> list[np.ndarray]:
        """`count` flattened MuJoCo states from the env's reset sampler (object placements in the BDDL regions,
        robot joint noise), the way LIBERO made its fixed initial states; state i from `_placed_reset(i)`."""
        states = []
        for index in range(self.num_fixed_init_states, self.num_fixed_init_states + count):
            self._placed_reset(index)
            states.append(self._env.get_sim_state().copy())
        return states

    def _placed_reset(self, init_state_index: int) -> None:
        """The env's reset, its placement samplers drawing from numpy's global generator seeded by (init_state_seed,
        task, `init_state_index`) and restored afterwards.

        The reset also places the fixtures (a cabinet, a stove), which an initial state cannot restore: it holds
        joint positions, and a fixture has none. Drawn from the generator's running state, they stood up to 1.5 cm
        elsewhere in each episode of the same initial state, depending on the episodes before it. Seeded by the
        index, they stand in the same place every time, and where they stood when a sampled state was drawn.
        """
        saved = np.random.get_state()
        np.random.seed([self._init_state_seed, self.task_index, init_state_index])
        try:
            self._env.reset()
        finally:
            np.random.set_state(saved)

    # --------------------------------------------------------------------------------------------------------

    @property
    def robosuite_env(self):
        """The robosuite environment (LIBERO's BDDL domain): objects_dict, fixtures_dict, obj_body_id, ..."""
        return self._env.env

    @property
    def sim(self):
        """The robosuite MjSim (model, data, render)."""
        return self._env.env.sim

    @property
    def num_init_states(self) -> int:
        """Number of initial states: the task's fixed ones (50 in LIBERO) and the sampled ones after them."""
        return len(self._init_states)

    def _configure_renderer(self) -> None:
        """Set the offscreen buffer's multisampling. MuJoCo allocates it with the GL context's buffers, so the
        context is rebuilt (robosuite's own rebuild, as when it resizes the buffer)."""
        context = self.sim._render_context_offscreen
        samples = 4 if self.antialiasing else 0
        if context is None or self.sim.model._model.vis.quality.offsamples == samples:
            return
        self.sim.model._model.vis.quality.offsamples = samples
        context.gl_ctx.make_current()
        context.con.free()
        context._set_mujoco_context_and_buffers()

    def _simplify_visual_meshes(self) -> None:
        """Simplify the visual meshes in the model (`max_visual_faces`) and re-upload them to the offscreen render
        context, which uploaded the originals when it was made; RGB and depth are rendered by that one context.
        Resets keep the model and the context (soft resets), so this holds for the env's life; a context made
        later (e.g. by `_configure_renderer`) uploads from the simplified model."""
        if self.max_visual_faces is None:
            return
        import mujoco

        from tramoe_ros.sim.visual_lod import simplify_visual_meshes

        self.visual_simplification = simplify_visual_meshes(self.sim.model._model, self.max_visual_faces)
        context = self.sim._render_context_offscreen
        if context is None:
            return
        context.gl_ctx.make_current()
        for mesh in self.visual_simplification.simplified:
            mujoco.mjr_uploadMesh(self.sim.model._model, context.con, mesh)

    def _apply_render_flags(self) -> None:
        if self.reflections:
            return
        import mujoco

        context = self.sim._render_context_offscreen
        if context is None:
            raise RuntimeError("the offscreen renderer was not created; cannot switch reflections off")
        context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def make_render_current(self) -> None:
        """Make this env's GL context the current one. robosuite renders into whichever context is current, so
        with several envs in one process each must claim its own before rendering (done by reset and step)."""
        context = self.sim._render_context_offscreen
        if context is not None:
            context.gl_ctx.make_current()

    def _observation(self, raw: dict[str, Any], rendered: bool = True) -> LiberoObservation:
        images, depths = {}, {}
        if self.depth:
            from robosuite.utils.camera_utils import get_real_depth_map
        for view in self.views if rendered else ():
            camera = CAMERA_NAMES[view]
            images[view] = np.ascontiguousarray(raw[f"{camera}_image"][::-1])
            if self.depth:
                depths[view] = np.ascontiguousarray(
                    get_real_depth_map(self.sim, raw[f"{camera}_depth"][::-1, :, 0]).astype(np.float32)
                )
        return LiberoObservation(
            images=images,
            depths=depths,
            joint_states=np.asarray(raw["robot0_joint_pos"], dtype=np.float32),
            gripper_states=np.asarray(raw["robot0_gripper_qpos"], dtype=np.float32),
            eef_pos=np.asarray(raw["robot0_eef_pos"], dtype=np.float64),
            eef_quat=np.asarray(raw["robot0_eef_quat"], dtype=np.float64),
            raw=raw,
        )

    def reset(self, init_state_index: int = 0) -> LiberoObservation:
        """Set initial state `init_state_index` (fixed below num_fixed_init_states, sampled above) and run
        `settle_steps` no-op steps.

        The settle steps are not counted in `steps`.
        """
        if not 0 <= init_state_index < self.num_init_states:
            raise LiberoError(
                f"initial state {init_state_index} is out of range for {self.task_name}, which has "
                f"{self.num_init_states} (0..{self.num_init_states - 1})"
            )
        self.make_render_current()
        self._placed_reset(init_state_index)
        # A soft reset keeps the gripper model, whose command integrates over steps; a fresh model starts at 0.
        for robot in self.robosuite_env.robots:
            robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self._apply_render_flags()
        raw = self._env.set_init_state(self._init_states[init_state_index])
        for _ in range(self.settle_steps):
            raw, _, _, _ = self._env.step(NOOP_ACTION)
        self.steps = 0
        return self._observation(raw)

    def step(self, action: np.ndarray, render: bool = True) -> tuple[LiberoObservation, bool, bool]:
        """Apply one 7-D action (pose delta, gripper) in [-1, 1].

        With `render=False` the cameras are not rendered this step (rendering is most of a step's cost) and the
        observation's `images` and `depths` are empty; everything else is as with rendering, and the next
        rendered step renders at the same point of the step as always.

        Returns:
            (observation, success, done): success is the task's goal predicate now; done = success or the
            step budget `max_steps` is spent.
        """
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,) or not np.isfinite(action).all():
            raise LiberoError(f"action must be {ACTION_DIM} finite numbers, got shape {action.shape}: {action}")
        self.make_render_current()
        if render:
            raw, _, _, _ = self._env.step(np.clip(action, -1.0, 1.0))
        else:
            # Each camera keeps its sampling clock (robosuite samples cameras at a fixed sub-step of every step),
            # but its sensor hands back the last frame instead of rendering; the stale frames are not returned.
            cameras = self._camera_observables()
            sensors = [observable._sensor for observable in cameras]
            for observable, sensor in zip(cameras, sensors):
                observable._sensor = _last_value_sensor(observable, sensor)
            try:
                raw, _, _, _ = self._env.step(np.clip(action, -1.0, 1.0))
            finally:
                for observable, sensor in zip(cameras, sensors):
                    observable._sensor = sensor
        self.steps += 1
        success = self.check_success()
        return self._observation(raw, rendered=render), success, success or self.steps >= self.max_steps

    def _camera_observables(self) -> list:
        """robosuite's observables that render: each view's image (and depth) sensor."""
        observables = self.robosuite_env._observables
        return [observables[name] for name in observables
                if any(name.startswith(f"{CAMERA_NAMES[view]}_") for view in self.views)
                and name.endswith(("_image", "_depth"))]

    def set_state(self, state: np.ndarray) -> None:
        """Put the simulator in a flattened state (1 + nq + nv,: time, qpos, qvel, as LIBERO's datasets store it)
        and bring everything derived from it up to date: positions, contacts (`sim.forward`) and LIBERO's object
        states (a stove's flame, ...; `_post_process`). Nothing is rendered."""
        self.sim.set_state_from_flattened(state)
        self.sim.forward()
        self.robosuite_env._post_process()

    def observe_state(self, state: np.ndarray) -> LiberoObservation:
        """Set a flattened state and render it: the observation `reset`/`step` would return there (robosuite's
        observables forced to update at the set state, then this env's conversion).

        A step's own observation is sampled by robosuite 1.4 two physics sub-steps (4 ms) before the state the step
        ends in, so it differs from this render of that state by a fraction of a grey level on average (more for
        the moving wrist camera; docs/libero-import.md).
        """
        self.make_render_current()
        self.set_state(state)
        return self._observation(self.robosuite_env._get_observations(force_update=True))

    def check_success(self) -> bool:
        """Whether the task's BDDL goal holds in the current state."""
        return bool(self._env.check_success())

    def close(self) -> None:
        """Free the renderer and the simulator (an unclosed EGL context errors at interpreter exit)."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> LiberoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
