"""Episode discovery, TrackDataset and PolicyDataset items, augmentation consistency, reproducibility,
DataLoader workers and per-domain sampling ratios."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from data_fixtures import IMAGE_SIZE, LENGTH, VIEWS
from tramoe_ros.config import DomainSource
from tramoe_ros.data.datasets import EpisodeSource, PolicyDataset, TrackDataset, domain_sample_weights, find_episodes
from tramoe_ros.data.episode import EpisodeFile

S = IMAGE_SIZE


def pixel_colours(images, tracks):
    """images (..., 3, S, S), tracks (..., K, 2) with matching leading dims -> (..., K, 3) colour under each
    track (floor convention)."""
    cols, rows = (tracks * S).floor().long().clamp(0, S - 1).unbind(-1)
    flat_images = images.reshape(-1, 3, S, S)
    flat_rows, flat_cols = rows.reshape(len(flat_images), -1), cols.reshape(len(flat_images), -1)
    index = torch.arange(len(flat_images))[:, None]
    return flat_images[index, :, flat_rows, flat_cols].reshape(*rows.shape, 3)


# ---------------------------------------------------------------------------------------------------------------
# find_episodes


def test_find_episodes_from_folder_glob_and_file(demo_dir):
    found = find_episodes([
        DomainSource(path="demos", domain="libero_90", weight=1.0),
        DomainSource(path="videos/*.hdf5", domain="", weight=3.0),
    ], root=demo_dir)
    assert [p.name for p, _, _ in found] == ["demo_0.hdf5", "demo_1.hdf5", "demo_2.hdf5", "video_0.hdf5"]
    assert [d for _, d, _ in found] == ["libero_90"] * 3 + ["human"]  # empty domain keeps the file's own tag
    assert [w for _, _, w in found] == [1.0] * 3 + [3.0]
    single = find_episodes([DomainSource(path=str(demo_dir / "demos" / "demo_1.hdf5"), domain="x")])
    assert single == [EpisodeSource(demo_dir / "demos" / "demo_1.hdf5", "x", 1.0)]


def test_find_episodes_errors_name_the_source(demo_dir):
    with pytest.raises(FileNotFoundError, match="'nowhere/\\*.hdf5'"):
        find_episodes([DomainSource(path="nowhere/*.hdf5", domain="a")], root=demo_dir)
    with pytest.raises(FileNotFoundError, match="'missing_dir'"):
        find_episodes([DomainSource(path="missing_dir", domain="a")], root=demo_dir)
    with pytest.raises(ValueError, match="demo_0.hdf5 is matched by both"):
        find_episodes([DomainSource(path="demos", domain="a"), DomainSource(path="**/demo_0.hdf5", domain="b")],
                      root=demo_dir)


# ---------------------------------------------------------------------------------------------------------------
# TrackDataset


def track_dataset(paths, **kwargs):
    options = dict(views=list(VIEWS), horizon=8, num_points=16, image_size=S, variance_threshold_px2=10.0, seed=3)
    options.update(kwargs)
    return TrackDataset(paths, **options)


def test_track_item_shapes_and_contents(demo_paths):
    dataset = track_dataset(demo_paths, train=False)
    assert len(dataset) == 3 * LENGTH * 2
    item = dataset[LENGTH + 5]  # episode 0, second view, frame 5
    assert (item["episode"], item["view"], item["domain"]) == (0, "eye_in_hand", "robot")
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
    assert item["queries"].shape == (16, 2) and item["tracks"].shape == (8, 16, 2)
    assert item["visibility"].shape == (8, 16) and item["visibility"].dtype == torch.bool
    assert torch.equal(item["queries"], item["tracks"][0])
    assert item["visibility"][0].all()  # only points visible at the window start are sampled
    file = EpisodeFile(demo_paths[0])
    assert item["instruction"] == file.instruction
    assert torch.equal(item["image"], torch.from_numpy(file.frame("eye_in_hand", 5)).float())
    # every sampled track is one of the file's tracks over frames 5..12
    window = torch.from_numpy(file.tracks("eye_in_hand", 5, 13))  # (8, N, 2)
    matches = (item["tracks"][:, :, None] == window[:, None]).all(-1).all(0)  # (16, N)
    assert matches.any(dim=1).all()


def test_track_horizon_is_padded_with_the_last_frame(demo_paths):
    dataset = track_dataset(demo_paths, train=False)
    file = EpisodeFile(demo_paths[0])
    item = dataset[LENGTH - 3]  # agentview, frame T-3: three real steps, then the last frame repeats
    last = torch.from_numpy(file.tracks("agentview", LENGTH - 1, LENGTH))[0]
    for step in range(2, 8):
        assert torch.equal(item["tracks"][step], item["tracks"][2])
        assert torch.equal(item["visibility"][step], item["visibility"][2])
    assert (item["tracks"][2][:, None] == last[None]).all(-1).any(1).all()


def test_track_sampling_prefers_moving_points(demo_paths):
    dataset = track_dataset(demo_paths, train=False, horizon=16)
    item = dataset[4]  # agentview, frame 4: the named object moves well over 10 px² within 16 frames
    motion = ((item["tracks"] - item["tracks"][0]) * S).norm(dim=-1).amax(dim=0)
    file = EpisodeFile(demo_paths[0])
    window = file.tracks("agentview", 4, 20)
    moving_in_file = int(((window * S).var(axis=0).sum(-1) > 10.0)[file.visibility("agentview", 4, 5)[0]].sum())
    assert moving_in_file > 0
    assert int((motion > 1.0).sum()) == min(moving_in_file, 16)


def test_track_sampling_keeps_the_still_point_share_for_points_that_stay_put(demo_paths):
    moving_first = track_dataset(demo_paths, train=False, horizon=16, num_points=8)
    with_still = track_dataset(demo_paths, train=False, horizon=16, num_points=8, still_point_share=0.5)
    file = EpisodeFile(demo_paths[0])
    window = file.tracks("agentview", 4, 20)
    visible = file.visibility("agentview", 4, 5)[0]
    moving_in_file = int(((window * S).var(axis=0).sum(-1) > 10.0)[visible].sum())
    assert moving_in_file >= 8  # at least as many moving points as slots: moving first leaves no still point
    still = [int((((d[4]["tracks"] - d[4]["tracks"][0]) * S).norm(dim=-1).amax(dim=0) <= 1.0).sum())
             for d in (moving_first, with_still)]
    assert still == [0, 4]


def test_train_shift_moves_image_and_tracks_together(demo_paths):
    plain = track_dataset(demo_paths, train=False)
    shifted = track_dataset(demo_paths, train=True, random_shift_pad=4)
    offsets = set()
    for index in range(0, len(plain), 7):
        a, b = plain[index], shifted[index]  # same seed, epoch 0: same points, b additionally shifted
        offset = ((b["tracks"] - a["tracks"]) * S).round()
        assert (offset == offset[0, 0]).all()
        offsets.add(tuple(offset[0, 0].tolist()))
        # the pixel under each point is the same before and after the shift (integer shift, exact)
        inside = b["visibility"][0]
        colours_after = pixel_colours(b["image"], b["queries"])[inside]
        assert torch.equal(colours_after, pixel_colours(a["image"], a["queries"])[inside])
        out_of_image = ((b["tracks"] < 0) | (b["tracks"] >= 1)).any(-1)
        assert not b["visibility"][out_of_image].any()
    assert len(offsets) > 3


def test_track_items_are_reproducible_per_epoch(demo_paths):
    make = lambda: track_dataset(demo_paths, train=True, color_jitter=0.3, random_shift_pad=4)
    first, second = make(), make()
    for key in ("image", "tracks"):
        assert torch.equal(first[11][key], second[11][key])
    second.set_epoch(1)
    assert not torch.equal(first[11]["image"], second[11]["image"])
    evaluation = track_dataset(demo_paths, train=False)
    before = evaluation[11]["tracks"]
    evaluation.set_epoch(5)
    assert torch.equal(evaluation[11]["tracks"], before)  # evaluation samples stay fixed


def test_track_dataset_in_dataloader_workers(demo_paths):
    dataset = track_dataset(demo_paths, train=True, color_jitter=0.3, random_shift_pad=4)
    loader = DataLoader(dataset, batch_size=16, shuffle=False, num_workers=2)
    batches = list(loader)
    batch = batches[0]
    assert batch["image"].shape == (16, 3, S, S) and batch["tracks"].shape == (16, 8, 16, 2)
    assert isinstance(batch["instruction"], list) and isinstance(batch["instruction"][0], str)
    assert sum(len(b["image"]) for b in batches) == len(dataset)
    assert torch.equal(batch["tracks"][3], dataset[3]["tracks"])  # workers draw what the main process draws


def test_track_dataset_resizes_frames(demo_paths):
    item = track_dataset(demo_paths, train=False, image_size=32)[0]
    assert item["image"].shape == (3, 32, 32)


def test_track_dataset_rejects_missing_view(demo_paths):
    with pytest.raises(ValueError, match="demo_0.hdf5 \\(has \\['agentview', 'eye_in_hand'\\]\\)"):
        track_dataset(demo_paths, views=["agentview", "wrist"])


# ---------------------------------------------------------------------------------------------------------------
# PolicyDataset


def policy_dataset(paths, **kwargs):
    options = dict(views=list(VIEWS), frame_stack=4, image_size=S, seed=0)
    options.update(kwargs)
    return PolicyDataset(paths, **options)


def test_policy_frame_stack_is_padded_at_the_start(demo_paths):
    dataset = policy_dataset(demo_paths, train=False)
    assert len(dataset) == 3 * LENGTH
    file = EpisodeFile(demo_paths[1])
    first = dataset[LENGTH]  # episode 1, t = 0
    assert first["images"].shape == (2, 4, 3, S, S) and first["episode"] == 1
    assert first["frames"].tolist() == [0, 0, 0, 0] and first["valid_steps"].tolist() == [False, False, False, True]
    assert (first["images"] == first["images"][:, :1]).all()
    later = dataset[LENGTH + 5]
    assert later["frames"].tolist() == [2, 3, 4, 5] and later["valid_steps"].all()
    assert torch.equal(later["images"][1], torch.from_numpy(file.frames("eye_in_hand", [2, 3, 4, 5])).float())
    assert torch.equal(later["actions"][:, 0], torch.from_numpy(file.actions(2, 6)))
    assert later["actions"].shape == (4, 1, 7) and later["action_mask"].all()
    assert later["proprio"]["joint_states"].shape == (4, 7) and later["proprio"]["gripper_states"].shape == (4, 2)
    assert torch.equal(dataset[LENGTH + 1]["actions"][:3], first["actions"][:3])  # frame 0's action repeats
    assert "tracks" not in later


def test_policy_action_chunks_hold_the_next_actions_and_mask_the_episode_end(demo_paths):
    dataset = policy_dataset(demo_paths, train=False, action_chunk=3)
    file = EpisodeFile(demo_paths[0])
    actions = file.actions(0, LENGTH)
    first = dataset[0]  # t = 0: every stacked frame is frame 0, whose chunk is actions 0, 1, 2
    assert first["actions"].shape == (4, 3, 7) and first["action_mask"].all()
    assert torch.equal(first["actions"][-1], torch.from_numpy(actions[0:3]))
    last = dataset[LENGTH - 1]  # frames LENGTH-4 .. LENGTH-1
    assert last["action_mask"][-1].tolist() == [True, False, False]
    assert last["action_mask"][-2].tolist() == [True, True, False]
    assert torch.equal(last["actions"][-2, :2], torch.from_numpy(actions[LENGTH - 2:]))
    assert (last["actions"][-1, 1:] == 0).all()
    for t in range(LENGTH):
        item = dataset[t]
        for i, frame in enumerate(item["frames"].tolist()):
            for c in range(3):
                if item["action_mask"][i, c]:
                    assert torch.equal(item["actions"][i, c], torch.from_numpy(actions[frame + c]))
    with pytest.raises(ValueError, match="action_chunk"):
        policy_dataset(demo_paths, action_chunk=0)


def cache_from_ground_truth(paths, horizon=6, num_points=5):
    """A stand-in for the frozen track model: each frame's ground-truth tracks of the first points."""
    cache = {}
    for index, path in enumerate(paths):
        file = EpisodeFile(path)
        cache[index] = {}
        for view in VIEWS:
            tracks = file.tracks(view, 0, file.length)
            windows = np.minimum(np.arange(file.length)[:, None] + np.arange(horizon), file.length - 1)
            cache[index][view] = tracks[windows][:, :, :num_points]  # (T, H, K, 2)
    return cache


