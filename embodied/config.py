"""Typed structured configs shared by the Hydra apps (the schemas behind configs/*.yaml).

Every field is documented where it is declared, so `--help` / `--cfg job` explain a run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class TaskSetConfig:
    name: str = MISSING  # e.g. train_8, target_12, mt50 (configs/task_set/<name>.yaml)
    tasks: list[str] = MISSING  # MetaWorld v3 task names


@dataclass
class EnvConfig:
    camera: str = "corner2"  # MetaWorld camera; corner cameras are returned upright
    max_steps: int | None = None  # episode step budget; None: MetaWorld's 500
    extra_steps_after_success: int = 5  # steps recorded after success (the video shows the end)


@dataclass
class PresetConfig:
    """A compute budget. Jobs read the keys they need; presets may add more."""

    name: str = MISSING  # cpu_tiny | gpu
    image_size: int = 64
    workers: int = 2
    episodes_per_task: int = 5
    extra: dict[str, Any] = field(default_factory=dict)


def refuse_policy_override(program: str, accepted: str) -> None:
    """Exit with a clear message on ``policy=...``: Hydra would read it as a choice of the policy/
    config group (the policy architectures) and fail obscurely; checkpoints go in ``policy_ckpt``."""
    if any(arg.startswith("policy=") for arg in sys.argv[1:]):
        sys.exit(f"{program}: the policy is given as policy_ckpt={accepted} "
                 f"(policy/ is the config group of policy architectures)")
