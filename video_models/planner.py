"""Planner: a VideoDiffusion + its EMA weights; plans with the EMA; safetensors checkpoints.

Checkpoint directory (never pickles):
    model.safetensors   online weights (what the optimizer trains)
    ema.safetensors     EMA weights, same keys
    config.json         {"format": "video_models.planner", "format_version": 1,
                         "config": VideoModelConfig fields, "ema_step": EMA updates so far}
The files are written in place: to replace a checkpoint as a whole (never new weights beside an
old config), write it through ``embodied.checkpoints.write_checkpoint(path, planner.save)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from video_models.config import VideoModelConfig
from video_models.diffusion import VideoDiffusion

FORMAT = "video_models.planner"
FORMAT_VERSION = 1
FILES = ("model.safetensors", "ema.safetensors", "config.json")


class Planner:
    """Text + first frame -> K future frames, sampled with EMA weights.

    Training loop contract: optimise `planner.parameters()` on `planner.compute_loss(batch)`,
    then call `planner.ema_step()` after each optimizer step.
    """

    per_sample_seeds = True  # plan_batch takes one seed per plan (rollouts batch the plans of many episodes)

    def __init__(self, model: VideoDiffusion | VideoModelConfig) -> None:
        self.model = model if isinstance(model, VideoDiffusion) else VideoDiffusion(model)
        # EMA over every trainable tensor (the UNet, plus the learned text embeddings if any):
        # sampling with an EMA UNet but online embeddings would mix two different models.
        self.ema = EMAModel(
            self.parameters(), decay=self.config.ema_decay, use_ema_warmup=self.config.ema_warmup
        )

    @property
    def config(self) -> VideoModelConfig:
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return self.model.device

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def to(self, device: str | torch.device) -> Planner:
        self.model.to(device)
        self.ema.to(device)
        return self

    # --- training -----------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """See VideoDiffusion.compute_loss."""
        if getattr(self, "_inference", False):
            raise RuntimeError("this planner was prepared with for_inference() and plans only; load it again to train")
        return self.model.compute_loss(batch)

    def ema_step(self) -> None:
        """Update the EMA from the online weights (call after every optimizer step)."""
        self.ema.step(self.parameters())

    @contextmanager
    def ema_weights(self) -> Iterator[VideoDiffusion]:
        """Temporarily load the EMA weights into the model; the online weights come back after."""
        if getattr(self, "_inference", False):  # the EMA weights are already the model's
            yield self.model
            return
        params = self.parameters()
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield self.model
        finally:
            self.ema.restore(params)

    # --- planning -----------------------------------------------------------------------------
    def for_inference(self, precision: str = "float32", compile: str = "none") -> Planner:
        """Plans only from now on, as fast as the device allows.

        The EMA weights stay loaded (no swap of every weight before and after each plan);
        ``precision`` bfloat16 samples the network under bf16 autocast (the sampler's arithmetic
        stays float32); ``compile`` (none | cuda_graphs | inductor, VideoDiffusion.compile_network)
        removes the per-kernel launch cost that bounds a plan at batch 1 on a GPU. Training this
        planner afterwards is refused.
        """
        self.model.set_sample_precision(precision)
        self.model.compile_network(compile)
        if not getattr(self, "_inference", False):
            self.ema.copy_to(self.parameters())
            self._inference = True
        return self

    def set_sampler(self, sampler: str) -> None:
        """Sample with another scheduler from now on (a VideoModelConfig.sampler name)."""
        from video_models.diffusion import make_sample_scheduler

        self.model.sample_scheduler = make_sample_scheduler(sampler, self.model.noise_scheduler.config)
        self.config.sampler = sampler

    def plan_batch(self, instructions: list[str], first_frames: np.ndarray | torch.Tensor,
                   num_steps: int | None = None, seed: int | Sequence[int] | None = None) -> np.ndarray:
        """uint8 (B, H, W, 3) first frames + B instructions -> uint8 (B, K, H, W, 3) plans.

        The same seed gives the same plans (noise is drawn on the CPU, whatever the device).
        ``seed``: one for the batch, or B (one per plan): plan b is then the plan ``plan`` gives
        with seed[b], up to float rounding in batched kernels.
        """
        if isinstance(seed, Sequence):
            generator = [torch.Generator().manual_seed(int(s)) for s in seed]
        else:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with self.ema_weights() as model:
            return model.sample(first_frames, list(instructions), num_steps, generator).numpy()

    def plan(self, instruction: str, first_frame: np.ndarray | torch.Tensor,
             num_steps: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 (H, W, 3) first frame + instruction -> uint8 (K, H, W, 3) plan."""
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, got {type(instruction).__name__}; use plan_batch for many")
        first_frame = torch.as_tensor(first_frame)
        if first_frame.ndim != 3:
            raise ValueError(f"first_frame must be uint8 (H, W, 3), got {tuple(first_frame.shape)}")
        return self.plan_batch([instruction], first_frame[None], num_steps, seed)[0]

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write model.safetensors, ema.safetensors and config.json into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file(_tensors(self.model), str(d / "model.safetensors"))
        with self.ema_weights():
            save_file(_tensors(self.model), str(d / "ema.safetensors"))
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                "ema_step": self.ema.optimization_step}
        (d / "config.json").write_text(json.dumps(meta, indent=2))
        return d


def load_planner(path: str | Path, device: str | torch.device = "cpu", vae: torch.nn.Module | None = None) -> Planner:
    """Rebuild a Planner from a directory written by Planner.save.

    vae: latent-space models only, an already loaded AutoencoderKL to share (e.g. the big model's in
    compose.py) instead of loading config.vae_path again.
    """
    d = Path(path)
    missing = [f for f in FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{str(path)!r} is not a planner checkpoint: missing {missing} "
            f"(Planner.save writes {list(FILES)} into a directory)"
        )
    try:
        meta = json.loads((d / "config.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {meta.get('format_version')!r}; this code reads {FORMAT_VERSION}")
        cfg = VideoModelConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"corrupt planner checkpoint config {d / 'config.json'}: {e}") from e

    planner = Planner(VideoDiffusion(cfg, vae=vae))
    try:
        planner.model.load_state_dict(load_file(d / "ema.safetensors"))
        planner.ema = EMAModel(planner.parameters(), decay=cfg.ema_decay, use_ema_warmup=cfg.ema_warmup)
        planner.ema.optimization_step = int(meta.get("ema_step", 0))
        planner.model.load_state_dict(load_file(d / "model.safetensors"))
    except (SafetensorError, RuntimeError, OSError) as e:
        raise ValueError(f"corrupt or mismatched planner weights in {d}: {e}") from e
    return planner.to(device)


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}

