"""embodied-train-video: train (or fine-tune) the text + first-frame video planner on store episodes.

    embodied-train-video preset=cpu_tiny task_set=train_8 store=data/demos.zarr
    embodied-train-video preset=gpu train.mixed_precision=bf16            # paper scale
    accelerate launch --num_processes 2 -m embodied.cli.train_video ...       # DDP, no code change

Writes into the Hydra run dir: metrics.jsonl, checkpoints/ (resumed automatically when the same
run dir is used again), samples/step_*.png|mp4 (plans beside the real future frames), and
planner/ (the final planner checkpoint: ``video_models.load_planner(run_dir / "planner")``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore

from embodied.checkpoints import write_checkpoint
from embodied.config import EnvConfig, PresetConfig, TaskSetConfig
from embodied.training import TrainConfig, TrainResult, fit, latest_checkpoint, seed_model_init
from sim.catalog import validate_task_names
from video_models.config import VideoModelConfig

log = logging.getLogger(__name__)


@dataclass
class TrainVideoConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # train on these tasks' episodes
    video_model: VideoModelConfig = field(default_factory=VideoModelConfig)  # configs/video_model/<preset>.yaml
    train: TrainConfig = field(default_factory=TrainConfig)
    # auto | cpu | cuda | cuda:N (embodied.device): where it trains (the yaml passes it to train.device)
    device: str = "auto"
    store: str = "data/demos.zarr"  # episode store to read
    sources: list[str] = field(default_factory=lambda: ["expert"])  # episode sources to train on
    success_only: bool = True  # only episodes whose sim ground truth (or grader) says success
    instruction_from_catalog: bool = True  # paraphrase augmentation from the task catalog
    num_sample_plans: int = 4  # plans drawn in each samples/ grid


ConfigStore.instance().store(name="train_video_schema", node=TrainVideoConfig)


def select_episodes(store, tasks: list[str], sources: list[str], success_only: bool) -> list[int]:
    conditions: dict[str, Any] = {"task": tasks, "source": sources}
    if success_only:
        conditions["success_gt"] = 1
    return store.filter(**conditions)


def _planner_trainable(planner, clips, num_sample_plans: int, seed: int):
    from embodied.training import Trainable
    from embodied.video import write_mp4
    from embodied.visual import frame_grid, save_png, side_by_side
    from video_models import load_planner

    def load(path: Path) -> None:
        loaded = load_planner(path)
        planner.model.load_state_dict(loaded.model.state_dict())
        planner.ema.load_state_dict(loaded.ema.state_dict())

    # Fixed examples for the periodic pictures: one episode per task, from its first frame.
    examples, seen = [], set()
    for episode, meta in clips.meta.items():
        if meta["task"] not in seen and len(examples) < num_sample_plans:
            seen.add(meta["task"])
            examples.append((episode, clips.clip(episode, 0), meta["instruction"]))

    def sample(step: int, run_dir: Path) -> None:
        if not examples:
            return
        firsts = np.stack([clip[0] for _, clip, _ in examples])
        plans = planner.plan_batch([text for _, _, text in examples], firsts, seed=seed)
        rows = []
        for (_, clip, _), plan in zip(examples, plans):
            rows += [clip, np.concatenate([clip[:1], plan])]  # truth, then the plan from the same frame
        out = Path(run_dir) / "samples"
        save_png(frame_grid(rows), out / f"step_{step:07d}.png", scale=2)
        truth = np.concatenate([clip for _, clip, _ in examples], axis=2)
        imagined = np.concatenate([np.concatenate([clip[:1], plan]) for (_, clip, _), plan in zip(examples, plans)], axis=2)
        write_mp4(out / f"step_{step:07d}.mp4", side_by_side(truth, imagined).repeat(2, axis=1).repeat(2, axis=2), fps=2)  # ffmpeg pads odd sizes

    return Trainable(module=planner.model, save=planner.save, load=load, after_step=planner.ema_step,
                     sample=sample, parameters=planner.parameters, to=planner.to)


def train_video(cfg: TrainVideoConfig, run_dir: str | Path, episodes: list[int] | None = None) -> TrainResult:
    """Train the planner on the selected store episodes (or ``episodes``); return the loop's result.

    The model comes from, in order: the run dir's latest checkpoint (resume), ``train.init_from``
    (fine-tune; its config wins over ``video_model``), or a fresh ``video_model``.
    """
    from embodied.clips import PlanClipDataset
    from embodied.store import EpisodeStore
    from video_models import Planner, load_planner

    run_dir = Path(run_dir)
    tasks = validate_task_names(list(cfg.task_set.tasks))
    if not Path(cfg.store).exists():
        raise FileNotFoundError(f"no episode store at {cfg.store}: collect demos first (embodied-collect store={cfg.store})")
    with EpisodeStore(cfg.store, mode="r") as store:
        if episodes is None:
            episodes = select_episodes(store, tasks, list(cfg.sources), cfg.success_only)
        if not episodes:
            raise ValueError(
                f"no episodes to train on in {cfg.store}: tasks={tasks}, sources={list(cfg.sources)}, "
                f"success_only={cfg.success_only} (collect demos first: embodied-collect store={cfg.store})"
            )
        if store.image_size != (cfg.video_model.image_size, cfg.video_model.image_size) and cfg.video_model.space == "pixel":
            raise ValueError(f"the store's frames are {store.image_size} but video_model.image_size={cfg.video_model.image_size}: "
                             f"set video_model.image_size (or collect at that size)")

    source = latest_checkpoint(run_dir) if cfg.train.resume else None
    source = source or (Path(cfg.train.init_from) if cfg.train.init_from else None)
    if source is not None:
        planner = load_planner(source)
    else:
        seed_model_init(cfg.train)
        planner = Planner(cfg.video_model)
    clips = PlanClipDataset(cfg.store, episodes, planner.config.num_frames, cfg.instruction_from_catalog, cfg.train.seed)
    log.info("training the planner on %d episodes (%d clips) of %d tasks", len(episodes), len(clips), len(tasks))
    trainable = _planner_trainable(planner, clips, cfg.num_sample_plans, cfg.train.seed)
    record = {"model": planner.config.to_dict(), "store": str(cfg.store), "episodes": len(episodes), "tasks": tasks}
    result = fit(trainable, clips, cfg.train, run_dir, config_record=record)
    if result.main_process:  # under DDP every rank holds the same weights; one writes them
        write_checkpoint(run_dir / "planner", planner.save)
    return result
