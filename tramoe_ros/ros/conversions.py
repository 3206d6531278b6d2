"""Message <-> numpy conversions without cv_bridge: images, tracks, actions, joint states and stamps.

Every `*_from_msg` function validates what it reads and raises `MalformedMessage(reason, detail)` on anything it
cannot use (unknown encoding, inconsistent sizes, NaN), so nodes can drop and count bad input instead of crashing.
"""
from __future__ import annotations

import array
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String
from tramoe_msgs.msg import PolicyAction, Tracks

from tramoe_ros.ros.errors import MalformedMessage

# Encodings accepted on input, with their channel counts; images are always published as rgb8.
IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
# An instruction is a sentence (the paper's LIBERO tasks: 30-90 characters; the sentence encoder reads 256 tokens).
MAX_INSTRUCTION_CHARS = 1000


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def rgb_from_image(msg: Image, size: int | None = None) -> np.ndarray:
    """An rgb8, bgr8 or mono8 image as an RGB array (a copy, safe to keep).

    Args:
        size: when given, the image must be size x size
    Returns:
        (H, W, 3) uint8 RGB
    Raises:
        MalformedMessage: unknown encoding, zero size, row stride or data length that do not fit, wrong size
    """
    channels = IMAGE_ENCODINGS.get(msg.encoding)
    if channels is None:
        raise MalformedMessage("unknown_encoding", f"image encoding {msg.encoding!r} is not one of "
                                                   f"{', '.join(IMAGE_ENCODINGS)}")
    h, w = msg.height, msg.width
    if h == 0 or w == 0:
        raise MalformedMessage("empty_image", f"image has size {w}x{h}")
    if msg.step < w * channels:
        raise MalformedMessage("bad_step", f"{msg.encoding} image {w} pixels wide needs step >= {w * channels}, "
                                           f"got {msg.step}")
    if len(msg.data) != msg.step * h:
        raise MalformedMessage("bad_data_length", f"image data has {len(msg.data)} bytes, expected step*height = "
                                                  f"{msg.step}*{h} = {msg.step * h}")
    if size is not None and (h, w) != (size, size):
        raise MalformedMessage("wrong_size", f"image is {w}x{h}, expected {size}x{size} (set the camera size)")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, msg.step)[:, : w * channels]
    pixels = rows.reshape(h, w, channels)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    if msg.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    return pixels.copy()


def image_from_rgb(rgb: np.ndarray, header: Header) -> Image:
    """An (H, W, 3) uint8 RGB array as an rgb8 Image with the given header."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    return Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                 data=np.ascontiguousarray(rgb).tobytes())


def tracks_to_msg(tracks: np.ndarray, queries: np.ndarray, view: str, header: Header, model_id: str) -> Tracks:
    """Predicted tracks of one view as a Tracks message; visibility is whether each point is inside the image.

    Args:
        tracks: (H, K, 2) normalised x/W, y/H
        queries: (K, 2) normalised query points
    """
    horizon, num_points, _ = tracks.shape
    visible = ((tracks >= 0.0) & (tracks <= 1.0)).all(axis=-1)
    return Tracks(header=header, view=view, horizon=horizon, num_points=num_points,
                  points=array.array("f", np.ascontiguousarray(tracks, dtype=np.float32).tobytes()),
                  visibility=visible.ravel().tolist(),
                  query_points=array.array("f", np.ascontiguousarray(queries, dtype=np.float32).tobytes()),
                  model_id=model_id)


def tracks_from_msg(msg: Tracks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Returns:
        tracks (H, K, 2) float32, visibility (H, K) bool, query points (K, 2) float32
    Raises:
        MalformedMessage: array lengths that do not match horizon and num_points, or NaN / infinite values
    """
    h, k = msg.horizon, msg.num_points
    if h == 0 or k == 0:
        raise MalformedMessage("empty_tracks", f"tracks of view {msg.view!r} have horizon {h}, {k} points")
    if len(msg.points) != h * k * 2 or len(msg.visibility) != h * k or len(msg.query_points) != k * 2:
        raise MalformedMessage("bad_tracks_length",
                               f"tracks of view {msg.view!r} (H={h}, K={k}) need {h * k * 2} points, {h * k} "
                               f"visibility flags and {k * 2} query values; got {len(msg.points)}, "
                               f"{len(msg.visibility)}, {len(msg.query_points)}")
    tracks = np.frombuffer(msg.points, dtype=np.float32).reshape(h, k, 2).copy()
    queries = np.frombuffer(msg.query_points, dtype=np.float32).reshape(k, 2).copy()
    if not (np.isfinite(tracks).all() and np.isfinite(queries).all()):
        raise MalformedMessage("nonfinite_tracks", f"tracks of view {msg.view!r} contain NaN or infinite values")
    return tracks, np.asarray(msg.visibility, dtype=bool).reshape(h, k), queries


