"""Proposers that need no model: the task catalog, and SOAR's success-rate curriculum over it."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from embodied.backends import init_config
from embodied.proposers.base import Proposer, SceneContext, task_of
from embodied.proposers.config import CatalogProposerConfig, CurriculumProposerConfig
from sim.catalog import instructions

log = logging.getLogger(__name__)


class CatalogProposer(Proposer):
    """The catalog's instructions for the scene's tasks: all of them, or ``num`` drawn (seeded)."""

    name = "catalog"

    def __init__(self, cfg: CatalogProposerConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(CatalogProposerConfig, cfg, fields)
        self.rng = np.random.default_rng(self.cfg.seed)

    def propose(self, frame, context=None) -> list[str]:
        context = SceneContext.of(context)
        options = context.instructions()
        num = context.num if context.num is not None else self.cfg.num
        if num is None or num >= len(options):
            return options
        return [options[i] for i in sorted(self.rng.choice(len(options), size=num, replace=False))]


class CurriculumProposer(Proposer):
    """SOAR's task choice: practise what succeeds about ``target_rate`` of the time.

    score(k) = 1 - |sr_k - target_rate| + explore_bonus / sqrt(1 + n_k), with n_k attempts and sr_k
    the running success rate of task (or instruction) k (``target_rate`` itself before any attempt,
    so an untried one scores highest). With probability ``random_prob`` a pick is uniform instead.
    Attempts, successes and the random generator's state go to ``state_path`` (JSON) on every
    update and are read back on construction: a resumed loop continues the same curriculum.
    """

    name = "curriculum"
    FORMAT = "embodied.vlm.curriculum"  # an identifier written into every state file (kept when the module moved)

    def __init__(self, cfg: CurriculumProposerConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(CurriculumProposerConfig, cfg, fields)
        if self.cfg.key not in ("task", "instruction"):
            raise ValueError(f"curriculum key must be 'task' or 'instruction', got {self.cfg.key!r}")
        if not 0.0 <= self.cfg.random_prob <= 1.0:
            raise ValueError(f"random_prob must be in [0, 1], got {self.cfg.random_prob}")
        self.rng = np.random.default_rng(self.cfg.seed)
        self.attempts: dict[str, int] = {}
        self.successes: dict[str, int] = {}
        if self.cfg.state_path and Path(self.cfg.state_path).exists():
            self.load_state_dict(json.loads(Path(self.cfg.state_path).read_text()))
            log.info("curriculum resumed from %s (%d attempts)", self.cfg.state_path, sum(self.attempts.values()))

    # --- scoring -----------------------------------------------------------------------------------
    def success_rate(self, key: str) -> float:
        n = self.attempts.get(key, 0)
        return self.successes.get(key, 0) / n if n else self.cfg.target_rate

    def score(self, key: str) -> float:
        n = self.attempts.get(key, 0)
        return 1.0 - abs(self.success_rate(key) - self.cfg.target_rate) + self.cfg.explore_bonus / math.sqrt(1 + n)

    def _key(self, instruction: str) -> str:
        task = task_of(instruction)  # unknown instructions are refused in both modes
        return task if self.cfg.key == "task" else instruction

    # --- the interface -----------------------------------------------------------------------------
    def propose(self, frame, context=None) -> list[str]:
        context = SceneContext.of(context)
        keys = list(context.tasks) if self.cfg.key == "task" else context.instructions()
        num = min(context.num if context.num is not None else self.cfg.num, len(keys))
        picked: list[str] = []
        for _ in range(num):
            left = [k for k in keys if k not in picked]
            if self.rng.random() < self.cfg.random_prob:
                choice = left[self.rng.integers(len(left))]
            else:
                scores = np.array([self.score(k) for k in left])
                best = np.flatnonzero(scores >= scores.max() - 1e-12)
                choice = left[best[self.rng.integers(len(best))]]  # ties: at random
            picked.append(choice)
        if self.cfg.key == "instruction":
            return picked
        return [str(self.rng.choice(instructions(task))) for task in picked]  # any phrasing of the task

    def allocate(self, tasks: list[str], budget: int) -> dict[str, int]:
        """``budget`` picks among ``tasks`` made before any of their outcomes is known (a batch of
        rollouts that run in parallel): each pick counts as an attempt at the task's current
        success rate, so the exploration bonus spreads a batch instead of giving it all to the
        best score. The running counts are left as they were. Needs ``key="task"``."""
        if self.cfg.key != "task":
            raise ValueError("allocating rollouts over tasks needs the curriculum's key=task")
        attempts, successes = dict(self.attempts), dict(self.successes)
        counts = {t: 0 for t in tasks}
        try:
            for _ in range(int(budget)):
                rate = {t: self.success_rate(t) for t in tasks}
                task = task_of(self.propose(None, SceneContext(tasks=list(tasks), num=1))[0])
                counts[task] += 1
                self.attempts[task] = self.attempts.get(task, 0) + 1
                self.successes[task] = self.successes.get(task, 0) + rate[task]  # expected, fractional
        finally:
            self.attempts, self.successes = attempts, successes
        return counts

    def update(self, instruction: str, success: bool) -> None:
        key = self._key(instruction)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.successes[key] = self.successes.get(key, 0) + int(bool(success))
        if self.cfg.state_path:
            self.save(self.cfg.state_path)

    # --- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "key": self.cfg.key, "attempts": dict(self.attempts),
                "successes": dict(self.successes), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != self.FORMAT or state.get("key") != self.cfg.key:
            raise ValueError(f"not a curriculum state for key={self.cfg.key!r} "
                             f"(format={state.get('format')!r}, key={state.get('key')!r})")
        self.attempts = {str(k): int(v) for k, v in state["attempts"].items()}
        self.successes = {str(k): int(v) for k, v in state["successes"].items()}
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | os.PathLike) -> None:
        """Write the state as JSON (temp file + rename: a kill never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.state_dict(), indent=1))
        os.replace(tmp, path)

    def table(self) -> list[dict[str, Any]]:
        """Per key: attempts, success rate, score (for reports)."""
        return [{"key": k, "attempts": n, "success_rate": self.success_rate(k), "score": self.score(k)}
                for k, n in sorted(self.attempts.items())]
