"""Typed configs of the proposer backends (the schemas behind configs/proposer/).

Each backend's config names its class in ``_target_``; ``make_proposer`` builds it from the config
(``hydra.utils.instantiate`` works too). Adding a backend = one config dataclass here with its
``_target_``, one entry in ``PROPOSER_CONFIGS`` and one YAML file.

This module imports nothing heavy (no torch, no transformers) so CLIs compose configs cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

VLM_PROMPT_PROPOSE = "List tasks the robot could do in this scene, one short instruction per line."


@dataclass
class ProposerConfig:
    _target_: str = MISSING  # class that implements embodied.proposers.base.Proposer
    name: str = MISSING  # catalog | curriculum | vlm
    seed: int = 0  # seeds every random choice


@dataclass
class CatalogProposerConfig(ProposerConfig):
    """Instructions from the task catalog for the tasks of the current scene."""

    _target_: str = "embodied.proposers.catalog.CatalogProposer"
    name: str = "catalog"
    num: int | None = None  # instructions per call; None: every instruction of the scene's tasks


@dataclass
class CurriculumProposerConfig(ProposerConfig):
    """SOAR's curriculum: practise what succeeds about target_rate of the time, explore the untried."""

    _target_: str = "embodied.proposers.catalog.CurriculumProposer"
    name: str = "curriculum"
    num: int = 1  # instructions per call (distinct tasks / instructions)
    key: str = "task"  # running success rates per "task" or per "instruction"
    target_rate: float = 0.3  # score = 1 - |success rate - target_rate| + bonus
    explore_bonus: float = 0.5  # bonus = explore_bonus / sqrt(1 + attempts): rarely tried ones first
    random_prob: float = 0.2  # probability of a uniformly random pick instead of the best score
    state_path: str | None = None  # JSON file: loaded if present, rewritten on every update (resume)


@dataclass
class VLMProposerConfig(ProposerConfig):
    """The VLM looks at the scene and proposes instructions; only those matching a catalog task are kept."""

    _target_: str = "embodied.proposers.vlm.VLMProposer"
    name: str = "vlm"
    model_path: str | None = None  # local model directory, e.g. /models/SmolVLM-256M-Instruct
    prompt: str = VLM_PROMPT_PROPOSE
    max_new_tokens: int = 48
    num: int | None = None  # at most this many instructions per call; None: every feasible one
    # A proposal that is no catalog instruction is matched to the nearest one of the scene's tasks
    # by MiniLM cosine similarity; below this it is dropped (and logged).
    match_threshold: float = 0.75
    device: str = "cpu"
    dtype: str = "float32"


PROPOSER_CONFIGS: dict[str, type[ProposerConfig]] = {
    "catalog": CatalogProposerConfig,
    "curriculum": CurriculumProposerConfig,
    "vlm": VLMProposerConfig,
}


def register_configs() -> None:
    """Schemas for Hydra: group option files (configs/proposer/<name>.yaml) extend <name>_schema."""
    cs = ConfigStore.instance()
    for name, node in PROPOSER_CONFIGS.items():
        cs.store(group="proposer", name=f"{name}_schema", node=node)


register_configs()
