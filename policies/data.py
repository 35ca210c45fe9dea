"""Where training data comes from, and the pure index arithmetic of sampling it (numpy only).

Time alignment (the episode contract, see README "Episode store"): an episode of T actions has
L = T + 1 steps; step t holds the observation before action t, and the last step (L - 1) the final
observation with a zero action. So a training start t is in [0, L - 2] (it has a real action), and
a goal is a later step in [t + 1, L - 1].
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

DATA_KEYS = ("rgb", "action", "state", "success")


@runtime_checkable
class EpisodeSource(Protocol):
    """Read access to stored episodes (the zarr ``embodied.store.EpisodeStore`` is one).

    ``get(i, key, index)``: key in ``DATA_KEYS``; ``index`` a slice or a 1-D int array of step
    indices relative to the episode start; reads only those steps. Shapes: rgb uint8 (n, H, W, 3),
    action float32 (n, A), state float32 (n, S), success bool (n,).
    """

    def __len__(self) -> int: ...

    def episode_length(self, i: int) -> int: ...

    def get(self, i: int, key: str, index: slice | np.ndarray) -> np.ndarray: ...

    def meta(self, i: int) -> dict[str, Any]: ...


def sample_goal_index(
    t: int, length: int, rng: np.random.Generator, min_gap: int = 1, max_gap: int | None = None
) -> int:
    """Hindsight relabelling: a goal step for start step ``t`` of an episode of ``length`` steps.

    The gap g = goal - t is uniform in [min_gap, min(max_gap, length - 1 - t)] (max_gap None: up to
    the last step). When fewer than ``min_gap`` steps remain, the goal is the last step: near the
    end of a task the last plan frame is the end of the episode too. Always t < goal <= length - 1.
    """
    if length < 2:
        raise ValueError(f"an episode needs >= 2 steps (one action) to have a goal, got length {length}")
    if not 0 <= t <= length - 2:
        raise ValueError(f"start step t={t} must be in [0, {length - 2}] (a step with an action)")
    if min_gap < 1 or (max_gap is not None and max_gap < min_gap):
        raise ValueError(f"need 1 <= min_gap <= max_gap, got min_gap={min_gap}, max_gap={max_gap}")
    remaining = length - 1 - t
    hi = remaining if max_gap is None else min(max_gap, remaining)
    if hi < min_gap:
        return length - 1
    return t + int(rng.integers(min_gap, hi + 1))


def chunk_indices(t: int, length: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps of the action chunk a_t .. a_t+c-1, and which of them are padding.

    Returns ``(index, is_pad)``, int64 (c,) and bool (c,). Steps at or past the last step (L - 1,
    whose stored action is the zero "nothing was done" action) are padding: their index is clamped
    to L - 1, the dataset fills them with zero actions, and the loss ignores them.
    """
    if not 0 <= t <= length - 2:
        raise ValueError(f"start step t={t} must be in [0, {length - 2}] for an episode of length {length}")
    steps = t + np.arange(chunk, dtype=np.int64)
    is_pad = steps >= length - 1
    return np.minimum(steps, length - 1), is_pad


def read_lowdim(source: EpisodeSource, episode_ids: list[int] | np.ndarray, key: str) -> np.ndarray:
    """All real steps of ``key`` ("state" | "action") of the episodes, stacked: float32 (N, D).

    Actions leave out each episode's last (zero, padding) step so it does not skew statistics.
    """
    parts = []
    for i in episode_ids:
        n = source.episode_length(int(i))
        stop = n - 1 if key == "action" else n
        if stop > 0:
            parts.append(np.asarray(source.get(int(i), key, slice(0, stop)), dtype=np.float32))
    if not parts:
        raise ValueError(f"no {key} data in episodes {list(episode_ids)[:10]}")
    return np.concatenate(parts, axis=0)
