"""Point tracks for episode files: finding the files to label, where each is written, and relabelling the views of
an episode with a point tracker (keeping its actions, proprioception, instruction and domain).

Each labelled view's queries are drawn at frame 0 from a generator seeded by the run's seed and the file's relative
path (`query_rng`), so a file gets the same queries whatever else is labelled with it.
"""
from __future__ import annotations

import glob
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from einops import rearrange

from tramoe_ros.data.episode import EpisodeFile, ViewData, write_episode
from tramoe_ros.labeling.point_trackers import PointTracker

EPISODE_SUFFIX = ".hdf5"
GLOB_CHARACTERS = "*?["


class LabelError(ValueError):
    """An input or option that cannot be labelled; the message names it."""


def expand_inputs(inputs: list[str], suffixes: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """Files named by `inputs` (files, folders searched recursively, globs) with one of `suffixes`, each with its
    path relative to the folder it was found in (a file's parent, the folder, a glob's fixed leading folders).

    Returns:
        sorted unique (path, relative path) pairs.
    Raises:
        LabelError naming an input that matches no such file, or a file of another type named directly.
    """
    found: dict[Path, Path] = {}
    for text in inputs:
        location = Path(text)
        if any(char in text for char in GLOB_CHARACTERS):
            fixed = [part for part in location.parts[:next(i for i, part in enumerate(location.parts)
                                                          if any(c in part for c in GLOB_CHARACTERS))]]
            root = Path(*fixed) if fixed else Path(".")
            paths = [Path(p) for p in glob.glob(text, recursive=True)]
        elif location.is_dir():
            root, paths = location, list(location.rglob("*"))
        elif location.is_file():
            if location.suffix.lower() not in suffixes:
                raise LabelError(f"{location}: not a supported input (expected {', '.join(suffixes)})")
            root, paths = location.parent, [location]
        else:
            raise LabelError(f"input {text!r} does not exist")
        matched = [p for p in paths if p.is_file() and p.suffix.lower() in suffixes]
        if not matched:
            raise LabelError(f"input {text!r} matches no {'/'.join(suffixes)} file")
        for path in matched:
            found.setdefault(path.resolve(), path.relative_to(root))
    return sorted(found.items())


def output_paths(inputs: list[tuple[Path, Path]], out_dir: Path | None) -> list[tuple[Path, Path, Path]]:
    """Where each of `expand_inputs`' (path, relative path) pairs is written: the relative path under `out_dir`
    as an episode file, or the file itself (in place) without `out_dir`.

    Returns:
        (path, relative path, output path) per input
    Raises:
        LabelError naming two inputs that would be written to the same file.
    """
    plan = []
    source_of: dict[Path, Path] = {}
    for path, relative in inputs:
        out_path = out_dir / relative.with_suffix(EPISODE_SUFFIX) if out_dir is not None else path
        if out_path in source_of:
            raise LabelError(f"{path} and {source_of[out_path]} would both be written to {out_path}")
        source_of[out_path] = path
        plan.append((path, relative, out_path))
    return plan


def query_rng(seed: int, relative: Path) -> np.random.Generator:
    """The generator of a file's queries: it depends on the seed and the file's relative path only, not on the
    other inputs."""
    return np.random.default_rng([seed, zlib.crc32(relative.as_posix().encode())])


def label_view(tracker: PointTracker, video: np.ndarray, queries: np.ndarray) -> ViewData:
    """Track `queries` (N, 2) normalised at frame 0 through one view's (T, 3, S, S) uint8 video."""
    tracks, visibility = tracker.track(rearrange(video, "t c h w -> t h w c"), queries)
    return ViewData(video, tracks.astype(np.float32), visibility.astype(bool))


def relabel_episode(path: Path, out_path: Path, tracker: PointTracker, sample_queries: Callable[[], np.ndarray],
                    views: list[str] | None = None, only_empty: bool = False) -> list[str]:
    """Label views of one episode file and write it to `out_path` (unless it is `path` and nothing was labelled).

    Args:
        sample_queries: called once per labelled view, in view order: its (N, 2) normalised queries at frame 0
        views: the views to label (default: all)
        only_empty: label only the views without tracked points (N = 0)
    Returns:
        the views labelled
    Raises:
        LabelError naming a view the file does not have.
    """
    file = EpisodeFile(path)
    missing = [view for view in views or [] if view not in file.views]
    if missing:
        raise LabelError(f"{path}: no view(s) {missing}; it has {list(file.views)}")
    episode = file.read()
    file.close()
    labelled = []
    for view in views or file.views:
        if only_empty and file.num_points[view] > 0:
            continue
        episode.views[view] = label_view(tracker, episode.views[view].video, sample_queries())
        labelled.append(view)
    if labelled or out_path.resolve() != path.resolve():
        write_episode(out_path, episode)
    return labelled
