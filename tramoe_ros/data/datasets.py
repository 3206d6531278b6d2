"""Torch datasets over episode files: track-model samples (one view, one frame, a window of point tracks) and
policy samples (all views, a frame stack, actions), plus episode discovery and per-domain mixing.

Both datasets read through `EpisodeFile`, lazily, so they work with DataLoader workers (each opens its own
handles) and with the default collate (strings become lists, dicts of tensors stay dicts). Randomness per item
(point choice, augmentation) comes from a generator seeded by (seed, epoch, index): a run is reproducible, and
`set_epoch(e)` gives each epoch fresh draws. Evaluation datasets (train=False) ignore the epoch and never
augment, so their samples are fixed.
"""
from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tramoe_ros.config import DomainSource
from tramoe_ros.data.augment import color_jitter, random_shift
from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.data.sampling import sample_track_points


# Episode index -> view -> (T_episode, H, K, 2) track predictions (a list or a dict keyed by index).
TrackCache = Sequence[Mapping[str, np.ndarray]] | Mapping[int, Mapping[str, np.ndarray]]


class EpisodeSource(NamedTuple):
    """One episode file, its domain tag and its domain's sampling ratio."""

    path: Path
    domain: str
    weight: float = 1.0


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def find_episodes(sources: Sequence[DomainSource], root: str | Path | None = None) -> list[EpisodeSource]:
    """Expand dataset sources into episode files, sorted by path within each source.

    A source path is a folder (every *.hdf5 below it, recursively), a glob (``**`` recurses) or a file; relative
    paths are taken from `root` (default: the working directory). The source's `domain` tags its files; an empty
    domain keeps each file's own `domain` attribute.

    Raises:
        FileNotFoundError naming the source when it matches no file.
        ValueError when one file is matched by two sources (its domain and ratio would be ambiguous).
    """
    base = Path(root) if root is not None else Path.cwd()
    found: list[EpisodeSource] = []
    source_of: dict[Path, str] = {}
    for source in sources:
        location = base / source.path
        if _is_glob(source.path):
            paths = [Path(p) for p in glob.glob(str(location), recursive=True) if Path(p).is_file()]
        elif location.is_dir():
            paths = list(location.rglob("*.hdf5"))
        elif location.is_file():
            paths = [location]
        else:
            paths = []
        if not paths:
            raise FileNotFoundError(
                f"dataset source {source.path!r} (domain {source.domain!r}) matches no episode file "
                f"(looked for {location}{'' if _is_glob(source.path) else ' and *.hdf5 below it'})"
            )
        for path in sorted(paths):
            resolved = path.resolve()
            if resolved in source_of:
                raise ValueError(f"{path} is matched by both source {source_of[resolved]!r} and {source.path!r}")
            source_of[resolved] = source.path
            domain = source.domain or EpisodeFile(path).domain
            found.append(EpisodeSource(path, domain, source.weight))
    return found


def domain_sample_weights(domains: Sequence[str], ratios: Mapping[str, float]) -> torch.Tensor:
    """Per-item sampling weights such that each domain's total probability is proportional to its ratio,
    whatever its number of items (for torch.utils.data.WeightedRandomSampler).

    Args:
        domains: (num_items,) the domain of every item, e.g. `TrackDataset.item_domains()`.
        ratios: domain -> ratio >= 0; domains without items are ignored.
    Returns:
        (num_items,) float64, summing to 1.
    """
    names = sorted(set(domains))
    missing = [name for name in names if name not in ratios]
    if missing:
        raise ValueError(f"no sampling ratio for domain(s) {missing}; ratios given for {sorted(ratios)}")
    ratio = np.array([ratios[name] for name in names], dtype=np.float64)
    if (ratio < 0).any() or ratio.sum() <= 0:
        raise ValueError(f"domain ratios must be >= 0 and not all 0, got { {name: ratios[name] for name in names} }")
    position = {name: i for i, name in enumerate(names)}
    item_domain = np.array([position[domain] for domain in domains])
    items_per_domain = np.bincount(item_domain, minlength=len(names))
    per_item = ratio / ratio.sum() / items_per_domain
    return torch.from_numpy(per_item[item_domain])


