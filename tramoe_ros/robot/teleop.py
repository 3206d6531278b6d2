"""Leader -> follower teleoperation of the dual-arm robot, and recording demonstrations in the project's episode
format (no ROS; `tramoe-teleop` is the command).

Each follower arm follows its leader in joint space: both are calibrated to the same zero pose, so a leader's
joint values are the follower's targets, bounded by `limit_goal` (the follower's calibrated range, and at most
`max_step` per loop iteration, so a follower far from its leader at start catches up smoothly).

A recorded episode samples, at `record_rate_hz` (the real graph's control rate), the newest frame of every camera,
the followers' present joint values (proprio `joint_states`, rad with grippers 0..1, as /joint_states) and the
followers' goals as actions: normalised to each joint's calibrated range, [-1, 1], exactly what the dynamixel arm
backend takes. Views carry no point tracks yet (N = 0): `tramoe-label-tracks` adds them.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from tramoe_ros.config import ConfigError
from tramoe_ros.data.episode import Episode, EpisodeFormatError, ViewData, write_episode
from tramoe_ros.robot.calibration import CalibrationError, load_calibration
from tramoe_ros.robot.camera import FrameSource, to_rgb
from tramoe_ros.robot.control_table import MAX_BUS_WATCHDOG_S
from tramoe_ros.robot.driver import DynamixelArm, DynamixelError, ServoBus, limit_goal
from tramoe_ros.robot.pacing import Pacer


@dataclass
class ArmPortConfig:
    port: str  # serial port (/dev/serial/by-id/...)
    ids: list[int]  # servo IDs, in joint order
    calibration: str  # calibration file (tramoe-calibrate)


@dataclass
class ArmPairConfig:
    name: str  # e.g. left
    leader: ArmPortConfig
    follower: ArmPortConfig
    joint_names: list[str]  # the follower's joints, as on /joint_states: the order of proprio and actions


@dataclass
class CameraConfig:
    view: str  # the episode's view name, e.g. agentview
    source: str  # device index, device path or video file (looped)


@dataclass
class TeleopConfig:
    """`tramoe-teleop` settings (config/robot/teleop.yaml)."""

    arms: list[ArmPairConfig] = field(default_factory=list)
    cameras: list[CameraConfig] = field(default_factory=list)
    rate_hz: float = 50.0  # leader -> follower loop
    record_rate_hz: float = 20.0  # recorded frames per second: the control rate the policy will run at
    camera_rate_hz: float = 30.0  # camera reads per second (each camera on its own thread)
    image_size: int = 128  # recorded frames are image_size x image_size
    baudrate: int = 1_000_000
    retries: int = 2
    latency_timer_ms: float = 16.0  # the USB adapters' latency timer (answers are awaited for twice this + 2 ms)
    max_step: float = 0.05  # rad (gripper: fraction of its range) per loop iteration
    bus_watchdog_s: float = 0.1
    gripper_current: int = 300  # mA
    camera_stale_s: float = 0.5  # a camera without a new frame for this long ends the episode (discarded)
    domain: str = "robot"  # the episodes' domain tag
    on_exit: str = "hold"  # followers at exit: hold | torque_off

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError("arms: at least one leader/follower pair is needed")
        if not self.cameras:
            raise ConfigError("cameras: at least one camera is needed")
        views = [c.view for c in self.cameras]
        if len(set(views)) != len(views):
            raise ConfigError(f"cameras: view names repeat: {views}")
        for arm in self.arms:
            if not len(arm.joint_names) == len(arm.leader.ids) == len(arm.follower.ids):
                raise ConfigError(f"arms: {arm.name}: joint_names, leader.ids and follower.ids must have the same "
                                  f"length, got {len(arm.joint_names)}, {len(arm.leader.ids)}, "
                                  f"{len(arm.follower.ids)}")
        for name in ("rate_hz", "camera_rate_hz", "image_size", "gripper_current", "camera_stale_s",
                     "latency_timer_ms"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_step < 0 or self.retries < 0:
            raise ConfigError(f"max_step and retries must be >= 0, got {self.max_step} and {self.retries}")
        if not 0 <= self.bus_watchdog_s <= MAX_BUS_WATCHDOG_S:
            raise ConfigError(f"bus_watchdog_s must be in 0..{MAX_BUS_WATCHDOG_S:.2f}, got {self.bus_watchdog_s}")
        if not 0 < self.record_rate_hz <= self.rate_hz:
            raise ConfigError(f"record_rate_hz ({self.record_rate_hz}) must be in (0, rate_hz = {self.rate_hz}]")
        if self.on_exit not in ("hold", "torque_off"):
            raise ConfigError(f"on_exit: {self.on_exit!r} is not one of hold, torque_off")


class KeySource(Protocol):
    def poll(self) -> str | None:
        """The next key pressed since the last call, or None (never blocks)."""


KEYS_HELP = "keys: r start an episode, s stop and save it, d discard it, q quit"


class CameraStream:
    """A camera read on its own thread at `rate_hz`, keeping the newest frame, (S, S, 3) uint8 RGB."""

    def __init__(self, view: str, source: str, size: int, rate_hz: float):
        self.view = view
        self._source = FrameSource(source)
        self._size = size
        self._rate_hz = rate_hz
        self._lock = threading.Lock()
        self._latest: tuple[np.ndarray, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{view}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pacer = Pacer(self._rate_hz, self._stop.wait)
        while not self._stop.is_set():
            frame = self._source.read()
            if frame is not None:
                rgb = to_rgb(frame, self._size, self._size)
                with self._lock:
                    self._latest = (rgb, time.monotonic())
            pacer.wait()

    def latest(self) -> tuple[np.ndarray, float] | None:
        """(frame (S, S, 3) uint8 RGB, capture time.monotonic()) of the newest frame, or None before the first."""
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._source.release()


class Teleoperator:
    """Leader/follower arm pairs. `step` is one loop iteration: read leaders, command followers, read them."""

    def __init__(self, config: TeleopConfig):
        self.config = config
        self.leaders: list[DynamixelArm] = []
        self.followers: list[DynamixelArm] = []
        for pair in config.arms:
            for role, arm_config, arms in (("leader", pair.leader, self.leaders),
                                           ("follower", pair.follower, self.followers)):
                calibration = load_calibration(arm_config.calibration)
                if calibration.ids != arm_config.ids:
                    raise CalibrationError(f"calibration file {arm_config.calibration} is for servos "
                                           f"{calibration.ids}, the {pair.name} {role}'s ids are {arm_config.ids}")
                bus = ServoBus(arm_config.port, config.baudrate, config.retries, config.latency_timer_ms)
                arms.append(DynamixelArm(f"{pair.name} {role}", bus,
                                         calibration, follower=role == "follower",
                                         gripper_current=config.gripper_current,
                                         bus_watchdog_s=config.bus_watchdog_s))
        self._connected: list[DynamixelArm] = []

    def connect(self) -> None:
        """Connect every arm; followers hold where they are (goal = present position, then torque on)."""
        for arm in self.leaders + self.followers:
            self._connected.append(arm)
            arm.connect()
        for arm in self.followers:
            arm.enable_torque()

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """One iteration. Returns the followers' present joint values (J,) and the goals just sent (J,)."""
        presents, goals = [], []
        for leader, follower in zip(self.leaders, self.followers):
            target = leader.read().positions
            calibration = follower.calibration
            goal = limit_goal(target, follower.last.positions, self.config.max_step, calibration.lower,
                              calibration.upper)
            presents.append(follower.cycle(goal).positions)
            goals.append(goal)
        return np.concatenate(presents), np.concatenate(goals)

    def normalize(self, goals: np.ndarray) -> np.ndarray:
        """Goals (J,) of all followers -> actions (J,) in [-1, 1] over each joint's calibrated range."""
        parts, start = [], 0
        for follower in self.followers:
            parts.append(follower.calibration.normalize(goals[start:start + len(follower.ids)]))
            start += len(follower.ids)
        return np.concatenate(parts)

    def close(self) -> None:
        for arm in self._connected:
            arm.close(torque_off=self.config.on_exit == "torque_off")


