"""MetaWorld v3 simulation: envs with RGB observations, scripted experts, parallel rollouts.

Submodules importing MuJoCo (``sim.env``, ``sim.experts``, ``sim.rollout``'s workers) load lazily,
so ``import sim`` / ``sim.catalog`` stay light and worker processes can set their GL environment
first.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from sim.catalog import TASKS, instruction_for, instructions, task_for_instruction, validate_task_names
from sim.types import Episode

_LAZY = {
    "make_env": "sim.env",
    "MetaWorldEnv": "sim.env",
    "CAMERAS": "sim.env",
    "check_frame": "sim.env",
    "make_expert": "sim.experts",
    "Expert": "sim.experts",
    "rollout_episode": "sim.rollout",
    "rollout_many": "sim.rollout",
}

__all__ = [
    "TASKS",
    "Episode",
    "instruction_for",
    "instructions",
    "task_for_instruction",
    "validate_task_names",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