def test_policy_cached_tracks_shift_with_the_images(demo_paths):
    cache = cache_from_ground_truth(demo_paths)
    plain = policy_dataset(demo_paths, train=False, track_cache=cache)
    shifted = policy_dataset(demo_paths, train=True, random_shift_pad=4, track_cache=cache)
    offsets = set()
    for index in range(0, len(plain), 5):
        a, b = plain[index], shifted[index]
        assert a["tracks"].shape == (2, 4, 6, 5, 2)
        episode, frames = a["episode"], a["frames"].numpy()
        assert np.array_equal(a["tracks"][1].numpy(), cache[episode]["eye_in_hand"][frames])
        offset = ((b["tracks"] - a["tracks"]) * S).round()
        assert (offset == offset.flatten(0, -2)[0]).all()  # one shift for all views, frames, steps and points
        dx, dy = offset.flatten(0, -2)[0].long().tolist()
        offsets.add((dx, dy))
        rows = (torch.arange(S) - dy).clamp(0, S - 1)
        cols = (torch.arange(S) - dx).clamp(0, S - 1)
        assert torch.equal(b["images"], a["images"][..., rows[:, None], cols[None, :]])
        # the pixel under each cached query point is unchanged by the shift
        queries_a, queries_b = a["tracks"][:, :, 0], b["tracks"][:, :, 0]  # (V, T, K, 2)
        inside = ((queries_b >= 0) & (queries_b < 1) & (queries_a >= 0) & (queries_a < 1)).all(-1)
        assert torch.equal(pixel_colours(b["images"], queries_b)[inside], pixel_colours(a["images"], queries_a)[inside])
    assert len(offsets) > 3


