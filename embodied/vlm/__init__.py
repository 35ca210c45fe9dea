"""The local vision-language model that the ``vlm`` grader (``embodied.graders.vlm``) and the ``vlm``
proposer (``embodied.proposers.vlm``) share: ``VLM(model_path)`` with ``yes_probability`` and
``generate`` (``embodied.vlm.backend``). Importing this package loads neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["VLM", "VLMNotFoundError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from embodied.vlm import backend

        return getattr(backend, name)
    raise AttributeError(f"module 'embodied.vlm' has no attribute {name!r}")
