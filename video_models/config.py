"""VideoModelConfig: the one schema every part of the video planner reads.

The defaults are the `cpu_tiny` model (64 px, 0.8 M UNet parameters, ~36 GFLOP per training step
at batch 8: trainable on 2 CPU cores). The paper-scale `gpu` model (128 px, 111 M UNet parameters)
only changes field values:

    VideoModelConfig(image_size=128, patch_size=1, base_channels=128, channel_mult=(1, 2, 3, 4),
                     num_res_blocks=2, attention_resolutions=(32, 16), temporal_attention=True,
                     attention_head_dim=64, norm_groups=32, dropout=0.1, sample_steps=50,
                     ema_decay=0.9999)

Every field is a plain scalar, tuple or list, so the dataclass doubles as a Hydra structured config
and is written verbatim into a checkpoint's config.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

TEXT_ENCODERS = ("minilm", "learned")
PREDICTION_TYPES = ("v_prediction", "epsilon", "sample")
SPACES = ("pixel", "latent")
SAMPLERS = ("ddim", "dpm_solver")
SAMPLE_PRECISIONS = ("float32", "bfloat16")  # VideoDiffusion.set_sample_precision
COMPILE_MODES = ("none", "cuda_graphs", "inductor")  # VideoDiffusion.compile_network


@dataclass
class VideoModelConfig:
    # --- video -------------------------------------------------------------------------------
    image_size: int = 64  # square frames in pixels (H = W); inputs of another size are rejected
    num_frames: int = 7  # K: future frames predicted after the conditioning frame
    space: str = "pixel"  # pixel: diffuse RGB in [-1, 1]; latent: diffuse VAE latents (for compose.py)
    vae_path: str = ""  # latent space only: local diffusers AutoencoderKL dir (e.g. <big model>/vae)

    # --- UNet (pseudo-3D: 2D conv per frame + 1D temporal conv across frames) ------------------
    patch_size: int = 2  # pixel-unshuffle p x p patches into channels first (1 = none); ~p**2 fewer FLOPs
    base_channels: int = 16  # channels of the first level (at image_size / patch_size)
    channel_mult: tuple[int, ...] = (1, 2, 4)  # per level; each level after the first halves H, W
    num_res_blocks: int = 1  # ResBlocks per level (down path; the up path has one more)
    attention_resolutions: tuple[int, ...] = (8,)  # feature-map sizes (after patching) that get attention
    temporal_attention: bool = False  # also attend across frames at those resolutions
    attention_head_dim: int = 32  # channels per attention head
    norm_groups: int = 8  # GroupNorm groups; every level's channel count must divide by it
    dropout: float = 0.0  # dropout inside ResBlocks

    # --- instruction conditioning (FiLM in every ResBlock) ---------------------------------------
    text_encoder: str = "minilm"  # minilm: frozen all-MiniLM-L6-v2 (384-d); learned: nn.Embedding
    instructions: list[str] = field(default_factory=list)  # vocabulary of the learned encoder
    text_dim: int = 384  # learned encoder width (minilm is always 384)
    text_drop_prob: float = 0.1  # training: chance to drop the instruction (enables guidance)
    guidance_scale: float = 1.0  # sampling: classifier-free guidance; 1.0 = off (one UNet pass)

    # --- diffusion (diffusers DDPMScheduler to train; DDIM or DPM-Solver++ to sample) ----------
    num_train_timesteps: int = 1000  # DDPM steps
    beta_schedule: str = "squaredcos_cap_v2"  # cosine schedule, as AVDC
    prediction_type: str = "v_prediction"  # what the UNet predicts: v_prediction | epsilon | sample
    first_frame_residual: bool = False  # sample (x0) prediction only: predict x0 - first frame
    sampler: str = "ddim"  # ddim: DDIMScheduler (eta 0); dpm_solver: DPMSolverMultistepScheduler (2nd-order DPM-Solver++)
    sample_steps: int = 10  # sampler steps (10 for CPU; 50 on a GPU)
    ema_decay: float = 0.995  # EMA decay ceiling (diffusers EMAModel)
    ema_warmup: bool = True  # EMA decay ramps up from 0 (short runs still get a useful EMA)

    def __post_init__(self) -> None:
        # Hydra / JSON hand lists for tuple fields; keep tuples so configs compare equal.
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        self.instructions = list(self.instructions)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on a field value that cannot work (called on construction)."""
        def bad(msg: str) -> None:
            raise ValueError(f"VideoModelConfig: {msg}")

        if self.text_encoder not in TEXT_ENCODERS:
            bad(f"text_encoder must be one of {TEXT_ENCODERS}, got {self.text_encoder!r}")
        if self.text_encoder == "learned" and not self.instructions:
            bad("text_encoder='learned' needs the instruction vocabulary in `instructions`")
        if self.prediction_type not in PREDICTION_TYPES:
            bad(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.sampler not in SAMPLERS:
            bad(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.space not in SPACES:
            bad(f"space must be one of {SPACES}, got {self.space!r}")
        if self.space == "latent" and not self.vae_path:
            bad("space='latent' needs vae_path (a local AutoencoderKL directory)")
        if min(self.num_frames, self.image_size, self.sample_steps, self.patch_size) < 1:
            bad("num_frames, image_size, sample_steps and patch_size must be >= 1")
        if self.space == "pixel" and self.image_size % (self.patch_size * 2 ** (len(self.channel_mult) - 1)):
            bad(f"image_size {self.image_size} must divide by patch_size * 2**(levels-1) "
                f"(patch_size={self.patch_size}, channel_mult={self.channel_mult})")
        for m in self.channel_mult:
            if (self.base_channels * m) % self.norm_groups:
                bad(f"channels {self.base_channels * m} do not divide into norm_groups={self.norm_groups}")
        if self.first_frame_residual and self.prediction_type != "sample":
            bad("first_frame_residual needs prediction_type='sample' (x0): v / epsilon targets are not frames")
        if not 0.0 <= self.text_drop_prob < 1.0:
            bad(f"text_drop_prob must be in [0, 1), got {self.text_drop_prob}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoModelConfig:
        """Inverse of to_dict; unknown keys are an error (a checkpoint from another version)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VideoModelConfig fields {sorted(unknown)}")
        return cls(**d)