def test_policy_dataset_collates_and_checks_its_inputs(demo_dir, demo_paths):
    dataset = policy_dataset(demo_paths, train=True, color_jitter=0.3, random_shift_pad=4,
                             track_cache=cache_from_ground_truth(demo_paths))
    batch = next(iter(DataLoader(dataset, batch_size=8, shuffle=True, num_workers=0)))
    assert batch["images"].shape == (8, 2, 4, 3, S, S) and batch["tracks"].shape == (8, 2, 4, 6, 5, 2)
    assert batch["proprio"]["gripper_states"].shape == (8, 4, 2) and len(batch["instruction"]) == 8
    video = demo_dir / "videos" / "video_0.hdf5"
    with pytest.raises(ValueError, match="no actions: .*video_0.hdf5"):
        policy_dataset([*demo_paths, video])
    short_cache = cache_from_ground_truth(demo_paths)
    with pytest.raises(ValueError, match="no entry for episode 2"):
        policy_dataset(demo_paths, track_cache={0: short_cache[0], 1: short_cache[1]})
    short_cache[1]["agentview"] = short_cache[1]["agentview"][:-1]
    with pytest.raises(ValueError, match=r"track_cache\[1\]\['agentview'\].*demo_1.hdf5"):
        policy_dataset(demo_paths, track_cache=short_cache)


