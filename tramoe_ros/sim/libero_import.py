"""Import LIBERO's official demonstration files (robomimic-style HDF5) into the project's episode format.

LIBERO's layout, as its own scripts write it (`scripts/collect_demonstration.py` and robosuite 1.4's
`DataCollectionWrapper` record the raw file, `scripts/create_dataset.py` replays it into the released datasets;
`libero/libero/utils/dataset_utils.py` reads them)::

    data                          attrs: bddl_file_name (path of the task's BDDL file,
                                         .../bddl_files/<suite>/<task name>.bddl),
                                         env_args (JSON; its "bddl_file" is the same path),
                                         problem_info (JSON: problem_name (the BDDL problem class),
                                         domain_name, language_instruction), env_name, bddl_file_content, ...
    data/demo_<i>/states          (T, 1 + nq + nv) float64  flattened MuJoCo state (time, qpos, qvel), as
                                                            ``env.sim.get_state().flatten()``, before actions[t]
    data/demo_<i>/actions         (T, 7) float64            OSC_POSE pose delta and gripper, in [-1, 1]
    data/demo_<i>/obs/...         agentview_rgb, eye_in_hand_rgb (T, 128, 128, 3) uint8, joint_states (T, 7),
                                  gripper_states (T, 2), ee_pos, ee_ori, ee_states
    data/demo_<i>/rewards, dones  (T,) uint8, 1 at the last step
    data/demo_<i>                 attrs: model_file (the MJCF the demo was recorded in), init_state, num_samples

Only the task's BDDL path and each demo's `states` and `actions` are read. The stored observations are not used:
`create_dataset.py` stores the observation *after* actions[t] at index t (one step ahead of states[t]), renders
upside down at 128 px with anti-aliasing, and keeps no depth, which the ground-truth tracks need. Instead each
recorded state is set on a `LiberoEnv` (``sim.set_state_from_flattened`` + ``sim.forward``, as LIBERO's
``set_init_state`` does) and rendered with the env's conventions (upright images, `camera_size`, the project's
render settings), so frame t is the state actions[t] was taken in, the pairing `tramoe_ros.sim.collect` writes.
Setting states rather than replaying actions keeps the demonstration exact: LIBERO's own action playback drifts
from the recorded states.

A demonstration is imported when its last recorded state satisfies the task's goal (LIBERO's collection keeps
recording ~10 steps after the goal is first reached); the others are reported and skipped.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tramoe_ros.data.episode import Episode, write_episode
from tramoe_ros.sim.collect import episode_from_frames
from tramoe_ros.sim.ground_truth_tracks import SimTrackRecorder
from tramoe_ros.sim.libero_env import (
    ACTION_DIM,
    DEFAULT_VIEWS,
    SUITES,
    LiberoEnv,
    task_names,
)

DEMO_GROUP = re.compile(r"demo_(\d+)")
# LIBERO names its released files <task name>_demo.hdf5 (benchmark.get_task_demonstration).
FILE_SUFFIX = "_demo"


class LiberoImportError(ValueError):
    """A file that is not a LIBERO demonstration file, a task that cannot be found or does not fit the file, or a
    demonstration whose values cannot be imported. The message names the file (and the key or the task)."""


@dataclass(frozen=True)
class LiberoDemoFile:
    """What `read_demo_file` found in a LIBERO file.

    path: the file; demos: its demo_<i> group names in increasing i; state_size: D, the values per flattened state
    (1 + nq + nv of the scene it was recorded in); bddl_file: the BDDL path the file names ('' when none);
    instruction: problem_info's language_instruction ('' when none).
    """

    path: Path
    demos: tuple[str, ...]
    state_size: int
    bddl_file: str
    instruction: str

    def demo_index(self, demo: str) -> int:
        """i of a demo_<i> group name."""
        return int(DEMO_GROUP.fullmatch(demo).group(1))


@dataclass(frozen=True)
class TaskRef:
    """A LIBERO task: suite, index in the suite's task order, name (its BDDL file's)."""

    suite: str
    index: int
    name: str


@dataclass(frozen=True)
class ImportSettings:
    """How demonstrations are rendered and tracked.

    camera_size: image side S (px) of both views; num_points, grid_size: ground-truth tracks per view
    (`SimTrackRecorder`; both 0: views with no points, N = 0, e.g. for a point tracker to label);
    reflections, antialiasing: the env's rendering (`LiberoEnv`); seed: of the track points (plus the demo index).
    """

    camera_size: int = 128
    num_points: int = 1000
    grid_size: int = 0
    reflections: bool = True
    antialiasing: bool = False
    seed: int = 0

    @property
    def ground_truth_tracks(self) -> bool:
        return self.num_points + self.grid_size > 0


@dataclass(frozen=True)
class DemoReport:
    """Outcome of one demonstration: steps T; path of the written episode, None when it was not imported;
    problem: why not ('' when imported)."""

    demo: str
    steps: int
    path: Path | None
    problem: str = ""

    @property
    def imported(self) -> bool:
        return self.path is not None


# A hook that replaces an episode's tracks before it is written (e.g. a point tracker's labels): (episode, demo
# name) -> episode.
Relabel = Callable[[Episode, str], Episode]


def _text_attr(attrs: h5py.AttributeManager, name: str) -> str:
    value = attrs.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_attr(path: Path, attrs: h5py.AttributeManager, name: str) -> dict:
    """A JSON attribute of `data` as a dict ({} when absent)."""
    text = _text_attr(attrs, name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise LiberoImportError(f"{path}: data attribute {name} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise LiberoImportError(f"{path}: data attribute {name} is not a JSON object")
    return value


def _demo_state_size(path: Path, data: h5py.Group, demo: str) -> int:
    """D of one demo's (T, D) states, after checking its states and (T, 7) actions."""
    group = data[demo]
    if not isinstance(group, h5py.Group):
        raise LiberoImportError(f"{path}: data/{demo} is a dataset, expected a group")
    arrays = {}
    for key in ("states", "actions"):
        array = group.get(key)
        if not isinstance(array, h5py.Dataset):
            raise LiberoImportError(f"{path}: data/{demo}/{key} is missing")
        if array.ndim != 2 or array.dtype.kind != "f":
            raise LiberoImportError(f"{path}: data/{demo}/{key} is {array.shape} {array.dtype}, expected (T, D) floats")
        arrays[key] = array
    states, actions = arrays["states"], arrays["actions"]
    if actions.shape[1] != ACTION_DIM or len(actions) != len(states) or len(states) == 0:
        raise LiberoImportError(f"{path}: data/{demo} has states {states.shape} and actions {actions.shape}; expected "
                                f"(T, D) and (T, {ACTION_DIM}) with the same T > 0")
    return int(states.shape[1])


