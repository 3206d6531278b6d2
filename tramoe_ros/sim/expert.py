"""A scripted expert for LIBERO tasks, planned from the simulator's object poses, joints and geometry.

The task's BDDL goal (``env.robosuite_env.parsed_problem["goal_state"]``, e.g. ``[["on", "akita_black_bowl_1",
"plate_1"]]``) names what to move and where; the instruction sentence is not parsed. Each goal predicate is worked
through in turn (drawers opened first, doors closed after the objects are in, knobs last; a predicate that already
holds is skipped):

- ``In`` / ``On``: a pick-and-place: approach above the object, descend, close, lift, carry above the target, lower,
  open, retreat. A target inside a drawer gets the drawer pulled out to its limit first, by its handle while it is
  closed and from inside for the rest (an object that drawer would reach over is first moved out of its way); an
  object lowered in front of an overhang (the handle of the drawer above an
  open drawer) is slid under it before it is let go. An object too wide to pinch and too flat for a rim grasp (a
  plate) is pushed to a region of the surface it stands on instead, objects in its way moved first.
- ``Open`` (drawers): the hand turns level, pinches the handle bar from the front and pulls along the slide joint.
- ``Close`` (drawers): the closed fingertips push the front panel beside the handle, pointing down and then level.
- ``Close`` (hinged doors): the closed fingers push the door along its arc about the hinge.
- ``TurnOn`` / ``TurnOff`` (knobs turning about a vertical axis): pinch the knob from above and turn the wrist.

Joint goals come from LIBERO's own fixture checks (``is_open``, ``is_close``, ``turn_on``, ``turn_off`` of the joint
position): the joint is driven a margin past the nearest position that passes. The motion is a sequence of
Cartesian waypoints for the end effector, tracked with a proportional controller whose outputs are OSC_POSE delta
actions clipped to [-1, 1].

Action scale (robosuite 1.4 OSC_POSE, ``controllers/config/osc_pose.json``): an action of 1 asks for a 0.05 m
position delta / 0.5 rad rotation delta (axis-angle, world frame) per 20 Hz step relative to the current pose; the
impedance controller realises about a quarter of it (steady state ~1.25 cm per step at action 1). Gripper: -1 opens,
+1 closes; the command ramps over ~8 steps.

Geometry comes from the collision geoms (group 0; boxes in LIBERO): an object's extent is the hull of its geoms'
corners, grasps close across the object's narrowest horizontal direction at the grasp height, objects too wide for
the gripper are grasped by the rim when hollow (bowls, mugs) or by a narrow protrusion when solid (a moka pot's
handle), and support heights (table, basket floor, plate) come from ray casts down through the collision geoms; a
drawer's handle bar is the part of the drawer reaching furthest out.

Not covered (`ExpertUnsupported` at construction or `ExpertFailed` during the episode): opening doors and placing
through a side opening (into a microwave: libero_10 9). libero_90's other scenes (books onto shelves, frying pans)
were last surveyed before the handle grasp and the pushes.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace

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
# A pinch slid along an object's length keeps the pads this far inside its ends (m).
PINCH_END_MARGIN = 0.015
# Turns of the pinch from the object's narrowest direction tried when the hand would hit a neighbour (rad).
PINCH_TURNS = np.deg2rad([0.0, -10.0, 10.0, -20.0, 20.0, 90.0])
# Collision depths (m) closer than this count as equal when choosing among grasps.
COLLISION_TOLERANCE = 0.005
# The open fingers stand this far either side of the end-effector point along the finger axis (m).
OPEN_FINGER_OFFSET = 0.04
# Handle grasp (objects too wide to pinch whole, and not hollow): the handle is the part of the object reaching
# within HANDLE_REACH of its furthest point along some horizontal direction, and must be at most MAX_HANDLE_WIDTH
# thick (m). An object is hollow when the surface under its centre is lower than this fraction of its height.
HANDLE_REACH = 0.04
MAX_HANDLE_WIDTH = 0.03
HOLLOW_DEPTH = 0.5
# The support under a placed object is probed over this fraction of its footprint radius; a spot in a region
# is searched for within this fraction of the region's half extents (so the object's centre ends inside it).
SUPPORT_PROBE = 0.3
REGION_SEARCH = 0.8
# An object lowered beside an overhang slides under it before release while the space above it keeps this
# clearance (m); slides shorter than TUCK_MIN are not made.
TUCK_CLEARANCE = 0.005
TUCK_MIN = 0.005
# An object standing where a drawer about to be opened will reach, or in the way of an object to be pushed (within
# CLEAR_MARGIN, m), is first moved to the nearest spot within CLEAR_SEARCH_RADIUS (m), CLEAR_MARGIN clear of the
# other objects, where nothing stands higher than FREE_SURFACE_TOLERANCE (m) above its support.
CLEAR_MARGIN = 0.02
CLEAR_SEARCH_RADIUS = 0.25
FREE_SURFACE_TOLERANCE = 0.005
# An object too wide to pinch and lower than MIN_RIM_HEIGHT (m, a plate) is pushed to a region of its support, for
# at most PUSH_STEPS steps, until its origin is within PUSH_TOLERANCE (m) of the region's centre; the hand is aimed
# PUSH_LEAD (m) past where the object is to go. The fingertips are aimed PUSH_HEIGHT (m) above the surface they
# push on: below it, pressing on a plate's floor, so that friction drags the plate along and the fingertips do not
# ride up over its shallow rim.
MIN_RIM_HEIGHT = 0.03
PUSH_HEIGHT = -0.006
PUSH_STEPS = 250
PUSH_TOLERANCE = 0.01
PUSH_LEAD = 0.02
# Goal objects sharing a target region are placed side by side over this fraction of its longer side.
SLOT_SPAN = 0.6
# Rim grasp: the grasp point sits this far inside the object's outer radius (wall plus pad).
RIM_INSET = 0.012
# Panda shoulder (link 2) to wrist reach the rim grasp prefers to stay within, and the wrist's height above the
# grasp point (m); the arm's limit is ~0.8 m.
COMFORTABLE_REACH = 0.7
WRIST_ABOVE_GRASP = 0.2
# The Panda hand around the end-effector point (its collision mesh): it reaches HAND_HALF_LENGTH either way along
# the finger axis and HAND_HALF_THICKNESS across it, and its underside is HAND_BOTTOM above the end-effector
# point (m).
HAND_HALF_LENGTH = 0.1
HAND_HALF_THICKNESS = 0.032
HAND_BOTTOM = 0.03
# Clearances (m): over obstacles while carrying, above the support when releasing, fingertips above surfaces.
CARRY_CLEARANCE = 0.04
RELEASE_CLEARANCE = 0.015
FINGERTIP_CLEARANCE = 0.004
APPROACH_HEIGHT = 0.08
# Below this height above its release point (m) a lowered object is no longer steered over its target.
TOUCH_DOWN_HEIGHT = 0.02
# Lift that proves a grasp, and attempts per object before giving up.
LIFT_CHECK = 0.02
GRASP_ATTEMPTS = 3
GRIPPER_STEPS = 10
# An object moving slower than this (m/s) counts as at rest; the expert waits up to this many steps for the
# objects to come to rest.
SETTLED_SPEED = 0.02
SETTLE_WAIT_STEPS = 40
# Steps the expert stays still after its last release before declaring itself done.
SETTLE_AFTER_STEPS = 15
RAY_START_HEIGHT = 2.0
ORIENTATION_TOLERANCE = 0.05

# The hand pointing horizontally along world -y (DOWN_ORIENTATION turned a quarter about world x) with its fingers
# opening vertically; a yaw turns it about world z. Pinches a drawer's handle bar from the front.
HAND_LEVEL_FINGERS_VERTICAL = Rotation.from_euler("x", -np.pi / 2) * DOWN_ORIENTATION
# The level hand turned a quarter about its approach axis: fingers side by side horizontally. Pushes drawers shut.
HAND_LEVEL_FINGERS_SIDE_BY_SIDE = HAND_LEVEL_FINGERS_VERTICAL * Rotation.from_euler("z", np.pi / 2)
# A half turn about the hand's own approach axis (its z axis, so multiplied on the right) swaps the fingers.
HALF_TURN_ABOUT_APPROACH = Rotation.from_euler("z", np.pi)

# Goal predicates by the order they are worked through: drawers open before objects go in and close after; knobs
# last (nothing else moves the arm near them).
PREDICATE_ORDER = {"open": 0, "in": 1, "on": 1, "close": 2, "turnon": 3, "turnoff": 3}
# The LIBERO fixture's method that tells, from a joint position, whether an articulation predicate holds.
JOINT_CHECKS = {"open": "is_open", "close": "is_close", "turnon": "turn_on", "turnoff": "turn_off"}
# How far past the predicate's threshold a joint is driven (m for slides, rad for hinges), and by how much at most
# the motion is aimed beyond the joint's limit (so the fixture ends pressed against it).
SLIDE_MARGIN = 0.02
HINGE_MARGIN = 0.3
LIMIT_OVERSHOOT = 0.25
# A drawer that objects go into is pulled out to within this of its limit (m).
FULLY_OPEN_TOLERANCE = 0.005
# A drawer handle: the parts of the drawer reaching within HANDLE_DEPTH of its front; the bar is the part within
# BAR_DEPTH of the front (m).
HANDLE_DEPTH = 0.025
BAR_DEPTH = 0.01
# A drawer's front panel is thinner than this along the slide (m).
PANEL_DEPTH = 0.03
# The pads sit this far behind the end-effector point along the approach axis (m): the point goes this deep past a
# handle bar's centre.
PAD_INSET = 0.004
# A push is aimed this far past where the drawer reaches its goal (m).
PUSH_PAST = 0.03
# The closed fingertips reach this far beyond the end-effector point along the approach axis (m).
FINGERTIP_REACH = 0.01
# Distance (m) from which the hand lines up in front of a handle, and moves away after letting go.
LINE_UP_DISTANCE = 0.12
BACK_OFF_DISTANCE = 0.06
# Steps given to moving a joint to its goal; a push ends early once the joint has moved less than STALL_MOTION
# (m or rad) over STALL_STEPS steps.
ARTICULATION_STEPS = 120
STALL_STEPS = 15
STALL_MOTION = 0.003
# Closing a door: it is pushed at this fraction of its width from the hinge, along an arc in steps of this angle
# (rad), by the closed fingers (half width across the hand, m) kept this far off its face.
DOOR_PUSH_RADIUS = 0.7
DOOR_ARC_STEP = 0.15
FINGER_HALF_WIDTH = 0.012
PUSH_GAP = 0.01
# Knobs: the grip is the part within this height of the knob's top (m).
KNOB_GRIP_DEPTH = 0.015


class ExpertUnsupported(RuntimeError):
    """The task's goal needs a skill the scripted expert does not have."""


