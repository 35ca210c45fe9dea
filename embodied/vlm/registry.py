"""Build a grader / proposer from its config: the class named by the config's ``_target_``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embodied.vlm.config import GRADER_CONFIGS, PROPOSER_CONFIGS


def _config(cfg: Any, registry: Mapping[str, type], kind: str) -> Any:
    """A config dataclass from a backend name, a dict / DictConfig with ``name``, or the dataclass itself."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if isinstance(cfg, tuple(registry.values())):
        return cfg
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, Mapping) or cfg.get("name") not in registry:
        name = cfg.get("name") if isinstance(cfg, Mapping) else cfg
        raise ValueError(f"unknown {kind} {name!r}; choose one of {sorted(registry)} ({kind}=<name> in Hydra)")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(registry[cfg["name"]]), cfg))


def _build(cfg: Any, registry: Mapping[str, type], kind: str) -> Any:
    from hydra.utils import get_class

    cfg = _config(cfg, registry, kind)
    return get_class(cfg._target_)(cfg)


def grader_config(cfg: Any):
    """The typed config dataclass of a grader spec (a name, a dict, a DictConfig or the dataclass)."""
    return _config(cfg, GRADER_CONFIGS, "grader")


def proposer_config(cfg: Any):
    """The typed config dataclass of a proposer spec (a name, a dict, a DictConfig or the dataclass)."""
    return _config(cfg, PROPOSER_CONFIGS, "proposer")


def make_grader(cfg: Any):
    """The grader of ``cfg``: "oracle" | "learned" | "vlm" | "none", a dict, a DictConfig or a config dataclass."""
    return _build(cfg, GRADER_CONFIGS, "grader")


def make_proposer(cfg: Any):
    """The proposer of ``cfg``: "catalog" | "curriculum" | "vlm", a dict, a DictConfig or a config dataclass."""
    return _build(cfg, PROPOSER_CONFIGS, "proposer")
