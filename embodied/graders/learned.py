"""The learned success grader: a small CNN over the last frame(s) + a frozen instruction embedding.

    frames uint8 (B, F, H, W, 3) --stack F frames on channels--> conv stages (stride 2, GroupNorm,
    SiLU, FiLM from the instruction) --> pool to 4x4 --> MLP [+ instruction] --> success logit (B,)

The instruction embedding is all-MiniLM-L6-v2 (``video_models.text.MiniLMEncoder``: frozen, cached
per string, not part of the checkpoint). Trained with BCE by ``embodied-train-grader`` through the
shared loop; a checkpoint is a directory with ``model.safetensors`` + ``config.json``, read back
by ``load_grader`` (a ready ``LearnedGrader``) or ``SuccessClassifier.load``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embodied.backends import init_config
from embodied.graders.base import GradeResult, Grader, as_frames, trailing_indices
from embodied.graders.config import LearnedGraderConfig, SuccessClassifierConfig

FORMAT = "embodied.vlm.success_classifier"  # an identifier written into every checkpoint (kept when the module moved)
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class SuccessClassifier(nn.Module):
    """(frames (B, F, H, W, 3) uint8, instructions [B]) -> success logits (B,)."""

    def __init__(self, cfg: SuccessClassifierConfig) -> None:
        super().__init__()
        if cfg.frames < 1 or cfg.frame_gap < 1 or not cfg.channels:
            raise ValueError(f"need frames >= 1, frame_gap >= 1 and conv channels, got {cfg}")
        self.config = cfg
        from video_models.text import MiniLMEncoder

        self.text = MiniLMEncoder()  # frozen; its weights stay out of state_dict
        if self.text.dim != cfg.text_dim:
            raise ValueError(f"text_dim={cfg.text_dim} but the instruction encoder gives {self.text.dim}")
        self.convs, self.films = nn.ModuleList(), nn.ModuleList()
        width = 3 * cfg.frames
        for c in cfg.channels:
            self.convs.append(nn.Sequential(nn.Conv2d(width, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c)))
            self.films.append(nn.Linear(cfg.text_dim, 2 * c))  # instruction -> per-channel scale, shift
            width = c
        self.pool = nn.AdaptiveAvgPool2d(cfg.pooled_size)
        self.head = nn.Sequential(
            nn.Linear(width * cfg.pooled_size**2 + cfg.text_dim, cfg.hidden_dim), nn.SiLU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden_dim, 1))
        for film in self.films:  # start as the identity: scale 1, shift 0
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
        # BCE weight of positives (set from the data's class balance before training; not saved)
        self.register_buffer("pos_weight", torch.ones(()), persistent=False)

    def forward(self, frames: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        b, n, h, w, _ = frames.shape
        size = self.config.image_size
        if (n, h, w) != (self.config.frames, size, size):
            raise ValueError(f"expected frames (B, {self.config.frames}, {size}, {size}, 3), got {tuple(frames.shape)}")
        x = frames.permute(0, 1, 4, 2, 3).reshape(b, n * 3, h, w).float() / 127.5 - 1.0
        text = self.text(list(instructions))
        for conv, film in zip(self.convs, self.films):
            scale, shift = film(text).chunk(2, dim=-1)
            x = F.silu(conv(x) * (1 + scale[..., None, None]) + shift[..., None, None])
        x = self.pool(x).flatten(1)
        return self.head(torch.cat([x, text], dim=-1)).squeeze(-1)

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """BCE on batch["frames"] (B, F, H, W, 3) uint8 with batch["label"] (B,) in {0, 1}."""
        frames = batch["frames"].to(self.pos_weight.device)
        labels = batch["label"].to(self.pos_weight.device).float()
        if self.training and self.config.random_shift:
            frames = random_shift(frames, self.config.random_shift)
        logits = self(frames, batch["instruction"])
        loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.pos_weight)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return loss, {"accuracy": float(accuracy)}

    @torch.no_grad()
    def predict_proba(self, frames: np.ndarray | torch.Tensor, instructions: Sequence[str]) -> np.ndarray:
        """P(success) for frames (B, F, H, W, 3) uint8; float64 (B,)."""
        was_training = self.training
        self.eval()
        try:
            device = self.pos_weight.device
            frames = torch.as_tensor(np.asarray(frames)).to(device)
            return torch.sigmoid(self(frames, list(instructions))).double().cpu().numpy()
        finally:
            self.train(was_training)

    # --- checkpoints: safetensors + JSON, nothing pickled ------------------------------------------
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": asdict(self.config)}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        # In place: embodied.checkpoints.write_checkpoint(path, model.save) replaces a checkpoint as a whole.
        save_file(tensors, str(path / WEIGHTS), metadata={"format": FORMAT})
        (path / CONFIG).write_text(json.dumps(doc, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SuccessClassifier:
        from safetensors.torch import load_file

        path = Path(path)
        missing = [name for name in (CONFIG, WEIGHTS) if not (path / name).is_file()]
        if not path.is_dir() or missing:
            raise FileNotFoundError(
                f"no learned grader at {path} (missing {', '.join(missing) or 'the directory'}): train one with "
                f"embodied-train-grader and point grader.path at <its run dir>/grader")
        try:
            doc = json.loads((path / CONFIG).read_text())
        except ValueError as exc:
            raise ValueError(f"{path / CONFIG} is not valid JSON ({exc})") from exc
        if doc.get("format") != FORMAT or int(doc.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path} is not a learned-grader checkpoint this code reads "
                             f"(format={doc.get('format')!r}, version={doc.get('format_version')!r})")
        model = cls(init_config(SuccessClassifierConfig, doc["config"], {}))
        model.load_state_dict(load_file(str(path / WEIGHTS)))
        return model.to(_device(device)).eval()


def random_shift(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ augmentation: every sample's frames shifted by one random (dx, dy) in [-pad, pad], edges replicated."""
    b, n, h, w, c = frames.shape
    x = frames.permute(0, 1, 4, 2, 3).reshape(b, n * c, h, w).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b)).tolist()
    x = torch.stack([x[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    return x.reshape(b, n, c, h, w).permute(0, 1, 3, 4, 2).round().to(frames.dtype)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class LearnedGrader(Grader):
    """Grades with a trained ``SuccessClassifier``: success when P(success) >= threshold."""

    name = "learned"

    def __init__(self, cfg: LearnedGraderConfig | None = None, model: SuccessClassifier | None = None,
                 **fields: Any) -> None:
        self.cfg = init_config(LearnedGraderConfig, cfg, fields)
        if model is None:
            if not self.cfg.path:
                raise ValueError("the learned grader needs a checkpoint: set grader.path=<embodied-train-grader "
                                 "run dir>/grader")
            model = SuccessClassifier.load(self.cfg.path, device=self.cfg.device)
        self.model = model.eval()
        mc = model.config
        self.frames_needed = (mc.frames - 1) * mc.frame_gap + 1

    def _stack(self, frames: Any) -> np.ndarray:
        """The model's frame stack from the end of an episode: (F, H, W, 3)."""
        frames = as_frames(frames)
        mc = self.model.config
        if frames.shape[1:3] != (mc.image_size, mc.image_size):
            raise ValueError(f"this grader reads {mc.image_size} px frames, got {frames.shape[1]}x{frames.shape[2]}")
        return frames[trailing_indices(len(frames), mc.frames, mc.frame_gap)]

    def grade(self, frames: Any, instruction: str, info: Mapping[str, Any] | None = None) -> GradeResult:
        return self.grade_batch([frames], [instruction])[0]

    def grade_batch(self, frames: Sequence[Any], instructions: Sequence[str],
                    infos: Sequence[Mapping[str, Any] | None] | None = None) -> list[GradeResult]:
        if len(frames) != len(instructions):
            raise ValueError(f"{len(frames)} episodes but {len(instructions)} instructions")
        scores: list[float] = []
        size = max(1, self.cfg.batch_size)
        for start in range(0, len(frames), size):
            stack = np.stack([self._stack(f) for f in frames[start:start + size]])
            scores += self.model.predict_proba(stack, instructions[start:start + size]).tolist()
        return [GradeResult(s >= self.cfg.threshold, float(s), f"P(success)={s:.3f} (threshold {self.cfg.threshold})")
                for s in scores]


def load_grader(path: str | Path, threshold: float = 0.5, device: str = "cpu") -> LearnedGrader:
    """The learned grader saved in directory ``path`` (model.safetensors + config.json)."""
    return LearnedGrader(LearnedGraderConfig(path=str(path), threshold=threshold, device=device))
