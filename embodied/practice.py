"""What the SAIL loop practises: each iteration's rollout budget allocated over the target tasks.

    proposer=catalog      uniform: every target task gets rollouts_per_task (the paper's loop)
    proposer=curriculum   SOAR: score 1 - |success - 0.3| + exploration bonus, random with p = 0.2,
                          from the grader's verdicts of the earlier iterations (never the simulator's)
    proposer=vlm          the VLM proposes instructions from each target's first frame; proposals
                          that match no target task are dropped; the budget follows the proposals

An allocation depends only on the loop's seed and the verdicts of earlier iterations, so a resumed
loop allocates exactly as the uninterrupted one (it is also written to iter_<k>/allocation.json
before the rollouts start, and read back from there).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embodied.training import write_atomic

log = logging.getLogger(__name__)

PROPOSERS = ("catalog", "curriculum", "vlm")


def proposer_name(cfg: Any) -> str:
    name = cfg if isinstance(cfg, str) else (cfg.get("name") if isinstance(cfg, dict) else getattr(cfg, "name", None))
    if name not in PROPOSERS:
        raise ValueError(f"proposer must be one of {' | '.join(PROPOSERS)} (what the loop practises), got {name!r}")
    return name


def split_evenly(tasks: Sequence[str], weights: Sequence[float], budget: int) -> dict[str, int]:
    """``budget`` rollouts in proportion to ``weights`` (largest remainders; ties to the earlier task)."""
    total = float(sum(weights))
    if total <= 0:
        weights, total = [1.0] * len(tasks), float(len(tasks))
    exact = [budget * w / total for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(tasks)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: budget - sum(counts)]:
        counts[i] += 1
    return dict(zip(tasks, counts))


def allocate(cfg: Any, tasks: Sequence[str], budget: int, history: Sequence[tuple[str, bool]], seed: int,
             first_frames: dict[str, Any] | None = None) -> dict[str, int]:
    """Rollouts per target task for one iteration.

    cfg: the proposer config (configs/proposer/); history: (task, graded success) of every earlier
    rollout of the loop, in order; seed: this iteration's proposer seed; first_frames: task -> the
    frame the VLM proposer looks at (proposer=vlm only).
    """
    from dataclasses import replace

    from embodied.proposers import make_proposer, proposer_config
    from embodied.proposers.base import SceneContext, task_of
    from sim.catalog import instruction_for

    tasks = list(tasks)
    if proposer_name(cfg) == "catalog":
        return split_evenly(tasks, [1.0] * len(tasks), budget)
    cfg = replace(proposer_config(cfg), seed=int(seed))
    if cfg.name == "curriculum":
        proposer = make_proposer(replace(cfg, state_path=None, key="task"))  # its state: the loop's own rows
        for task, success in history:
            proposer.update(instruction_for(task, 0), bool(success))
        return proposer.allocate(tasks, budget)
    proposer = make_proposer(cfg)
    votes = {t: 0 for t in tasks}
    for task in tasks:
        frame = (first_frames or {}).get(task)
        for instruction in proposer.propose(frame, SceneContext(tasks=tasks)):
            votes[task_of(instruction)] += 1
    if not any(votes.values()):
        log.warning("the VLM proposer proposed no feasible target task: rollouts split evenly")
    return split_evenly(tasks, [votes[t] for t in tasks], budget)


def iteration_allocation(path: Path, compute) -> dict[str, int]:
    """The allocation recorded at ``path``, or ``compute()``'s, recorded there first."""
    if path.exists():
        return {k: int(v) for k, v in json.loads(path.read_text()).items()}
    counts = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(counts, indent=1))
    return counts
