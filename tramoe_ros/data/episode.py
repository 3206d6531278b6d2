"""The project's episode format: one HDF5 file per episode, for action-labelled demos and action-free videos.

Layout (T frames, N tracked points per view, S pixels square, A action dims)::

    /                         attrs: format = "tramoe-episode", version = 1,
                                     instruction (str, the task description),
                                     domain (str tag, e.g. libero_90, libero_object, human, robot)
    /views/<view>/video       (T, 3, S, S) uint8   RGB frames, chunked one frame per chunk, gzip or lzf
    /views/<view>/tracks      (T, N, 2)    float32 point positions, x / W and y / H (see below)
    /views/<view>/visibility  (T, N)       bool    point visible (in the image and not occluded)
    /actions                  (T, A)       float32 optional; present only for action-labelled demos
    /proprio/<name>           (T, d)       float32 optional, e.g. joint_states (7), gripper_states (2)

Every view tracks its own N points over the whole episode; N may differ between views, T may not.
Track coordinates are normalised by the image size with pixel column c covering [c / S, (c + 1) / S), so the pixel
holding a point is ``floor(x * S)`` (the convention the policy's track mask uses). Tracks may leave [0, 1) when a
point leaves the image; its visibility is then false. Tracks, actions and proprio must be finite.

`write_episode` validates and writes an `Episode` atomically, `read_episode` loads one, `EpisodeFile` reads frames
and track windows lazily (for datasets and DataLoader workers), and `validate_episode` / `validate_dataset` report
malformed files with the file, the key and the problem.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

FORMAT_NAME = "tramoe-episode"
FORMAT_VERSION = 1
REQUIRED_ATTRS = ("format", "version", "instruction", "domain")
# Open HDF5 handles one process keeps at once; the least recently used is closed beyond this.
MAX_OPEN_FILES = 256
# Frames read per block when `validate_episode` decompresses a whole video.
_VALIDATE_FRAME_BLOCK = 64


class EpisodeFormatError(ValueError):
    """An episode file (or an `Episode` about to be written) breaks the format.

    The message names the file, the offending key and the problem; `problems` lists them all as ``"key: problem"``.
    """

    def __init__(self, path: str | Path, problems: Sequence[str]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(f"{self.path}: " + "; ".join(self.problems))


@dataclass
class ViewData:
    """One camera's frames and point tracks.

    video: (T, 3, S, S) uint8; tracks: (T, N, 2) float32 normalised x / W, y / H; visibility: (T, N) bool.
    """

    video: np.ndarray
    tracks: np.ndarray
    visibility: np.ndarray


@dataclass
class Episode:
    """One episode in memory.

    views: view name -> ViewData; actions: (T, A) float32 or None for action-free videos;
    proprio: name -> (T, d) float32 (empty for action-free videos).
    """

    views: dict[str, ViewData]
    actions: np.ndarray | None = None
    proprio: dict[str, np.ndarray] = field(default_factory=dict)
    instruction: str = ""
    domain: str = ""

    @property
    def length(self) -> int:
        """Number of frames T."""
        return len(next(iter(self.views.values())).video)


# ---------------------------------------------------------------------------------------------------------------
# Validation, shared by in-memory episodes (before writing) and files


def _array_problems(key: str, array: Any, dtype: np.dtype, ndim: int) -> list[str]:
    """Problems of one array-like (numpy array or h5py dataset) with the wrong kind, dtype or rank."""
    if isinstance(array, h5py.Group):
        return [f"{key}: expected a dataset, found a group"]
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        return [f"{key}: expected an array, got {type(array).__name__}"]
    problems = []
    if array.dtype != dtype:
        problems.append(f"{key}: dtype {array.dtype}, expected {np.dtype(dtype)}")
    if len(array.shape) != ndim:
        problems.append(f"{key}: shape {tuple(array.shape)} has {len(array.shape)} dims, expected {ndim}")
    return problems


def _read_values(key: str, array: Any, problems: list[str]) -> np.ndarray | None:
    try:
        return np.asarray(array[()])
    except (OSError, ValueError, RuntimeError) as e:  # h5py reports corrupt chunks as OSError
        problems.append(f"{key}: unreadable ({e})")
        return None


def _nonfinite_problem(key: str, values: np.ndarray | None) -> list[str]:
    if values is None or values.dtype.kind != "f":
        return []
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        return [f"{key}: {int(bad.sum())} non-finite values (first at index {first})"]
    return []


def _video_readable(key: str, video: Any, problems: list[str]) -> None:
    """Decompress every frame of an h5py video in blocks, so a corrupt chunk is reported without holding it all."""
    for start in range(0, video.shape[0], _VALIDATE_FRAME_BLOCK):
        stop = min(start + _VALIDATE_FRAME_BLOCK, video.shape[0])
        try:
            video[start:stop]
        except (OSError, ValueError, RuntimeError) as e:
            problems.append(f"{key}: unreadable in frames [{start}, {stop}) ({e})")
            return


def _layout_problems(
    attrs: Mapping[str, Any],
    views: Mapping[str, Mapping[str, Any]],
    actions: Any | None,
    proprio: Mapping[str, Any],
    check_values: bool,
) -> list[str]:
    """All format problems of an episode given as its attrs and (lazy or in-memory) arrays, as "key: problem"."""
    problems: list[str] = []
    for name in REQUIRED_ATTRS:
        if name not in attrs:
            problems.append(f"attrs/{name}: missing attribute")
    if attrs.get("format", FORMAT_NAME) != FORMAT_NAME:
        problems.append(f"attrs/format: {attrs['format']!r}, expected {FORMAT_NAME!r}")
    version = attrs.get("version", FORMAT_VERSION)
    if not isinstance(version, (int, np.integer)) or version != FORMAT_VERSION:
        problems.append(f"attrs/version: {version!r}, this reader understands version {FORMAT_VERSION}")
    for name in ("instruction", "domain"):
        if name in attrs and not isinstance(attrs[name], str):
            problems.append(f"attrs/{name}: expected a string, got {type(attrs[name]).__name__}")
    if not views:
        problems.append("views: no views (need at least one views/<view> group)")

    # T is taken from the first shape seen; every later array must agree with it.
    length_key: str | None = None
    length = 0

    def check_length(key: str, array: Any) -> None:
        nonlocal length_key, length
        if length_key is None:
            length_key, length = key, int(array.shape[0])
            if length == 0:
                problems.append(f"{key}: episode has no frames (T = 0)")
        elif array.shape[0] != length:
            problems.append(f"{key}: T = {array.shape[0]} but {length_key} has T = {length}")

    for view, arrays in views.items():
        prefix = f"views/{view}"
        expected = {"video": (np.uint8, 4), "tracks": (np.float32, 3), "visibility": (np.bool_, 2)}
        ok = {}
        for name, (dtype, ndim) in expected.items():
            key = f"{prefix}/{name}"
            if name not in arrays:
                problems.append(f"{key}: missing dataset")
                continue
            found = _array_problems(key, arrays[name], dtype, ndim)
            problems += found
            if not found:
                ok[name] = arrays[name]
                check_length(key, arrays[name])
        if "video" in ok:
            _, channels, height, width = ok["video"].shape
            if channels != 3:
                problems.append(f"{prefix}/video: {channels} channels, expected 3 (RGB), shape (T, 3, S, S)")
            if height != width or height == 0:
                problems.append(f"{prefix}/video: frames are {height}x{width}, expected square S x S with S > 0")
        if "tracks" in ok and ok["tracks"].shape[2] != 2:
            problems.append(f"{prefix}/tracks: last dim is {ok['tracks'].shape[2]}, expected 2 (x, y)")
        if "tracks" in ok and "visibility" in ok and ok["tracks"].shape[1] != ok["visibility"].shape[1]:
            problems.append(
                f"{prefix}/visibility: N = {ok['visibility'].shape[1]} points but {prefix}/tracks has "
                f"N = {ok['tracks'].shape[1]}"
            )
        if check_values:
            if "tracks" in ok:
                tracks = _read_values(f"{prefix}/tracks", ok["tracks"], problems)
                problems += _nonfinite_problem(f"{prefix}/tracks", tracks)
            if "visibility" in ok:
                _read_values(f"{prefix}/visibility", ok["visibility"], problems)
            if "video" in ok and isinstance(ok["video"], h5py.Dataset):
                _video_readable(f"{prefix}/video", ok["video"], problems)

    named_arrays = ([("actions", actions)] if actions is not None else []) + [
        (f"proprio/{name}", array) for name, array in proprio.items()
    ]
    for key, array in named_arrays:
        found = _array_problems(key, array, np.float32, 2)
        problems += found
        if not found:
            check_length(key, array)
            if check_values:
                problems += _nonfinite_problem(key, _read_values(key, array, problems))
    return problems


def _file_layout(f: h5py.File) -> tuple[dict, dict, Any, dict, list[str]]:
    """Split an open file into (attrs, views, actions, proprio) for `_layout_problems`, plus problems of the tree
    itself (a group where a dataset belongs and vice versa)."""
    problems: list[str] = []
    attrs = {}
    for name in REQUIRED_ATTRS:
        if name in f.attrs:
            value = f.attrs[name]
            attrs[name] = value.decode() if isinstance(value, bytes) else value
    views: dict[str, dict[str, Any]] = {}
    views_node = f.get("views")
    if isinstance(views_node, h5py.Dataset):
        problems.append("views: expected a group, found a dataset")
    elif views_node is not None:
        for name, node in views_node.items():
            if isinstance(node, h5py.Group):
                views[name] = dict(node.items())
            else:
                problems.append(f"views/{name}: expected a group, found a dataset")
    proprio: dict[str, Any] = {}
    proprio_node = f.get("proprio")
    if isinstance(proprio_node, h5py.Dataset):
        problems.append("proprio: expected a group, found a dataset")
    elif proprio_node is not None:
        proprio = dict(proprio_node.items())
    return attrs, views, f.get("actions"), proprio, problems


def _open_problems(path: Path) -> tuple[h5py.File | None, list[str]]:
    if not path.is_file():
        return None, ["file does not exist"]
    try:
        return h5py.File(path, "r"), []
    except OSError as e:  # not HDF5, truncated, or unreadable
        return None, [f"not a readable HDF5 file ({e})"]


def _checked_layout(f: h5py.File, check_values: bool) -> tuple[tuple | None, list[str]]:
    """(attrs, views, actions, proprio) of an open file and its format problems; None when the tree itself
    cannot be read."""
    try:
        attrs, views, actions, proprio, problems = _file_layout(f)
        problems += _layout_problems(attrs, views, actions, proprio, check_values)
    except (OSError, KeyError, RuntimeError) as e:  # a corrupt object header surfaces while walking the tree
        return None, [f"file structure unreadable ({e})"]
    return (attrs, views, actions, proprio), problems


def episode_problems(path: str | Path, *, check_values: bool = True) -> list[str]:
    """Format problems of one episode file as "key: problem" strings; empty when it is valid.

    check_values: also read tracks, visibility, actions and proprio (must be finite) and decompress every video
    frame; without it only attributes, dtypes and shapes are checked (cheap, no data read).
    """
    path = Path(path)
    f, problems = _open_problems(path)
    if f is None:
        return problems
    with f:
        return _checked_layout(f, check_values)[1]


def validate_episode(path: str | Path, *, check_values: bool = True) -> None:
    """Raise `EpisodeFormatError` (naming the file, the key and the problem) unless `path` is a valid episode."""
    problems = episode_problems(path, check_values=check_values)
    if problems:
        raise EpisodeFormatError(path, problems)


def validate_dataset(paths: Iterable[str | Path], *, check_values: bool = True) -> list[str]:
    """Problems of many episode files, each as "path: key: problem"; empty when all are valid."""
    return [f"{path}: {problem}" for path in paths for problem in episode_problems(path, check_values=check_values)]


# ---------------------------------------------------------------------------------------------------------------
# Writing and reading


def _episode_layout(episode: Episode) -> tuple[dict, dict, Any, dict]:
    attrs = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "instruction": episode.instruction,
        "domain": episode.domain,
    }
    views = {
        name: {"video": view.video, "tracks": view.tracks, "visibility": view.visibility}
        for name, view in episode.views.items()
    }
    return attrs, views, episode.actions, episode.proprio


def write_episode(
    path: str | Path, episode: Episode, *, compression: Literal["gzip", "lzf"] = "gzip"
) -> Path:
    """Validate `episode` and write it to `path` (parents created). The file appears atomically: it is written to
    a temporary name and renamed, so an interrupted write never leaves a truncated episode behind.

    Raises:
        EpisodeFormatError naming `path`, the key and the problem when the episode breaks the format.
    """
    path = Path(path)
    problems = _layout_problems(*_episode_layout(episode), check_values=True)
    if problems:
        raise EpisodeFormatError(path, problems)
    compression_opts = 4 if compression == "gzip" else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["version"] = FORMAT_VERSION
            f.attrs["instruction"] = episode.instruction
            f.attrs["domain"] = episode.domain
            for name, view in episode.views.items():
                group = f.create_group(f"views/{name}")
                # One chunk per frame: a dataset reads single frames without decompressing their neighbours.
                group.create_dataset(
                    "video", data=view.video, chunks=(1, *view.video.shape[1:]),
                    compression=compression, compression_opts=compression_opts,
                )
                group.create_dataset("tracks", data=view.tracks)
                group.create_dataset("visibility", data=view.visibility)
            if episode.actions is not None:
                f.create_dataset("actions", data=episode.actions)
            for name, values in episode.proprio.items():
                f.create_dataset(f"proprio/{name}", data=values)
        _handles.close(str(path))  # a cached handle would keep reading the replaced file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_episode(path: str | Path, views: Sequence[str] | None = None) -> Episode:
    """Load a whole episode (all views, or only `views`). Checks the layout, not the values."""
    return EpisodeFile(path).read(views)


class _HandleCache:
    """The process's open HDF5 handles, keyed by path, least recently used first.

    A handle inherited through fork belongs to the parent process, so a DataLoader worker starts with an empty
    cache and opens its own handle per file. At most MAX_OPEN_FILES stay open, bounding file descriptors and
    HDF5 metadata memory when a dataset spans thousands of episodes.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._files: OrderedDict[str, h5py.File] = OrderedDict()

    def get(self, path: str) -> h5py.File:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._files = OrderedDict()
        handle = self._files.get(path)
        if handle is None:
            handle = h5py.File(path, "r")
            self._files[path] = handle
            while len(self._files) > MAX_OPEN_FILES:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(path)
        return handle

    def close(self, path: str) -> None:
        if self._pid == os.getpid() and path in self._files:
            self._files.pop(path).close()


