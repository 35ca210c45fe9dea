"""Small fakes for tests and smoke runs (numpy only): an in-memory ``EpisodeSource`` and a
point-mass env whose frames show where the point is, with an expert and a planner for it.

The point lives in [-1, 1]^2; an action in [-1, 1]^2 moves it by ``speed * action``; the frame is
black with a white 3 x 3 square at the point, so a policy can read positions off the pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.data import DATA_KEYS


class InMemoryEpisodeSource:
    """``EpisodeSource`` over a list of episodes (dicts with rgb, action, state, success, meta).

    ``reads`` logs every ``get`` as (episode, key, number of steps read), so tests can check that
    samplers read windows, not whole episodes.
    """

    def __init__(self, episodes: list[dict[str, Any]]):
        for i, ep in enumerate(episodes):
            lengths = {k: len(ep[k]) for k in DATA_KEYS}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"episode {i}: arrays differ in length {lengths}")
        self.episodes = episodes
        self.reads: list[tuple[int, str, int]] = []

    def __len__(self) -> int:
        return len(self.episodes)

    def episode_length(self, i: int) -> int:
        return len(self.episodes[i]["rgb"])

    def get(self, i: int, key: str, index: slice | np.ndarray) -> np.ndarray:
        if key not in DATA_KEYS:
            raise KeyError(f"unknown key {key!r}; keys: {DATA_KEYS}")
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
                raise TypeError(f"index must be a slice or a 1-D int array, got {index.dtype} {index.shape}")
        out = self.episodes[i][key][index]
        self.reads.append((i, key, len(out)))
        return out.copy()

    def meta(self, i: int) -> dict[str, Any]:
        return dict(self.episodes[i].get("meta", {}))


# --- point mass ------------------------------------------------------------------------------------
def render_point(pos: np.ndarray, size: int = 32) -> np.ndarray:
    """uint8 (size, size, 3): black, with a white 3 x 3 square at ``pos`` in [-1, 1]^2 (x right, y down)."""
    img = np.zeros((size, size, 3), np.uint8)
    col, row = np.rint((np.clip(pos, -1, 1) + 1) / 2 * (size - 3)).astype(int) + 1
    img[row - 1 : row + 2, col - 1 : col + 2] = 255
    return img


def locate_point(img: np.ndarray) -> np.ndarray:
    """Inverse of ``render_point``: the position of the bright square's centroid."""
    rows, cols = np.nonzero(img[..., 0] > 127)
    if len(rows) == 0:
        return np.zeros(2)
    size = img.shape[0]
    return np.array([cols.mean() - 1, rows.mean() - 1]) / (size - 3) * 2 - 1


class PointMassEnv:
    """Gymnasium-style env: obs {"rgb" uint8 (H, W, 3), "state" float32 (x, y, goal_x, goal_y)}.

    ``info["success"]``: within ``tolerance`` of the goal. Truncated after ``max_episode_steps``.
    ``stuck=True`` ignores actions (the point never moves: a stall).
    """

    def __init__(self, size: int = 32, speed: float = 0.1, tolerance: float = 0.1, max_episode_steps: int = 100,
                 stuck: bool = False, nan_state_at: int | None = None):
        self.size, self.speed, self.tolerance = size, speed, tolerance
        self.max_episode_steps, self.stuck, self.nan_state_at = max_episode_steps, stuck, nan_state_at
        self.steps_taken = 0
        self.pos = np.zeros(2)
        self.goal = np.zeros(2)

    def _obs(self) -> dict[str, np.ndarray]:
        state = np.concatenate([self.pos, self.goal]).astype(np.float32)
        if self.nan_state_at is not None and self.steps_taken >= self.nan_state_at:
            state[0] = np.nan
        return {"rgb": render_point(self.pos, self.size), "state": state}

    def reset(self, seed: int | None = None):
        rng = np.random.default_rng(seed)
        self.pos = rng.uniform(-0.8, -0.4, 2)
        self.goal = rng.uniform(0.4, 0.8, 2)
        self.steps_taken = 0
        return self._obs(), {"success": False}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1, 1)
        if self.steps_taken >= self.max_episode_steps:
            raise RuntimeError("step() after the episode ended")
        if not self.stuck:
            self.pos = np.clip(self.pos + self.speed * action, -1, 1)
        self.steps_taken += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < self.tolerance)
        truncated = self.steps_taken >= self.max_episode_steps
        return self._obs(), -float(np.linalg.norm(self.pos - self.goal)), False, truncated, {"success": success}


def expert_action(pos: np.ndarray, target: np.ndarray, speed: float = 0.1) -> np.ndarray:
    return np.clip((np.asarray(target) - pos) / speed, -1, 1).astype(np.float32)


def point_mass_episodes(n: int, seed: int = 0, size: int = 32, max_steps: int = 40) -> list[dict[str, Any]]:
    """``n`` expert episodes of ``PointMassEnv`` aligned like ``sim.types.Episode`` (L = T + 1, last action 0)."""
    episodes = []
    rng = np.random.default_rng(seed)
    for i in range(n):
        env = PointMassEnv(size=size, max_episode_steps=max_steps)
        obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
        rgb, state, action, success = [obs["rgb"]], [obs["state"]], [], [False]
        for _ in range(max_steps):
            a = expert_action(env.pos, env.goal) * rng.uniform(0.5, 1.0)  # varied speeds: not one action
            obs, _, _, truncated, info = env.step(a)
            action.append(a)
            rgb.append(obs["rgb"])
            state.append(obs["state"])
            success.append(info["success"])
            if info["success"] or truncated:
                break
        action.append(np.zeros(2, np.float32))
        episodes.append(dict(rgb=np.stack(rgb), action=np.stack(action), state=np.stack(state),
                             success=np.array(success), meta=dict(task="point", seed=i, success_gt=int(any(success)))))
    return episodes


class PointMassPlanner:
    """A perfect planner for ``env``: K frames from the current point to the goal. Counts its calls."""

    def __init__(self, env: PointMassEnv, k: int = 7):
        self.env, self.k = env, k
        self.calls: list[tuple[str, np.ndarray]] = []

    def __call__(self, instruction: str, first_frame: np.ndarray) -> np.ndarray:
        self.calls.append((instruction, first_frame.copy()))
        start = locate_point(first_frame)
        return np.stack([render_point(start + (self.env.goal - start) * s, self.env.size)
                         for s in np.linspace(0, 1, self.k)])


class OraclePointPolicy:
    """Reads both positions off the frames and moves toward the goal: a perfect IDM (chunk of 1)."""

    def __init__(self):
        self.queries = 0

    def predict_action(self, obs_rgb: np.ndarray, goal_rgb: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.queries += 1
        return expert_action(locate_point(obs_rgb), locate_point(goal_rgb))[None]
