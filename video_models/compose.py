"""Compose the in-domain planner with a large pretrained text-to-video model (score composition).

Shapes: B batch, K future frames, C latent channels, h x w latent size, H x W pixels.

Modes (all in epsilon space, each model's output converted to epsilon first):
- "ipa", inverse probabilistic adaptation (Adapt2Act, Luo et al. 2024; SAIL): the large model
  leads with classifier-free guidance and the small in-domain model is added as a prior,
      eps = eps_big(x) + w * (eps_big(x, text) + g * eps_small(x, text, frame) - eps_big(x))
- "sum", plain score composition (product of experts p_big(x|text) * p_small(x|text, frame)^g,
  as in compositional diffusion): eps = eps_big(x, text) + g * eps_small(x, text, frame).
  It is "ipa" with w = 1 (no guidance).

Shared space, the design choice: the large model diffuses VAE latents, so the in-domain model
used here must too. It is an ordinary VideoModelConfig with space="latent" and
vae_path="<big model dir>/vae": it trains and plans on its own (frames are encoded by that VAE
inside VideoDiffusion.encode_frames, the same single preprocessing path), and ComposedPlanner
checks that its latent space is the large model's. image_size stays the pixel size.

Noise schedules may differ (e.g. the large model's scaled-linear vs our cosine). Both are
variance-preserving, x_t = sqrt(a) x0 + sqrt(1 - a) eps, so we sample on the large model's
schedule and query the small model at its timestep of the nearest noise level a.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

from video_models.diffusion import eval_mode, randn, to_epsilon
from video_models.planner import Planner

MODES = ("ipa", "sum")
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")  # a diffusers pipeline directory


@dataclass
class ComposeConfig:
    big_model_path: str = ""  # LOCAL diffusers pipeline dir: unet/ vae/ text_encoder/ tokenizer/ scheduler/
    mode: str = "ipa"  # ipa: big model leads, small is a prior | sum: eps_big_text + g * eps_small
    w: float = 2.5  # ipa guidance strength (big model's text vs unconditional)
    g: float = 0.5  # prior strength: weight of the in-domain model's epsilon
    sample_steps: int = 25  # DDIM steps on the big model's schedule
    negative_prompt: str = ""  # the big model's "unconditional" text
    dtype: str = "float32"  # big UNet + text encoder dtype (float16 / bfloat16 on a GPU); VAE stays float32

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ComposeConfig.mode must be one of {MODES}, got {self.mode!r}")


def _local_dir(path: str | Path) -> Path:
    """The pipeline directory, or a clear error (nothing is ever downloaded)."""
    p = Path(path).expanduser()
    if not str(path) or not p.is_dir():
        hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", str(path)) and not str(path).startswith((".", "/", "~"))
        what = "looks like a Hugging Face Hub id" if hub_like else "is not a local directory"
        raise FileNotFoundError(
            f"big video model {str(path)!r} {what}; nothing is downloaded here (no network). Download the "
            "pipeline elsewhere (e.g. `huggingface-cli download <id> --local-dir DIR`), copy it over and point "
            "ComposeConfig.big_model_path at the local directory DIR"
        )
    missing = [s for s in SUBFOLDERS if not (p / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"{p} is not a diffusers text-to-video pipeline directory: missing {missing}")
    return p


class BigVideoModel:
    """A pretrained latent text-to-video model: UNet3DConditionModel or UNetMotionModel (AnimateDiff),
    AutoencoderKL, CLIP text encoder + tokenizer, and its noise schedule, all from a local directory."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", dtype: str = "float32") -> None:
        import diffusers
        from transformers import AutoTokenizer, CLIPTextModel

        p = _local_dir(path)
        dt = getattr(torch, dtype)
        unet_class = _read_json(p / "unet" / "config.json").get("_class_name", "UNet3DConditionModel")
        if unet_class not in ("UNet3DConditionModel", "UNetMotionModel"):
            raise ValueError(f"{p / 'unet'} holds a {unet_class}; expected UNet3DConditionModel or UNetMotionModel")
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


