"""Compose the in-domain planner with a prior video model (score composition).

Shapes: B batch, K future frames, C channels of the diffused tensor, h x w its size, H x W pixels.

The prior ("big" below) is either a large pretrained diffusers text-to-video model
(``BigVideoModel``, latent space) or a second, larger project planner (``PlannerPrior``: text +
first frame, pixel or latent space, trained on a broader task set). Configs: video_models/prior.py.

Modes (all in epsilon space, each model's output converted to epsilon first):
- "ipa", inverse probabilistic adaptation (Adapt2Act, Luo et al. 2024; SAIL): the prior
  leads with classifier-free guidance and the small in-domain model is added as a prior,
      eps = eps_big(x) + w * (eps_big(x, text) + g * eps_small(x, text, frame) - eps_big(x))
- "ipa_centered": the same with the in-domain term measured from the prior's unconditional,
      eps = eps_big(x) + w * (eps_big(x, text) - eps_big(x) + g * (eps_small(x, text, frame) - eps_big(x)))
  Its weights sum to 1 (ipa's to 1 + w g): near pure noise every epsilon is ~x_t, and ipa's
  (1 + w g) x_t makes DDIM's x0 estimate (x_t - sqrt(1 - a) eps) / sqrt(a) explode where
  sqrt(a) ~ 5e-5 (the first trailing step of our cosine schedule); this one stays ~x0.
- "sum", plain score composition (product of experts p_big(x|text) * p_small(x|text, frame)^g,
  as in compositional diffusion): eps = eps_big(x, text) + g * eps_small(x, text, frame).
  It is "ipa" with w = 1 (no guidance).

A planner prior's "unconditional" eps_big(x) is its own null text (the zero instruction embedding
it learned with text_drop_prob) with the same first frame: the frame is a condition of both terms,
as Adapt2Act keeps the conditioning frame out of the guidance.

Shared space, the design choice: a diffusers prior diffuses VAE latents, so the in-domain model
used with it must too (a planner prior shares the in-domain model's space, pixels at cpu scale). It is an ordinary VideoModelConfig with space="latent" and
vae_path="<big model dir>/vae": it trains and plans on its own (frames are encoded by that VAE
inside VideoDiffusion.encode_frames, the same single preprocessing path), and ComposedPlanner
checks that its latent space is the large model's. image_size stays the pixel size.

Noise schedules may differ (e.g. the large model's scaled-linear vs our cosine). Both are
variance-preserving, x_t = sqrt(a) x0 + sqrt(1 - a) eps, so we sample on the large model's
schedule and query the small model at its timestep of the nearest noise level a.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

from video_models.diffusion import eval_mode, randn, to_epsilon
from video_models.planner import Planner
from video_models.prior import (MODES, VAE_KEYS, VIDEO_UNETS, ComposeConfig, check_planner_pair, local_pipeline_dir,
                                 read_json, same_vae)

__all__ = ["BigVideoModel", "PlannerPrior", "ComposedPlanner", "ComposeConfig", "combine_epsilon"]


class BigVideoModel:
    """A pretrained latent text-to-video model: UNet3DConditionModel or UNetMotionModel (AnimateDiff),
    AutoencoderKL, CLIP text encoder + tokenizer, and its noise schedule, all from a local directory."""

    space = "latent"

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", dtype: str = "float32") -> None:
        import diffusers
        from transformers import AutoTokenizer, CLIPTextModel

        p = local_pipeline_dir(path)
        dt = getattr(torch, dtype)
        unet_class = read_json(p / "unet" / "config.json").get("_class_name", "UNet3DConditionModel")
        if unet_class not in VIDEO_UNETS:
            raise ValueError(f"{p / 'unet'} holds a {unet_class}; expected one of {VIDEO_UNETS}")
        load = dict(local_files_only=True)
        self.unet = getattr(diffusers, unet_class).from_pretrained(p, subfolder="unet", torch_dtype=dt, **load)
        self.vae = diffusers.AutoencoderKL.from_pretrained(p, subfolder="vae", **load)
        self.text_encoder = CLIPTextModel.from_pretrained(p, subfolder="text_encoder", torch_dtype=dt, **load)
        self.tokenizer = AutoTokenizer.from_pretrained(p / "tokenizer", **load)
        self.scheduler_config = dict(DDIMScheduler.load_config(p, subfolder="scheduler", **load))
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        # UNet3DConditionModel repeats the text per frame itself; AnimateDiff's pipeline does it for UNetMotionModel.
        self.text_per_frame = unet_class == "UNetMotionModel"
        self.dtype, self.device = dt, torch.device(device)
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(self.device).eval().requires_grad_(False)
        self.alphas_cumprod = DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(B,) strings -> CLIP hidden states (B, L, D)."""
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def predict_epsilon(self, x_t: torch.Tensor, t: torch.Tensor, text_states: torch.Tensor) -> torch.Tensor:
        """x_t (B, K, C, h, w), text_states (B, L, D) -> epsilon (B, K, C, h, w), float32."""
        sample = x_t.permute(0, 2, 1, 3, 4).to(self.device, self.dtype)  # diffusers video UNets: (B, C, F, h, w)
        if self.text_per_frame:
            text_states = text_states.repeat_interleave(x_t.shape[1], dim=0)  # (B*K, L, D)
        out = self.unet(sample, t.to(self.device), encoder_hidden_states=text_states).sample
        out = out.permute(0, 2, 1, 3, 4).to(x_t.device, torch.float32)
        return to_epsilon(out, x_t, self.alphas_cumprod[int(t)].to(x_t.device), self.prediction_type)

    # --- the prior interface of ComposedPlanner -------------------------------------------------
    def condition(self, instructions: list[str], first_frames: torch.Tensor, negative_prompt: str) -> torch.Tensor:
        """Text only (a text-to-video model): the negative prompt's and the instructions' states (2B, L, D)."""
        return self.encode_text([negative_prompt] * len(instructions) + list(instructions))

    def epsilon_pair(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unconditional, text-conditioned) epsilon of x_t (B, K, C, h, w)."""
        return self.predict_epsilon(torch.cat([x_t, x_t]), t, cond).chunk(2)

    def check_small(self, small: Planner) -> None:
        """The in-domain model must diffuse this model's VAE latents."""
        scfg, svae = small.config, small.model.vae
        hint = "configure the in-domain model with space='latent' and vae_path='<big model dir>/vae'"
        if scfg.space != "latent" or svae is None:
            raise ValueError(f"composition needs the in-domain model in the big model's latent space: {hint}")
        if not same_vae(svae.config, self.vae.config) or self.unet.config.in_channels != svae.config.latent_channels:
            raise ValueError(f"the in-domain model's VAE differs from the big model's ({VAE_KEYS}): {hint}")


