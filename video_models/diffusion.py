"""VideoDiffusion: UNet + text encoder + diffusers schedulers, and the one frame preprocessing.

Shapes: B batch, K future frames, H x W pixels, C channels of the diffused tensor
(3 in pixel space, the VAE's latent channels in latent space), h x w its spatial size.

Training (DDPMScheduler, cosine betas, v-prediction by default) and sampling (DDIMScheduler or
DPMSolverMultistepScheduler, cfg.sampler, few "trailing" steps) both reach frames only through `encode_frames` / `decode_frames`, which
call `preprocess` / `postprocess`: a train/sample preprocessing mismatch is impossible by
construction (AVDC's tracker shows broken plans from exactly that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import nn

from video_models.config import COMPILE_MODES, SAMPLE_PRECISIONS, VideoModelConfig
from video_models.text import make_text_encoder
from video_models.unet import VideoUNet



# --- the one preprocessing ------------------------------------------------------------------
def preprocess(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [-1, 1]."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (..., H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def postprocess(x: torch.Tensor) -> torch.Tensor:
    """Inverse of preprocess: float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) (clipped, rounded)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu()


def load_vae(path: str | Path):
    """A diffusers AutoencoderKL from a local directory (frozen); clear error when it is not there."""
    from diffusers import AutoencoderKL

    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"no AutoencoderKL at {str(path)!r} (expected a local directory with config.json); "
            "nothing is downloaded: point vae_path at a local diffusers VAE directory, e.g. <big model>/vae"
        )
    return AutoencoderKL.from_pretrained(p, local_files_only=True).eval().requires_grad_(False)


def to_epsilon(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """Convert a model output to the noise it implies, for x_t = sqrt(a) x0 + sqrt(1 - a) eps.

    alpha_bar broadcasts against x_t (a scalar, or one per batch element shaped to broadcast).
    """
    a = alpha_bar.to(x_t.dtype)
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1-a) x0  =>  eps = sqrt(a) v + sqrt(1-a) x_t
        return a.sqrt() * output + (1 - a).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - a.sqrt() * output) / (1 - a).sqrt().clamp(min=1e-8)
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


