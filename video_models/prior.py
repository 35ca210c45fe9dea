"""The prior a plan is composed with (configs/prior/): none, a diffusers text-to-video model, or a
second, larger project planner. One loader for the planning model, and the up-front check of a prior.

    from video_models import ComposeConfig, check_prior, load_plan_model
    prior = ComposeConfig(kind="planner", path="runs/prior/planner", w=1.5, g=0.5)
    check_prior(prior, in_domain_cfg)                     # before any work: one clear error
    planner = load_plan_model("runs/video/planner", prior)  # Planner (kind none) or ComposedPlanner
    planner.plan(instruction, frame, num_steps=None, seed=0)

Cheap to import (no torch): the config doubles as the Hydra schema of configs/prior/ ("prior/schema").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from video_models.config import VideoModelConfig

PRIOR_KINDS = ("none", "diffusers", "planner")
MODES = ("ipa", "ipa_centered", "sum")
PLANNER_FORMAT = "video_models.planner"  # config.json "format" of a Planner.save directory
PLANNER_FILES = ("model.safetensors", "ema.safetensors", "config.json")
PIPELINE_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")  # a diffusers pipeline directory
VIDEO_UNETS = ("UNet3DConditionModel", "UNetMotionModel")
VAE_KEYS = ("latent_channels", "scaling_factor", "block_out_channels")  # what makes two VAEs one latent space


@dataclass
class ComposeConfig:
    """How plans are composed with a prior (the composition rule is in video_models/compose.py)."""

    kind: str = "none"  # none: the in-domain planner alone | diffusers: a text-to-video pipeline | planner: a project planner
    path: str = ""  # LOCAL dir: diffusers pipeline (unet/ vae/ text_encoder/ tokenizer/ scheduler/) or Planner.save dir
    mode: str = "ipa"  # ipa: the prior leads, the in-domain model is added | ipa_centered | sum (compose.py)
    w: float = 2.5  # ipa guidance strength (the prior's text vs unconditional)
    g: float = 0.5  # weight of the in-domain model's epsilon
    sample_steps: int = 25  # DDIM steps on the prior's noise schedule (a rollout's num_steps wins)
    negative_prompt: str = ""  # diffusers prior: its "unconditional" text (a planner prior uses its null text)
    dtype: str = "float32"  # diffusers prior: UNet + text encoder dtype (float16 / bfloat16 on a GPU); VAE stays float32

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"prior kind must be one of {PRIOR_KINDS}, got {self.kind!r}")
        if self.mode not in MODES:
            raise ValueError(f"prior mode must be one of {MODES}, got {self.mode!r}")
        if self.sample_steps < 1:
            raise ValueError(f"prior sample_steps must be >= 1, got {self.sample_steps}")


def prior_config(prior: ComposeConfig | Mapping | None) -> ComposeConfig:
    """A ComposeConfig from itself, a dict or Hydra DictConfig (configs/prior/<name>.yaml), or None (no prior)."""
    if prior is None:
        return ComposeConfig()
    if isinstance(prior, ComposeConfig):
        return prior
    if not isinstance(prior, Mapping):  # a DictConfig is a Mapping
        raise TypeError(f"prior must be a ComposeConfig, a mapping or None, got {type(prior).__name__}")
    known = {f.name for f in fields(ComposeConfig)}
    unknown = sorted(set(prior) - known)
    if unknown:
        raise ValueError(f"unknown prior config keys {unknown}; allowed: {sorted(known)}")
    return ComposeConfig(**{k: prior[k] for k in prior})


def _in_domain_config(in_domain: VideoModelConfig | Mapping | str | Path) -> tuple[VideoModelConfig, Path | None]:
    """The in-domain model's config: given, or read from its checkpoint directory (config.json only)."""
    if isinstance(in_domain, VideoModelConfig):
        return in_domain, None
    if isinstance(in_domain, Mapping):
        return VideoModelConfig.from_dict(dict(in_domain)), None
    path = Path(in_domain)
    return _read_planner_config(path, "in-domain planner"), path


