"""The two graders that need no model: ``oracle`` (the simulator's flag) and ``none`` (keep everything)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embodied.backends import init_config
from embodied.graders.base import GradeResult, Grader
from embodied.graders.config import NoneGraderConfig, OracleGraderConfig


class OracleGrader(Grader):
    """MetaWorld's own success flag: ``info["success_gt"]`` (1 / 0) or any of ``info["success"]`` per step."""

    name = "oracle"
    frames_needed = 1  # looks at no frame; callers may pass only the last one

    def __init__(self, cfg: OracleGraderConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(OracleGraderConfig, cfg, fields)

    def grade(self, frames: Any, instruction: str, info: Mapping[str, Any] | None = None) -> GradeResult:
        info = info or {}
        label = info.get("success_gt", -1)
        if label in (0, 1):
            success = bool(label)
        elif info.get("success") is not None:
            success = bool(np.asarray(info["success"], dtype=bool).any())
        else:
            raise ValueError("the oracle grader needs the simulator's flags: info['success'] (per step) or "
                             "info['success_gt'] (1 / 0); this episode has neither (a real robot? use learned or vlm)")
        return GradeResult(success, float(success), "simulator success flag")


class NoneGrader(Grader):
    """Keeps everything: the ablation without a filter (SAIL: even unfiltered data helps)."""

    name = "none"
    frames_needed = 1

    def __init__(self, cfg: NoneGraderConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(NoneGraderConfig, cfg, fields)

    def grade(self, frames: Any, instruction: str, info: Mapping[str, Any] | None = None) -> GradeResult:
        return GradeResult(True, float("nan"), "no filter")
