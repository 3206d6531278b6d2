"""A scripted expert for LIBERO pick-and-place tasks, planned from the simulator's object poses and geometry.

The task's BDDL goal (``env.robosuite_env.parsed_problem["goal_state"]``, e.g. ``[["on", "akita_black_bowl_1",
"plate_1"]]``) names what to move and where; the instruction sentence is not parsed. Each goal predicate
``In`` / ``On`` becomes a pick-and-place: approach above the object, descend, close, lift, carry above the target,
lower, open, retreat. The motion is a sequence of Cartesian waypoints for the end effector, tracked with a
proportional controller whose outputs are OSC_POSE delta actions clipped to [-1, 1].

Action scale (robosuite 1.4 OSC_POSE, ``controllers/config/osc_pose.json``): an action of 1 asks for a 0.05 m
position delta / 0.5 rad rotation delta (axis-angle, world frame) per 20 Hz step relative to the current pose; the
impedance controller realises about a quarter of it (steady state ~1.25 cm per step at action 1). Gripper: -1 opens,
+1 closes; the command ramps over ~8 steps.

Geometry comes from the collision geoms (group 0; boxes in LIBERO): an object's extent is the hull of its geoms'
corners, grasps close across the object's narrowest horizontal direction at the grasp height, objects too wide for
the gripper (bowls) are grasped by the rim, and support heights (table, basket floor, plate) come from ray casts
down through the collision geoms.

Covered (measured with ``tramoe-collect-libero --dry-run``): libero_object 100% and libero_spatial 98% of the 50
initial states of every task; libero_goal tasks 1, 2, 4, 6, 9 (and 8 at ~67%); libero_10 tasks 0, 4, 6, 7 (and 1 at
~67%); 45 of the 70 In/On-only libero_90 tasks. Not covered: articulated goals (``Open``, ``Close``, ``TurnOn``,
``TurnOff``; `ExpertUnsupported` names them), pushing (libero_goal 5), placing into a closed drawer (libero_goal 3),
books into caddy compartments or onto shelves, handle grasps (frying pans, moka pots).
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from tramoe_ros.sim import geometry
from tramoe_ros.sim.libero_env import LiberoEnv, LiberoObservation

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0
# End-effector orientation pointing down with the fingers along world y (LIBERO's home pose); a task yaw rotates it
# about world z. It is a half turn about world x: robot0_eef_quat, which robosuite gives as (x, y, z, w) like scipy's
# `Rotation.from_quat`, is (1, 0, 0, 0) there.
DOWN_ORIENTATION = Rotation.from_quat([1.0, 0.0, 0.0, 0.0])

# Action per unit error: the controller saturates (action 1, a commanded 5 cm / 0.5 rad) at a 2.5 cm position or
# 0.2 rad orientation error.
POSITION_GAIN = 1.0 / 0.025
ROTATION_GAIN = 1.0 / 0.2
# Widest object the open Panda fingers close around in LIBERO (pads ~6.7 cm apart, less a margin).
MAX_GRASP_WIDTH = 0.064
# Rim grasp: the grasp point sits this far inside the object's outer radius (wall plus pad).
RIM_INSET = 0.012
# Panda shoulder (link 2) to wrist reach the rim grasp prefers to stay within, and the wrist's height above the
# grasp point (m); the arm's limit is ~0.8 m.
COMFORTABLE_REACH = 0.7
WRIST_ABOVE_GRASP = 0.2
# The Panda hand around the end-effector point (its collision mesh): it reaches HAND_HALF_LENGTH either way along
# the finger axis, and its underside is HAND_BOTTOM above the end-effector point (m).
HAND_HALF_LENGTH = 0.1
HAND_BOTTOM = 0.03
# Clearances (m): over obstacles while carrying, above the support when releasing, fingertips above surfaces.
CARRY_CLEARANCE = 0.04
RELEASE_CLEARANCE = 0.015
FINGERTIP_CLEARANCE = 0.004
APPROACH_HEIGHT = 0.08
# Lift that proves a grasp, and attempts per object before giving up.
LIFT_CHECK = 0.02
GRASP_ATTEMPTS = 3
GRIPPER_STEPS = 10
# An object moving slower than this (m/s) counts as at rest; the expert waits up to this many steps for it.
SETTLED_SPEED = 0.02
SETTLE_WAIT_STEPS = 40
# Steps the expert stays still after its last release before declaring itself done.
SETTLE_AFTER_STEPS = 15
RAY_START_HEIGHT = 2.0


class ExpertUnsupported(RuntimeError):
    """The task's goal needs a skill the scripted expert does not have."""


