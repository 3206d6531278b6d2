"""Episode discovery and the train/validation split shared by both trainers."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tramoe_ros.config import DataConfig
from tramoe_ros.data.datasets import find_episodes


def split_episodes(data: DataConfig, seed: int) -> tuple[list, list]:
    """Split episodes into train / validation by episode (never by frame, so validation frames are unseen),
    per domain, with at least one training episode per domain. Only the domains in `data.val_domains` (all when
    empty) give validation episodes. A domain's split depends only on the seed and its own episodes, so adding
    or removing another domain (an ablation) keeps the same validation episodes.

    Returns:
        (train, val): lists of (path, domain, weight) as given by `find_episodes`
    """
    episodes = find_episodes(data.sources)
    domains = sorted({d for _, d, _ in episodes})
    unknown = sorted(set(data.val_domains) - set(domains))
    if unknown:
        raise ValueError(f"data.val_domains names {unknown}, which no data source provides (domains: {domains})")
    train, val = [], []
    for domain in domains:
        group = [e for e in episodes if e[1] == domain]
        if data.val_domains and domain not in data.val_domains:
            train += group
            continue
        order = np.random.default_rng([seed, zlib.crc32(domain.encode())]).permutation(len(group))
        n_val = int(round(data.val_fraction * len(group)))
        n_val = min(n_val, len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return train, val


def domain_ratios(data: DataConfig) -> dict[str, float]:
    """Per-domain sampling ratios from the configured sources (sources sharing a domain add up)."""
    ratios: dict[str, float] = {}
    for s in data.sources:
        ratios[s.domain] = ratios.get(s.domain, 0.0) + s.weight
    return ratios


def episode_paths(episodes: list) -> list[Path]:
    return [Path(p) for p, _, _ in episodes]
