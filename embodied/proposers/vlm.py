"""The VLM proposer: the model looks at the scene and lists instructions; infeasible ones are dropped.

Feasible = some task of the scene (``SceneContext.tasks``) has it: the proposal is a catalog
instruction of one of them (``sim.catalog.task_for_instruction``), or its nearest catalog
instruction among them by MiniLM cosine similarity reaches ``match_threshold``. Kept proposals
come back as that catalog instruction (the rest of the loop maps instructions to tasks by it);
dropped ones are logged with the reason and kept in ``last_dropped``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.backends import init_config
from embodied.proposers.base import Proposer, SceneContext
from embodied.proposers.config import VLMProposerConfig
from embodied.vlm.backend import VLM
from sim.catalog import task_for_instruction

log = logging.getLogger(__name__)


def split_proposals(text: str) -> list[str]:
    """Instructions from a generated list: one per line or ';', bullets and numbering removed."""
    items = []
    for part in re.split(r"[\n;]+", text):
        part = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", part).strip().strip(".").strip()
        if part:
            items.append(part)
    return list(dict.fromkeys(items))  # in order, without repeats


@dataclass(frozen=True)
class Match:
    proposal: str
    instruction: str | None  # the catalog instruction kept; None: dropped
    task: str | None
    similarity: float
    reason: str


class CatalogMatcher:
    """Proposals -> catalog instructions of the scene's tasks (exact, else MiniLM nearest >= threshold)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self._encoder = None

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            from video_models.text import MiniLMEncoder

            self._encoder = MiniLMEncoder()  # frozen, cached per string; unit-norm embeddings
        return self._encoder(texts).cpu().numpy()

    def match(self, proposals: list[str], context: SceneContext) -> list[Match]:
        options = context.instructions()
        canonical = {" ".join(o.lower().split()): o for o in options}
        out, fuzzy = [], []
        for p in proposals:
            task = task_for_instruction(p)
            if task in context.tasks:
                out.append(Match(p, canonical[" ".join(p.lower().split())], task, 1.0, "catalog instruction"))
            elif task is not None:
                out.append(Match(p, None, task, 1.0, f"task {task} is not in this scene"))
            else:
                out.append(None)
                fuzzy.append(len(out) - 1)
        if fuzzy:
            sims = self._embed([proposals[i] for i in fuzzy]) @ self._embed(options).T  # cosine (unit norm)
            for row, i in zip(sims, fuzzy):
                best = int(row.argmax())
                if row[best] >= self.threshold:
                    out[i] = Match(proposals[i], options[best], task_for_instruction(options[best]), float(row[best]),
                                   f"nearest catalog instruction (similarity {row[best]:.2f})")
                else:
                    out[i] = Match(proposals[i], None, None, float(row[best]),
                                   f"no task of this scene matches: nearest {options[best]!r} at similarity "
                                   f"{row[best]:.2f} < {self.threshold}")
        return out


class VLMProposer(Proposer):
    name = "vlm"

    def __init__(self, cfg: VLMProposerConfig | None = None, **fields: Any) -> None:
        self.cfg = init_config(VLMProposerConfig, cfg, fields)
        self.vlm = VLM(self.cfg.model_path, self.cfg.device, self.cfg.dtype, config_key="proposer")
        self.matcher = CatalogMatcher(self.cfg.match_threshold)
        self.last_dropped: list[Match] = []

    def propose(self, frame, context=None) -> list[str]:
        context = SceneContext.of(context)
        if frame is None:
            raise ValueError("the vlm proposer needs the scene frame (uint8 (H, W, 3))")
        try:
            text = self.vlm.generate([np.asarray(frame)], self.cfg.prompt, self.cfg.max_new_tokens)
        except Exception as exc:  # no proposals this time; the loop can fall back on the catalog
            log.warning("vlm proposer: generation failed (%s: %s): no proposals", type(exc).__name__, exc)
            self.last_dropped = []
            return []
        matches = self.matcher.match(split_proposals(text), context)
        self.last_dropped = [m for m in matches if m.instruction is None]
        for m in self.last_dropped:
            log.info("vlm proposer dropped %r: %s", m.proposal, m.reason)
        kept = list(dict.fromkeys(m.instruction for m in matches if m.instruction is not None))
        num = context.num if context.num is not None else self.cfg.num
        return kept if num is None else kept[:num]
