"""The VLM grader: shows a local image-text-to-text model the final frame(s) and asks whether it was done.

score = P(yes) from the next-token logits (yes vs no, every spelling of each); success when
score >= threshold. With ``decision="generate"`` the model also answers in words and the answer
is parsed: one that starts with neither yes nor no counts as a failure. Any error of the model
(or a non-finite score) is a failure too; every failure of this kind is logged with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from embodied.backends import init_config
from embodied.graders.base import GradeResult, Grader, as_frames, trailing_indices
from embodied.graders.config import VLMGraderConfig
from embodied.vlm.backend import VLM, parse_yes_no

log = logging.getLogger(__name__)

DECISIONS = ("score", "generate")


class VLMGrader(Grader):
    name = "vlm"

    def __init__(self, cfg: VLMGraderConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(VLMGraderConfig, cfg, fields)
        if self.cfg.decision not in DECISIONS:
            raise ValueError(f"grader.decision must be one of {DECISIONS}, got {self.cfg.decision!r}")
        if self.cfg.num_frames < 1 or self.cfg.frame_gap < 1:
            raise ValueError(f"num_frames and frame_gap must be >= 1, got {self.cfg.num_frames}, {self.cfg.frame_gap}")
        if "{instruction}" not in self.cfg.prompt:
            raise ValueError(f"grader.prompt must contain {{instruction}}, got {self.cfg.prompt!r}")
        self.vlm = VLM(self.cfg.model_path, self.cfg.device, self.cfg.dtype, config_key="grader")
        self.frames_needed = (self.cfg.num_frames - 1) * self.cfg.frame_gap + 1

    def question(self, instruction: str) -> str:
        return self.cfg.prompt.format(instruction=instruction.strip().rstrip(".?!"))

    def grade(self, frames: Any, instruction: str, info: Mapping[str, Any] | None = None) -> GradeResult:
        frames = as_frames(frames)  # bad input is the caller's error: raised, not graded
        shown = list(frames[trailing_indices(len(frames), self.cfg.num_frames, self.cfg.frame_gap)])
        question = self.question(instruction)
        try:
            score = self.vlm.yes_probability(shown, question)
            if self.cfg.decision == "score":
                return GradeResult(score >= self.cfg.threshold, score,
                                   f"P(yes)={score:.3f} (threshold {self.cfg.threshold})")
            answer = self.vlm.generate(shown, question, self.cfg.max_new_tokens)
        except Exception as exc:  # a model that fails to answer has not confirmed success
            reason = f"vlm error: {type(exc).__name__}: {exc}"
            log.warning("grading %r as a failure: %s", instruction, reason)
            return GradeResult(False, float("nan"), reason)
        verdict = parse_yes_no(answer)
        if verdict is None:
            reason = f"unparseable answer {answer!r} (P(yes)={score:.3f})"
            log.warning("grading %r as a failure: %s", instruction, reason)
            return GradeResult(False, score, reason)
        return GradeResult(verdict, score, f"answered {answer!r} (P(yes)={score:.3f})")
