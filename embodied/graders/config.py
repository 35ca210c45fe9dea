"""Typed configs of the grader backends (the schemas behind configs/grader/), and of the learned
grader's network and training data.

Each backend's config names its class in ``_target_``; ``make_grader`` builds it from the config
(``hydra.utils.instantiate`` works too: every class also takes its config's fields as keyword
arguments). Adding a backend = one config dataclass here with its ``_target_``, one entry in
``GRADER_CONFIGS`` and one YAML file; no factory to edit.

This module imports nothing heavy (no torch, no transformers) so CLIs compose configs cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

VLM_PROMPT_GRADE = "Did the robot {instruction}? Answer yes or no."


@dataclass
class GraderConfig:
    _target_: str = MISSING  # class that implements embodied.graders.base.Grader
    name: str = MISSING  # oracle | learned | vlm | none


@dataclass
class OracleGraderConfig(GraderConfig):
    """The simulator's own success flag (ground truth): for ablations and to measure the others."""

    _target_: str = "embodied.graders.simple.OracleGrader"
    name: str = "oracle"


@dataclass
class NoneGraderConfig(GraderConfig):
    """Keeps every episode (success=True, score NaN): the no-filter ablation."""

    _target_: str = "embodied.graders.simple.NoneGrader"
    name: str = "none"


@dataclass
class LearnedGraderConfig(GraderConfig):
    """The small success classifier trained by embodied-train-grader."""

    _target_: str = "embodied.graders.learned.LearnedGrader"
    name: str = "learned"
    path: str | None = None  # checkpoint directory: <embodied-train-grader run dir>/grader
    threshold: float = 0.5  # success when P(success) >= threshold
    device: str = "cpu"  # cpu | cuda | auto
    batch_size: int = 64  # episodes per forward pass in grade_batch


@dataclass
class VLMGraderConfig(GraderConfig):
    """A local image-text-to-text model (Idefics3 / SmolVLM class) asked whether the instruction was done."""

    _target_: str = "embodied.graders.vlm.VLMGrader"
    name: str = "vlm"
    model_path: str | None = None  # local model directory, e.g. /models/SmolVLM-256M-Instruct (never downloaded)
    prompt: str = VLM_PROMPT_GRADE  # {instruction} is filled in
    num_frames: int = 1  # final frames shown to the model (1: the last frame only)
    frame_gap: int = 8  # steps between the frames shown
    # score: success = P(yes) >= threshold, from the next-token logits (one forward pass);
    # generate: also generate an answer and parse yes/no from it (unparseable: failure, logged).
    decision: str = "score"
    threshold: float = 0.5
    max_new_tokens: int = 4  # generate: answer length
    device: str = "cpu"  # cpu | cuda | auto
    dtype: str = "float32"  # float32 | bfloat16 | float16


GRADER_CONFIGS: dict[str, type[GraderConfig]] = {
    "oracle": OracleGraderConfig,
    "learned": LearnedGraderConfig,
    "vlm": VLMGraderConfig,
    "none": NoneGraderConfig,
}


# --- the learned grader's network and its training data -------------------------------------------
@dataclass
class SuccessClassifierConfig:
    """Last frame(s) + instruction embedding -> success logit. Defaults: the cpu_tiny preset."""

    image_size: int = 64  # frames are uint8 (image_size, image_size, 3); other sizes raise
    frames: int = 2  # frames stacked on channels: t - (frames-1)*frame_gap .. t (motion shows "done")
    frame_gap: int = 4  # steps between stacked frames
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])  # conv widths, stride 2 each
    pooled_size: int = 4  # conv features pooled to (pooled_size x pooled_size) before the MLP
    hidden_dim: int = 128  # MLP width
    dropout: float = 0.1
    random_shift: int = 4  # DrQ shift augmentation in pixels while training; 0: off
    text_dim: int = 384  # MiniLM embedding size (frozen all-MiniLM-L6-v2, not in the checkpoint)


@dataclass
class GraderDataConfig:
    """Which frames of store episodes become training samples (see embodied.graders.data)."""

    early_frac: float = 0.75  # successful episodes: steps <= early_frac * first success are negatives
    early_samples: int = 4  # negatives drawn per successful episode (evenly spaced in that early part)
    failed_samples: int = 4  # failed episodes: negatives at the final step + this many spread over it
    positive_samples: int = 4  # successful episodes: positives at the final step + up to this many flagged steps


def register_configs() -> None:
    """Schemas for Hydra: group option files (configs/grader/<name>.yaml) extend <name>_schema."""
    cs = ConfigStore.instance()
    for name, node in GRADER_CONFIGS.items():
        cs.store(group="grader", name=f"{name}_schema", node=node)


register_configs()
