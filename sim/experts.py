"""Scripted MetaWorld experts with optional seeded Gaussian action noise."""

from __future__ import annotations

import warnings

import numpy as np

from sim.catalog import check_task

# MetaWorld's policies warn on every new process that their gains saturate; the env clips anyway.
warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)


class Expert:
    """``act(state)`` -> float32 (4,) in [-1, 1]: MetaWorld's scripted policy plus N(0, noise_std)."""

    def __init__(self, task: str, noise_std: float = 0.0, seed: int | None = None) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.task = check_task(task)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.noise_std = float(noise_std)
        self.policy = ENV_POLICY_MAP[task]()
        self.rng = np.random.default_rng(seed)

    def act(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        action = np.asarray(self.policy.get_action(state), dtype=np.float64)
        if self.noise_std > 0:
            action = action + self.rng.normal(0.0, self.noise_std, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    __call__ = act


def make_expert(task: str, noise_std: float = 0.0, seed: int | None = None) -> Expert:
    """The scripted expert of ``task``; ``seed`` seeds its action noise."""
    return Expert(task, noise_std=noise_std, seed=seed)