class VideoDiffusion(nn.Module):
    """Text + first frame -> K future frames.

    compute_loss(batch) -> (loss, metrics), batch = {"frames": uint8 (B, K+1, H, W, 3),
    "instruction": list[str] of length B}; frames[:, 0] conditions, frames[:, 1:] are denoised.
    sample(first_frame uint8 (B, H, W, 3), instructions) -> uint8 (B, K, H, W, 3).
    """

    def __init__(self, cfg: VideoModelConfig, vae: nn.Module | None = None) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.text_encoder = make_text_encoder(cfg)
        self._vae: tuple[nn.Module, ...] = ()  # a tuple: the frozen VAE stays out of state_dict
        if cfg.space == "latent":
            vae = vae if vae is not None else load_vae(cfg.vae_path)
            self._vae = (vae.eval().requires_grad_(False),)
            factor = 2 ** (len(vae.config.block_out_channels) - 1)
            self.channels, self.size = vae.config.latent_channels, cfg.image_size // factor
        else:
            self.channels, self.size = 3, cfg.image_size
        if self.size % (cfg.patch_size * 2 ** (len(cfg.channel_mult) - 1)):
            raise ValueError(f"diffused size {self.size} must divide by patch_size * 2**(levels-1) "
                             f"(patch_size={cfg.patch_size}, channel_mult={cfg.channel_mult})")
        self.unet = VideoUNet(cfg, self.channels, self.size, self.text_encoder.dim)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction_type,
            clip_sample=cfg.space == "pixel",  # pixels live in [-1, 1]; latents do not
        )
        self.sample_scheduler = make_sample_scheduler(cfg.sampler, self.noise_scheduler.config)
        self.sample_precision = "float32"  # set_sample_precision: bfloat16 samples under autocast
        self._compiled: tuple[Any, ...] = ()  # compile_network: the compiled UNet (a tuple: not a submodule)

    def set_sample_precision(self, precision: str) -> None:
        """Sample the network in float32 or under bfloat16 autocast (the sampler stays float32)."""
        if precision not in SAMPLE_PRECISIONS:
            raise ValueError(f"sample precision must be one of {', '.join(SAMPLE_PRECISIONS)}, got {precision!r}")
        self.sample_precision = precision

    def compile_network(self, mode: str) -> None:
        """Sample through a faster form of the UNet (training keeps the plain one).

        cuda_graphs: replayed from CUDA graphs, one captured per batch shape in milliseconds
        (video_models.cuda_graphs; GPU only). inductor: ``torch.compile`` (on a GPU its
        "reduce-overhead" mode, CUDA graphs over fused kernels; minutes of compilation at first use).
        none: the plain UNet.
        """
        if mode not in COMPILE_MODES:
            raise ValueError(f"plan_compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        if mode == "none":
            self._compiled = ()
        elif mode == "cuda_graphs":
            from video_models.cuda_graphs import GraphedNetwork

            self._compiled = (GraphedNetwork(self.unet),)
        else:
            self._compiled = (torch.compile(self.unet, mode="reduce-overhead" if self.device.type == "cuda" else "default"),)

    @property
    def vae(self) -> nn.Module | None:
        return self._vae[0] if self._vae else None

    def _apply(self, fn, recurse=True):  # .to() / .half() also reach the hidden VAE
        super()._apply(fn, recurse)
        for vae in self._vae:
            vae._apply(fn, recurse)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    # --- frames <-> diffused tensors (the only way in and out) --------------------------------
    def encode_frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> (..., C, h, w) on the model's device."""
        x = preprocess(frames).to(self.device)
        if x.shape[-2:] != (self.cfg.image_size, self.cfg.image_size):
            raise ValueError(
                f"frames are {tuple(x.shape[-2:])} pixels but the model was configured for "
                f"image_size={self.cfg.image_size}; resize them where they are produced (no silent resize here)"
            )
        if self.vae is None:
            return x
        lead = x.shape[:-3]
        with torch.no_grad():  # the VAE is frozen: no graph through it, even in compute_loss
            z = self.vae.encode(x.flatten(0, -4)).latent_dist.mode() * self.vae.config.scaling_factor
        return z.unflatten(0, lead)

    def decode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C, h, w) -> uint8 (..., H, W, 3) on the CPU."""
        if self.vae is not None:
            lead = x.shape[:-3]
            x = self.vae.decode(x.flatten(0, -4) / self.vae.config.scaling_factor).sample.unflatten(0, lead)
        return postprocess(x)

    # --- the network, with optional classifier-free guidance ----------------------------------
    def network(self, x_t: torch.Tensor, first: torch.Tensor, t: torch.Tensor | int, text: torch.Tensor) -> torch.Tensor:
        """The UNet's output in cfg.prediction_type; with ``first_frame_residual`` (x0-prediction
        only) the UNet predicts the change from the first frame, so still background comes out
        exactly and a small model spends its capacity on what moves."""
        unet = self._compiled[0] if self._compiled and not torch.is_grad_enabled() else self.unet
        out = unet(x_t, first, t, text)
        if self.cfg.first_frame_residual:
            out = out + first[:, None]
        return out

    def model_output(self, x_t: torch.Tensor, t: torch.Tensor, first: torch.Tensor, text: torch.Tensor,
                     guidance_scale: float | None = None) -> torch.Tensor:
        """UNet output (in cfg.prediction_type) for x_t (B, K, C, h, w), first (B, C, h, w), text (B, D)."""
        s = self.cfg.guidance_scale if guidance_scale is None else guidance_scale
        if s == 1.0:
            return self.network(x_t, first, t, text)
        both = self.network(torch.cat([x_t, x_t]), torch.cat([first, first]), t,
                            torch.cat([text, torch.zeros_like(text)]))
        cond, uncond = both.chunk(2)
        return uncond + s * (cond - uncond)

    def predict_epsilon(self, x_t: torch.Tensor, t: torch.Tensor | int, first: torch.Tensor, text: torch.Tensor,
                        guidance_scale: float | None = None) -> torch.Tensor:
        """The noise the model sees in x_t at training timestep t (for composition with other models)."""
        out = self.model_output(x_t, t, first, text, guidance_scale)
        alpha_bar = self.noise_scheduler.alphas_cumprod[torch.as_tensor(t).long().cpu()].to(x_t.device)
        return to_epsilon(out, x_t, alpha_bar.reshape(-1, *([1] * (x_t.ndim - 1))), self.cfg.prediction_type)

    # --- training -----------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Diffusion loss on one batch (no optimizer step). See the class docstring for the batch."""
        frames, instructions = batch["frames"], list(batch["instruction"])
        k = self.cfg.num_frames
        if frames.ndim != 5 or frames.shape[1] != k + 1:
            raise ValueError(f"batch['frames'] must be uint8 (B, K+1={k + 1}, H, W, 3), got {tuple(frames.shape)}")
        if len(instructions) != frames.shape[0]:
            raise ValueError(f"{frames.shape[0]} videos but {len(instructions)} instructions")
        x = self.encode_frames(frames)  # (B, K+1, C, h, w)
        first, x0 = x[:, 0], x[:, 1:]
        text = self.text_encoder(instructions)
        if self.training and self.cfg.text_drop_prob > 0:  # learn the unconditional model too (guidance)
            keep = torch.rand(len(instructions), 1, device=text.device) >= self.cfg.text_drop_prob
            text = text * keep

        noise = torch.randn_like(x0)
        t = torch.randint(0, self.cfg.num_train_timesteps, (x0.shape[0],), device=x0.device)
        x_t = self.noise_scheduler.add_noise(x0, noise, t)
        if self.cfg.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(x0, noise, t)
        else:
            target = noise if self.cfg.prediction_type == "epsilon" else x0
        pred = self.network(x_t, first, t, text)
        loss = F.mse_loss(pred.float(), target.float())
        return loss, {"loss": loss.item()}

    # --- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, first_frame: torch.Tensor | np.ndarray, instructions: list[str], num_steps: int | None = None,
               generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        """Sampling (cfg.sampler): uint8 (B, H, W, 3) first frames -> uint8 (B, K, H, W, 3) plans (CPU).

        ``generator``: one for the batch, or a list of B (one per sample, as diffusers pipelines take
        them): then sample b's noise comes from generator b alone, whatever else is in the batch.
        Both samplers are deterministic after the initial noise (DDIM at eta 0, DPM-Solver++).
        """
        first_frame = torch.as_tensor(first_frame)
        if first_frame.ndim != 4:
            raise ValueError(f"first_frame must be uint8 (B, H, W, 3), got {tuple(first_frame.shape)}")
        if len(instructions) != first_frame.shape[0]:
            raise ValueError(f"{first_frame.shape[0]} first frames but {len(instructions)} instructions")
        with eval_mode(self):
            first = self.encode_frames(first_frame)  # (B, C, h, w)
            text = self.text_encoder(list(instructions))
            scheduler = self.sample_scheduler
            scheduler.set_timesteps(num_steps or self.cfg.sample_steps, device=self.device)
            shape = (first.shape[0], self.cfg.num_frames, *first.shape[1:])
            x = randn(shape, generator, self.device) * scheduler.init_noise_sigma
            # No weight-cast cache: a CUDA graph captured under it would replay freed casts.
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                      enabled=self.sample_precision == "bfloat16", cache_enabled=False)
            for t in scheduler.timesteps:
                with autocast:
                    out = self.model_output(scheduler.scale_model_input(x, t), t, first, text)
                x = scheduler.step(out.float(), t, x, generator=generator).prev_sample
            return self.decode_frames(x)


def make_sample_scheduler(sampler: str, train_config: Any) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """The sampling scheduler on the training schedule. Trailing spacing starts at the last
    (pure-noise) timestep: better with few steps."""
    if sampler == "ddim":
        return DDIMScheduler.from_config(train_config, timestep_spacing="trailing")
    if sampler == "dpm_solver":
        # DPM-Solver++ has no clip_sample; thresholding at sample_max_value 1 clips x0 to [-1, 1] alike.
        return DPMSolverMultistepScheduler.from_config(train_config, timestep_spacing="trailing",
                                                       thresholding=bool(train_config.clip_sample),
                                                       sample_max_value=1.0)
    raise ValueError(f"unknown sampler {sampler!r}")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no dropout) for sampling; the caller's train/eval mode comes back after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def randn(shape: tuple[int, ...], generator: torch.Generator | list[torch.Generator] | None,
          device: torch.device) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device, so a seed gives the same noise on any device.

    A list of generators: row b of the batch (shape[0]) from generator b, the same noise as that
    generator alone gives a batch of one.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([randn(shape[1:], g, device) for g in generator])
    src = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=src).to(device)
