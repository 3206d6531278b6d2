"""Episode files: write/read round trip, lazy reads, pickling and DataLoader workers, and the validator's
report (file, key, problem) for each kind of malformed file."""
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from data_fixtures import LENGTH, small_episode
from tramoe_ros.data.episode import (
    EpisodeFile,
    EpisodeFormatError,
    ViewData,
    read_episode,
    validate_dataset,
    validate_episode,
    write_episode,
)


def assert_episodes_equal(a, b):
    assert (a.instruction, a.domain) == (b.instruction, b.domain)
    assert list(a.views) == list(b.views)
    for name in a.views:
        for field in ("video", "tracks", "visibility"):
            x, y = getattr(a.views[name], field), getattr(b.views[name], field)
            assert x.dtype == y.dtype and np.array_equal(x, y), (name, field)
    assert np.array_equal(a.actions, b.actions) and a.actions.dtype == np.float32
    assert a.proprio.keys() == b.proprio.keys()
    for name in a.proprio:
        assert np.array_equal(a.proprio[name], b.proprio[name])


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_round_trip(tmp_path, compression):
    episode = small_episode(0, domain="libero_90")
    path = write_episode(tmp_path / "ep.hdf5", episode, compression=compression)
    assert_episodes_equal(read_episode(path), episode)
    with h5py.File(path) as f:
        video = f["views/agentview/video"]
        assert video.chunks == (1, 3, 64, 64) and video.compression == compression
        assert f.attrs["format"] == "tramoe-episode" and f.attrs["version"] == 1
    only_agentview = read_episode(path, views=["agentview"])
    assert list(only_agentview.views) == ["agentview"]


def test_action_free_round_trip(tmp_path):
    episode = small_episode(1, with_actions=False)
    loaded = read_episode(write_episode(tmp_path / "video.hdf5", episode))
    assert loaded.actions is None and loaded.proprio == {}
    assert not EpisodeFile(tmp_path / "video.hdf5").has_actions


def test_lazy_reads_equal_full_read(demo_paths):
    path = demo_paths[0]
    full = read_episode(path)
    lazy = EpisodeFile(path)
    assert lazy.length == LENGTH and lazy.views == ("agentview", "eye_in_hand")
    assert (lazy.instruction, lazy.domain, lazy.action_dim) == (full.instruction, "robot", 7)
    assert lazy.proprio_dims == {"joint_states": 7, "gripper_states": 2}
    assert lazy.image_size["agentview"] == 64 and lazy.num_points["eye_in_hand"] == 48
    view = full.views["eye_in_hand"]
    assert np.array_equal(lazy.frame("eye_in_hand", 5), view.video[5])
    ts = [7, 3, 3, 0, 23]  # unsorted with a repeat
    assert np.array_equal(lazy.frames("eye_in_hand", ts), view.video[ts])
    assert np.array_equal(lazy.tracks("eye_in_hand", 4, 20), view.tracks[4:20])
    assert np.array_equal(lazy.visibility("eye_in_hand", 4, 20), view.visibility[4:20])
    assert np.array_equal(lazy.actions(2, 9), full.actions[2:9])
    assert np.array_equal(lazy.proprio("gripper_states", 0, LENGTH), full.proprio["gripper_states"])
    with pytest.raises(IndexError, match="outside"):
        lazy.tracks("agentview", 20, LENGTH + 1)
    with pytest.raises(IndexError):
        lazy.frame("agentview", LENGTH)
    with pytest.raises(KeyError, match="no view 'wrist'"):
        lazy.frame("wrist", 0)