def combine_epsilon(eps_big_uncond: torch.Tensor, eps_big_text: torch.Tensor, eps_small_text: torch.Tensor,
                    mode: str = "ipa", w: float = 2.5, g: float = 0.5) -> torch.Tensor:
    """The composition rule (see the module docstring)."""
    if mode == "ipa":
        return eps_big_uncond + w * (eps_big_text + g * eps_small_text - eps_big_uncond)
    if mode == "sum":
        return eps_big_text + g * eps_small_text
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


class ComposedPlanner:
    """plan(instruction, first_frame) like Planner, sampling the composed score (the small model's EMA)."""

    def __init__(self, big: BigVideoModel, small: Planner, cfg: ComposeConfig) -> None:
        self.big, self.small, self.cfg = big, small, cfg
        self._check_shared_latent_space()
        self.scheduler = DDIMScheduler.from_config(
            big.scheduler_config, prediction_type="epsilon", clip_sample=False, timestep_spacing="trailing"
        )
        # Small model's timestep at the noise level of each big-model timestep (identity if schedules match).
        a_small = small.model.noise_scheduler.alphas_cumprod
        self._small_t = (big.alphas_cumprod[:, None] - a_small[None, :]).abs().argmin(dim=1)

    @classmethod
    def from_config(cls, cfg: ComposeConfig, small: Planner, device: str | torch.device = "cpu") -> ComposedPlanner:
        return cls(BigVideoModel(cfg.big_model_path, device, cfg.dtype), small, cfg)

    def _check_shared_latent_space(self) -> None:
        scfg, bvae, svae = self.small.config, self.big.vae.config, self.small.model.vae
        hint = "configure the in-domain model with space='latent' and vae_path='<big model dir>/vae'"
        if scfg.space != "latent" or svae is None:
            raise ValueError(f"composition needs the in-domain model in the big model's latent space: {hint}")
        keys = ("latent_channels", "scaling_factor", "block_out_channels")
        same_vae = all(svae.config[k] == bvae[k] for k in keys)
        if not same_vae or self.big.unet.config.in_channels != svae.config.latent_channels:
            raise ValueError(f"the in-domain model's VAE differs from the big model's ({keys}): {hint}")

    @torch.no_grad()
    def plan_batch(self, instructions: list[str], first_frames: np.ndarray | torch.Tensor,
                   num_steps: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 (B, H, W, 3) first frames + B instructions -> uint8 (B, K, H, W, 3)."""
        instructions = list(instructions)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        cfg, big = self.cfg, self.big
        with self.small.ema_weights() as small, eval_mode(small):
            first = small.encode_frames(first_frames)  # (B, C, h, w) through the shared VAE
            if first.ndim != 4 or first.shape[0] != len(instructions):
                raise ValueError(f"need uint8 (B, H, W, 3) first frames and B instructions, got "
                                 f"{tuple(torch.as_tensor(first_frames).shape)} and {len(instructions)}")
            b = len(instructions)
            small_text = small.text_encoder(instructions)
            big_text = big.encode_text([cfg.negative_prompt] * b + instructions)  # (2B, L, D): uncond, text
            self.scheduler.set_timesteps(num_steps or cfg.sample_steps, device=small.device)
            x = randn((b, small.cfg.num_frames, *first.shape[1:]), generator, small.device)
            x = x * self.scheduler.init_noise_sigma
            for t in self.scheduler.timesteps:
                eps_big_uncond, eps_big_text = big.predict_epsilon(torch.cat([x, x]), t, big_text).chunk(2)
                eps_small = small.predict_epsilon(x, self._small_t[int(t)], first, small_text, guidance_scale=1.0)
                eps = combine_epsilon(eps_big_uncond, eps_big_text, eps_small, cfg.mode, cfg.w, cfg.g)
                x = self.scheduler.step(eps, t, x, eta=0.0, generator=generator).prev_sample
            return small.decode_frames(x).numpy()

    def plan(self, instruction: str, first_frame: np.ndarray | torch.Tensor,
             num_steps: int | None = None, seed: int | None = None) -> np.ndarray:
        """uint8 (H, W, 3) first frame + instruction -> uint8 (K, H, W, 3)."""
        return self.plan_batch([instruction], torch.as_tensor(first_frame)[None], num_steps, seed)[0]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
