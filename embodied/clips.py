"""Training clips for the video planner, read from the episode store.

A clip is the frame the planner starts from plus K future frames spread evenly from there to the
episode's last frame (AVDC's sampling): the planner always imagines "the rest of the task", from
the first frame of an episode or from wherever the executor replans.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied.store import EpisodeStore


def clip_indices(start: int, length: int, num_frames: int) -> np.ndarray:
    """K + 1 step indices from ``start`` to the last step ``length - 1``, evenly spaced (rounded)."""
    if not 0 <= start < length:
        raise ValueError(f"start {start} outside an episode of length {length}")
    return np.rint(np.linspace(start, length - 1, num_frames + 1)).astype(np.int64)


class PlanClipDataset(Dataset):
    """Item: ``{"frames": uint8 (K+1, H, W, 3), "instruction": str, "task": str}``.

    Starts: every step t with at least K steps after it (so the K future frames differ), each
    episode contributing in proportion to its length. ``instruction_from_catalog``: draw the
    instruction among the task's catalog phrasings instead of the stored one (paraphrase
    augmentation; the stored one is in the catalog too).
    """

    def __init__(
        self,
        store: EpisodeStore | str | os.PathLike,
        episodes: Sequence[int],
        num_frames: int,
        instruction_from_catalog: bool = True,
        seed: int = 0,
    ) -> None:
        self.path = Path(store.path if isinstance(store, EpisodeStore) else store)
        self.num_frames = int(num_frames)
        self._store: EpisodeStore | None = store if isinstance(store, EpisodeStore) else None
        opened = self._open()
        starts = []
        self.meta: dict[int, dict[str, Any]] = {}
        for i in episodes:
            length = opened.episode_length(int(i))
            count = length - self.num_frames
            if count > 0:
                starts.append(np.stack([np.full(count, int(i)), np.arange(count)], axis=1))
                self.meta[int(i)] = {"length": length, **opened.meta(int(i))}
        self.index = np.concatenate(starts) if starts else np.empty((0, 2), np.int64)
        self.instruction_from_catalog = instruction_from_catalog
        self.seed = seed

    def _open(self) -> EpisodeStore:
        if self._store is None:
            self._store = EpisodeStore(self.path, mode="r")
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None}  # DataLoader workers reopen the store read-only

    def __len__(self) -> int:
        return len(self.index)

    def clip(self, episode: int, start: int) -> np.ndarray:
        meta = self.meta[episode]
        return self._open().get(episode, "rgb", clip_indices(start, meta["length"], self.num_frames))

    def instruction(self, episode: int, rng: np.random.Generator | None = None) -> str:
        meta = self.meta[episode]
        if self.instruction_from_catalog and rng is not None:
            from sim.catalog import instructions

            try:
                return str(rng.choice(instructions(meta["task"])))
            except ValueError:  # a task outside the catalog (e.g. a real robot's): keep its own
                pass
        return meta["instruction"]

    def __getitem__(self, j: int) -> dict[str, Any]:
        episode, start = (int(x) for x in self.index[j])
        rng = np.random.default_rng([self.seed, j, torch.initial_seed() % (2**32)])
        return {"frames": torch.from_numpy(self.clip(episode, start)), "instruction": self.instruction(episode, rng),
                "task": self.meta[episode]["task"]}
