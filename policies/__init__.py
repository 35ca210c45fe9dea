"""policies: frames -> actions. Knows nothing about MetaWorld (imports no sim / video_models / embodied).

- ``FrameGoalPolicy``: (frame, goal frame, state) -> action chunk; the inverse dynamics model
  (``IDMConfig``: goal = a near frame, the spacing of plan frames) and the goal-reaching policy
  (``GoalPolicyConfig``: SOAR's GCBC, hindsight goals) are this one network with different samplers.
- ``FrameGoalDataset``: their training batches from an ``EpisodeSource`` (e.g. the zarr store).
- ``PlanExecutor``: follows a planner's frames with a policy in a gymnasium-style env, replanning.
- ``load_policy(path)``: rebuild a saved policy (model.safetensors + config.json).

Imports are lazy: ``import policies`` (or the executor alone) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "PolicyConfig": "policies.config",
    "IDMConfig": "policies.config",
    "GoalPolicyConfig": "policies.config",
    "ExecutorConfig": "policies.config",
    "make_config": "policies.config",
    "CONFIG_TYPES": "policies.config",
    "EpisodeSource": "policies.data",
    "sample_goal_index": "policies.data",
    "chunk_indices": "policies.data",
    "Normalizer": "policies.normalizer",
    "FrameGoalDataset": "policies.datasets",
    "FrameGoalPolicy": "policies.modeling",
    "load_policy": "policies.modeling",
    "CheckpointError": "policies.checkpoint",
    "PlanExecutor": "policies.executor",
    "ExecutionRecord": "policies.executor",
    "PlanRecord": "policies.executor",
    "replan_reason": "policies.executor",
    "is_stalled": "policies.executor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'policies' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