class _FrameDataset(Dataset):
    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files) * LENGTH

    def __getitem__(self, index):
        file = self.files[index // LENGTH]
        return torch.from_numpy(file.frame("agentview", index % LENGTH))


def test_episode_file_pickles_and_reads_in_workers(demo_paths):
    files = [EpisodeFile(p) for p in demo_paths]
    expected = torch.cat([torch.from_numpy(read_episode(p).views["agentview"].video) for p in demo_paths])
    files[0].frame("agentview", 0)  # open a handle in this process first: forked workers must not reuse it
    restored = pickle.loads(pickle.dumps(files[1]))
    assert np.array_equal(restored.frame("agentview", 3), expected[LENGTH + 3].numpy())
    loader = DataLoader(_FrameDataset(files), batch_size=10, num_workers=2, shuffle=False)
    assert torch.equal(torch.cat(list(loader)), expected)
    files[0].close()
    assert np.array_equal(files[0].frame("agentview", 1), expected[1].numpy())


def test_write_refuses_invalid_episode(tmp_path):
    episode = small_episode(2)
    view = episode.views["agentview"]
    episode.views["agentview"] = ViewData(view.video, view.tracks.astype(np.float64), view.visibility)
    with pytest.raises(EpisodeFormatError, match=r"bad\.hdf5.*views/agentview/tracks: dtype float64"):
        write_episode(tmp_path / "bad.hdf5", episode)
    assert list(tmp_path.iterdir()) == []


def rewrite(key, change):
    """Corruption: replace dataset `key` by change(its data)."""
    def corrupt(f):
        data = f[key][()]
        del f[key]
        f.create_dataset(key, data=change(data))
    return corrupt


def set_value(key, index, value):
    def corrupt(f):
        f[key][index] = value
    return corrupt


def delete(key):
    def corrupt(f):
        del f[key]
    return corrupt


def delete_attr(name):
    def corrupt(f):
        del f.attrs[name]
    return corrupt


def set_attr(name, value):
    def corrupt(f):
        f.attrs[name] = value
    return corrupt


def remove_all_views(f):
    for view in list(f["views"]):
        del f["views"][view]


def group_instead_of_tracks(f):
    del f["views/agentview/tracks"]
    f.create_group("views/agentview/tracks")


# Each case: (key named in the message, a phrase of the problem, how to break a valid file).
MALFORMED = {
    "missing attr": ("attrs/instruction", "missing attribute", delete_attr("instruction")),
    "wrong format": ("attrs/format", "expected 'tramoe-episode'", set_attr("format", "atm")),
    "wrong version": ("attrs/version", "understands version 1", set_attr("version", 2)),
    "missing dataset": ("views/agentview/visibility", "missing dataset", delete("views/agentview/visibility")),
    "no views": ("views", "no views", remove_all_views),
    "wrong dtype": ("views/eye_in_hand/tracks", "dtype float64",
                    rewrite("views/eye_in_hand/tracks", lambda x: x.astype(np.float64))),
    "wrong ndim": ("views/agentview/visibility", "expected 2",
                   rewrite("views/agentview/visibility", lambda x: x[..., None])),
    "mismatched T": ("actions", f"T = {LENGTH - 1} but", rewrite("actions", lambda x: x[1:])),
    "N mismatch": ("views/agentview/visibility", "N = 47 points",
                   rewrite("views/agentview/visibility", lambda x: x[:, 1:])),
    "NaN tracks": ("views/agentview/tracks", "non-finite", set_value("views/agentview/tracks", (3, 5, 0), np.nan)),
    "inf proprio": ("proprio/joint_states", "non-finite", set_value("proprio/joint_states", (0, 0), np.inf)),
    "not square": ("views/agentview/video", "64x32", rewrite("views/agentview/video", lambda x: x[..., :32])),
    "not RGB": ("views/agentview/video", "4 channels",
                rewrite("views/agentview/video", lambda x: np.concatenate([x, x[:, :1]], axis=1))),
    "group for dataset": ("views/agentview/tracks", "found a group", group_instead_of_tracks),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_validator_names_file_key_and_problem(tmp_path, demo_paths, case):
    key, phrase, corrupt = MALFORMED[case]
    path = tmp_path / f"broken_{case.replace(' ', '_')}.hdf5"
    shutil.copy(demo_paths[0], path)
    with h5py.File(path, "r+") as f:
        corrupt(f)
    with pytest.raises(EpisodeFormatError) as error:
        validate_episode(path)
    message = str(error.value)
    assert path.name in message and f"{key}: " in message and phrase in message, message
    if case not in ("NaN tracks", "inf proprio"):  # value problems need check_values; layout ones do not
        with pytest.raises(EpisodeFormatError, match=key):
            EpisodeFile(path)


def test_validator_rejects_non_hdf5_and_truncated_files(tmp_path, demo_paths):
    text = tmp_path / "notes.hdf5"
    text.write_text("not an episode")
    truncated = tmp_path / "truncated.hdf5"
    data = demo_paths[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for path in (text, truncated, tmp_path / "missing.hdf5"):
        with pytest.raises(EpisodeFormatError, match=path.name):
            validate_episode(path)
        with pytest.raises(EpisodeFormatError, match=path.name):
            EpisodeFile(path)


def test_validator_finds_corrupt_video_chunk(tmp_path, demo_paths):
    path = tmp_path / "corrupt.hdf5"
    shutil.copy(demo_paths[0], path)
    with h5py.File(path) as f:
        chunk = f["views/eye_in_hand/video"].id.get_chunk_info(7)
    with open(path, "r+b") as raw:  # overwrite the middle of frame 7's compressed bytes
        raw.seek(chunk.byte_offset + chunk.size // 4)
        raw.write(b"\xff" * (chunk.size // 2))
    EpisodeFile(path)  # the layout is intact, so the lazy reader opens it
    with pytest.raises(EpisodeFormatError, match=r"corrupt\.hdf5: views/eye_in_hand/video: unreadable"):
        validate_episode(path)


def test_validate_dataset_collects_problems_per_file(tmp_path, demo_paths):
    assert validate_dataset(demo_paths) == []
    broken = tmp_path / "broken.hdf5"
    shutil.copy(demo_paths[0], broken)
    with h5py.File(broken, "r+") as f:
        del f["actions"]
        f.create_dataset("actions", data=np.full((LENGTH, 7), np.nan, np.float32))
        del f.attrs["domain"]
    problems = validate_dataset([*demo_paths, broken])
    assert len(problems) == 2 and all(p.startswith(f"{broken}: ") for p in problems)
    assert any("attrs/domain: missing" in p for p in problems) and any("actions: " in p for p in problems)
