"""The grader interface, and the frame helpers the grader backends share.

    grader.grade(frames, instruction, info) -> GradeResult(success, score, reason)

``frames``: uint8 (L, H, W, 3), the episode or only its last frames (``grader.frames_needed`` says
how many a grader looks at), or one (H, W, 3) frame. ``info``: what else is known about the
episode (the oracle reads the simulator's ``success`` flags / ``success_gt`` from it; the
learned and VLM graders ignore it).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.types import Episode


@dataclass(frozen=True)
class GradeResult:
    success: bool  # keep the episode as a success?
    score: float  # the grader's P(success) in [0, 1]; NaN when it has none
    reason: str  # why, in words (logged and written next to every grade)


def as_frames(frames: Any) -> np.ndarray:
    """``frames`` as uint8 (L, H, W, 3), L >= 1; a clear error for anything else."""
    if isinstance(frames, Episode):
        frames = frames.rgb
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("no frames to grade: got an empty list")
        frames = np.stack([np.asarray(f) for f in frames])
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be (L, H, W, 3) or (H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (0..255), got {frames.dtype}")
    return frames


def trailing_indices(length: int, count: int, gap: int) -> np.ndarray:
    """Indices of ``count`` steps ``gap`` apart ending at ``length - 1`` (clipped at 0, oldest first)."""
    return np.clip(length - 1 - gap * np.arange(count - 1, -1, -1), 0, None)


class Grader(ABC):
    """Episode -> success? A backend implements ``grade``; ``grade_batch`` loops unless it can batch."""

    name: str = "grader"
    frames_needed: int | None = 1  # trailing frames ``grade`` looks at; None: the whole episode

    @abstractmethod
    def grade(self, frames: Any, instruction: str, info: Mapping[str, Any] | None = None) -> GradeResult:
        """Grade one episode (or its last frames) against ``instruction``."""

    def grade_batch(self, frames: Sequence[Any], instructions: Sequence[str],
                    infos: Sequence[Mapping[str, Any] | None] | None = None) -> list[GradeResult]:
        if len(frames) != len(instructions) or (infos is not None and len(infos) != len(frames)):
            raise ValueError(f"grade_batch needs one instruction (and info) per episode: {len(frames)} episodes, "
                             f"{len(instructions)} instructions, {None if infos is None else len(infos)} infos")
        infos = infos if infos is not None else [None] * len(frames)
        return [self.grade(f, i, info) for f, i, info in zip(frames, instructions, infos)]

    def grade_episode(self, episode: Episode) -> GradeResult:
        """Grade a whole ``Episode`` with its own instruction and simulator flags."""
        meta = episode.full_meta()
        info = {"success": episode.success, "success_gt": meta["success_gt"], "task": meta["task"]}
        return self.grade(episode.rgb, meta["instruction"], info)


def nan_to_none(x: float) -> float | None:
    """JSON has no NaN: write null."""
    return None if isinstance(x, float) and math.isnan(x) else x