class ExpertFailed(RuntimeError):
    """The expert gave up (e.g. the object could not be grasped)."""


@dataclass
class Waypoint:
    """One motion target for the end effector.

    position: (3,) world target (m); yaw: rotation about world z from DOWN_ORIENTATION (rad); gripper: -1 open,
    +1 closed; tolerance: position error (m) that completes it; max_speed: cap on the position action; max_steps:
    budget after which it completes anyway; hold_steps: steps to stay at least (lets the gripper finish).
    """

    name: str
    position: np.ndarray
    yaw: float
    gripper: float
    tolerance: float = 0.01
    max_speed: float = 1.0
    max_steps: int = 80
    hold_steps: int = 0


def _wrap_half_turn(angle: float) -> float:
    """The angle in [-pi/2, pi/2) equivalent modulo pi (the two fingers are interchangeable)."""
    return (angle + np.pi / 2) % np.pi - np.pi / 2


def pose_action(eef_pos: np.ndarray, eef_quat: np.ndarray, waypoint: Waypoint) -> np.ndarray:
    """Proportional OSC_POSE action (7,) in [-1, 1] driving the end effector towards `waypoint`.

    eef_pos: (3,) world position; eef_quat: (4,) x, y, z, w.
    """
    position_action = np.clip((waypoint.position - eef_pos) * POSITION_GAIN, -waypoint.max_speed, waypoint.max_speed)
    target = Rotation.from_euler("z", waypoint.yaw) * DOWN_ORIENTATION
    rotation_error = (target * Rotation.from_quat(eef_quat).inv()).as_rotvec()
    rotation_action = np.clip(rotation_error * ROTATION_GAIN, -1, 1)
    return np.concatenate([position_action, rotation_action, [waypoint.gripper]])


@dataclass
class Grasp:
    """Where to close the gripper: position (3,) of the end effector (m) and yaw (rad)."""

    position: np.ndarray
    yaw: float


