"""Success graders: episode frames + instruction -> success?, swappable behind one interface.

    from embodied.graders import make_grader, load_grader
    grader = make_grader("oracle")                       # or a configs/grader/*.yaml node
    result = grader.grade(frames, "open the drawer", info)   # GradeResult(success, score, reason)

oracle (simulator flag), learned (embodied-train-grader), vlm (a local image-text-to-text model,
``embodied.vlm``), none (keep everything). Imports are lazy: ``import embodied.graders`` loads
neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

from embodied.backends import backend_config, build_backend, lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "GradeResult": "embodied.graders.base",
    "Grader": "embodied.graders.base",
    "OracleGrader": "embodied.graders.simple",
    "NoneGrader": "embodied.graders.simple",
    "LearnedGrader": "embodied.graders.learned",
    "SuccessClassifier": "embodied.graders.learned",
    "load_grader": "embodied.graders.learned",
    "VLMGrader": "embodied.graders.vlm",
    "BinaryMetrics": "embodied.graders.metrics",
}

__all__ = sorted([*_EXPORTS, "grader_config", "make_grader"])


def grader_config(cfg: Any):
    """The typed config dataclass of a grader spec (a name, a dict, a DictConfig or the dataclass)."""
    from embodied.graders.config import GRADER_CONFIGS

    return backend_config(cfg, GRADER_CONFIGS, "grader")


def make_grader(cfg: Any):
    """The grader of ``cfg``: "oracle" | "learned" | "vlm" | "none", a dict, a DictConfig or a config dataclass."""
    from embodied.graders.config import GRADER_CONFIGS

    return build_backend(cfg, GRADER_CONFIGS, "grader")


__getattr__ = lazy_exports(__name__, _EXPORTS)
