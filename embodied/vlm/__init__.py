"""Task proposers and success graders: swappable backends behind two small interfaces.

    from embodied.vlm import make_grader, make_proposer, load_grader
    grader = make_grader("oracle")                       # or a configs/grader/*.yaml node
    result = grader.grade(frames, "open the drawer", info)   # GradeResult(success, score, reason)
    proposer = make_proposer("curriculum")
    [instruction] = proposer.propose(first_frame, SceneContext(tasks=["drawer-open-v3", ...]))
    proposer.update(instruction, result.success)

Graders: oracle (simulator flag), learned (embodied-train-grader), vlm (a local image-text-to-text
model), none (keep everything). Proposers: catalog, curriculum (SOAR), vlm.
Imports are lazy: ``import embodied.vlm`` loads neither torch nor transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "GradeResult": "embodied.vlm.base",
    "Grader": "embodied.vlm.base",
    "Proposer": "embodied.vlm.base",
    "SceneContext": "embodied.vlm.base",
    "make_grader": "embodied.vlm.registry",
    "make_proposer": "embodied.vlm.registry",
    "OracleGrader": "embodied.vlm.graders",
    "NoneGrader": "embodied.vlm.graders",
    "LearnedGrader": "embodied.vlm.learned",
    "SuccessClassifier": "embodied.vlm.learned",
    "load_grader": "embodied.vlm.learned",
    "VLMGrader": "embodied.vlm.vlm_grader",
    "VLM": "embodied.vlm.vlm_backend",
    "CatalogProposer": "embodied.vlm.proposers",
    "CurriculumProposer": "embodied.vlm.proposers",
    "VLMProposer": "embodied.vlm.vlm_proposer",
    "BinaryMetrics": "embodied.vlm.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embodied.vlm' has no attribute {name!r}")