# ---------------------------------------------------------------------------------------------------------------
# Domain mixing


def test_domain_weights_give_the_configured_ratio():
    domains = ["in_domain"] * 100 + ["out_of_domain"] * 10
    weights = domain_sample_weights(domains, {"in_domain": 1.0, "out_of_domain": 3.0})
    assert weights.shape == (110,) and torch.isclose(weights.sum(), torch.tensor(1.0, dtype=weights.dtype))
    sampler = WeightedRandomSampler(weights, num_samples=20000, replacement=True,
                                    generator=torch.Generator().manual_seed(0))
    fraction_out = np.mean([domains[i] == "out_of_domain" for i in sampler])
    assert abs(fraction_out - 0.75) < 0.015
    with pytest.raises(ValueError, match="no sampling ratio for domain\\(s\\) \\['out_of_domain'\\]"):
        domain_sample_weights(domains, {"in_domain": 1.0})


def test_item_domains_feed_the_weights(demo_dir, demo_paths):
    episodes = [EpisodeSource(p, "libero_90", 1.0) for p in demo_paths] + [demo_dir / "videos" / "video_0.hdf5"]
    dataset = track_dataset(episodes, train=False)
    domains = dataset.item_domains()
    assert len(domains) == len(dataset) and domains.count("human") == LENGTH * 2
    weights = domain_sample_weights(domains, {"libero_90": 1.0, "human": 1.0})
    human = torch.tensor([d == "human" for d in domains])
    assert torch.isclose(weights[human].sum(), torch.tensor(0.5, dtype=weights.dtype))
    assert dataset[len(dataset) - 1]["domain"] == "human"