def read_demo_file(path: str | Path) -> LiberoDemoFile:
    """Check that `path` is a LIBERO demonstration file (shapes only; no data is read) and list its demos.

    Raises:
        LiberoImportError naming the file and what is missing or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise LiberoImportError(f"{path}: file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise LiberoImportError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise LiberoImportError(f"{path}: not a LIBERO demonstration file (no 'data' group)")
        demos = sorted((name for name in data if DEMO_GROUP.fullmatch(name)),
                       key=lambda name: int(DEMO_GROUP.fullmatch(name).group(1)))
        if not demos:
            raise LiberoImportError(f"{path}: not a LIBERO demonstration file (no data/demo_<i> groups)")
        sizes = {demo: _demo_state_size(path, data, demo) for demo in demos}
        if len(set(sizes.values())) > 1:
            raise LiberoImportError(f"{path}: demos have states of different sizes {sorted(set(sizes.values()))}")
        env_args = _json_attr(path, data.attrs, "env_args")
        problem_info = _json_attr(path, data.attrs, "problem_info")
        return LiberoDemoFile(
            path=path,
            demos=tuple(demos),
            state_size=sizes[demos[0]],
            bddl_file=_text_attr(data.attrs, "bddl_file_name") or str(env_args.get("bddl_file", "")),
            instruction=str(problem_info.get("language_instruction", "")),
        )


def read_demo(path: str | Path, demo: str) -> tuple[np.ndarray, np.ndarray]:
    """One demo's states (T, D) float64 and actions (T, 7) float32.

    Raises:
        LiberoImportError naming the file and the key when they are not finite.
    """
    with h5py.File(path, "r") as f:
        states = np.asarray(f["data"][demo]["states"][()], dtype=np.float64)
        actions = np.asarray(f["data"][demo]["actions"][()], dtype=np.float32)
    for key, values in (("states", states), ("actions", actions)):
        if not np.isfinite(values).all():
            raise LiberoImportError(f"{path}: data/{demo}/{key} has non-finite values")
    return states, actions


@functools.cache
def _suite_task_names() -> dict[str, list[str]]:
    """suite -> its task names in LIBERO's task order."""
    return {suite: task_names(suite) for suite in SUITES}


