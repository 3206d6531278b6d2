"""Argument types shared by the console scripts."""
from __future__ import annotations

import argparse


def parse_index_list(text: str) -> list[int]:
    """"0-9", "3", "0-2,7,9" -> sorted indices (tasks, initial states)."""
    indices: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(value) for value in part.split("-", 1))
                if first > last:
                    raise ValueError
                indices.update(range(first, last + 1))
            else:
                indices.add(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad index list {text!r}: expected indices and ranges like 0-9 or 0-2,7"
            ) from None
    return sorted(indices)
