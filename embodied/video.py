"""MP4 videos of rollouts: what was executed, beside what the plan asked for at that step.

    write_mp4("ep.mp4", plan_video(episode.rgb, plans, subgoal_index, title="oracle + idm"), fps=20)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

LABEL_HEIGHT = 16  # pixels of the caption row (a multiple of 16: H.264 macro blocks)
MIN_PANEL = 128  # small frames are enlarged (nearest neighbour) to at least this height


def write_mp4(path: str | Path, frames: np.ndarray | Sequence[np.ndarray], fps: int = 20) -> Path:
    """Write uint8 frames (T, H, W, 3) as an H.264 MP4 (imageio's ffmpeg plugin); returns the path.

    Sides that are not multiples of 16 (H.264 macro blocks) are padded with white.
    """
    import imageio.v2 as imageio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]  # pad (white) to whole macro blocks rather than let ffmpeg resize
    frames = np.pad(frames, ((0, 0), (0, -h % 16), (0, -w % 16), (0, 0)), constant_values=255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                            pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)
    return path


def _enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else frames


def _caption(width: int, text: str) -> np.ndarray:
    import cv2

    row = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(row, text, (3, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return row


def plan_video(frames: np.ndarray, plans: Sequence = (), subgoal_index: np.ndarray | None = None,
               title: str = "") -> np.ndarray:
    """One video frame per episode step: executed frame | goal frame of the plan in use, captioned.

    frames: uint8 (L, H, W, 3) of an episode; plans: ``policies.PlanRecord`` (``step``, ``reason``,
    ``frames``); subgoal_index (L,): the plan frame the policy aimed at for action t (-1 at the last
    step: the goal of the step before is kept). Without plans (the scripted expert) the right panel
    is left out. Returns uint8 (L, LABEL_HEIGHT + s*H, s*W or 2*s*W, 3), s the enlargement factor.
    """
    frames = np.asarray(frames)
    length, h, w, _ = frames.shape
    scale = max(1, -(-MIN_PANEL // h))
    steps = [p.step for p in plans]
    out = []
    goal = None
    for t in range(length):
        panels = [frames[t]]
        caption = f"t={t}"
        if plans:
            i = max(int(np.searchsorted(steps, t, side="right")) - 1, 0)  # the latest plan made at or before t
            plan = plans[i].frames
            if subgoal_index is not None and subgoal_index[t] >= 0:
                goal = int(subgoal_index[t])
            j = min(goal if goal is not None else min(1, len(plan) - 1), len(plan) - 1)
            panels.append(plan[j])
            caption += f" plan {i} ({plans[i].reason}) goal {j}/{len(plan) - 1}"
        caption += f"  {title}"
        image = _enlarge(np.concatenate(panels, axis=1), scale)
        out.append(np.concatenate([_caption(image.shape[1], caption), image], axis=0))
    return np.stack(out)


def write_rollout_video(path: str | Path, result, title: str, fps: int = 20) -> Path:
    """A plan-and-execute rollout (``embodied.rollouts`` result) as an MP4: executed | planned."""
    return write_mp4(path, plan_video(result.episode.rgb, result.plans, result.subgoal_index, title=title), fps=fps)