class ScriptedExpert:
    """Pick-and-place expert for one `LiberoEnv` episode; call `reset` after `env.reset`, then `act` every step.

    Attributes:
        goal: the BDDL goal predicates, e.g. [("on", "akita_black_bowl_1", "plate_1")].
        done: all goal predicates have been worked through (the env's `check_success` is the judge).
    """

    def __init__(self, env: LiberoEnv) -> None:
        self.env = env
        self.goal = [tuple(predicate) for predicate in env.robosuite_env.parsed_problem["goal_state"]]
        for predicate in self.goal:
            if predicate[0] not in ("in", "on") or len(predicate) != 3:
                raise ExpertUnsupported(
                    f"{env.suite} task {env.task_index} ({env.task_name}): the expert handles In/On goals, not "
                    f"{predicate}"
                )
        self.done = False
        self._plan: Generator[Waypoint, None, None] | None = None
        self._waypoint: Waypoint | None = None
        self._waypoint_steps = 0
        self._last_gripper = GRIPPER_OPEN

    # ---- simulator access -----------------------------------------------------------------------------------

    @property
    def _model(self) -> mujoco.MjModel:
        return self.env.sim.model._model

    @property
    def _data(self) -> mujoco.MjData:
        return self.env.sim.data._data

    def _object_bodies(self, name: str) -> np.ndarray:
        return geometry.body_subtree(self._model, self.env.robosuite_env.obj_body_id[name])

    def _object_points(self, name: str) -> np.ndarray:
        """World hull points (P, 3) of an object's collision geoms."""
        geoms = geometry.geoms_of_bodies(self._model, self._object_bodies(name), geometry.COLLISION_GROUP)
        return geometry.hull_points_world(self._model, self._data, geoms)

    def _object_speed(self, name: str) -> float:
        """Linear speed of the object's root body (m/s)."""
        velocity = np.zeros(6)  # rotational then linear, world frame
        mujoco.mj_objectVelocity(
            self._model, self._data, mujoco.mjtObj.mjOBJ_BODY, self.env.robosuite_env.obj_body_id[name], velocity, 0
        )
        return float(np.linalg.norm(velocity[3:]))

    def _robot_bodies(self) -> np.ndarray:
        return geometry.robot_bodies(self._model)

    def _surface_height(self, xy_points: np.ndarray, ignore_bodies: np.ndarray) -> float:
        """Highest colliding surface under any of `xy_points` (K, 2), ignoring `ignore_bodies` (m).

        Colliding geoms are those with a nonzero contype or conaffinity (the floor plane is one, whatever its group).
        """
        model, data = self._model, self._data
        hit_geom = np.zeros(1, dtype=np.int32)
        down = np.array([0.0, 0.0, -1.0])
        highest = -np.inf
        for x, y in xy_points:
            start = np.array([x, y, RAY_START_HEIGHT])
            # Rays pass through visual-only geoms and ignored bodies by restarting just below each such hit.
            for _ in range(100):
                distance = mujoco.mj_ray(model, data, start, down, None, 1, -1, hit_geom)
                if distance < 0:
                    break
                hit = start + distance * down
                geom = hit_geom[0]
                colliding = model.geom_contype[geom] != 0 or model.geom_conaffinity[geom] != 0
                if colliding and model.geom_bodyid[geom] not in ignore_bodies:
                    highest = max(highest, hit[2])
                    break
                start = hit + 1e-4 * down
        if not np.isfinite(highest):
            raise ExpertFailed(f"no support surface found under {xy_points.tolist()}")
        return float(highest)

    @staticmethod
    def _disc(center_xy: np.ndarray, radius: float) -> np.ndarray:
        """Centre plus 8 points on a circle: the footprint probed by ray casts, (9, 2)."""
        angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        return np.vstack([center_xy, center_xy + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)])

    # ---- planning ---------------------------------------------------------------------------------------------

    def _fingertip_drop(self, eef_pos: np.ndarray) -> float:
        """How far the fingertips reach below the end-effector point (m)."""
        model = self._model
        fingers = np.concatenate([
            geometry.body_subtree(model, geometry.body_id(model, name))
            for name in ("gripper0_leftfinger", "gripper0_rightfinger")
        ])
        tips = geometry.hull_points_world(
            model, self._data, geometry.geoms_of_bodies(model, fingers, geometry.COLLISION_GROUP)
        )
        return float(eef_pos[2] - tips[:, 2].min())

    def _hand_obstacle(self, eef_xy: np.ndarray, yaw: float, ignore: np.ndarray) -> float:
        """Highest surface under the hand's span along the finger axis, beyond the fingers (m)."""
        finger_axis = np.array([-np.sin(yaw), np.cos(yaw)])
        offsets = np.array([-1.0, -0.7, -0.4, 0.4, 0.7, 1.0]) * HAND_HALF_LENGTH
        return self._surface_height(eef_xy + offsets[:, None] * finger_axis, ignore)

    def _plan_grasp(
        self, name: str, current_yaw: float, fingertip_drop: float, place: tuple[np.ndarray, float]
    ) -> Grasp:
        """Grasp across the object's narrowest horizontal direction near its top, or by the rim when too wide.

        place: where the object's body origin goes (2,) and the support height there, for the rim grasp's choice.
        """
        points = self._object_points(name)
        bottom, top = points[:, 2].min(), points[:, 2].max()
        height = top - bottom
        grasp_z = top - np.clip(0.5 * height, 0.01, 0.03)
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        support = self._surface_height(points[:, :2].mean(0, keepdims=True), ignore)
        grasp_z = max(grasp_z, support + fingertip_drop + FINGERTIP_CLEARANCE)

        # Candidate finger directions every 3 degrees; the width is the hull's extent along the finger axis.
        angles = np.deg2rad(np.arange(0.0, 180.0, 3.0))
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        along = points[:, :2] @ directions.T  # (P, A)
        widths = along.max(0) - along.min(0)
        # Prefer the smallest wrist rotation among near-narrowest directions (cans are round).
        candidates = np.flatnonzero(widths <= widths.min() + 0.003)
        yaws = np.array([_wrap_half_turn(angle - np.pi / 2) for angle in angles[candidates]])
        best = candidates[np.argmin(np.abs(yaws - current_yaw))]
        finger_direction = directions[best]
        across = np.array([-finger_direction[1], finger_direction[0]])
        center_xy = (
            finger_direction * (along[:, best].max() + along[:, best].min()) / 2
            + across * ((points[:, :2] @ across).max() + (points[:, :2] @ across).min()) / 2
        )
        if widths[best] <= MAX_GRASP_WIDTH:
            return Grasp(np.array([*center_xy, grasp_z]), _wrap_half_turn(angles[best] - np.pi / 2))
        return self._plan_rim_grasp(name, points, center_xy, top, fingertip_drop, place)

    def _plan_rim_grasp(
        self,
        name: str,
        points: np.ndarray,
        center_xy: np.ndarray,
        top: float,
        fingertip_drop: float,
        place: tuple[np.ndarray, float],
    ) -> Grasp:
        """Pinch the wall of a wide hollow object (a bowl): fingers radial, one inside and one outside the wall.

        The side is chosen by a score: obstacles under the outer finger, or under the hand (which spans 20 cm along
        the finger axis) when grasping or when lowering the object at `place`, rule a side out; then sides that
        keep the wrist within COMFORTABLE_REACH of the shoulder (the far edge of LIBERO's table is at the arm's
        limit), the side where the rim is highest, and the least wrist rotation from the home yaw.
        """
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        shoulder = self._data.xpos[geometry.body_id(self._model, "robot0_link2")]
        body_xy = self._data.xpos[self.env.robosuite_env.obj_body_id[name]][:2]
        place_xy, place_support = place
        bottom = points[:, 2].min()
        best_score, best = np.inf, None
        for angle in np.deg2rad(np.arange(0.0, 360.0, 45.0)):
            direction = np.array([np.cos(angle), np.sin(angle)])
            # The wall's outer face on this side: the hull's extent along the direction (a tilted bowl looks
            # narrower along its tilt).
            radius = (points[:, :2] - center_xy).dot(direction).max()
            grasp_xy = center_xy + direction * (radius - RIM_INSET)
            # A tilted object (a bowl resting on a ramekin) has its rim lower on one side: grasp below the local top.
            near = np.linalg.norm(points[:, :2] - grasp_xy, axis=1) < 0.03
            grasp_z = (points[near, 2].max() if near.any() else top) - 0.02
            yaw = _wrap_half_turn(angle - np.pi / 2)
            finger_collision = self._surface_height(
                self._disc(center_xy + direction * (radius + 0.03), 0.015), ignore
            ) - (grasp_z - fingertip_drop)
            hand_collision = self._hand_obstacle(grasp_xy, yaw, ignore) - (grasp_z + HAND_BOTTOM)
            place_eef_xy = place_xy + grasp_xy - body_xy
            place_eef_z = place_support + (grasp_z - bottom) + RELEASE_CLEARANCE
            place_collision = self._hand_obstacle(place_eef_xy, yaw, ignore) - (place_eef_z + HAND_BOTTOM)
            wrist = np.array([*grasp_xy, grasp_z + WRIST_ABOVE_GRASP])
            overreach = max(0.0, np.linalg.norm(wrist - shoulder) - COMFORTABLE_REACH)
            score = (sum(max(0.0, collision) for collision in (finger_collision, hand_collision, place_collision)) * 100
                     + overreach * 2 + (top - grasp_z) * 2 + abs(yaw) * 0.01)
            if score < best_score:
                best_score, best = score, Grasp(np.array([*grasp_xy, grasp_z]), yaw)
        return best

    def _target_xy_and_support(
        self, target: str, footprint_radius: float, ignore: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Where the carried object's centre goes (2,) and the support height there (m)."""
        env = self.env.robosuite_env
        if target in env.object_sites_dict:
            site = mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_SITE, target)
            xy = self._data.site_xpos[site][:2].copy()
        elif target in env.obj_body_id:
            xy = self._data.xpos[env.obj_body_id[target]][:2].copy()
        else:
            raise ExpertUnsupported(f"goal target {target!r} is neither an object nor a region of this scene")
        return xy, self._surface_height(self._disc(xy, footprint_radius), ignore)

    def _footprint_radius(self, name: str) -> float:
        """Radius of the object's horizontal footprint (m): half the mean side of its hull's bounding box."""
        points = self._object_points(name)
        return float(np.mean(points[:, :2].max(0) - points[:, :2].min(0)) / 2)

    def _path_clearance(self, start_xy: np.ndarray, end_xy: np.ndarray, radius: float, ignore: np.ndarray) -> float:
        """Highest surface along the straight path between two points, widened by `radius` (m)."""
        steps = max(2, int(np.linalg.norm(end_xy - start_xy) / 0.03) + 1)
        samples = np.linspace(start_xy, end_xy, steps)
        return max(self._surface_height(self._disc(xy, radius), ignore) for xy in samples)

    def _holding(self, name: str, eef_pos: np.ndarray, lifted_from: float) -> bool:
        points = self._object_points(name)
        return points[:, 2].min() > lifted_from + LIFT_CHECK and np.linalg.norm(
            points[:, :2].mean(0) - eef_pos[:2]
        ) < 0.1

    def _pick_and_place(self, name: str, target: str) -> Generator[Waypoint, None, None]:
        robot = self._robot_bodies()
        carried = self._object_bodies(name)
        ignore = np.concatenate([robot, carried])
        for _ in range(GRASP_ATTEMPTS):
            # Objects placed unstably by the initial state (a bowl on a ramekin) may still be sliding.
            for _ in range(SETTLE_WAIT_STEPS):
                if self._object_speed(name) < SETTLED_SPEED:
                    break
                yield Waypoint("wait", self._obs.eef_pos, self._current_yaw(self._obs), GRIPPER_OPEN, 1.0,
                               max_steps=1)
            obs = self._obs
            drop = self._fingertip_drop(obs.eef_pos)
            place = self._target_xy_and_support(target, 0.3 * self._footprint_radius(name), ignore)
            grasp = self._plan_grasp(name, self._current_yaw(obs), drop, place)
            path_top = self._path_clearance(obs.eef_pos[:2], grasp.position[:2], 0.05, ignore)
            travel_z = max(grasp.position[2] + APPROACH_HEIGHT, path_top + drop + CARRY_CLEARANCE, obs.eef_pos[2])
            yield Waypoint("approach", np.array([*grasp.position[:2], travel_z]), grasp.yaw, GRIPPER_OPEN, 0.015)
            # Plan again from close by: the object may have moved since the approach began.
            grasp = self._plan_grasp(name, self._current_yaw(self._obs), drop, place)
            object_bottom = self._object_points(name)[:, 2].min()
            above = grasp.position + [0, 0, APPROACH_HEIGHT]
            yield Waypoint("above", above, grasp.yaw, GRIPPER_OPEN, 0.006, max_speed=0.8)
            yield Waypoint("descend", grasp.position, grasp.yaw, GRIPPER_OPEN, 0.004, max_speed=0.5, max_steps=50)
            yield Waypoint("close", grasp.position, grasp.yaw, GRIPPER_CLOSED, 1.0, hold_steps=GRIPPER_STEPS)
            yield Waypoint("lift", grasp.position + [0, 0, 0.06], grasp.yaw, GRIPPER_CLOSED, 0.01, max_speed=0.6)
            if self._holding(name, self._obs.eef_pos, object_bottom):
                break
            yield Waypoint("release", self._obs.eef_pos, grasp.yaw, GRIPPER_OPEN, 1.0, hold_steps=GRIPPER_STEPS)
            yield Waypoint("back off", self._obs.eef_pos + [0, 0, 0.05], grasp.yaw, GRIPPER_OPEN, 0.01)
        else:
            raise ExpertFailed(f"could not grasp {name} in {GRASP_ATTEMPTS} attempts")

        obs = self._obs
        points = self._object_points(name)
        hang = obs.eef_pos[2] - points[:, 2].min()  # end effector height above the carried object's bottom
        # LIBERO's In/On predicates test the object's body origin, so that is what is brought over the target.
        center_offset = self._data.xpos[self.env.robosuite_env.obj_body_id[name]][:2] - obs.eef_pos[:2]
        footprint = self._footprint_radius(name)
        target_xy, support = self._target_xy_and_support(target, 0.3 * footprint, ignore)
        eef_xy = target_xy - center_offset
        path_top = self._path_clearance(obs.eef_pos[:2] + center_offset, target_xy, footprint, ignore)
        carry_z = max(obs.eef_pos[2], path_top + hang + CARRY_CLEARANCE)
        yaw = self._current_yaw(obs)
        yield Waypoint("raise", np.array([*obs.eef_pos[:2], carry_z]), yaw, GRIPPER_CLOSED, 0.015)
        yield Waypoint("carry", np.array([*eef_xy, carry_z]), yaw, GRIPPER_CLOSED, 0.006, max_steps=120)
        release_z = support + hang + RELEASE_CLEARANCE
        yield Waypoint("lower", np.array([*eef_xy, release_z]), yaw, GRIPPER_CLOSED, 0.006, max_speed=0.5)
        yield Waypoint("open", np.array([*eef_xy, release_z]), yaw, GRIPPER_OPEN, 1.0, hold_steps=GRIPPER_STEPS)
        yield Waypoint("retreat", np.array([*eef_xy, release_z + 0.08]), yaw, GRIPPER_OPEN, 0.015)

    def _episode(self) -> Generator[Waypoint, None, None]:
        for _, name, target in self.goal:
            yield from self._pick_and_place(name, target)
        # A released object may still be falling or rolling into place when the goal is first checked.
        yield Waypoint("settle", self._obs.eef_pos, self._current_yaw(self._obs), GRIPPER_OPEN, 0.0,
                       max_steps=SETTLE_AFTER_STEPS)

    # ---- stepping ---------------------------------------------------------------------------------------------

    @staticmethod
    def _current_yaw(obs: LiberoObservation) -> float:
        # The first angle of the z-y-x (yaw, pitch, roll) decomposition of the rotation from the home orientation.
        return float((Rotation.from_quat(obs.eef_quat) * DOWN_ORIENTATION.inv()).as_euler("ZYX")[0])

    def reset(self, obs: LiberoObservation) -> None:
        """Start a new episode from the observation `env.reset` returned."""
        self._obs = obs
        self._plan = self._episode()
        self._waypoint = None
        self._waypoint_steps = 0
        self._last_gripper = GRIPPER_OPEN
        self.done = False

    def _waypoint_reached(self, obs: LiberoObservation) -> bool:
        waypoint = self._waypoint
        if self._waypoint_steps >= waypoint.max_steps:
            return True
        if self._waypoint_steps < waypoint.hold_steps:
            return False
        return np.linalg.norm(waypoint.position - obs.eef_pos) < waypoint.tolerance and abs(
            _wrap_half_turn(self._current_yaw(obs) - waypoint.yaw)
        ) < 0.05

    def act(self, obs: LiberoObservation) -> np.ndarray:
        """The next action (7,) in [-1, 1] for observation `obs`.

        Raises:
            ExpertFailed when the plan cannot be carried out.
        """
        if self._plan is None:
            raise RuntimeError("call reset(obs) before act(obs)")
        self._obs = obs
        while self._waypoint is None or self._waypoint_reached(obs):
            self._waypoint = next(self._plan, None)
            self._waypoint_steps = 0
            if self._waypoint is None:
                self.done = True
                return np.array([0, 0, 0, 0, 0, 0, self._last_gripper])
        self._waypoint_steps += 1
        self._last_gripper = self._waypoint.gripper
        return pose_action(obs.eef_pos, obs.eef_quat, self._waypoint)

    @property
    def phase(self) -> str:
        """Name of the waypoint being tracked ("" before the first and after the last)."""
        return self._waypoint.name if self._waypoint is not None and not self.done else ""
