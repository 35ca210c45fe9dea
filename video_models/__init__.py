"""video_models: text + first frame -> future frames (a video diffusion planner). Knows nothing about robots.

    from video_models import VideoModelConfig, Planner, load_planner
    planner = Planner(VideoModelConfig())           # train: planner.compute_loss(batch), planner.ema_step()
    plan = planner.plan("open the drawer", frame)   # uint8 (H, W, 3) -> uint8 (K, H, W, 3)

    from video_models import ComposeConfig, check_prior, load_plan_model   # a prior (configs/prior/)
    prior = check_prior(ComposeConfig(kind="planner", path="runs/prior/planner"), "runs/video/planner")
    planner = load_plan_model("runs/video/planner", prior)   # Planner for kind none, else ComposedPlanner

Torch-heavy modules load on first use, so importing the config (e.g. for Hydra) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from video_models.config import VideoModelConfig

if TYPE_CHECKING:
    from video_models.diffusion import VideoDiffusion
    from video_models.compose import ComposedPlanner
    from video_models.planner import Planner, load_planner
    from video_models.prior import ComposeConfig, check_prior, load_plan_model

__all__ = ["VideoModelConfig", "VideoDiffusion", "Planner", "load_planner", "ComposeConfig", "ComposedPlanner",
           "check_prior", "load_plan_model"]
_LAZY = {"VideoDiffusion": "video_models.diffusion", "Planner": "video_models.planner",
         "load_planner": "video_models.planner", "ComposedPlanner": "video_models.compose",
         "ComposeConfig": "video_models.prior", "check_prior": "video_models.prior",
         "load_plan_model": "video_models.prior"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'video_models' has no attribute {name!r}")