class ExpertFailed(RuntimeError):
    """The expert gave up (e.g. the object could not be grasped)."""


@dataclass
class Waypoint:
    """One motion target for the end effector.

    position: (3,) world target (m); yaw: rotation about world z applied to `hand` (rad); gripper: -1 open,
    +1 closed; tolerance: position error (m) that completes it; max_speed: cap on the position action; max_steps:
    budget after which it completes anyway; hold_steps: steps to stay at least (lets the gripper finish); hand: the
    hand's orientation (world frame) before the yaw, None for DOWN_ORIENTATION (then only the yaw is checked on
    arrival, as carrying leaves the hand slightly tilted; otherwise the whole orientation).
    """

    name: str
    position: np.ndarray
    yaw: float
    gripper: float
    tolerance: float = 0.01
    max_speed: float = 1.0
    max_steps: int = 80
    hold_steps: int = 0
    hand: Rotation | None = None

    @property
    def orientation(self) -> Rotation:
        """The target orientation of the end effector in the world frame."""
        return Rotation.from_euler("z", self.yaw) * (DOWN_ORIENTATION if self.hand is None else self.hand)


def _wrap_half_turn(angle: float) -> float:
    """The angle in [-pi/2, pi/2) equivalent modulo pi (the two fingers are interchangeable)."""
    return (angle + np.pi / 2) % np.pi - np.pi / 2


def pose_action(eef_pos: np.ndarray, eef_quat: np.ndarray, waypoint: Waypoint) -> np.ndarray:
    """Proportional OSC_POSE action (7,) in [-1, 1] driving the end effector towards `waypoint`.

    eef_pos: (3,) world position; eef_quat: (4,) x, y, z, w.
    """
    position_action = np.clip((waypoint.position - eef_pos) * POSITION_GAIN, -waypoint.max_speed, waypoint.max_speed)
    rotation_error = (waypoint.orientation * Rotation.from_quat(eef_quat).inv()).as_rotvec()
    rotation_action = np.clip(rotation_error * ROTATION_GAIN, -1, 1)
    return np.concatenate([position_action, rotation_action, [waypoint.gripper]])


def _orientation_error(eef_quat: np.ndarray, waypoint: Waypoint) -> float:
    """Angle (rad) from the end effector's orientation (quaternion x, y, z, w) to the waypoint's, the two fingers
    being interchangeable (a half turn about the approach axis changes nothing); only the yaw for a downward hand."""
    current = Rotation.from_quat(eef_quat)
    if waypoint.hand is None:
        yaw = (current * DOWN_ORIENTATION.inv()).as_euler("ZYX")[0]
        return abs(_wrap_half_turn(yaw - waypoint.yaw))
    target = waypoint.orientation
    return min((target.inv() * current).magnitude(), ((target * HALF_TURN_ABOUT_APPROACH).inv() * current).magnitude())


def _segment_distance(points_xy: np.ndarray, start_xy: np.ndarray, end_xy: np.ndarray) -> np.ndarray:
    """Distances (P,) of points (P, 2) from the segment between two points (2,) (m)."""
    along = end_xy - start_xy
    fraction = np.clip((points_xy - start_xy) @ along / (along @ along), 0.0, 1.0)
    return np.linalg.norm(points_xy - (start_xy + fraction[:, None] * along), axis=1)


def _narrowest_pinch(points_xy: np.ndarray, current_yaw: float) -> tuple[np.ndarray, float, float]:
    """Where fingers closing across the narrowest horizontal direction of points (P, 2) (world, m) pinch them.

    Returns:
        the pinch centre (2,) (the middle of the points' extents along and across the fingers), the yaw (rad,
        the one closest to `current_yaw` among near-narrowest directions) and the width between the fingers (m).
    """
    # Candidate finger directions every 3 degrees; the width is the hull's extent along the finger axis.
    angles = np.deg2rad(np.arange(0.0, 180.0, 3.0))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    along = points_xy @ directions.T  # (P, A)
    widths = along.max(0) - along.min(0)
    # Prefer the smallest wrist rotation among near-narrowest directions (cans are round).
    candidates = np.flatnonzero(widths <= widths.min() + 0.003)
    yaws = np.array([_wrap_half_turn(angle - np.pi / 2) for angle in angles[candidates]])
    best = candidates[np.argmin(np.abs(yaws - current_yaw))]
    finger_direction = directions[best]
    across = np.array([-finger_direction[1], finger_direction[0]])
    center_xy = (
        finger_direction * (along[:, best].max() + along[:, best].min()) / 2
        + across * ((points_xy @ across).max() + (points_xy @ across).min()) / 2
    )
    return center_xy, _wrap_half_turn(angles[best] - np.pi / 2), float(widths[best])


