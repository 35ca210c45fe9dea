"""embodied-collect: scripted-expert demonstrations of a task set, written into the episode store.

    embodied-collect task_set=train_8 episodes_per_task=20 workers=2 image_size=64

Rollouts run in spawn worker processes; the parent is the single writer of the store. Collecting
again into the same store skips (task, seed) pairs it already holds, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from embodied.config import EnvConfig, PresetConfig, TaskSetConfig
from embodied.report import TaskStats, write_collect_report
from embodied.store import EpisodeStore
from sim.catalog import instruction_for, validate_task_names
from sim.rollout import rollout_many

log = logging.getLogger(__name__)


@dataclass
class CollectConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)
    episodes_per_task: int = 20  # seeds seed_start .. seed_start + episodes_per_task - 1 per task
    seed_start: int = 0  # keep evaluation seeds disjoint from these (e.g. start them at 10_000)
    workers: int = 2  # rollout processes (spawn); 0 or 1 runs in this process
    image_size: int = 64  # square frames, pixels
    noise_std: float = 0.0  # Gaussian action noise of the expert (std, action units)
    noise_seed: int = 0  # with each episode's seed, seeds its noise (the SAIL loop passes its own seed)
    # The episodes' source tag. The SAIL loop writes its noisy exploration demos (for the IDM only)
    # as "expert_noisy", so that the planner, which trains on source="expert", never sees them.
    source: str = "expert"
    store: str = "data/demos.zarr"  # episode store (created if missing, appended otherwise)
    progress: bool = True  # tqdm progress bar


ConfigStore.instance().store(name="collect_schema", node=CollectConfig)


def collect(cfg: CollectConfig, output_dir: str | Path | None = None) -> list[TaskStats]:
    """Roll out the experts and append their episodes; return per-task statistics.

    Statistics cover every expert episode of the requested (task, seed) pairs in the store,
    including ones collected by an earlier run.
    """
    tasks = validate_task_names(list(cfg.task_set.tasks))
    if cfg.episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be >= 1, got {cfg.episodes_per_task}")
    if not cfg.source:
        raise ValueError("source must be a non-empty tag (expert, expert_noisy, ...)")
    seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes_per_task))
    out = Path(output_dir) if output_dir is not None else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    with EpisodeStore(cfg.store, mode="a", image_size=cfg.image_size, camera=cfg.env.camera) as store:
        done = {(m["task"], m["seed"]) for m in map(store.meta, store.filter(source=cfg.source))}
        jobs = [
            dict(
                task=task,
                seed=seed,
                image_size=cfg.image_size,
                camera=cfg.env.camera,
                noise_std=cfg.noise_std,
                noise_seed=cfg.noise_seed,
                max_steps=cfg.env.max_steps,
                extra_steps_after_success=cfg.env.extra_steps_after_success,
                instruction=instruction_for(task, seed),
            )
            for task in tasks
            for seed in seeds
            if (task, seed) not in done
        ]
        log.info("collecting %d episodes (%d already in %s)", len(jobs), len(tasks) * len(seeds) - len(jobs), cfg.store)
        jsonl = open(out / "episodes.jsonl", "a") if out else None
        try:
            for episode in rollout_many(jobs, workers=cfg.workers, progress=cfg.progress):
                episode.meta["source"] = cfg.source
                index = store.append(episode)
                if jsonl:
                    row = {"index": index, "steps": len(episode), **episode.full_meta()}
                    jsonl.write(json.dumps(row) + "\n")
                    jsonl.flush()
        finally:
            if jsonl:
                jsonl.close()

        wanted = set(seeds)
        stats = []
        for task in tasks:
            ids = [i for i in store.filter(source=cfg.source, task=task) if store.meta(i)["seed"] in wanted]
            metas = [store.meta(i) for i in ids]
            lengths = [store.episode_length(i) - 1 for i in ids]  # actions taken
            stats.append(TaskStats.from_episodes(task, [m["success_gt"] == 1 for m in metas], lengths))

    if out:
        write_collect_report(stats, out, title=f"Expert demos: {cfg.task_set.name}, seeds {seeds[0]}..{seeds[-1]}")
    return stats
