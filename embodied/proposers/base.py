"""The proposer interface: a scene in, instructions to practise out.

    proposer.propose(scene_frame, context) -> [instruction, ...];  proposer.update(instruction, success)

``context`` (``SceneContext``) lists the tasks feasible in the scene; every proposer returns
catalog instructions (``sim.catalog``) of those tasks, which the loop maps back to tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.catalog import TASKS, instructions, task_for_instruction, validate_task_names


@dataclass
class SceneContext:
    """What a proposer knows about the scene besides its picture."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))  # tasks feasible in this scene (catalog names)
    num: int | None = None  # instructions wanted; None: the proposer's own setting

    def __post_init__(self) -> None:
        self.tasks = validate_task_names(list(self.tasks))
        if not self.tasks:
            raise ValueError("a scene needs at least one feasible task")

    @classmethod
    def of(cls, context: SceneContext | Sequence[str] | str | None) -> SceneContext:
        """A context from a SceneContext, a task name, a list of task names, or None (every task)."""
        if context is None:
            return cls()
        if isinstance(context, SceneContext):
            return context
        return cls(tasks=[context] if isinstance(context, str) else list(context))

    def instructions(self) -> list[str]:
        return [text for task in self.tasks for text in instructions(task)]



class Proposer(ABC):
    """Scene -> instructions to practise. Stateful proposers learn from ``update``."""

    name: str = "proposer"

    @abstractmethod
    def propose(self, frame: np.ndarray | None, context: SceneContext | Sequence[str] | str | None = None) -> list[str]:
        """Instructions to practise in the scene shown by ``frame`` (uint8 (H, W, 3))."""

    def update(self, instruction: str, success: bool) -> None:
        """Record the outcome of practising ``instruction`` (stateless proposers ignore it)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass



def task_of(instruction: str) -> str:
    """The catalog task of ``instruction``; ValueError when no task has it."""
    task = task_for_instruction(instruction)
    if task is None:
        raise ValueError(f"{instruction!r} is no catalog instruction (sim.catalog); proposers only handle those")
    return task