def read_json(path: Path) -> dict:
    """A JSON file, or ValueError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e


def _read_planner_config(path: Path, what: str) -> VideoModelConfig:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {str(path)!r} is not a directory; give a video_models checkpoint "
                                f"directory (Planner.save / embodied-train-video's <run dir>/planner)")
    missing = [f for f in PLANNER_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"{what} {str(path)!r} is not a video_models planner checkpoint: missing {missing} "
                         f"(Planner.save writes {list(PLANNER_FILES)})")
    doc = read_json(path / "config.json")
    if doc.get("format") != PLANNER_FORMAT:
        raise ValueError(f"{what} {str(path)!r} holds a {doc.get('format')!r} checkpoint, not {PLANNER_FORMAT!r}")
    try:
        return VideoModelConfig.from_dict(doc["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{what} {str(path)!r} has a corrupt config.json: {e}") from e


def local_pipeline_dir(path: str | Path) -> Path:
    """A diffusers pipeline directory, or a clear error (nothing is ever downloaded)."""
    import re

    p = Path(path).expanduser()
    if not str(path) or not p.is_dir():
        hub_like = re.fullmatch(r"[\w.-]+/[\w.-]+", str(path)) and not str(path).startswith((".", "/", "~"))
        what = "looks like a Hugging Face Hub id" if hub_like else "is not a local directory"
        raise FileNotFoundError(
            f"big video model {str(path)!r} {what}; nothing is downloaded here (no network). Download the "
            "pipeline elsewhere (e.g. `huggingface-cli download <id> --local-dir DIR`), copy it over and point "
            "the prior's path (prior.path) at the local directory DIR"
        )
    missing = [s for s in PIPELINE_SUBFOLDERS if not (p / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"{p} is not a diffusers text-to-video pipeline directory: missing {missing} "
                                f"(allowed: a directory with {list(PIPELINE_SUBFOLDERS)})")
    return p


def same_vae(a: Mapping, b: Mapping) -> bool:
    """Two AutoencoderKL configs that define the same latent space."""
    return all(a.get(k) == b.get(k) for k in VAE_KEYS)


def check_planner_pair(prior: VideoModelConfig, small: VideoModelConfig, prior_vae: Mapping | None = None,
                       small_vae: Mapping | None = None) -> None:
    """Two project planners compose only on the same tensors: space, image size, frame count (and VAE)."""
    for key in ("space", "image_size", "num_frames"):
        if getattr(prior, key) != getattr(small, key):
            raise ValueError(f"the planner prior has {key}={getattr(prior, key)!r} but the in-domain planner "
                             f"{getattr(small, key)!r}: a planner prior must match the in-domain model's "
                             f"space, image_size and num_frames (pretrain it with the same values)")
    if prior.space == "latent" and prior_vae is not None and small_vae is not None and not same_vae(prior_vae, small_vae):
        raise ValueError(f"the planner prior and the in-domain planner diffuse different VAE latents ({VAE_KEYS})")


def check_prior(prior: ComposeConfig | Mapping | None, in_domain: VideoModelConfig | Mapping | str | Path,
                image_size: int | None = None) -> ComposeConfig:
    """Check a prior before any work, reading config files only; return the parsed ComposeConfig.

    in_domain: the in-domain planner's VideoModelConfig (or its dict), or its checkpoint directory.
    image_size: the env's frame size, if known. Raises FileNotFoundError (missing directory) or
    ValueError (wrong format, mismatched image size / frames / latent space), each saying what is allowed.
    """
    prior = prior_config(prior)
    small, small_path = _in_domain_config(in_domain)
    if image_size is not None and small.image_size != image_size:
        raise ValueError(f"the in-domain planner works on {small.image_size} px frames but the env renders "
                         f"{image_size} px")
    if prior.kind == "none":
        return prior
    if not prior.path:
        raise ValueError(f"prior kind={prior.kind!r} needs prior.path: a local "
                         + ("diffusers pipeline directory" if prior.kind == "diffusers" else "video_models checkpoint directory")
                         + " (or prior=none)")
    path = Path(prior.path).expanduser()
    if prior.kind == "planner":
        if not path.is_dir():
            raise FileNotFoundError(
                f"planner prior {prior.path!r} is not a directory; give a video_models checkpoint directory "
                f"pretrained on configs/task_set/prior_broad.yaml (see configs/prior/planner.yaml), or prior=none")
        if small_path is not None and path.resolve() == small_path.resolve():
            raise ValueError(f"the planner prior {prior.path!r} is the in-domain planner itself; a prior is a "
                             f"different model (configs/prior/planner.yaml)")
        if (path / "model_index.json").is_file() or (path / "unet").is_dir():
            raise ValueError(f"{prior.path!r} is a diffusers pipeline, not a video_models planner: use prior=diffusers")
        big = _read_planner_config(path, "planner prior")
        check_planner_pair(big, small, _vae_config(big), _vae_config(small))
        return prior
    p = local_pipeline_dir(path)
    unet = read_json(p / "unet" / "config.json")
    unet_class = unet.get("_class_name", "UNet3DConditionModel")
    if unet_class not in VIDEO_UNETS:
        raise ValueError(f"{p / 'unet'} holds a {unet_class}; a diffusers prior needs one of {VIDEO_UNETS}")
    vae = read_json(p / "vae" / "config.json")
    hint = f"configure the in-domain model with space='latent' and vae_path='{p / 'vae'}'"
    if small.space != "latent":
        raise ValueError(f"a diffusers prior diffuses VAE latents, the in-domain planner pixels: {hint}")
    small_vae = _vae_config(small)
    if small_vae is not None and not same_vae(small_vae, vae):
        raise ValueError(f"the in-domain model's VAE ({small.vae_path}) differs from the prior's ({VAE_KEYS}): {hint}")
    factor = 2 ** (len(vae.get("block_out_channels", [0])) - 1)
    down = 2 ** (len(unet.get("block_out_channels", [0])) - 1)
    if small.image_size % (factor * down):
        raise ValueError(f"image_size {small.image_size} does not fit the prior: it must divide by "
                         f"{factor * down} (VAE x{factor}, UNet x{down})")
    max_frames = unet.get("motion_max_seq_length")
    if unet_class == "UNetMotionModel" and max_frames and small.num_frames > max_frames:
        raise ValueError(f"num_frames {small.num_frames} exceeds the motion module's motion_max_seq_length {max_frames}")
    return prior


def _vae_config(cfg: VideoModelConfig) -> dict | None:
    if cfg.space != "latent":
        return None
    f = Path(cfg.vae_path) / "config.json"
    return read_json(f) if f.is_file() else None


def load_plan_model(in_domain: str | Path, prior: ComposeConfig | Mapping | None = None,
                    device: str = "cpu") -> Any:
    """The planning model: the in-domain Planner for prior kind none, else a ComposedPlanner.

    Both have plan(instruction, frame, num_steps, seed) and plan_batch(instructions, frames, num_steps, seed).
    """
    from video_models.planner import load_planner

    prior = check_prior(prior, in_domain)
    if prior.kind == "none":
        return load_planner(in_domain, device)
    from video_models.compose import BigVideoModel, ComposedPlanner, PlannerPrior

    if prior.kind == "diffusers":
        big = BigVideoModel(prior.path, device, prior.dtype)
        return ComposedPlanner(big, load_planner(in_domain, device, vae=big.vae), prior)
    small = load_planner(in_domain, device)
    return ComposedPlanner(PlannerPrior(load_planner(prior.path, device, vae=small.model.vae)), small, prior)


def register_schema() -> None:
    """configs/prior/<name>.yaml extend "prior/schema" (typed keys: a typo is an error)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="prior", name="schema", node=ComposeConfig)


register_schema()