def _as_source(episode: EpisodeSource | tuple | str | Path) -> EpisodeSource:
    """An `EpisodeSource` from itself, a (path, domain, weight) tuple, or a bare path (domain from the file)."""
    if isinstance(episode, tuple):
        path, domain, weight = episode
        return EpisodeSource(Path(path), domain, weight)
    return EpisodeSource(Path(episode), "", 1.0)


class _EpisodeDataset(Dataset):
    """Shared plumbing: episode files, views, per-item generators, image loading and augmentation settings."""

    def __init__(
        self,
        episodes: Sequence[EpisodeSource | tuple | str | Path],
        views: Sequence[str],
        image_size: int,
        color_jitter: float,
        random_shift_pad: int,
        train: bool,
        seed: int,
    ) -> None:
        if not episodes:
            raise ValueError(f"{type(self).__name__} needs at least one episode")
        if not views:
            raise ValueError(f"{type(self).__name__} needs at least one view")
        sources = [_as_source(e) for e in episodes]
        self.files = [EpisodeFile(s.path) for s in sources]
        # An untagged episode (a bare path, or a source with an empty domain) keeps the file's own tag.
        self.episodes = [s._replace(domain=s.domain or f.domain) for s, f in zip(sources, self.files)]
        self.views = list(views)
        missing = [f"{f.path} (has {list(f.views)})" for f in self.files if not set(self.views) <= set(f.views)]
        if missing:
            raise ValueError(f"episodes lack view(s) {self.views}: " + ", ".join(missing))
        self.image_size = image_size
        self.color_jitter = color_jitter
        self.random_shift_pad = random_shift_pad
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws the items use (training only)."""
        self.epoch = epoch

    def _item_generators(self, index: int) -> tuple[np.random.Generator, torch.Generator]:
        seed_sequence = np.random.SeedSequence([self.seed, self.epoch if self.train else 0, index])
        torch_seed = int(seed_sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
        return np.random.default_rng(seed_sequence), torch.Generator().manual_seed(torch_seed)

    def _load_frames(self, file: EpisodeFile, view: str, ts: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Frames `ts` of one view as (len(ts), 3, S, S) float32 0..255, resized to image_size if stored larger
        or smaller."""
        frames = torch.from_numpy(file.frames(view, ts)).float()
        if frames.shape[-1] != self.image_size:
            frames = F.interpolate(
                frames, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
            ).clamp(0, 255)
        return frames


