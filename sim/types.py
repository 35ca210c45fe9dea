"""Types shared by everything that produces or consumes episodes.

Time alignment (the contract every part reads): an episode of T actions has L = T + 1 steps.
Step t holds the observation *before* action t: ``rgb[t]``, ``state[t]``, and ``action[t]`` is the
action taken from it. The last step holds the final observation and a zero action (nothing was
done after it), so a video model sees the end state and every array has the same length.
``success[t]`` is MetaWorld's flag after reaching step t (``success[0]`` is False).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Per-episode metadata columns of the store, with the value used when one is not known.
EPISODE_META_DEFAULTS: dict[str, Any] = {
    "task": "",
    "instruction": "",
    "source": "unknown",  # expert | plan | robot | ...
    "sail_iteration": -1,  # -1: not produced by the SAIL loop
    "seed": -1,
    "success_gt": -1,  # 1 / 0 from the simulator, -1 unknown
    "grader": "",
    "grader_score": float("nan"),
    "checkpoint": "",
    "created_at": 0.0,  # unix time
}


@dataclass
class Episode:
    """One episode: L = T + 1 aligned steps (see the module docstring).

    rgb: uint8 (L, H, W, 3); action: float32 (L, A); state: float32 (L, S); success: bool (L,).
    meta: per-episode columns, keys of ``EPISODE_META_DEFAULTS``.
    """

    rgb: np.ndarray
    action: np.ndarray
    state: np.ndarray
    success: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {k: len(getattr(self, k)) for k in ("rgb", "action", "state", "success")}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"episode arrays must have the same length, got {lengths}")
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 4 or self.rgb.shape[-1] != 3:
            raise ValueError(f"rgb must be uint8 (L, H, W, 3), got {self.rgb.dtype} {self.rgb.shape}")
        unknown = set(self.meta) - set(EPISODE_META_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown episode metadata {sorted(unknown)}; allowed: {sorted(EPISODE_META_DEFAULTS)}"
            )

    def __len__(self) -> int:
        return len(self.rgb)

    @property
    def num_actions(self) -> int:
        return len(self.rgb) - 1

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())

    def full_meta(self) -> dict[str, Any]:
        """Metadata with every column present (defaults filled in)."""
        return {**EPISODE_META_DEFAULTS, **self.meta}
