"""Pictures of plans: frame grids (PNG) and plan-vs-truth clips, for people to look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def frame_grid(rows: Sequence[np.ndarray], pad: int = 2, background: int = 255) -> np.ndarray:
    """uint8 image of rows of frames: each row (N, H, W, 3); shorter rows are left blank on the right."""
    rows = [np.asarray(r, dtype=np.uint8) for r in rows]
    if not rows:
        raise ValueError("frame_grid needs at least one row")
    h, w = rows[0].shape[1:3]
    cols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, row in enumerate(rows):
        if row.shape[1:3] != (h, w):
            raise ValueError(f"row {i} frames are {row.shape[1:3]}, the first row's are {(h, w)}")
        for j, frame in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = frame
    return grid


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 2) -> np.ndarray:
    """Two videos (T, H, W, 3) next to each other; the shorter one holds its last frame."""
    t = max(len(left), len(right))
    pad = lambda v: np.concatenate([v, np.repeat(v[-1:], t - len(v), axis=0)]) if len(v) < t else v  # noqa: E731
    left, right = pad(np.asarray(left)), pad(np.asarray(right))
    sep = np.full((t, left.shape[1], gap, 3), 255, np.uint8)
    return np.concatenate([left, sep, right], axis=2)