class PlannerPrior:
    """A project planner (a Planner, e.g. pretrained on configs/task_set/prior_broad.yaml) as the prior.

    Frozen, with its EMA weights; its unconditional epsilon is its null text with the same first frame.
    """

    def __init__(self, planner: Planner) -> None:
        planner.ema.copy_to(planner.parameters())  # a prior only samples: its EMA weights, for good
        self.planner, self.model = planner, planner.model.eval().requires_grad_(False)
        self.space = planner.config.space
        self.scheduler_config = dict(self.model.noise_scheduler.config)
        self.alphas_cumprod = self.model.noise_scheduler.alphas_cumprod

    def condition(self, instructions: list[str], first_frames: torch.Tensor,
                  negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(first frames (2B, C, h, w), text (2B, D): the null text, then the instructions). No negative prompt:
        the zero embedding is the only unconditional text the planner learned."""
        first = self.model.encode_frames(first_frames)
        text = self.model.text_encoder(list(instructions))
        return torch.cat([first, first]), torch.cat([torch.zeros_like(text), text])

    @torch.no_grad()
    def epsilon_pair(self, x_t: torch.Tensor, t: torch.Tensor, cond) -> tuple[torch.Tensor, torch.Tensor]:
        first, text = cond
        eps = self.model.predict_epsilon(torch.cat([x_t, x_t]), t, first, text, guidance_scale=1.0)
        return eps.chunk(2)

    def check_small(self, small: Planner) -> None:
        vae = lambda m: m.vae.config if m.vae is not None else None  # noqa: E731
        check_planner_pair(self.planner.config, small.config, vae(self.model), vae(small.model))


def combine_epsilon(eps_big_uncond: torch.Tensor, eps_big_text: torch.Tensor, eps_small_text: torch.Tensor,
                    mode: str = "ipa", w: float = 2.5, g: float = 0.5) -> torch.Tensor:
    """The composition rule (see the module docstring)."""
    if mode == "ipa":
        return eps_big_uncond + w * (eps_big_text + g * eps_small_text - eps_big_uncond)
    if mode == "ipa_centered":
        return eps_big_uncond + w * (eps_big_text - eps_big_uncond + g * (eps_small_text - eps_big_uncond))
    if mode == "sum":
        return eps_big_text + g * eps_small_text
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class ComposedPlanner:
    """plan(instruction, first_frame) like Planner, sampling the composed score (the small model's EMA).

    big: a BigVideoModel or a PlannerPrior (anything with condition / epsilon_pair / check_small,
    alphas_cumprod, scheduler_config and space). Sampling runs DDIM on the prior's schedule.
    """

    def __init__(self, big: BigVideoModel | PlannerPrior, small: Planner, cfg: ComposeConfig) -> None:
        self.big, self.small, self.cfg = big, small, cfg
        big.check_small(small)
        self.scheduler = DDIMScheduler.from_config(
            big.scheduler_config, prediction_type="epsilon", clip_sample=big.space == "pixel",
            timestep_spacing="trailing",
        )
        # Small model's timestep at the noise level of each big-model timestep (identity if schedules match).
        a_small = small.model.noise_scheduler.alphas_cumprod
        self._small_t = (big.alphas_cumprod[:, None] - a_small[None, :]).abs().argmin(dim=1)

    @property
    def config(self):
        """The in-domain model's VideoModelConfig (image size, num_frames: what a plan looks like)."""
        return self.small.config

    @classmethod
    def from_config(cls, cfg: ComposeConfig, small: Planner, device: str | torch.device = "cpu") -> ComposedPlanner:
        """A diffusers prior from cfg.path (for a project planner prior: video_models.load_plan_model)."""
        return cls(BigVideoModel(cfg.path, device, cfg.dtype), small, cfg)

    @torch.no_grad()
    def plan_batch(self, instructions: list[str], first_frames: np.ndarray | torch.Tensor,
                   num_steps: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 (B, H, W, 3) first frames + B instructions -> uint8 (B, K, H, W, 3)."""
        instructions = list(instructions)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        cfg, big = self.cfg, self.big
        with self.small.ema_weights() as small, eval_mode(small):
            first = small.encode_frames(first_frames)  # (B, C, h, w), through the shared VAE in latent space
            if first.ndim != 4 or first.shape[0] != len(instructions):
                raise ValueError(f"need uint8 (B, H, W, 3) first frames and B instructions, got "
                                 f"{tuple(torch.as_tensor(first_frames).shape)} and {len(instructions)}")
            small_text = small.text_encoder(instructions)
            big_cond = big.condition(instructions, first_frames, cfg.negative_prompt)
            self.scheduler.set_timesteps(num_steps or cfg.sample_steps, device=small.device)
            x = randn((len(instructions), small.cfg.num_frames, *first.shape[1:]), generator, small.device)
            x = x * self.scheduler.init_noise_sigma
            for t in self.scheduler.timesteps:
                eps_big_uncond, eps_big_text = big.epsilon_pair(x, t, big_cond)
                eps_small = small.predict_epsilon(x, self._small_t[int(t)], first, small_text, guidance_scale=1.0)
                eps = combine_epsilon(eps_big_uncond, eps_big_text, eps_small, cfg.mode, cfg.w, cfg.g)
                x = self.scheduler.step(eps, t, x, eta=0.0, generator=generator).prev_sample
            return small.decode_frames(x).numpy()

    def plan(self, instruction: str, first_frame: np.ndarray | torch.Tensor,
             num_steps: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 (H, W, 3) first frame + instruction -> uint8 (K, H, W, 3)."""
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str, got {type(instruction).__name__}; use plan_batch for many")
        first_frame = torch.as_tensor(first_frame)
        if first_frame.ndim != 3:
            raise ValueError(f"first_frame must be uint8 (H, W, 3), got {tuple(first_frame.shape)}")
        return self.plan_batch([instruction], first_frame[None], num_steps, seed)[0]