def next_episode_path(folder: Path) -> Path:
    """folder/episode_<n>.hdf5 with n one past the highest already there (from 0)."""
    numbers = [int(p.stem.split("_")[1]) for p in folder.glob("episode_*.hdf5") if p.stem.split("_")[1].isdigit()]
    return folder / f"episode_{max(numbers, default=-1) + 1:04d}.hdf5"


class EpisodeRecorder:
    """Collects one episode's samples and writes it (`tramoe_ros.data.episode` format) on `save`."""

    def __init__(self, folder: Path, views: list[str], instruction: str, domain: str):
        self.folder = Path(folder)
        self.views = views
        self.instruction = instruction
        self.domain = domain
        self._frames: dict[str, list[np.ndarray]] | None = None
        self._joints: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []

    @property
    def recording(self) -> bool:
        return self._frames is not None

    @property
    def length(self) -> int:
        return len(self._actions)

    def start(self) -> None:
        self._frames = {view: [] for view in self.views}
        self._joints, self._actions = [], []

    def add(self, frames: dict[str, np.ndarray], joints: np.ndarray, actions: np.ndarray) -> None:
        """One sample: frames view -> (S, S, 3) uint8 RGB, joints (J,) present joint values, actions (J,)."""
        for view in self.views:
            self._frames[view].append(frames[view].transpose(2, 0, 1))
        self._joints.append(np.asarray(joints, np.float32))
        self._actions.append(np.asarray(actions, np.float32))

    def discard(self) -> None:
        self._frames = None
        self._joints, self._actions = [], []

    def save(self) -> Path:
        """Write the episode to the next free episode_<n>.hdf5, then stop recording (a failed write keeps it).

        Raises:
            OSError, EpisodeFormatError: the file could not be written
        """
        length = self.length
        views = {view: ViewData(video=np.stack(frames), tracks=np.zeros((length, 0, 2), np.float32),
                                visibility=np.zeros((length, 0), bool))
                 for view, frames in self._frames.items()}
        episode = Episode(views=views, actions=np.stack(self._actions),
                          proprio={"joint_states": np.stack(self._joints)}, instruction=self.instruction,
                          domain=self.domain)
        path = write_episode(next_episode_path(self.folder), episode)
        self.discard()
        return path


