"""Swappable backends built from typed configs: the graders (``embodied.graders``) and proposers
(``embodied.proposers``) share these helpers.

Each backend's config dataclass names its class in ``_target_``; ``build_backend`` builds that
class from the config, and Hydra's own ``instantiate(cfg)`` builds the same object (every class
also takes its config's fields as keyword arguments, through ``init_config``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def backend_config(cfg: Any, registry: Mapping[str, type], kind: str) -> Any:
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


def build_backend(cfg: Any, registry: Mapping[str, type], kind: str) -> Any:
    """The backend object of ``cfg`` (see ``backend_config``): its ``_target_`` class built from it."""
    from hydra.utils import get_class

    cfg = backend_config(cfg, registry, kind)
    return get_class(cfg._target_)(cfg)


def init_config(config_class: type, cfg: Any, fields: Mapping[str, Any]) -> Any:
    """A backend's config from ``cfg`` (its dataclass, a dict / DictConfig) or from keyword ``fields``.

    Both ways build the same object: ``Backend(cfg)`` (what ``make_grader`` does) and
    ``Backend(**fields)`` (what ``hydra.utils.instantiate`` does).
    """
    if cfg is not None and fields:
        raise TypeError(f"pass a {config_class.__name__} or keyword fields, not both")
    if cfg is None:
        cfg = dict(fields)
    if isinstance(cfg, config_class):
        return cfg
    from omegaconf import OmegaConf

    # Through OmegaConf: unknown keys and wrong types fail here, with the key named.
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(config_class), cfg))


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module-level ``__getattr__`` that imports ``exports[name]`` (a module path) on first
    use, so importing the package loads neither torch nor transformers."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
