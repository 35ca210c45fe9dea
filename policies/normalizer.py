"""Per-dimension affine normaliser, fitted on the data and saved with the policy (as in Diffusion Policy).

``normalize(x) = (x - offset) / scale``:
- "minmax":   offset = (max + min) / 2, scale = (max - min) / 2  -> data in [-1, 1] (actions),
- "gaussian": offset = mean, scale = std                         -> zero mean, unit std (states).
A dimension that never varies (scale < eps) gets scale 1, so it is centred and never divided by ~0.
Stats are stored as JSON lists (``to_dict``), never pickled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

MODES = ("minmax", "gaussian")
EPS = 1e-4


class Normalizer(nn.Module):
    """Affine normaliser over the last dimension D. Stats: min, max, mean, std, each (D,)."""

    def __init__(self, mode: str, stats: dict[str, Any]):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"normaliser mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.stats = {k: np.asarray(stats[k], dtype=np.float64).reshape(-1) for k in ("min", "max", "mean", "std")}
        dims = {k: v.shape[0] for k, v in self.stats.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(f"normaliser stats must all have the same length, got {dims}")
        if not all(np.isfinite(v).all() for v in self.stats.values()):
            raise ValueError("normaliser stats contain NaN or inf")
        if mode == "minmax":
            offset = (self.stats["max"] + self.stats["min"]) / 2
            scale = (self.stats["max"] - self.stats["min"]) / 2
        else:
            offset, scale = self.stats["mean"], self.stats["std"]
        scale = np.where(scale < EPS, 1.0, scale)
        # Non-persistent: they follow .to(device) but live in config.json, not model.safetensors.
        self.register_buffer("offset", torch.as_tensor(offset, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)

    @classmethod
    def fit(cls, data: np.ndarray, mode: str) -> "Normalizer":
        """Fit on ``data`` float (N, D)."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"fit needs data of shape (N, D) with N >= 1, got {data.shape}")
        if not np.isfinite(data).all():
            raise ValueError("cannot fit a normaliser on data with NaN or inf")
        stats = dict(min=data.min(0), max=data.max(0), mean=data.mean(0), std=data.std(0))
        return cls(mode, stats)

    @property
    def dim(self) -> int:
        return int(self.offset.shape[0])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)"""
        return (x - self.offset) / self.scale

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D)"""
        return y * self.scale + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **{k: v.tolist() for k, v in self.stats.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalizer":
        return cls(d["mode"], d)
