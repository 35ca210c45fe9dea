"""Typed structured configs shared by the Hydra apps (the schemas behind configs/*.yaml).

Every field is documented where it is declared, so `--help` / `--cfg job` explain a run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf


@dataclass
class TaskSetConfig:
    name: str = MISSING  # e.g. train_8, target_12, mt50 (configs/task_set/<name>.yaml)
    tasks: list[str] = MISSING  # MetaWorld v3 task names


@dataclass
class EnvConfig:
    camera: str = "corner2"  # MetaWorld camera; corner cameras are returned upright
    max_steps: int | None = None  # episode step budget; None: MetaWorld's 500
    extra_steps_after_success: int = 5  # steps recorded after success (the video shows the end)


@dataclass
class PresetConfig:
    """A compute budget. Jobs read the keys they need; presets may add more."""

    name: str = MISSING  # cpu_tiny | gpu
    image_size: int = 64
    workers: int = 2
    episodes_per_task: int = 5
    # Episodes a rollout worker runs side by side, the plans they wait for sampled in one planner
    # call (embodied.rollouts); 1: one episode at a time. Same episodes either way, up to float
    # rounding in batched kernels.
    plan_batch: int = 1
    # Where the commands of this budget plan and train (embodied.device): cpu_tiny says cpu (its
    # numbers were measured on CPU cores), the GPU presets auto. Every app reads it as ${device}.
    device: str = "cpu"
    # A planner served on a GPU (embodied.plan_server): sampling precision (float32 | bfloat16), its
    # network as none | cuda_graphs | inductor (VideoDiffusion.compile_network), and plans per call
    # at most. Unused on the CPU, where each worker plans alone.
    plan_precision: str = "float32"
    plan_compile: str = "none"
    plan_max_batch: int = 64
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from embodied.device import check_device
        from video_models.config import COMPILE_MODES, SAMPLE_PRECISIONS

        check_plan_batch(self.plan_batch)
        check_device(self.device)
        if self.plan_precision not in SAMPLE_PRECISIONS:
            raise ValueError(f"preset.plan_precision must be {' | '.join(SAMPLE_PRECISIONS)}, got {self.plan_precision!r}")
        if self.plan_compile not in COMPILE_MODES:
            raise ValueError(f"preset.plan_compile must be {' | '.join(COMPILE_MODES)}, got {self.plan_compile!r}")
        if self.plan_max_batch < 1:
            raise ValueError(f"preset.plan_max_batch must be >= 1, got {self.plan_max_batch}")


def rollout_device_settings(preset: PresetConfig, device: str) -> dict[str, Any]:
    """The RolloutSettings fields of where plans are sampled: ``device`` resolved (one ValueError
    without CUDA), and the preset's served-planner options."""
    from embodied.device import plan_device

    return dict(plan_device=plan_device(device), plan_precision=preset.plan_precision,
                plan_compile=preset.plan_compile, plan_max_batch=preset.plan_max_batch)


def check_plan_batch(n: Any) -> int:
    """``preset.plan_batch`` as an int >= 1, or ValueError saying what is allowed."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"preset.plan_batch must be an integer >= 1 (episodes a rollout worker plans together; "
                         f"1: one at a time), got {n!r}")
    return n


def check_plan_sampling(sampler: str | None, steps: int | None) -> None:
    """``plan_sampler`` / ``plan_sample_steps`` overrides (None: the planner checkpoint's own)."""
    from video_models.config import SAMPLERS

    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"plan_sampler must be one of {', '.join(SAMPLERS)} or null (the checkpoint's), got {sampler!r}")
    if steps is not None and steps < 1:
        raise ValueError(f"plan_sample_steps must be >= 1 or null (the checkpoint's), got {steps}")


@dataclass
class SeedRange:
    """Environment seeds ``start .. stop - 1`` (``reset(seed=...)``)."""

    start: int = 0
    stop: int = 0  # exclusive

    def take(self, n: int, offset: int = 0, what: str = "seeds") -> list[int]:
        """Seeds ``start + offset .. start + offset + n - 1``; ValueError if they leave the range."""
        first = self.start + offset
        if n < 0 or offset < 0 or first + n > self.stop:
            raise ValueError(f"{what}: {n} seeds from {first} do not fit the seed range "
                             f"[{self.start}, {self.stop}) (widen it in seeds/, or ask for fewer)")
        return list(range(first, first + n))


SPLITS = ("demos", "exploration", "self_collection", "validation", "test")


@dataclass
class SeedRanges:
    """Disjoint, named environment-seed ranges: what each seed is for (configs/seeds/default.yaml).

    demos: expert demos of the pretraining tasks (and of targets, when asked for); exploration:
    noisy expert demos for the IDM; self_collection: the SAIL loop's own rollouts; validation:
    what recipes are tuned on (embodied-eval and tuning scripts measure here by default); test:
    what the SAIL report and the README quote, never tuned on.
    """

    demos: SeedRange = field(default_factory=lambda: SeedRange(0, 1_000))
    exploration: SeedRange = field(default_factory=lambda: SeedRange(20_000, 30_000))
    self_collection: SeedRange = field(default_factory=lambda: SeedRange(1_000, 10_000))
    validation: SeedRange = field(default_factory=lambda: SeedRange(10_000, 20_000))
    test: SeedRange = field(default_factory=lambda: SeedRange(100_000, 200_000))

    def range(self, split: str) -> SeedRange:
        if split not in SPLITS:
            raise ValueError(f"unknown seed range {split!r}; the ranges are {', '.join(SPLITS)}")
        return getattr(self, split)

    def check(self) -> None:
        """ValueError naming the first empty range or overlapping pair."""
        ranges = [(name, self.range(name)) for name in SPLITS]
        for name, r in ranges:
            if not r.start < r.stop:
                raise ValueError(f"seeds.{name} = [{r.start}, {r.stop}) is empty: need start < stop")
        for i, (a, ra) in enumerate(ranges):
            for b, rb in ranges[i + 1:]:
                if ra.start < rb.stop and rb.start < ra.stop:
                    raise ValueError(f"seeds.{a} = [{ra.start}, {ra.stop}) and seeds.{b} = [{rb.start}, {rb.stop}) "
                                     f"overlap: every seed range must be disjoint from the others (configs/seeds/)")


def refuse_policy_override(accepted: str) -> None:
    """ValueError on ``policy=...`` (the CLI's user_errors prints it): Hydra would read it as a
    choice of the policy/ config group (the policy architectures) and fail obscurely; checkpoints
    go in ``policy_ckpt``."""
    if any(arg.startswith("policy=") for arg in sys.argv[1:]):
        raise ValueError(f"the policy is given as policy_ckpt={accepted} "
                         f"(policy/ is the config group of policy architectures)")


def catalog_instructions(*task_lists: Any) -> list[str]:
    """Every catalog instruction of the tasks in ``task_lists``, in order, each once: the vocabulary
    of a learned instruction encoder (configs: ``${catalog_instructions:${task_set.tasks}}``)."""
    from sim.catalog import instructions

    tasks = [task for tasks in task_lists for task in (tasks or [])]
    return list(dict.fromkeys(text for task in tasks for text in instructions(task)))


OmegaConf.register_new_resolver("catalog_instructions", catalog_instructions, replace=True)
