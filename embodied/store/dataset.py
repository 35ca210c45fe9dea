"""A torch Dataset of fixed-length windows over the episode store.

The dataset holds the store's path, not the open store: each DataLoader worker (spawn) opens its
own read-only handle on first use, so nothing unpicklable crosses a process boundary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from embodied.store.episode_store import EpisodeStore
from embodied.store.schema import DATA_KEYS


class WindowDataset(Dataset):
    """Item j: ``window`` steps ``t, t+stride, ..`` of one episode, for every start t that fits.

    Returns ``{key: tensor (window, ...)}`` for ``keys`` plus the metadata ``meta_keys`` of the
    episode and ``episode``/``start`` indices. ``episodes`` restricts to those episode ids (e.g.
    ``store.filter(source="expert")``); episodes shorter than a window contribute nothing.
    """

    def __init__(
        self,
        store: EpisodeStore | str | os.PathLike,
        window: int,
        keys: Sequence[str] = ("rgb", "action", "state"),
        episodes: Sequence[int] | None = None,
        stride: int = 1,
        meta_keys: Sequence[str] = ("instruction", "task"),
    ) -> None:
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got window={window} stride={stride}")
        unknown = set(keys) - set(DATA_KEYS)
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; the store holds {DATA_KEYS}")
        self.path = Path(store.path if isinstance(store, EpisodeStore) else store)
        self.window, self.stride = int(window), int(stride)
        self.keys, self.meta_keys = tuple(keys), tuple(meta_keys)
        self._store: EpisodeStore | None = store if isinstance(store, EpisodeStore) else None
        opened = self._open()
        ids = list(range(len(opened))) if episodes is None else [int(i) for i in episodes]
        span = (self.window - 1) * self.stride + 1  # steps one window covers
        starts = []
        for i in ids:
            count = opened.episode_length(i) - span + 1
            if count > 0:
                starts.append(np.stack([np.full(count, i), np.arange(count)], axis=1))
        self.index = np.concatenate(starts) if starts else np.empty((0, 2), np.int64)
        self._meta = {i: opened.meta(i) for i in ids}

    def _open(self) -> EpisodeStore:
        if self._store is None:
            self._store = EpisodeStore(self.path, mode="r")
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None  # reopened read-only in the worker
        return state

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, j: int) -> dict[str, Any]:
        episode, start = (int(x) for x in self.index[j])
        store = self._open()
        steps = slice(start, start + (self.window - 1) * self.stride + 1, self.stride)
        item: dict[str, Any] = {key: torch.from_numpy(np.ascontiguousarray(store.get(episode, key, steps))) for key in self.keys}
        meta = self._meta[episode]
        item.update({key: meta[key] for key in self.meta_keys})
        item["episode"], item["start"] = episode, start
        return item
