"""Training samples for the IDM and the goal policy over an ``EpisodeSource``.

One dataset class serves both models; they differ only in the goal-gap range (see config.py).
An item is one start step t of one episode (every step with a real action once per epoch, as
Diffusion Policy's sequence sampler); its goal step is drawn fresh by ``sample_goal_index`` each
time the item is read. Only the needed steps are read: frames [t, goal], state [t], actions
[t, t + c).

Item (a batch adds a leading B):
    obs_rgb        uint8   (H, W, 3)   frame t
    goal_rgb       uint8   (H, W, 3)   frame goal_t (t < goal_t <= L - 1)
    state          float32 (S,)        state t
    action         float32 (c, A)      a_t .. a_t+c-1, zero where padded
    action_is_pad  bool    (c,)        steps at/after the episode's last step (ignored by the loss)
    gap            float32 ()          goal_t - t, steps to the goal (a gap-conditioned policy's input)
    episode, t, goal_t  int64 ()       where the sample came from (diagnostics)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from policies.config import PolicyConfig
from policies.data import EpisodeSource, chunk_indices, sample_goal_index


class FrameGoalDataset(Dataset):
    """(frame t, frame t+g, state t, actions t..t+c-1) samples from the episodes ``episode_ids``.

    Episodes with fewer than 2 steps (no action) are skipped. Goals come from a numpy RNG seeded by
    ``torch.initial_seed()``: a DataLoader gives every worker and epoch its own seed, and
    ``torch.manual_seed`` makes a run reproducible.
    """

    def __init__(
        self,
        source: EpisodeSource,
        episode_ids: list[int] | np.ndarray,
        chunk: int,
        min_gap: int = 1,
        max_gap: int | None = None,
        image_size: int | None = None,
    ):
        if chunk < 1 or min_gap < 1 or (max_gap is not None and max_gap < min_gap):
            raise ValueError(f"need chunk >= 1 and 1 <= min_gap <= max_gap, got {chunk}, {min_gap}, {max_gap}")
        n = len(source)
        ids = [int(i) for i in episode_ids]
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise ValueError(f"episode ids {bad[:10]} out of range: the source has {n} episodes")
        self.source = source
        self.chunk, self.min_gap, self.max_gap, self.image_size = chunk, min_gap, max_gap, image_size
        lengths = np.array([source.episode_length(i) for i in ids], dtype=np.int64)
        keep = lengths >= 2
        self.episode_ids = np.array(ids, dtype=np.int64)[keep]
        self.lengths = lengths[keep]
        if len(self.episode_ids) == 0:
            raise ValueError(f"no episode with at least one action among ids {ids[:10]}")
        # Item k -> (episode, t): starts[j] = first item of episode j; L - 1 starts per episode.
        self.starts = np.concatenate([[0], np.cumsum(self.lengths - 1)])
        self._rng, self._rng_seed = None, None

    @classmethod
    def from_config(cls, source: EpisodeSource, episode_ids, config: PolicyConfig) -> "FrameGoalDataset":
        return cls(source, episode_ids, config.chunk, config.min_gap, config.max_gap, config.image_size)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, k: int) -> tuple[int, int, int]:
        """Item k -> (episode id, start step t, episode length L)."""
        if not 0 <= k < len(self):
            raise IndexError(f"item {k} out of range [0, {len(self)})")
        j = int(np.searchsorted(self.starts, k, side="right") - 1)
        return int(self.episode_ids[j]), int(k - self.starts[j]), int(self.lengths[j])

    def rng(self) -> np.random.Generator:
        # Rebuilt whenever torch's seed differs (a new worker or epoch), so workers never share a stream.
        seed = torch.initial_seed()
        if self._rng_seed != seed:
            self._rng, self._rng_seed = np.random.default_rng(seed), seed
        return self._rng

    def __getitem__(self, k: int) -> dict[str, Any]:
        episode, t, length = self.locate(int(k))
        goal_t = sample_goal_index(t, length, self.rng(), self.min_gap, self.max_gap)
        return self.sample(episode, t, goal_t, length)

    def sample(self, episode: int, t: int, goal_t: int, length: int | None = None) -> dict[str, Any]:
        """The item for start ``t`` and goal ``goal_t`` of ``episode`` (deterministic)."""
        src = self.source
        length = src.episode_length(episode) if length is None else length
        if not 0 <= t < goal_t <= length - 1:
            raise ValueError(f"need 0 <= t < goal_t <= L - 1, got t={t}, goal_t={goal_t}, L={length}")
        frames = np.asarray(src.get(episode, "rgb", np.array([t, goal_t])))
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"episode {episode}: rgb must be uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}")
        if self.image_size is not None and frames.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(
                f"episode {episode}: frames are {frames.shape[1]}x{frames.shape[2]}, the policy expects "
                f"{self.image_size}x{self.image_size} (resize the data or set image_size)"
            )
        state = np.asarray(src.get(episode, "state", np.array([t])), dtype=np.float32)[0]
        _, is_pad = chunk_indices(t, length, self.chunk)
        real = int((~is_pad).sum())  # >= 1 since t <= L - 2
        acts = np.asarray(src.get(episode, "action", slice(t, t + real)), dtype=np.float32)
        action = np.zeros((self.chunk, acts.shape[1]), np.float32)  # padding: zero actions
        action[:real] = acts
        return {
            "obs_rgb": torch.from_numpy(np.ascontiguousarray(frames[0])),
            "goal_rgb": torch.from_numpy(np.ascontiguousarray(frames[1])),
            "state": torch.from_numpy(state),
            "action": torch.from_numpy(action),
            "action_is_pad": torch.from_numpy(is_pad),
            "gap": torch.tensor(goal_t - t, dtype=torch.float32),
            "episode": torch.tensor(episode, dtype=torch.int64),
            "t": torch.tensor(t, dtype=torch.int64),
            "goal_t": torch.tensor(goal_t, dtype=torch.int64),
        }
