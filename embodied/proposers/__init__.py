"""Task proposers: a scene -> instructions to practise, swappable behind one interface.

    from embodied.proposers import make_proposer, SceneContext
    proposer = make_proposer("curriculum")               # or a configs/proposer/*.yaml node
    [instruction] = proposer.propose(first_frame, SceneContext(tasks=["drawer-open-v3", ...]))
    proposer.update(instruction, success)

catalog (the task catalog's instructions), curriculum (SOAR's success-rate curriculum), vlm (a
local image-text-to-text model, ``embodied.vlm``, matched to the catalog). Imports are lazy.
"""

from __future__ import annotations

from typing import Any

from embodied.backends import backend_config, build_backend, lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "Proposer": "embodied.proposers.base",
    "SceneContext": "embodied.proposers.base",
    "CatalogProposer": "embodied.proposers.catalog",
    "CurriculumProposer": "embodied.proposers.catalog",
    "VLMProposer": "embodied.proposers.vlm",
}

__all__ = sorted([*_EXPORTS, "make_proposer", "proposer_config"])


def proposer_config(cfg: Any):
    """The typed config dataclass of a proposer spec (a name, a dict, a DictConfig or the dataclass)."""
    from embodied.proposers.config import PROPOSER_CONFIGS

    return backend_config(cfg, PROPOSER_CONFIGS, "proposer")


def make_proposer(cfg: Any):
    """The proposer of ``cfg``: "catalog" | "curriculum" | "vlm", a dict, a DictConfig or a config dataclass."""
    from embodied.proposers.config import PROPOSER_CONFIGS

    return build_backend(cfg, PROPOSER_CONFIGS, "proposer")


__getattr__ = lazy_exports(__name__, _EXPORTS)