def action_to_msg(action: np.ndarray, header: Header, inference_latency_ms: float, model_id: str,
                  planned: np.ndarray | None = None) -> PolicyAction:
    """`action` (dimension,); `planned` (P, dimension), the actions planned for the P steps after it (none: P = 0)."""
    action = np.asarray(action, dtype=np.float32).ravel()
    planned = np.zeros((0, len(action)), np.float32) if planned is None else np.ascontiguousarray(planned, np.float32)
    return PolicyAction(header=header, dimension=len(action), action=array.array("f", action.tobytes()),
                        planned=array.array("f", planned.tobytes()), inference_latency_ms=float(inference_latency_ms),
                        model_id=model_id)


def action_from_msg(msg: PolicyAction, dimension: int) -> np.ndarray:
    """
    Returns:
        (dimension,) float32
    Raises:
        MalformedMessage: a dimension other than `dimension`, a length other than the declared dimension, NaN
    """
    if msg.dimension != dimension:
        raise MalformedMessage("wrong_action_dimension", f"action has dimension {msg.dimension}, expected {dimension}")
    if len(msg.action) != msg.dimension:
        raise MalformedMessage("bad_action_length", f"action declares dimension {msg.dimension} but holds "
                                                    f"{len(msg.action)} values")
    action = np.frombuffer(msg.action, dtype=np.float32).copy()
    if not np.isfinite(action).all():
        raise MalformedMessage("nonfinite_action", f"action contains NaN or infinite values: {action}")
    return action


def planned_from_msg(msg: PolicyAction, dimension: int) -> np.ndarray:
    """The actions an action-chunk policy planned for the steps after `msg`'s (its `action` checked apart).

    Returns:
        (P, dimension) float32, P = 0 for a policy of one action per step
    Raises:
        MalformedMessage: a length that is not a multiple of `dimension`, NaN
    """
    if len(msg.planned) % dimension:
        raise MalformedMessage("bad_planned_length", f"planned actions hold {len(msg.planned)} values, not a "
                                                     f"multiple of the dimension {dimension}")
    planned = np.frombuffer(msg.planned, dtype=np.float32).reshape(-1, dimension).copy()
    if not np.isfinite(planned).all():
        raise MalformedMessage("nonfinite_action", "planned actions contain NaN or infinite values")
    return planned


def joint_positions(msg: JointState, names: Sequence[str]) -> np.ndarray:
    """Positions of the named joints, in the order of `names`.

    Raises:
        MalformedMessage: a name the message lacks, a position array shorter than the name list, NaN
    """
    if len(msg.position) != len(msg.name):
        raise MalformedMessage("bad_joint_state", f"joint state has {len(msg.name)} names but "
                                                  f"{len(msg.position)} positions")
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise MalformedMessage("missing_joints", f"joint state lacks joints {missing} (it has {list(msg.name)})")
    positions = np.array([msg.position[index[n]] for n in names], dtype=np.float32)
    if not np.isfinite(positions).all():
        raise MalformedMessage("nonfinite_joint_state", f"joint positions contain NaN or infinite values: "
                                                        f"{dict(zip(names, positions))}")
    return positions


def instruction_problem(text: str) -> str | None:
    """Why `text` cannot be a task instruction (empty, or longer than MAX_INSTRUCTION_CHARS); None when it can."""
    if not text.strip():
        return "is empty"
    if len(text) > MAX_INSTRUCTION_CHARS:
        return f"has {len(text)} characters, more than {MAX_INSTRUCTION_CHARS}"
    return None


def instruction_from_msg(msg: String) -> str:
    """The instruction of a /instruction message.

    Raises:
        MalformedMessage: empty, or longer than MAX_INSTRUCTION_CHARS (the message's text is not repeated)
    """
    if not msg.data.strip():
        raise MalformedMessage("empty_instruction", "ignored an empty instruction")
    problem = instruction_problem(msg.data)
    if problem:
        raise MalformedMessage("instruction_too_long", f"ignored an instruction that {problem}")
    return msg.data