@dataclass
class TeleopSummary:
    episodes: list[Path]  # saved episode files
    loop_hz: float  # achieved leader -> follower rate over the session
    slowest_loop_ms: float  # the longest single iteration


def run_teleop(config: TeleopConfig, folder: Path, instruction: str, keys: KeySource,
               log: Callable[[str], None] = print) -> TeleopSummary:
    """Teleoperate until the `q` key, recording episodes on the `r` / `s` / `d` keys.

    Raises:
        DynamixelError, CalibrationError, CameraError: an arm or camera that cannot be used (arms are left as
        `config.on_exit` says)
    """
    teleop = Teleoperator(config)
    recorder = EpisodeRecorder(folder, [c.view for c in config.cameras], instruction, config.domain)
    cameras: list[CameraStream] = []
    saved: list[Path] = []
    record_period = 1.0 / config.record_rate_hz
    iterations, slowest = 0, 0.0
    try:
        for camera in config.cameras:
            cameras.append(CameraStream(camera.view, camera.source, config.image_size, config.camera_rate_hz))
        teleop.connect()
        log(f"teleoperating {len(config.arms)} arm pair(s) at {config.rate_hz:.0f} Hz; {KEYS_HELP}")
        pacer = Pacer(config.rate_hz)
        started = next_sample = time.monotonic()
        while True:
            key = keys.poll()
            if key == "q":
                if not recorder.recording or _save(recorder, saved, log):
                    break
                log("not quitting with an unsaved episode: press s to retry, or d to discard it")
            if key == "r" and not recorder.recording:
                if all(c.latest() is not None for c in cameras):
                    recorder.start()
                    next_sample = time.monotonic()
                    log("recording ...")
                else:
                    log("cameras not delivering yet: episode not started")
            elif key == "s" and recorder.recording:
                _save(recorder, saved, log)
            elif key == "d" and recorder.recording:
                recorder.discard()
                log("episode discarded")

            begin = time.monotonic()
            try:
                joints, goals = teleop.step()
            except DynamixelError:
                if recorder.recording:
                    log(f"arm failure: the episode in progress ({recorder.length} frames) is discarded")
                    recorder.discard()
                raise
            if recorder.recording and begin >= next_sample:
                next_sample = max(next_sample + record_period, begin)
                _sample(recorder, cameras, joints, teleop.normalize(goals), config.camera_stale_s, log)
            iterations += 1
            slowest = max(slowest, time.monotonic() - begin)
            pacer.wait()
    finally:
        teleop.close()
        for camera in cameras:
            camera.close()
    summary = TeleopSummary(saved, iterations / max(time.monotonic() - started, 1e-9), slowest * 1e3)
    log(f"{len(saved)} episode(s) saved; loop {summary.loop_hz:.1f} Hz, slowest iteration "
        f"{summary.slowest_loop_ms:.1f} ms")
    return summary


def _sample(recorder: EpisodeRecorder, cameras: list[CameraStream], joints: np.ndarray, actions: np.ndarray,
            stale_s: float, log: Callable[[str], None]) -> None:
    """Add the newest frames with `joints` and `actions` to the episode, or discard it when a camera is stale."""
    now = time.monotonic()
    latest = {camera.view: camera.latest() for camera in cameras}
    stale = {view: now - t for view, (_, t) in latest.items() if now - t > stale_s}
    if stale:
        recorder.discard()
        ages = ", ".join(f"{view}: {age:.1f} s" for view, age in stale.items())
        log(f"camera(s) stopped delivering frames ({ages}): episode discarded")
        return
    recorder.add({view: frame for view, (frame, _) in latest.items()}, joints, actions)


def _save(recorder: EpisodeRecorder, saved: list[Path], log: Callable[[str], None]) -> bool:
    """Save the episode being recorded; False when it could not be written (it is kept)."""
    length = recorder.length
    if length == 0:
        recorder.discard()
        log("the episode has no frames yet: nothing saved")
        return True
    try:
        saved.append(recorder.save())
    except (OSError, EpisodeFormatError) as e:
        log(f"could not save the episode ({e}); it is kept")
        return False
    log(f"saved {saved[-1]} ({length} frames)")
    return True