_handles = _HandleCache()


class EpisodeFile:
    """Lazy reader of one episode file.

    Construction reads only the attributes and array shapes (and checks the layout, raising
    `EpisodeFormatError`); frames and track windows are read on demand through a per-process handle opened on
    first access, so an instance can be pickled into DataLoader workers, each of which opens its own handle.

    Attributes:
        path, length (T), instruction, domain, views (names, file order), has_actions, action_dim (0 without
        actions), proprio_dims (name -> d), image_size (view -> S), num_points (view -> N).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        f, problems = _open_problems(self.path)
        if f is None:
            raise EpisodeFormatError(self.path, problems)
        with f:
            layout, problems = _checked_layout(f, check_values=False)
            if problems:
                raise EpisodeFormatError(self.path, problems)
            attrs, views, actions, proprio = layout
            self.instruction: str = attrs["instruction"]
            self.domain: str = attrs["domain"]
            self.views: tuple[str, ...] = tuple(views)
            self.image_size = {name: int(arrays["video"].shape[-1]) for name, arrays in views.items()}
            self.num_points = {name: int(arrays["tracks"].shape[1]) for name, arrays in views.items()}
            self.length = int(next(iter(views.values()))["video"].shape[0])
            self.has_actions = actions is not None
            self.action_dim = int(actions.shape[1]) if actions is not None else 0
            self.proprio_dims = {name: int(array.shape[1]) for name, array in proprio.items()}

    def __repr__(self) -> str:
        return f"EpisodeFile({str(self.path)!r}, T={self.length}, views={list(self.views)}, domain={self.domain!r})"

    def _file(self) -> h5py.File:
        return _handles.get(str(self.path))

    def close(self) -> None:
        """Close this process's handle (reopened on the next read)."""
        _handles.close(str(self.path))

    def _view(self, view: str) -> h5py.Group:
        if view not in self.views:
            raise KeyError(f"{self.path}: no view {view!r}; it has {list(self.views)}")
        return self._file()["views"][view]

    def _window(self, t0: int, t1: int) -> slice:
        if not 0 <= t0 <= t1 <= self.length:
            raise IndexError(f"{self.path}: frame window [{t0}, {t1}) is outside [0, {self.length})")
        return slice(t0, t1)

    def frame(self, view: str, t: int) -> np.ndarray:
        """Frame t of `view`: (3, S, S) uint8."""
        if not 0 <= t < self.length:
            raise IndexError(f"{self.path}: frame {t} is outside [0, {self.length})")
        return self._view(view)["video"][t]

    def frames(self, view: str, ts: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames `ts` of `view` (any order, repeats allowed): (len(ts), 3, S, S) uint8."""
        ts = np.asarray(ts, dtype=np.int64)
        if ts.size and (ts.min() < 0 or ts.max() >= self.length):
            raise IndexError(f"{self.path}: frames {ts.tolist()} are not all in [0, {self.length})")
        # h5py point selection needs strictly increasing indices; read each frame once and expand.
        unique, inverse = np.unique(ts, return_inverse=True)
        return self._view(view)["video"][unique][inverse]

    def tracks(self, view: str, t0: int, t1: int) -> np.ndarray:
        """Tracks of all points over frames [t0, t1): (t1 - t0, N, 2) float32."""
        return self._view(view)["tracks"][self._window(t0, t1)]

    def visibility(self, view: str, t0: int, t1: int) -> np.ndarray:
        """Visibility of all points over frames [t0, t1): (t1 - t0, N) bool."""
        return self._view(view)["visibility"][self._window(t0, t1)]

    def actions(self, t0: int, t1: int) -> np.ndarray:
        """Actions over frames [t0, t1): (t1 - t0, A) float32."""
        if not self.has_actions:
            raise KeyError(f"{self.path}: episode has no actions (an action-free video)")
        return self._file()["actions"][self._window(t0, t1)]

    def proprio(self, name: str, t0: int, t1: int) -> np.ndarray:
        """Proprioception `name` over frames [t0, t1): (t1 - t0, d) float32."""
        if name not in self.proprio_dims:
            raise KeyError(f"{self.path}: no proprio {name!r}; it has {list(self.proprio_dims)}")
        return self._file()["proprio"][name][self._window(t0, t1)]

    def read(self, views: Sequence[str] | None = None) -> Episode:
        """The whole episode (all views, or only `views`) in memory."""
        f = self._file()
        view_data = {}
        for name in self.views if views is None else views:
            group = self._view(name)
            view_data[name] = ViewData(group["video"][()], group["tracks"][()], group["visibility"][()])
        return Episode(
            views=view_data,
            actions=f["actions"][()] if self.has_actions else None,
            proprio={name: f["proprio"][name][()] for name in self.proprio_dims},
            instruction=self.instruction,
            domain=self.domain,
        )