class TrackDataset(_EpisodeDataset):
    """Track-model samples: one item per (episode, view, frame t), one view per item (as ATM).

    Item:
        image: (3, S, S) float32 0..255, frame t (colour-jittered and shifted when train)
        queries: (K, 2) float32, the sampled points at t (= tracks[0], after the shift)
        tracks: (H, K, 2) float32 normalised, frames t .. t+H-1; past the episode end the last frame repeats
        visibility: (H, K) bool (false also where the shift pushed a point out of the image)
        instruction, domain, view: str; episode: int index into `episodes`
    K = num_points chosen by `sample_track_points` (variance filtering at image_size resolution, with
    `still_point_share` of them kept for static points),
    H = horizon. The shift moves image and tracks together, so tracks stay on their pixels.
    """

    def __init__(
        self,
        episodes: Sequence[EpisodeSource | tuple | str | Path],
        views: Sequence[str],
        horizon: int = 16,
        num_points: int = 32,
        image_size: int = 128,
        variance_threshold_px2: float = 10.0,
        still_point_share: float = 0.0,
        color_jitter: float = 0.0,
        random_shift_pad: int = 0,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(episodes, views, image_size, color_jitter, random_shift_pad, train, seed)
        self.horizon = horizon
        self.num_points = num_points
        self.variance_threshold_px2 = variance_threshold_px2
        self.still_point_share = still_point_share
        lengths = np.array([f.length for f in self.files])
        items_per_episode = lengths * len(self.views)
        self._item_episode = np.repeat(np.arange(len(self.files)), items_per_episode)
        # Within an episode, items run over views (slowest) then frames.
        self._item_view = np.concatenate([np.repeat(np.arange(len(self.views)), n) for n in lengths])
        self._item_time = np.concatenate([np.tile(np.arange(n), len(self.views)) for n in lengths])

    def __len__(self) -> int:
        return len(self._item_episode)

    def item_domains(self) -> list[str]:
        """The domain of every item, for `domain_sample_weights`."""
        return [self.episodes[e].domain for e in self._item_episode]

    def __getitem__(self, index: int) -> dict:
        episode_index = int(self._item_episode[index])
        view = self.views[self._item_view[index]]
        t = int(self._item_time[index])
        file = self.files[episode_index]
        point_rng, augment_generator = self._item_generators(index)

        image = self._load_frames(file, view, [t])[0]
        t_end = min(t + self.horizon, file.length)
        # The scene is taken as frozen at its last frame past the episode end (as ATM pads).
        window = np.minimum(np.arange(self.horizon), t_end - t - 1)
        all_tracks = file.tracks(view, t, t_end)[window]
        all_visibility = file.visibility(view, t, t_end)[window]
        points = sample_track_points(
            all_tracks, all_visibility[0], self.num_points, self.image_size, self.variance_threshold_px2, point_rng,
            self.still_point_share,
        )
        tracks = torch.from_numpy(all_tracks[:, points])
        visibility = torch.from_numpy(all_visibility[:, points])

        if self.train:
            image = color_jitter(image, self.color_jitter, augment_generator)
            image, tracks = random_shift(image, tracks, self.random_shift_pad, augment_generator)
            visibility = visibility & ((tracks >= 0) & (tracks < 1)).all(dim=-1)
        return {
            "image": image,
            "queries": tracks[0].clone(),
            "tracks": tracks,
            "visibility": visibility,
            "instruction": file.instruction,
            "domain": self.episodes[episode_index].domain,
            "view": view,
            "episode": episode_index,
        }


class PolicyDataset(_EpisodeDataset):
    """Policy samples: one item per (episode, frame t), all views, the frame stack ending at t.

    Item (V views, T = frame_stack, A action dims, H x K predicted track steps x points):
        images: (V, T, 3, S, S) float32 0..255, frames t-T+1 .. t; before the episode start frame 0 repeats
        actions: (T, C, A) float32, the actions taken at each stacked frame and the C - 1 frames after it
            (C = action_chunk; zeros past the episode end)
        action_mask: (T, C) bool, false past the episode end
        proprio: name -> (T, d) float32
        frames: (T,) int64 frame indices (0 repeated at the start)
        valid_steps: (T,) bool, false where frame 0 is repeated to fill the stack
        tracks: (V, T, H, K, 2) float32, only with `track_cache`: the frozen track model's predictions from
            each stacked frame, looked up in track_cache[episode][view], an array (T_episode, H, K, 2)
        instruction, domain: str; episode: int index into `episodes`
    When training, one colour jitter and one shift apply to every view and frame of a sample, and the cached
    tracks move with the shift, so a track mask drawn from them stays on its pixels.
    """

    def __init__(
        self,
        episodes: Sequence[EpisodeSource | tuple | str | Path],
        views: Sequence[str],
        frame_stack: int = 10,
        image_size: int = 128,
        color_jitter: float = 0.0,
        random_shift_pad: int = 0,
        train: bool = True,
        seed: int = 0,
        track_cache: TrackCache | None = None,
        proprio_names: Sequence[str] | None = None,
        action_chunk: int = 1,
    ) -> None:
        super().__init__(episodes, views, image_size, color_jitter, random_shift_pad, train, seed)
        if action_chunk < 1:
            raise ValueError(f"action_chunk must be at least 1, got {action_chunk}")
        self.action_chunk = action_chunk
        without_actions = [str(f.path) for f in self.files if not f.has_actions]
        if without_actions:
            raise ValueError(
                "PolicyDataset needs action-labelled episodes; these have no actions: " + ", ".join(without_actions)
            )
        action_dims = {f.action_dim for f in self.files}
        if len(action_dims) > 1:
            raise ValueError(f"episodes disagree on the action dim: {sorted(action_dims)}")
        self.frame_stack = frame_stack
        self.proprio_names = list(self.files[0].proprio_dims if proprio_names is None else proprio_names)
        for f in self.files:
            missing = [name for name in self.proprio_names if name not in f.proprio_dims]
            if missing:
                raise ValueError(f"{f.path}: missing proprio {missing} (has {list(f.proprio_dims)})")
        if track_cache is not None:
            self._check_track_cache(track_cache)
        self.track_cache = track_cache
        lengths = np.array([f.length for f in self.files])
        self._item_episode = np.repeat(np.arange(len(self.files)), lengths)
        self._item_time = np.concatenate([np.arange(n) for n in lengths])

    def _check_track_cache(self, track_cache: TrackCache) -> None:
        for index, file in enumerate(self.files):
            try:
                cached = track_cache[index]
            except (KeyError, IndexError):
                raise ValueError(f"track_cache has no entry for episode {index} ({file.path})") from None
            for view in self.views:
                if view not in cached:
                    raise ValueError(f"track_cache[{index}] ({file.path}) has no view {view!r}")
                shape = cached[view].shape
                if len(shape) != 4 or shape[0] != file.length or shape[-1] != 2:
                    raise ValueError(
                        f"track_cache[{index}][{view!r}] ({file.path}) has shape {tuple(shape)}, "
                        f"expected ({file.length}, H, K, 2)"
                    )

    def __len__(self) -> int:
        return len(self._item_episode)

    def item_domains(self) -> list[str]:
        """The domain of every item, for `domain_sample_weights`."""
        return [self.episodes[e].domain for e in self._item_episode]

    def __getitem__(self, index: int) -> dict:
        episode_index = int(self._item_episode[index])
        t = int(self._item_time[index])
        file = self.files[episode_index]
        _, augment_generator = self._item_generators(index)

        stack_times = np.arange(t - self.frame_stack + 1, t + 1)
        frames = np.maximum(stack_times, 0)
        first = int(frames[0])
        images = torch.stack([self._load_frames(file, view, frames) for view in self.views])
        # (T, C): each stacked frame and the C - 1 after it; past the episode's last action, padding (masked out).
        chunk_times = frames[:, None] + np.arange(self.action_chunk)
        action_mask = chunk_times < file.length
        last = min(t + self.action_chunk, file.length)
        actions = file.actions(first, last)[np.minimum(chunk_times, last - 1) - first] * action_mask[..., None]
        item = {
            "actions": torch.from_numpy(actions.astype(np.float32)),
            "action_mask": torch.from_numpy(action_mask),
            "proprio": {
                name: torch.from_numpy(file.proprio(name, first, t + 1)[frames - first]) for name in self.proprio_names
            },
            "frames": torch.from_numpy(frames),
            "valid_steps": torch.from_numpy(stack_times >= 0),
            "instruction": file.instruction,
            "domain": self.episodes[episode_index].domain,
            "episode": episode_index,
        }
        if self.track_cache is not None:
            cached = self.track_cache[episode_index]
            item["tracks"] = torch.from_numpy(
                np.stack([np.asarray(cached[view][frames], dtype=np.float32) for view in self.views])
            )
        if self.train:
            images = color_jitter(images, self.color_jitter, augment_generator)
            # Without a cache an empty track tensor goes through the shift, which draws the same offset.
            images, shifted_tracks = random_shift(
                images, item.get("tracks", images.new_zeros(0, 2)), self.random_shift_pad, augment_generator
            )
            if "tracks" in item:
                item["tracks"] = shifted_tracks
        item["images"] = images
        return item