@dataclass
class FixtureJoint:
    """A slide or hinge joint of a fixture, posed in the world frame.

    joint: joint id; qpos_address: its index in qpos; body: the body it moves; hinge: True for a hinge (qpos in
    rad), False for a slide (qpos in m); axis: (3,) unit world direction, along which a slide moves and about which
    a hinge turns (right-handed) as qpos grows; anchor: (3,) a world point on the axis (m); low, high: qpos limits.
    """

    joint: int
    qpos_address: int
    body: int
    hinge: bool
    axis: np.ndarray
    anchor: np.ndarray
    low: float
    high: float


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
            self._check_supported(predicate)
        self.done = False
        self._plan: Generator[Waypoint, None, None] | None = None
        self._waypoint: Waypoint | None = None
        self._waypoint_steps = 0
        self._last_gripper = GRIPPER_OPEN

    def _check_supported(self, predicate: tuple[str, ...]) -> None:
        """Raise ExpertUnsupported for a goal predicate the expert has no skill for."""
        env = self.env
        name = predicate[0]
        placement = name in ("in", "on") and len(predicate) == 3
        articulation = name in JOINT_CHECKS and len(predicate) == 2
        if not (placement or articulation):
            raise ExpertUnsupported(
                f"{env.suite} task {env.task_index} ({env.task_name}): the expert handles In/On, Open/Close and "
                f"TurnOn/TurnOff goals, not {predicate}"
            )
        if name == "open" and any(self._joint(joint).hinge for joint in self._fixture_joints(predicate[1])[1]):
            # Doors are only pushed shut.
            raise ExpertUnsupported(
                f"{env.suite} task {env.task_index} ({env.task_name}): open {predicate[1]} (the expert opens and "
                "closes drawers and closes hinged doors)"
            )

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

    def _ray_distance(self, start: np.ndarray, direction: np.ndarray, ignore_bodies: np.ndarray) -> float:
        """Distance (m) from `start` (3,) along the unit `direction` (3,) to the first colliding geom not in
        `ignore_bodies`; inf when the ray hits none.

        Colliding geoms are those with a nonzero contype or conaffinity (the floor plane is one, whatever its group).
        Rays pass through visual-only geoms and ignored bodies by restarting just beyond each such hit.
        """
        model, data = self._model, self._data
        hit_geom = np.zeros(1, dtype=np.int32)
        travelled = 0.0
        for _ in range(100):
            distance = mujoco.mj_ray(model, data, start + travelled * direction, direction, None, 1, -1, hit_geom)
            if distance < 0:
                break
            geom = hit_geom[0]
            travelled += distance
            colliding = model.geom_contype[geom] != 0 or model.geom_conaffinity[geom] != 0
            if colliding and model.geom_bodyid[geom] not in ignore_bodies:
                return travelled
            travelled += 1e-4
        return np.inf

    def _surface_height(self, xy_points: np.ndarray, ignore_bodies: np.ndarray) -> float:
        """Highest colliding surface under any of `xy_points` (K, 2), ignoring `ignore_bodies` (m)."""
        down = np.array([0.0, 0.0, -1.0])
        highest = max(RAY_START_HEIGHT - self._ray_distance(np.array([x, y, RAY_START_HEIGHT]), down, ignore_bodies)
                      for x, y in xy_points)
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
        """Highest surface under the hand: its span along the finger axis beyond the fingers, and its thickness
        across (m)."""
        finger_axis = np.array([-np.sin(yaw), np.cos(yaw)])
        across_axis = np.array([np.cos(yaw), np.sin(yaw)])
        along = np.array([-1.0, -0.7, -0.4, 0.0, 0.4, 0.7, 1.0]) * HAND_HALF_LENGTH
        across = np.array([-1.0, 0.0, 1.0]) * HAND_HALF_THICKNESS
        samples = eef_xy + (along[:, None, None] * finger_axis + across[None, :, None] * across_axis).reshape(-1, 2)
        return self._surface_height(samples, ignore)

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
        support = self._surface_height(points[:, :2].mean(0, keepdims=True), ignore) + FINGERTIP_CLEARANCE
        grasp_z = max(grasp_z, support + fingertip_drop)

        center_xy, yaw, width = _narrowest_pinch(points[:, :2], current_yaw)
        if width <= MAX_GRASP_WIDTH:
            return self._clear_pinch(name, points, center_xy, yaw, grasp_z, fingertip_drop, place)
        # A hollow object (a bowl, a mug) is held by its wall; a solid one (a moka pot) only by a handle.
        others = np.setdiff1d(np.arange(self._model.nbody), self._object_bodies(name))
        hollow = self._surface_height(center_xy[None], others) < bottom + HOLLOW_DEPTH * height
        if not hollow:
            handle = self._plan_handle_grasp(name, center_xy, current_yaw, support + fingertip_drop)
            if handle is not None:
                return handle
        return self._plan_rim_grasp(name, points, center_xy, top, fingertip_drop, place)

    def _hand_collision(self, name: str, grasp: Grasp, fingertip_drop: float, place: tuple[np.ndarray, float]
                        ) -> float:
        """How far (m) obstacles reach into the open fingers and the hand (20 cm along the finger axis) at `grasp`
        of object `name`, plus into the hand when lowering the object onto the support at `place` (body origin
        (2,), support height); 0 when clear."""
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        grasp_xy, grasp_z = grasp.position[:2], grasp.position[2]
        finger_axis = np.array([-np.sin(grasp.yaw), np.cos(grasp.yaw)])
        fingers = max(self._surface_height(self._disc(grasp_xy + side * OPEN_FINGER_OFFSET * finger_axis,
                                                      FINGER_HALF_WIDTH), ignore) for side in (-1, 1))
        body_xy = self._data.xpos[self.env.robosuite_env.obj_body_id[name]][:2]
        place_xy, place_support = place
        place_eef_z = place_support + (grasp_z - self._object_points(name)[:, 2].min()) + RELEASE_CLEARANCE
        at_place = self._hand_obstacle(place_xy + grasp_xy - body_xy, grasp.yaw, ignore) - (place_eef_z + HAND_BOTTOM)
        return (max(0.0, fingers - (grasp_z - fingertip_drop))
                + max(0.0, self._hand_obstacle(grasp_xy, grasp.yaw, ignore) - (grasp_z + HAND_BOTTOM))
                + max(0.0, at_place))

    def _clear_pinch(self, name: str, points: np.ndarray, center_xy: np.ndarray, yaw: float, grasp_z: float,
                     fingertip_drop: float, place: tuple[np.ndarray, float]) -> Grasp:
        """A pinch of object `name` (hull points (P, 3)) at `grasp_z` (m): across its narrowest direction (`yaw`,
        rad) at its middle (`center_xy`, (2,), world m), or, where the fingers or hand would hit a neighbour when
        grasping (a can standing close beside another, a carton beside a box lying flat) or placing at `place` (as
        for `_hand_collision`), slid along the object's length and turned while the object still fits between the
        fingers."""
        candidates = []
        for turn in PINCH_TURNS:
            finger_axis = np.array([-np.sin(yaw + turn), np.cos(yaw + turn)])
            along = np.array([np.cos(yaw + turn), np.sin(yaw + turn)])  # across the finger axis
            if turn != 0 and np.ptp(points[:, :2] @ finger_axis) > MAX_GRASP_WIDTH:
                continue
            reach = (points[:, :2] - center_xy) @ along
            room = max(0.0, np.ptp(reach) / 2 - PINCH_END_MARGIN)
            middle = center_xy + along * (reach.max() + reach.min()) / 2
            for offset in np.linspace(-room, room, 9):
                grasp = Grasp(np.array([*(middle + offset * along), grasp_z]), _wrap_half_turn(yaw + turn))
                collision = self._hand_collision(name, grasp, fingertip_drop, place)
                candidates.append((collision, abs(turn), abs(offset), grasp))
        # Collisions differing by less than the tolerance (the same basket wall under the hand at every candidate)
        # do not decide: the least turned and slid among the least colliding does.
        least = min(candidate[0] for candidate in candidates) + COLLISION_TOLERANCE
        return min((candidate for candidate in candidates if candidate[0] <= least), key=lambda c: c[1:3])[3]

    def _plan_handle_grasp(self, name: str, center_xy: np.ndarray, current_yaw: float, lowest_z: float
                           ) -> Grasp | None:
        """Pinch a handle: the part of the object reaching furthest out horizontally, when it is narrow.

        center_xy: (2,) the middle of the object's footprint (m); lowest_z: the lowest end-effector height the
        fingertips allow (m). None when no direction has a narrow protrusion.
        """
        points, owners = self._body_points(self.env.robosuite_env.obj_body_id[name])
        best_reach, best = -np.inf, None
        for angle in np.deg2rad(np.arange(0.0, 360.0, 15.0)):
            direction = np.array([np.cos(angle), np.sin(angle), 0.0])
            handle = points[self._protrusion(points, owners, direction, HANDLE_REACH)]
            handle_xy, yaw, width = _narrowest_pinch(handle[:, :2], current_yaw)
            # The handle sticks out furthest along its own direction; a side of the body is never narrow.
            reach = (points[:, :2] - center_xy) @ direction[:2]
            if width <= MAX_HANDLE_WIDTH and reach.max() > best_reach:
                handle_top = handle[:, 2].max()
                grasp_z = handle_top - np.clip(0.5 * (handle_top - handle[:, 2].min()), 0.01, 0.03)
                best_reach, best = reach.max(), Grasp(np.array([*handle_xy, max(grasp_z, lowest_z)]), yaw)
        return best

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
        shoulder = self._data.xpos[geometry.body_id(self._model, "robot0_link2")]
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
            grasp = Grasp(np.array([*grasp_xy, grasp_z]), _wrap_half_turn(angle - np.pi / 2))
            wrist = np.array([*grasp_xy, grasp_z + WRIST_ABOVE_GRASP])
            overreach = max(0.0, np.linalg.norm(wrist - shoulder) - COMFORTABLE_REACH)
            score = (self._hand_collision(name, grasp, fingertip_drop, place) * 100
                     + overreach * 2 + (top - grasp_z) * 2 + abs(grasp.yaw) * 0.01)
            if score < best_score:
                best_score, best = score, grasp
        return best

    def _target_xy_and_support(self, name: str, target: str | np.ndarray, ignore: np.ndarray
                               ) -> tuple[np.ndarray, float]:
        """Where the carried object `name`'s centre goes (2,) and the support height there (m), probed over
        SUPPORT_PROBE of its footprint; `target` names an object or a region, or is a point (2,) (world, m).

        A region several goal objects must be on (two moka pots on one stove: LIBERO's On wants each touching the
        stove, so they cannot be stacked) gets them side by side, in goal order, in slots spread over the middle
        SLOT_SPAN of the region along the world axis (x or y) where the objects' summed extents take the smallest
        share of the region. Where something overhangs the spot higher than the object is tall (the handles of
        the drawers above an open drawer), the object goes to the place in the region with the lowest column
        over its footprint instead, the nearest such to the spot.
        """
        footprint = self._footprint_radius(name)
        xy = self._wanted_xy(name, target)
        support = self._surface_height(self._disc(xy, SUPPORT_PROBE * footprint), ignore)
        if isinstance(target, np.ndarray) or target in self.env.robosuite_env.obj_body_id:
            return xy, support
        center, half = self._region_box(target)
        # Anything higher than the placed object's top (give or take the carry clearance) over its footprint blocks
        # lowering it there.
        free_top = support + np.ptp(self._object_points(name)[:, 2]) + CARRY_CLEARANCE
        if self._column_top(xy, footprint, ignore) > free_top:
            offsets = np.stack(np.meshgrid(*(np.linspace(-h, h, 17) for h in REGION_SEARCH * half)), -1).reshape(-1, 2)
            candidates = center + offsets
            columns = np.array([self._column_top(candidate, footprint, ignore) for candidate in candidates])
            limit = free_top if (columns <= free_top).any() else columns.min() + COLLISION_TOLERANCE
            fits = candidates[columns <= limit]
            nearest = fits[np.argmin(np.linalg.norm(fits - xy, axis=1))]
            # Closer to the wanted spot than the grid resolves, while it still fits.
            for step in np.linspace(nearest, xy, 11)[1:]:
                if self._column_top(step, footprint, ignore) > limit:
                    break
                nearest = step
            xy = nearest
            support = self._surface_height(self._disc(xy, SUPPORT_PROBE * footprint), ignore)
        return xy, support

    def _region_box(self, region: str) -> tuple[np.ndarray, np.ndarray]:
        """The centre (2,) and horizontal half extents (2,) of a region's box in the world (m), as LIBERO has them."""
        env = self.env.robosuite_env
        if region not in env.object_sites_dict:
            raise ExpertUnsupported(f"goal target {region!r} is neither an object nor a region of this scene")
        site = mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_SITE, region)
        half = np.abs(self._data.site_xmat[site].reshape(3, 3) @ env.object_sites_dict[region].size)[:2]
        return self._data.site_xpos[site][:2].copy(), half

    def _wanted_xy(self, name: str, target: str | np.ndarray) -> np.ndarray:
        """Where object `name`'s centre would best go on `target` (2,): the target object's origin, the region's
        centre, the object's slot in a region shared with other goal objects (see `_target_xy_and_support`), or
        the target itself when it is a point (2,) (world, m)."""
        env = self.env.robosuite_env
        if isinstance(target, np.ndarray):
            return target.copy()
        if target in env.obj_body_id:
            return self._data.xpos[env.obj_body_id[target]][:2].copy()
        xy, half = self._region_box(target)
        sharing = [predicate[1] for predicate in self.goal if predicate[0] == "on" and predicate[2] == target]
        if len(sharing) > 1:
            extents = sum(np.ptp(self._object_points(other)[:, :2], axis=0) for other in sharing)
            axis = int(np.argmin(extents / half))
            xy[axis] += half[axis] * SLOT_SPAN * np.linspace(-1.0, 1.0, len(sharing))[sharing.index(name)]
        return xy

    def _ceiling_height(self, xy_points: np.ndarray, from_z: float, ignore_bodies: np.ndarray) -> float:
        """Lowest colliding surface above height `from_z` over any of `xy_points` (K, 2), ignoring `ignore_bodies`
        (m; inf when open to the sky). A point inside a geom (a wall) sees the geom's top."""
        up = np.array([0.0, 0.0, 1.0])
        return float(min(from_z + self._ray_distance(np.array([x, y, from_z]), up, ignore_bodies)
                         for x, y in xy_points))

    def _tuck_xy(self, name: str, target: str | np.ndarray, target_xy: np.ndarray, lowered_xy: np.ndarray,
                 support: float, height: float, ignore: np.ndarray) -> np.ndarray:
        """Where an object lowered at `lowered_xy` (2,) onto a support at height `support` (m) slides to before it
        is let go, when an overhang moved its spot (`target_xy`, from `_target_xy_and_support`) off where it is
        wanted: towards there, as far as the space over its footprint stays clear `height` (m, its upright height)
        plus TUCK_CLEARANCE above the support. A bowl lowered into an open drawer in front of the handle of the
        drawer above slides under the handle, off the drawer's front wall it may have caught on."""
        footprint = self._footprint_radius(name)
        wanted = self._wanted_xy(name, target)
        tucked = lowered_xy
        if np.linalg.norm(wanted - target_xy) < TUCK_MIN:
            return tucked
        for xy in np.linspace(lowered_xy, wanted, max(2, int(np.linalg.norm(wanted - lowered_xy) / 0.005) + 1))[1:]:
            ceiling = self._ceiling_height(self._disc(xy, footprint), support + TUCK_CLEARANCE, ignore)
            if ceiling >= support + height + TUCK_CLEARANCE:
                tucked = xy
            elif tucked is not lowered_xy:
                # Blocked again after a clear stretch (blocked at first is the wall the object is leaving).
                break
        return tucked

    def _column_top(self, center_xy: np.ndarray, radius: float, ignore: np.ndarray) -> float:
        """Highest surface over a disc (m), probed densely enough (two rings) to find a handle bar over it."""
        angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return self._surface_height(np.vstack([center_xy, center_xy + radius * ring, center_xy + radius / 2 * ring]),
                                    ignore)

    def _footprint_radius(self, name: str) -> float:
        """Radius of the object's horizontal footprint (m): half the mean side of its hull's bounding box."""
        points = self._object_points(name)
        return float(np.mean(points[:, :2].max(0) - points[:, :2].min(0)) / 2)

    @staticmethod
    def _path_samples(start_xy: np.ndarray, end_xy: np.ndarray) -> np.ndarray:
        """Points (S, 2) every ~3 cm along the straight path between two points (m), both ends included."""
        return np.linspace(start_xy, end_xy, max(2, int(np.linalg.norm(end_xy - start_xy) / 0.03) + 1))

    def _path_clearance(self, start_xy: np.ndarray, end_xy: np.ndarray, radius: float, ignore: np.ndarray) -> float:
        """Highest surface along the straight path between two points, widened by `radius` (m)."""
        return max(self._surface_height(self._disc(xy, radius), ignore) for xy in self._path_samples(start_xy, end_xy))

    def _holding(self, name: str, eef_pos: np.ndarray, lifted_from: float) -> bool:
        points = self._object_points(name)
        return points[:, 2].min() > lifted_from + LIFT_CHECK and np.linalg.norm(
            points[:, :2].mean(0) - eef_pos[:2]
        ) < 0.1

    def _settle(self) -> Generator[Waypoint, None, None]:
        """Wait (up to SETTLE_WAIT_STEPS) for the objects to come to rest: plans are made from a scene at rest.
        Objects placed unstably by the initial state (a bowl on a ramekin) may still be sliding, some initial states
        drop objects from above the table, and a released object may still be falling."""
        for _ in range(SETTLE_WAIT_STEPS):
            if max(map(self._object_speed, self.env.robosuite_env.objects_dict)) < SETTLED_SPEED:
                return
            yield Waypoint("wait", self._obs.eef_pos, self._current_yaw(self._obs), self._last_gripper, 1.0,
                           max_steps=1, hold_steps=1)

    def _pick_and_place(self, name: str, target: str | np.ndarray) -> Generator[Waypoint, None, None]:
        """Move object `name` onto or into `target`: an object, a region, or a point (2,) on the surface there."""
        robot = self._robot_bodies()
        carried = self._object_bodies(name)
        ignore = np.concatenate([robot, carried])
        for _ in range(GRASP_ATTEMPTS):
            yield from self._settle()
            obs = self._obs
            drop = self._fingertip_drop(obs.eef_pos)
            place = self._target_xy_and_support(name, target, ignore)
            grasp = self._plan_grasp(name, self._current_yaw(obs), drop, place)
            path_top = self._path_clearance(obs.eef_pos[:2], grasp.position[:2], 0.05, ignore)
            travel_z = max(grasp.position[2] + APPROACH_HEIGHT, path_top + drop + CARRY_CLEARANCE, obs.eef_pos[2])
            yield Waypoint("approach", np.array([*grasp.position[:2], travel_z]), grasp.yaw, GRIPPER_OPEN, 0.015)
            # Plan again from close by: the object may have moved since the approach began.
            grasp = self._plan_grasp(name, self._current_yaw(self._obs), drop, place)
            resting = self._object_points(name)[:, 2]
            object_bottom, object_height = resting.min(), np.ptp(resting)
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
        target_xy, support = self._target_xy_and_support(name, target, ignore)
        eef_xy = target_xy - center_offset
        path_top = self._path_clearance(obs.eef_pos[:2] + center_offset, target_xy, footprint, ignore)
        yaw = self._current_yaw(obs)
        # The hand reaches 10 cm either way along the finger axis, beyond the object held by its rim.
        hand_top = max(self._hand_obstacle(xy, yaw, ignore) for xy in self._path_samples(obs.eef_pos[:2], eef_xy))
        carry_z = max(obs.eef_pos[2], path_top + hang + CARRY_CLEARANCE, hand_top - HAND_BOTTOM + CARRY_CLEARANCE)
        yield Waypoint("raise", np.array([*obs.eef_pos[:2], carry_z]), yaw, GRIPPER_CLOSED, 0.015)
        yield Waypoint("carry", np.array([*eef_xy, carry_z]), yaw, GRIPPER_CLOSED, 0.006, max_steps=120)
        release_z = support + hang + RELEASE_CLEARANCE
        # An object held by its rim hangs tilted and swings: while lowering, its centre is kept over the target from
        # where it hangs at each step, until it is about to touch down.
        body = self.env.robosuite_env.obj_body_id[name]
        lower = Waypoint("lower", np.array([*eef_xy, release_z]), yaw, GRIPPER_CLOSED, 0.006, max_speed=0.5)
        for _ in range(lower.max_steps):
            if self._obs.eef_pos[2] < release_z + TOUCH_DOWN_HEIGHT:
                break
            eef_xy = target_xy - (self._data.xpos[body][:2] - self._obs.eef_pos[:2])
            yield replace(lower, position=np.array([*eef_xy, release_z]), max_steps=1)
        yield replace(lower, position=np.array([*eef_xy, release_z]))
        lowered_xy = self._data.xpos[body][:2].copy()
        tucked_xy = self._tuck_xy(name, target, target_xy, lowered_xy, support, object_height, ignore)
        # The hand leaves the way it came: out from under the overhang while rising.
        retreat_xy = eef_xy = self._obs.eef_pos[:2].copy()
        if np.linalg.norm(tucked_xy - lowered_xy) > TUCK_MIN:
            eef_xy = eef_xy + tucked_xy - lowered_xy
            yield Waypoint("tuck", np.array([*eef_xy, release_z]), yaw, GRIPPER_CLOSED, 0.006, max_speed=0.3,
                           max_steps=40)
        yield Waypoint("open", np.array([*eef_xy, release_z]), yaw, GRIPPER_OPEN, 1.0, hold_steps=GRIPPER_STEPS)
        yield Waypoint("retreat", np.array([*retreat_xy, release_z + 0.08]), yaw, GRIPPER_OPEN, 0.015)

    # ---- goal predicates ----------------------------------------------------------------------------------------

    def _holds(self, predicate: tuple[str, ...]) -> bool:
        """Whether a goal predicate holds now, as LIBERO judges it."""
        # Imported here: LIBERO loads robosuite, which must come after `libero_env` has configured the renderer.
        from libero.libero.envs.predicates import eval_predicate_fn

        states = self.env.robosuite_env.object_states_dict
        return bool(eval_predicate_fn(predicate[0], *(states[name] for name in predicate[1:])))

    def _fixture_joints(self, name: str) -> tuple[object, list[str]]:
        """The LIBERO fixture object that judges an articulation predicate on `name` (a fixture, or a region of
        one such as a drawer's), and the names of the joints it judges."""
        env = self.env.robosuite_env
        if name in env.object_sites_dict:
            site = env.object_sites_dict[name]
            # Regions of the table (TargetZone) have no joints.
            return env.get_object(getattr(site, "parent_name", None)), list(getattr(site, "joints", None) or [])
        return env.get_object(name), list(env.get_object(name).joints)

    def _joint(self, name: str) -> FixtureJoint:
        """The joint called `name`, posed where the simulator has it now."""
        model, data = self._model, self._data
        joint = geometry.joint_id(model, name)
        hinge = model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_HINGE
        if not hinge and model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_SLIDE:
            raise ExpertUnsupported(f"joint {name!r} is neither a slide nor a hinge")
        return FixtureJoint(
            joint, int(model.jnt_qposadr[joint]), int(model.jnt_bodyid[joint]), bool(hinge),
            data.xaxis[joint].copy(), data.xanchor[joint].copy(), *map(float, model.jnt_range[joint]),
        )

    def _qpos(self, joint: FixtureJoint) -> float:
        return float(self._data.qpos[joint.qpos_address])

    def _joint_goal(self, joint: FixtureJoint, reached: Callable[[float], bool]) -> tuple[float, float]:
        """The joint position nearest the current one where `reached` (the fixture's check) holds, and the goal a
        margin past it, aimed at most a little beyond the joint's limit (qpos units)."""
        samples = np.linspace(joint.low, joint.high, 401)
        satisfying = samples[[bool(reached(q)) for q in samples]]
        if len(satisfying) == 0:
            raise ExpertFailed(f"no position of joint {joint.joint} satisfies the goal")
        current = self._qpos(joint)
        threshold = float(satisfying[np.argmin(np.abs(satisfying - current))])
        margin = HINGE_MARGIN if joint.hinge else SLIDE_MARGIN
        overshoot = LIMIT_OVERSHOOT * margin
        goal = threshold + np.sign(threshold - current) * margin
        return threshold, float(np.clip(goal, joint.low - overshoot, joint.high + overshoot))

    def _joint_done(self, joint: FixtureJoint, reached: Callable[[float], bool], threshold: float,
                    goal: float) -> Callable[[], bool]:
        """A test that the joint satisfies the check and is half its margin past the threshold or at its limit."""
        direction = np.sign(goal - threshold)
        limit = joint.high if direction > 0 else joint.low
        half_margin = 0.5 * abs(goal - threshold)

        def done() -> bool:
            q = self._qpos(joint)
            past = direction * (q - threshold) >= half_margin
            return bool(reached(q)) and (past or abs(q - limit) < 0.1 * half_margin)
        return done

    def _achieve(self, predicate: tuple[str, ...]) -> Generator[Waypoint, None, None]:
        name = predicate[0]
        if name in JOINT_CHECKS:
            yield from self._articulate(name, predicate[1])
            return
        target = predicate[2]
        if target in self.env.robosuite_env.object_sites_dict and self._fixture_joints(target)[1]:
            # A drawer's region: objects go in through the drawer, opened as far as it goes.
            yield from self._open_drawer_fully(predicate[1], target)
        if self._slides_to(predicate[1], target):
            yield from self._push_to_region(predicate[1], target)
        else:
            yield from self._pick_and_place(predicate[1], target)

    def _slides_to(self, name: str, target: str) -> bool:
        """Whether object `name` is pushed to `target` rather than carried: it is too wide to pinch and too flat
        (under MIN_RIM_HEIGHT) for a rim grasp (a plate), and `target` is a region of the surface it stands on."""
        points = self._object_points(name)
        if target not in self.env.robosuite_env.object_sites_dict or self._fixture_joints(target)[1]:
            return False
        if np.ptp(points[:, 2]) >= MIN_RIM_HEIGHT or _narrowest_pinch(points[:, :2], 0.0)[2] <= MAX_GRASP_WIDTH:
            return False
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        center, _ = self._region_box(target)
        here = self._data.xpos[self.env.robosuite_env.obj_body_id[name]][:2]
        return abs(self._surface_height(center[None], ignore) - self._surface_height(here[None], ignore)) < LIFT_CHECK

    def _push_to_region(self, name: str, region: str) -> Generator[Waypoint, None, None]:
        """Push object `name` along its support until its body origin (what LIBERO's On tests) reaches the middle
        of `region`: the closed fingertips, pointing down with the fingers side by side across the push, are set
        down just above the support and pushed in a straight line, re-aimed every step from where the object is
        (it turns and drifts as it slides). A hollow object (a plate) is pushed from inside against the wall ahead
        (the hand then stands over it, clear of what stands behind it, such as a cabinet; set down further back, it
        slid across the floor first and rode up over that wall in half the episodes), a solid one from behind."""
        body = self.env.robosuite_env.obj_body_id[name]
        target, _ = self._region_box(region)
        # Objects standing in the band the pushed object sweeps would be pushed along and stall it: moved first.
        band = self._footprint_radius(name) + CLEAR_MARGIN  # half width of the band, around the origin's path
        path = (self._data.xpos[body][:2].copy(), target)
        for other in self.env.robosuite_env.objects_dict:
            if other != name:
                yield from self._move_clear(other, lambda points_xy: _segment_distance(points_xy, *path).min() < band)
        yield from self._settle()
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        drop = self._fingertip_drop(self._obs.eef_pos)
        points = self._object_points(name)
        start_xy = self._data.xpos[body][:2]
        motion = (target - start_xy) / np.linalg.norm(target - start_xy)
        back = ((points[:, :2] - start_xy) @ -motion).max()  # how far the object reaches behind its origin
        others = np.setdiff1d(np.arange(self._model.nbody), self._object_bodies(name))
        bottom, height = points[:, 2].min(), np.ptp(points[:, 2])
        floor = self._surface_height(start_xy[None], others)
        if floor < bottom + HOLLOW_DEPTH * height:
            # The hollow reaches ahead of the origin as far as the surface stays low (a plate's thick rim is high).
            front = ((points[:, :2] - start_xy) @ motion).max()  # how far the object reaches ahead of its origin
            ahead = np.arange(0.0, front, 0.002)
            low = [self._surface_height((start_xy + motion * distance)[None], self._robot_bodies())
                   < bottom + HOLLOW_DEPTH * height for distance in ahead]
            hollow_front = ahead[np.argmin(low)] if not all(low) else front
            stand = start_xy + motion * max(0.0, hollow_front - FINGER_HALF_WIDTH - PUSH_GAP)
        else:
            stand = start_xy - motion * (back + FINGER_HALF_WIDTH + PUSH_GAP)
            floor = self._surface_height(self._disc(start_xy, self._footprint_radius(name)), ignore)
        push_z = floor + PUSH_HEIGHT + drop
        start = np.array([*stand, push_z])
        yaw = self._yaw_across(motion)
        path_top = self._path_clearance(self._obs.eef_pos[:2], start[:2], 0.05, ignore)
        travel_z = max(push_z + APPROACH_HEIGHT, path_top + drop + CARRY_CLEARANCE, self._obs.eef_pos[2])
        yield Waypoint("above push", np.array([*start[:2], travel_z]), yaw, GRIPPER_CLOSED, 0.015)
        yield Waypoint("down to push", start, yaw, GRIPPER_CLOSED, 0.006, max_speed=0.6)
        for _ in range(PUSH_STEPS):
            offset = target - self._data.xpos[body][:2]
            if np.linalg.norm(offset) < PUSH_TOLERANCE:
                break
            # The hand goes where the object is still to go, plus a lead: it stalls short of its target under load.
            aim = self._obs.eef_pos[:2] + offset + offset / np.linalg.norm(offset) * PUSH_LEAD
            yield Waypoint("push", np.array([*aim, push_z]), yaw, GRIPPER_CLOSED, 0.0, max_speed=0.6, max_steps=1)
        # Straight up: backing off along the support would drag the object back.
        yield Waypoint("rise", np.array([*self._obs.eef_pos[:2], travel_z]), yaw, GRIPPER_CLOSED, 0.02, max_steps=40)

    def _open_drawer_fully(self, name: str, region: str) -> Generator[Waypoint, None, None]:
        """Pull the drawer of `region` out to its limit, first moving object `name` from where it will reach: by
        its handle while it is closed, then from inside (`_hook_drawer_out`) for what is left.

        LIBERO counts a drawer open a few centimetres short of its limit, and a drawer opened only that far leaves
        a gap under the drawer above narrower than a bowl (9.6 cm against 10.7 cm in KITCHEN_SCENE4): the bowl
        lowered into it catches on both fronts, lands tilted and then jams the drawer as it closes.
        """
        judge, joint_names = self._fixture_joints(region)
        joint = self._joint(joint_names[0])
        if joint.hinge:
            if not self._holds(("open", region)):
                yield from self._articulate("open", region)
            return
        limit = joint.low if judge.is_open(joint.low) else joint.high
        if abs(self._qpos(joint) - limit) <= FULLY_OPEN_TOLERANCE:
            return
        yield from self._clear_drawer_reach(name, joint, limit)
        yield from self._settle()
        # Aimed past the limit, as a push is past its goal: the controller stalls short of its target.
        aim = limit + np.sign(limit - self._qpos(joint)) * LIMIT_OVERSHOOT * SLIDE_MARGIN

        def at_limit() -> bool:
            return abs(self._qpos(joint) - limit) <= FULLY_OPEN_TOLERANCE / 2
        if not judge.is_open(self._qpos(joint)):
            yield from self._pull_drawer(joint, aim, self._stalled(joint, at_limit))
        if not at_limit() and judge.is_open(self._qpos(joint)):
            yield from self._hook_drawer_out(joint, aim, at_limit)

    def _clear_drawer_reach(self, name: str, joint: FixtureJoint, goal: float) -> Generator[Waypoint, None, None]:
        """Move object `name` away from under where the drawer on slide `joint` will reach once opened to joint
        position `goal` (the drawer would then hang over it, in the way of the hand grasping it from above),
        CLEAR_MARGIN clear of it."""
        drawer, _ = self._body_points(joint.body)
        opened = drawer + joint.axis * (goal - self._qpos(joint))
        low, high = opened[:, :2].min(0) - CLEAR_MARGIN, opened[:, :2].max(0) + CLEAR_MARGIN
        yield from self._move_clear(name, lambda points_xy: self._footprints_overlap(points_xy, low, high))

    def _move_clear(self, name: str, in_the_way: Callable[[np.ndarray], bool]) -> Generator[Waypoint, None, None]:
        """Pick and place object `name` to the nearest free spot of its support within CLEAR_SEARCH_RADIUS where
        it is no longer `in_the_way` (a test of its hull points moved there, (P, 2)), CLEAR_MARGIN clear of the
        other objects; nothing when it is not in the way."""
        points = self._object_points(name)
        if not in_the_way(points[:, :2]):
            return
        ignore = np.concatenate([self._object_bodies(name), self._robot_bodies()])
        body_xy = self._data.xpos[self.env.robosuite_env.obj_body_id[name]][:2]
        support = self._surface_height(self._disc(body_xy, SUPPORT_PROBE * self._footprint_radius(name)), ignore)
        offsets = np.stack(np.meshgrid(*[np.arange(-CLEAR_SEARCH_RADIUS, CLEAR_SEARCH_RADIUS + 1e-9, 0.02)] * 2),
                           -1).reshape(-1, 2)
        # Nearest first, a step further from the robot counting double (the far side of the table is hard to reach).
        base_xy = self._data.xpos[geometry.body_id(self._model, "robot0_base")][:2]
        farther = np.linalg.norm(body_xy + offsets - base_xy, axis=1) - np.linalg.norm(body_xy - base_xy)
        offsets = offsets[np.argsort(np.linalg.norm(offsets, axis=1) + np.maximum(farther, 0.0))]
        footprint = self._footprint_radius(name) + CLEAR_MARGIN
        # Other objects are found by their hulls: rays (mj_ray) skip fully transparent collision geoms.
        others = [self._object_points(other)[:, :2] for other in self.env.robosuite_env.objects_dict if other != name]
        for offset in offsets:
            moved = points[:, :2] + offset
            if in_the_way(moved) or any(self._footprints_overlap(moved, other.min(0) - CLEAR_MARGIN,
                                                                 other.max(0) + CLEAR_MARGIN) for other in others):
                continue
            if self._column_top(body_xy + offset, footprint, ignore) <= support + FREE_SURFACE_TOLERANCE:
                yield from self._pick_and_place(name, body_xy + offset)
                return
        raise ExpertFailed(f"no free spot for {name} out of the way")

    @staticmethod
    def _footprints_overlap(points_xy: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
        """Whether the bounding box of points (P, 2) overlaps the box from `low` (2,) to `high` (2,) (m)."""
        return bool((points_xy.max(0) > low).all() and (points_xy.min(0) < high).all())

    def _episode(self) -> Generator[Waypoint, None, None]:
        for predicate in sorted(self.goal, key=lambda predicate: PREDICATE_ORDER[predicate[0]]):
            # Some goals hold from the start (a stove already on).
            if not self._holds(predicate):
                yield from self._achieve(predicate)
        # A released object may still be falling or rolling into place when the goal is first checked.
        yield Waypoint("settle", self._obs.eef_pos, self._current_yaw(self._obs), GRIPPER_OPEN, 0.0,
                       max_steps=SETTLE_AFTER_STEPS)

    # ---- articulated fixtures -----------------------------------------------------------------------------------

    def _articulate(self, predicate: str, fixture: str) -> Generator[Waypoint, None, None]:
        """Open or close a drawer or door, turn a knob on or off: every judged joint that fails the check is moved
        past its threshold (one is enough to open or turn on)."""
        judge, joint_names = self._fixture_joints(fixture)
        reached = getattr(judge, JOINT_CHECKS[predicate])
        yield from self._settle()
        for joint_name in joint_names:
            joint = self._joint(joint_name)
            if reached(self._qpos(joint)):
                continue
            threshold, goal = self._joint_goal(joint, reached)
            done = self._joint_done(joint, reached, threshold, goal)
            if predicate in ("turnon", "turnoff"):
                yield from self._twist_knob(joint, goal, done)
            elif joint.hinge:
                yield from self._swing_door(joint, goal, done)
            elif predicate == "open":
                yield from self._pull_drawer(joint, goal, done)
            else:
                yield from self._push_drawer(joint, goal, done)
            if predicate in ("open", "turnon"):
                return

    def _body_points(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """World hull points (P, 3) of the collision geoms of a body's subtree, and each point's geom (P,)."""
        geoms = geometry.geoms_of_bodies(self._model, geometry.body_subtree(self._model, body),
                                         geometry.COLLISION_GROUP)
        per_geom = [geometry.hull_points_world(self._model, self._data, np.array([geom])) for geom in geoms]
        return np.concatenate(per_geom), np.concatenate([np.full(len(p), g) for g, p in zip(geoms, per_geom)])

    def _handle_bar(self, joint: FixtureJoint, outward: np.ndarray) -> np.ndarray:
        """The centre (3,) of a drawer's handle bar (world, m); `outward` (3,) is the direction the drawer opens in."""
        points, owners = self._body_points(joint.body)
        handle = points[self._protrusion(points, owners, outward, HANDLE_DEPTH)]
        reach = handle @ outward
        bar = handle[reach >= reach.max() - BAR_DEPTH]
        return (bar.min(0) + bar.max(0)) / 2

    @staticmethod
    def _protrusion(points: np.ndarray, owners: np.ndarray, direction: np.ndarray, depth: float) -> np.ndarray:
        """Which of `points` (P, 3) belong to the geoms reaching within `depth` (m) of the furthest of them along
        `direction` (3,): a (P,) mask; owners (P,) is each point's geom."""
        reach = points @ direction
        return np.isin(owners, owners[reach >= reach.max() - depth])

    def _yaw_across(self, direction: np.ndarray) -> float:
        """Yaw (rad) that sets the pointing-down hand's finger axis across the horizontal `direction` (3,), the
        fingers side by side along a push that way: of the two such yaws, the one the wrist is nearer."""
        current_yaw = self._current_yaw(self._obs)
        return current_yaw + _wrap_half_turn(np.arctan2(direction[1], direction[0]) - current_yaw)

    def _level_yaw(self, approach: np.ndarray) -> float:
        """Yaw (rad) that points a level hand (HAND_LEVEL_FINGERS_VERTICAL) along the horizontal world direction
        `approach`."""
        return float(np.arctan2(approach[0], -approach[1]))

    def _until(self, waypoint: Waypoint, done: Callable[[], bool]) -> Generator[Waypoint, None, None]:
        """Track `waypoint` one step at a time until `done()` or its max_steps."""
        for _ in range(waypoint.max_steps):
            if done():
                return
            yield replace(waypoint, max_steps=1)

    def _stalled(self, joint: FixtureJoint, done: Callable[[], bool]) -> Callable[[], bool]:
        """`done`, extended to a test that is also true once the joint has moved less than STALL_MOTION over the
        last STALL_STEPS calls (a push blocked by the arm touching the furniture)."""
        history: list[float] = []

        def finished() -> bool:
            history.append(self._qpos(joint))
            return done() or (len(history) > STALL_STEPS
                              and abs(history[-1] - history[-1 - STALL_STEPS]) < STALL_MOTION)
        return finished

    def _leave_level_hand(self, away: np.ndarray, yaw: float, hand: Rotation, release: bool = True
                          ) -> Generator[Waypoint, None, None]:
        """Let go (unless not `release`: pushing fingers stay closed, as opening beside a handle would hook them
        behind it), move BACK_OFF_DISTANCE along the horizontal `away` (3,), rise, and point the hand down again."""
        here = self._obs.eef_pos.copy()
        gripper = GRIPPER_OPEN if release else GRIPPER_CLOSED
        if release:
            yield Waypoint("let go", here, yaw, GRIPPER_OPEN, 1.0, hold_steps=GRIPPER_STEPS, hand=hand)
        backed = here + away * BACK_OFF_DISTANCE
        yield Waypoint("back off", backed, yaw, gripper, 0.015, hand=hand, max_steps=40)
        yield Waypoint("rise", backed + [0, 0, 0.08], yaw, gripper, 0.02, hand=hand, max_steps=40)
        yield Waypoint("point down", backed + [0, 0, 0.08], 0.0, gripper, 0.03, max_steps=40)

    def _pull_drawer(self, joint: FixtureJoint, goal: float, done: Callable[[], bool]
                     ) -> Generator[Waypoint, None, None]:
        """Pinch the handle bar from the front with the hand level and fingers opening vertically, pull it out."""
        outward = joint.axis * np.sign(goal - self._qpos(joint))
        bar = self._handle_bar(joint, outward)
        yaw = self._level_yaw(-outward)
        hand = HAND_LEVEL_FINGERS_VERTICAL
        grasp = bar - outward * PAD_INSET
        line_up = grasp + outward * LINE_UP_DISTANCE
        above = np.array([*line_up[:2], max(self._obs.eef_pos[2], line_up[2] + APPROACH_HEIGHT)])
        yield Waypoint("turn level", above, yaw, GRIPPER_OPEN, 0.02, hand=hand)
        yield Waypoint("line up", line_up, yaw, GRIPPER_OPEN, 0.008, hand=hand)
        yield Waypoint("reach", grasp, yaw, GRIPPER_OPEN, 0.005, max_speed=0.4, max_steps=60, hand=hand)
        yield Waypoint("pinch", grasp, yaw, GRIPPER_CLOSED, 1.0, hold_steps=GRIPPER_STEPS, hand=hand)
        pulled = grasp + outward * abs(goal - self._qpos(joint))
        yield from self._until(
            Waypoint("pull", pulled, yaw, GRIPPER_CLOSED, 0.0, max_speed=0.5, max_steps=ARTICULATION_STEPS, hand=hand),
            done,
        )
        yield from self._leave_level_hand(outward, yaw, hand)

    def _drawer_face(self, joint: FixtureJoint, outward: np.ndarray) -> np.ndarray:
        """The middle (3,) of the widest stretch of a drawer's front panel beside its handle, at the panel's mid
        height, on its outer face (world, m); `outward` (3,) is the direction the drawer opens in."""
        points, owners = self._body_points(joint.body)
        reach = points @ outward
        handle = self._protrusion(points, owners, outward, HANDLE_DEPTH)
        panel = points[~handle & (reach >= reach[~handle].max() - BAR_DEPTH)]
        side = np.cross([0.0, 0.0, 1.0], outward)
        panel_side, handle_side = panel @ side, points[handle] @ side
        gaps = [(handle_side.min() - panel_side.min(), (panel_side.min() + handle_side.min()) / 2),
                (panel_side.max() - handle_side.max(), (panel_side.max() + handle_side.max()) / 2)]
        face = panel.mean(0) + side * (max(gaps)[1] - panel.mean(0) @ side)
        face[2] = (panel[:, 2].min() + panel[:, 2].max()) / 2
        return face

    def _press_panel(self, joint: FixtureJoint, start: np.ndarray, travel: np.ndarray, yaw: float,
                     done: Callable[[], bool]) -> Generator[Waypoint, None, None]:
        """With the hand pointing down and the fingers closed, go down to `start` (3,) beside a drawer's panel,
        press it along `travel` (3,, m) until `done()` or the joint stalls, and back off from it."""
        above = np.array([*start[:2], max(self._obs.eef_pos[2], start[2] + APPROACH_HEIGHT)])
        yield Waypoint("above panel", above, yaw, GRIPPER_CLOSED, 0.015)
        yield Waypoint("down to panel", start, yaw, GRIPPER_CLOSED, 0.008, max_speed=0.6)
        yield from self._until(Waypoint("push", start + travel, yaw, GRIPPER_CLOSED, 0.0, max_speed=0.5,
                                        max_steps=ARTICULATION_STEPS // 2), self._stalled(joint, done))
        here = self._obs.eef_pos
        yield Waypoint("back off", here - travel / np.linalg.norm(travel) * PUSH_GAP, yaw, GRIPPER_CLOSED, 0.01,
                       max_steps=30)

    def _hook_drawer_out(self, joint: FixtureJoint, goal: float, done: Callable[[], bool]
                         ) -> Generator[Waypoint, None, None]:
        """Pull an open drawer further out from inside it, towards joint position `goal`, until `done()` or the
        drawer stalls: the closed fingertips, pointing down, go in just behind its front panel and press the
        panel's inner face outward, then rise clear of the panel.

        A drawer near the floor of its cabinet, already open, is out of the level hand's reach (its wrist would
        meet the table), but open from above.
        """
        outward = joint.axis * np.sign(goal - self._qpos(joint))
        points, owners = self._body_points(joint.body)
        reach = points @ outward
        handle = self._protrusion(points, owners, outward, HANDLE_DEPTH)
        front = reach[~handle].max()
        # The front panel: the geoms at the front, thin along the slide (the sides and the floor run its length).
        panel_geoms = [g for g in np.unique(owners[~handle])
                       if reach[owners == g].max() >= front - BAR_DEPTH and np.ptp(reach[owners == g]) < PANEL_DEPTH]
        panel = points[np.isin(owners, panel_geoms)]
        inner = panel[(panel @ outward).argmin()]
        side = np.cross([0.0, 0.0, 1.0], outward)
        start = inner - outward * (FINGER_HALF_WIDTH + PUSH_GAP) + side * ((panel.mean(0) - inner) @ side)
        start[2] = (panel[:, 2].min() + panel[:, 2].max()) / 2
        yaw = self._yaw_across(outward)
        yield from self._press_panel(joint, start, outward * (abs(goal - self._qpos(joint)) + PUSH_GAP), yaw, done)
        here = self._obs.eef_pos
        yield Waypoint("rise", np.array([*here[:2], panel[:, 2].max() + APPROACH_HEIGHT]), yaw, GRIPPER_CLOSED,
                       0.015, max_steps=40)

    def _push_drawer(self, joint: FixtureJoint, goal: float, done: Callable[[], bool]
                     ) -> Generator[Waypoint, None, None]:
        """Press the closed fingertips against a drawer's front panel beside its handle (fingertips slide over a
        round bar; the flat panel holds them) and push it along the slide.

        First with the hand pointing down, its fingers side by side across the push, for as far as the hand's
        body stays clear of what hangs over the line of the push (the drawer above and its handle); then the rest
        of the way with the hand level, pointing along the push, only ~6 cm tall, below the drawer above. The level
        hand only comes in once the drawer is mostly in: its wrist and forearm reach ~30 cm behind it, where
        furniture beside the cabinet may stand.
        """
        motion = joint.axis * np.sign(goal - self._qpos(joint))
        ignore = np.concatenate([geometry.body_subtree(self._model, joint.body), self._robot_bodies()])
        face = self._drawer_face(joint, -motion)
        start = face - motion * (FINGER_HALF_WIDTH + PUSH_GAP)
        yaw = self._yaw_across(motion)
        travel = abs(goal - self._qpos(joint)) + PUSH_GAP
        clear = [s for s in np.arange(0.0, travel, 0.01)
                 if self._hand_obstacle((start + motion * s)[:2], yaw, ignore) <= start[2] + HAND_BOTTOM]
        down_travel = clear[-1] if clear and clear[0] == 0.0 else 0.0
        if down_travel > 0:
            yield from self._press_panel(joint, start, motion * down_travel, yaw, done)
        if done():
            return
        face = self._drawer_face(joint, -motion)
        start = face - motion * (PUSH_GAP + FINGERTIP_REACH)
        down = Rotation.from_euler("z", self._current_yaw(self._obs)) * DOWN_ORIENTATION
        yaw = self._level_yaw(motion)
        # Of the two level hands with the fingers side by side (a half turn apart about the pointing axis), the one
        # the wrist reaches by pitching up from where it is rather than also rolling half a turn (into a joint limit).
        hand = min((HAND_LEVEL_FINGERS_SIDE_BY_SIDE, HAND_LEVEL_FINGERS_SIDE_BY_SIDE * HALF_TURN_ABOUT_APPROACH),
                   key=lambda hand: (down.inv() * Rotation.from_euler("z", yaw) * hand).magnitude())
        above = np.array([*start[:2], max(self._obs.eef_pos[2], start[2] + APPROACH_HEIGHT)])
        yield Waypoint("turn level", above, yaw, GRIPPER_CLOSED, 0.02, hand=hand)
        # The level arm, stretched under the drawer above, may settle a centimetre off its target: close enough.
        yield Waypoint("down to panel", start, yaw, GRIPPER_CLOSED, 0.015, max_speed=0.6, max_steps=40, hand=hand)
        # Aimed past the goal: the proportional controller stalls ~1 cm short of its target against the drawer.
        pushed = start + motion * (abs(goal - self._qpos(joint)) + PUSH_GAP + PUSH_PAST)
        yield from self._until(
            Waypoint("push", pushed, yaw, GRIPPER_CLOSED, 0.0, max_speed=0.5, max_steps=ARTICULATION_STEPS, hand=hand),
            self._stalled(joint, done),
        )
        yield from self._leave_level_hand(-motion, yaw, hand, release=False)

    def _swing_door(self, joint: FixtureJoint, goal: float, done: Callable[[], bool]
                    ) -> Generator[Waypoint, None, None]:
        """Push a door about its (vertical) hinge with the closed fingers pointing down, following its arc."""
        points, _ = self._body_points(joint.body)
        turn = float(np.sign(goal - self._qpos(joint)))
        radial = points - joint.anchor
        radial -= np.outer(radial @ joint.axis, joint.axis)
        door = radial.mean(0) / np.linalg.norm(radial.mean(0))  # from the hinge along the door, horizontal
        motion = turn * np.cross(joint.axis, door)  # the way the door's face moves
        radius = DOOR_PUSH_RADIUS * np.linalg.norm(radial, axis=1).max()
        standoff = (radial @ -motion).max() + FINGER_HALF_WIDTH + PUSH_GAP
        push_z = max(points[:, 2].min() + APPROACH_HEIGHT / 2, points[:, 2].max() - 0.05)
        arc = abs(goal - self._qpos(joint))

        def pose(angle: float, gap: float) -> tuple[np.ndarray, float]:
            """End-effector position and yaw `angle` (rad) along the arc, `gap` (m) off the door's face."""
            rotation = Rotation.from_rotvec(turn * angle * joint.axis)
            along, ahead = rotation.apply(door), rotation.apply(motion)
            position = joint.anchor + radius * along - gap * ahead
            # Fingers along the door, so the hand spans it rather than reaching through it.
            return np.array([*position[:2], push_z]), _wrap_half_turn(np.arctan2(along[1], along[0]) - np.pi / 2)

        start, yaw = pose(0.0, standoff + PUSH_GAP * 3)
        yield Waypoint("above door", np.array([*start[:2], max(self._obs.eef_pos[2], points[:, 2].max() + 0.05)]),
                       yaw, GRIPPER_CLOSED, 0.02)
        yield Waypoint("beside door", start, yaw, GRIPPER_CLOSED, 0.01)
        for angle in np.append(np.arange(DOOR_ARC_STEP, arc, DOOR_ARC_STEP), arc):
            position, yaw = pose(angle, standoff)
            yield from self._until(Waypoint("swing", position, yaw, GRIPPER_CLOSED, 0.0, max_steps=25), done)
            if done():
                break
        away, _ = pose(min(arc, angle), standoff + BACK_OFF_DISTANCE)
        yield Waypoint("back off", away, yaw, GRIPPER_CLOSED, 0.015, max_steps=40)
        yield Waypoint("rise", away + [0, 0, 0.08], yaw, GRIPPER_OPEN, 0.02, max_steps=40)

    def _twist_knob(self, joint: FixtureJoint, goal: float, done: Callable[[], bool]
                    ) -> Generator[Waypoint, None, None]:
        """Pinch a knob (turning about a vertical axis) from above and turn the wrist."""
        points, owners = self._body_points(joint.body)
        top = points[:, 2].max()
        tops = {geom: points[owners == geom, 2].max() for geom in np.unique(owners)}
        grip_geoms = [geom for geom, geom_top in tops.items() if geom_top >= top - KNOB_GRIP_DEPTH]
        grip = points[np.isin(owners, grip_geoms)]
        base_top = max((geom_top for geom_top in tops.values() if geom_top < top - KNOB_GRIP_DEPTH), default=-np.inf)
        obs = self._obs
        drop = self._fingertip_drop(obs.eef_pos)
        center_xy, yaw, _ = _narrowest_pinch(grip[:, :2], self._current_yaw(obs))
        grasp = np.array([*center_xy, max(top - KNOB_GRIP_DEPTH + 0.003, base_top + drop + FINGERTIP_CLEARANCE)])
        ignore = np.concatenate([geometry.body_subtree(self._model, joint.body), self._robot_bodies()])
        path_top = self._path_clearance(obs.eef_pos[:2], grasp[:2], 0.05, ignore)
        travel_z = max(grasp[2] + APPROACH_HEIGHT, path_top + drop + CARRY_CLEARANCE, obs.eef_pos[2])
        yield Waypoint("approach", np.array([*grasp[:2], travel_z]), yaw, GRIPPER_OPEN, 0.015)
        yield Waypoint("above", grasp + [0, 0, APPROACH_HEIGHT], yaw, GRIPPER_OPEN, 0.006, max_speed=0.8)
        yield Waypoint("descend", grasp, yaw, GRIPPER_OPEN, 0.004, max_speed=0.5, max_steps=50)
        yield Waypoint("close", grasp, yaw, GRIPPER_CLOSED, 1.0, hold_steps=GRIPPER_STEPS)
        twist = np.sign(joint.axis[2]) * (goal - self._qpos(joint))
        yield from self._until(
            Waypoint("twist", grasp, yaw + twist, GRIPPER_CLOSED, 0.0, max_steps=ARTICULATION_STEPS), done
        )
        here = self._obs.eef_pos
        final_yaw = self._current_yaw(self._obs)
        yield Waypoint("release", here, final_yaw, GRIPPER_OPEN, 1.0, hold_steps=GRIPPER_STEPS)
        yield Waypoint("rise", here + [0, 0, APPROACH_HEIGHT], final_yaw, GRIPPER_OPEN, 0.015)

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
        return np.linalg.norm(waypoint.position - obs.eef_pos) < waypoint.tolerance and _orientation_error(
            obs.eef_quat, waypoint
        ) < ORIENTATION_TOLERANCE

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