def _suite_hint(demo_file: LiberoDemoFile) -> str | None:
    """The suite the file's BDDL path or its folder names (LIBERO keeps both in a folder named after the suite)."""
    for folder in (Path(demo_file.bddl_file).parent.name, demo_file.path.parent.name):
        if folder in SUITES:
            return folder
    return None


def _task_name_hint(demo_file: LiberoDemoFile) -> tuple[str, str]:
    """(task name, where it was read): the BDDL file the file names, else the file name (<task name>_demo.hdf5)."""
    if demo_file.bddl_file:
        return Path(demo_file.bddl_file).stem, f"its BDDL file {demo_file.bddl_file}"
    stem = demo_file.path.stem
    return stem.removesuffix(FILE_SUFFIX), "the file name"


def find_task(demo_file: LiberoDemoFile, suite: str | None = None, task: str | None = None) -> TaskRef:
    """The LIBERO task a file's demos belong to.

    Args:
        suite: the suite, when given (else from the file's BDDL path or folder, else any suite with the task).
        task: a task index in `suite`'s order, or a task name (the BDDL file's stem), when given (else the file's
            BDDL file name, else the file name without LIBERO's "_demo" suffix).
    Raises:
        LiberoImportError naming the file and the task or suite that was not found, or the suites to choose from.
    """
    path = demo_file.path
    if suite is not None and suite not in SUITES:
        raise LiberoImportError(f"{path}: unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    names = _suite_task_names()
    if task is not None and task.isdigit():
        index_suite = suite or _suite_hint(demo_file)
        if index_suite is None:
            raise LiberoImportError(f"{path}: task index {task} needs --suite (the file names none of {SUITES})")
        if int(task) >= len(names[index_suite]):
            raise LiberoImportError(f"{path}: task {task} is out of range for {index_suite}, which has tasks "
                                    f"0..{len(names[index_suite]) - 1}")
        return TaskRef(index_suite, int(task), names[index_suite][int(task)])
    name, source = (task, "--task") if task is not None else _task_name_hint(demo_file)
    searched = [suite] if suite is not None else list(SUITES)
    matches = [TaskRef(s, names[s].index(name), name) for s in searched if name in names[s]]
    if not matches:
        raise LiberoImportError(f"{path}: task {name!r} (from {source}) is not a task of "
                                f"{' or '.join(searched)}; name it with --suite and --task")
    hinted = [match for match in matches if match.suite == _suite_hint(demo_file)]
    if len(matches) > 1 and not hinted:
        raise LiberoImportError(f"{path}: task {name!r} is in several suites "
                                f"({', '.join(match.suite for match in matches)}); choose one with --suite")
    return (hinted or matches)[0]


def make_import_env(task: TaskRef, settings: ImportSettings) -> LiberoEnv:
    """The env demos of `task` are rendered in: both views, depth when ground-truth tracks are recorded."""
    return LiberoEnv(task.suite, task.index, views=DEFAULT_VIEWS, camera_size=settings.camera_size,
                     depth=settings.ground_truth_tracks, reflections=settings.reflections,
                     antialiasing=settings.antialiasing)


def state_size(env: LiberoEnv) -> int:
    """Values in a flattened state of the env's scene: time, qpos (nq), qvel (nv)."""
    return 1 + env.sim.model.nq + env.sim.model.nv


def check_state_size(demo_file: LiberoDemoFile, env: LiberoEnv) -> None:
    """Raise LiberoImportError when the file's states do not fit the env's scene (a file of another task)."""
    expected = state_size(env)
    if demo_file.state_size != expected:
        raise LiberoImportError(
            f"{demo_file.path}: states have {demo_file.state_size} values, but the scene of {env.suite} task "
            f"{env.task_index} ({env.task_name}) has {expected} (1 + nq + nv): the file is of another task"
        )


def reaches_goal(env: LiberoEnv, states: np.ndarray) -> bool:
    """Whether the last of `states` (T, D) satisfies the task's goal (nothing is rendered)."""
    env.set_state(states[-1])
    return env.check_success()


def untracked(length: int, views: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Views with no tracked points: view -> ((T, 0, 2) float32 tracks, (T, 0) bool visibility)."""
    return {view: (np.zeros((length, 0, 2), np.float32), np.zeros((length, 0), bool)) for view in views}


def replay_demo(env: LiberoEnv, states: np.ndarray, actions: np.ndarray, settings: ImportSettings,
                seed: int) -> Episode:
    """Render every recorded state and record ground-truth tracks through them, as collection does.

    Args:
        states: (T, D) flattened states; actions: (T, 7), actions[t] taken in states[t]; seed: of the track points.
    Returns:
        the episode: T frames per view at `settings.camera_size`, tracks (T, N, 2) per view (N = 0 without
        ground-truth tracks), the actions, proprioception joint_states (T, 7) and gripper_states (T, 2), the env's
        instruction and its suite as domain.
    """
    recorder = (SimTrackRecorder(env, settings.num_points, settings.grid_size, seed)
                if settings.ground_truth_tracks else None)
    frames = []
    for state in states:
        obs = env.observe_state(state)
        if recorder is not None:
            # Points are anchored on the first frame's state; every later frame is recorded while its state is set.
            (recorder.record if frames else recorder.start)(obs)
        frames.append(obs)
    tracks = recorder.tracks() if recorder is not None else untracked(len(frames), env.views)
    return episode_from_frames(frames, list(actions), tracks, env.instruction, env.suite, with_actions=True)


def demo_episode_path(out_dir: str | Path, task_name: str, demo: str) -> Path:
    """Where a demo's episode is written: <out>/<task name>/<demo>.hdf5."""
    return Path(out_dir) / task_name / f"{demo}.hdf5"


def import_demo(env: LiberoEnv, demo_file: LiberoDemoFile, demo: str, out_dir: str | Path,
                settings: ImportSettings, relabel: Relabel | None = None) -> DemoReport:
    """Import one demo into `demo_episode_path` unless its last state misses the task's goal.

    relabel: applied to the episode before it is written (e.g. a point tracker replacing the tracks).
    """
    try:
        states, actions = read_demo(demo_file.path, demo)
    except LiberoImportError as e:
        return DemoReport(demo, 0, None, str(e))
    if not reaches_goal(env, states):
        return DemoReport(demo, len(states), None, f"its last state does not satisfy the goal of {env.task_name}")
    episode = replay_demo(env, states, actions, settings, seed=settings.seed + demo_file.demo_index(demo))
    if relabel is not None:
        episode = relabel(episode, demo)
    path = write_episode(demo_episode_path(out_dir, env.task_name, demo), episode)
    return DemoReport(demo, len(states), path)


def import_demos(env: LiberoEnv, demo_file: LiberoDemoFile, out_dir: str | Path, settings: ImportSettings,
                 demos: Sequence[str] | None = None, relabel: Relabel | None = None) -> Iterator[DemoReport]:
    """Import the file's demos (or `demos` of them) in order, one report per demo as it finishes.

    Raises:
        LiberoImportError before importing anything when the file's states do not fit the env's scene.
    """
    check_state_size(demo_file, env)
    for demo in demo_file.demos if demos is None else demos:
        yield import_demo(env, demo_file, demo, out_dir, settings, relabel)
