"""The local vision-language model that the ``vlm`` grader (``embodied.graders.vlm``) and the ``vlm``
proposer (``embodied.proposers.vlm``) share: ``VLM(model_path)`` with ``yes_probability`` and
``generate`` (``embodied.vlm.backend``). Importing this package loads neither torch nor transformers.
"""

from __future__ import annotations

from embodied.backends import lazy_exports

__all__ = ["VLM", "VLMNotFoundError"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "embodied.vlm.backend"))
