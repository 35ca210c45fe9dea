"""Data for the learned success grader: labelled frame samples from the store, and failures to learn from.

Labels come from the simulator (``success_gt`` per episode, ``success`` per step). A sample is
one point ``t`` of an episode, seen as ``frames`` frames ending at ``t`` ``frame_gap`` steps apart:

- successful episode, ``t >= first success``: positive (the task is done in these frames);
- successful episode, ``t <= early_frac * first success``: negative (the task is not done yet);
  the frames just before success are left out, they are too close to call;
- failed episode: negative at its final frame and at ``failed_samples`` frames spread over it.

Scripted experts rarely fail, so ``build_grader_store`` makes failures on purpose: expert demos
cut before their first success (what a rollout with a short ``max_steps`` records: the expert is
deterministic) and rollouts of experts with strong action noise and a step budget (a mix of
successes and failures, near misses included).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from embodied.graders.base import trailing_indices
from sim.types import Episode

log = logging.getLogger(__name__)

TRUNCATED = "truncated"  # source tag of expert demos cut before success


def noised_source(noise_std: float) -> str:
    """Source tag of noised-expert rollouts, e.g. "noised1.5" (the noise level stays visible in the store)."""
    return f"noised{noise_std:g}"


def first_success(success: np.ndarray) -> int | None:
    """Index of the first step flagged successful, or None."""
    hits = np.flatnonzero(np.asarray(success, dtype=bool))
    return int(hits[0]) if hits.size else None


def truncate_before_success(episode: Episode, frac: float) -> Episode:
    """The first ``frac`` of ``episode`` up to its first success: a failure (``success_gt=0``).

    The same steps a rollout with ``max_steps`` set there records (a noise-free expert is deterministic).
    """
    f = first_success(episode.success)
    if f is None:
        raise ValueError("the episode never succeeds: nothing to cut")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    n = max(2, int(frac * f))  # steps kept (1 action at least); all before the first success
    action = episode.action[:n].copy()
    action[-1] = 0.0  # the last step holds the final observation and no action (sim.types)
    meta = {**episode.meta, "source": TRUNCATED, "success_gt": 0}
    return replace(episode, rgb=episode.rgb[:n], action=action, state=episode.state[:n],
                   success=episode.success[:n], meta=meta)


def build_grader_store(
    out: str | Path,
    tasks: Sequence[str],
    seeds: Sequence[int],
    demos: str | Path | None = None,
    noise_stds: Sequence[float] = (1.5, 3.0),
    max_steps: int = 120,
    truncate: tuple[float, float] = (0.3, 0.8),
    image_size: int = 64,
    camera: str = "corner2",
    workers: int = 2,
    progress: bool = True,
    noise_seed: int = 0,
) -> dict[str, int]:
    """Fill store ``out`` with labelled successes and failures of ``tasks`` x ``seeds``; counts per source.

    - expert demos: copied from store ``demos`` when it has them, rolled out here otherwise;
    - one truncated copy of each successful demo, cut at a fraction drawn from ``truncate`` (seeded);
    - one noised-expert rollout per noise level in ``noise_stds``, with a ``max_steps`` budget.
    Re-running skips (task, seed, source) triples the store already holds. ``noise_seed`` (a
    run's seed) is mixed into the seeds of the action noise and of the cut fractions.
    """
    from embodied.store import EpisodeStore
    from sim.catalog import instruction_for, validate_task_names
    from sim.rollout import rollout_many

    tasks, seeds = validate_task_names(list(tasks)), [int(s) for s in seeds]
    with EpisodeStore(out, mode="a", image_size=image_size, camera=camera) as store:
        have = {(m["task"], m["seed"], m["source"]) for m in map(store.meta, range(len(store)))}

        def add(episode: Episode) -> None:
            key = (episode.meta["task"], episode.meta["seed"], episode.meta["source"])
            if key not in have:
                store.append(episode)
                have.add(key)

        def add_expert(episode: Episode) -> None:
            add(episode)
            if episode.succeeded:  # the fraction is fixed by (task, seed): a re-run cuts the same place
                entropy = [int(episode.meta["seed"]), sum(map(ord, episode.meta["task"]))]
                rng = np.random.default_rng(entropy + ([int(noise_seed)] if noise_seed else []))
                add(truncate_before_success(episode, float(rng.uniform(*truncate))))

        # Expert demos (and their truncated copies): from the demo store where it has them.
        missing = {(t, s) for t in tasks for s in seeds if (t, s, "expert") not in have}
        if demos is not None and missing:
            with EpisodeStore(demos) as source:
                if source.image_size != (image_size, image_size):
                    raise ValueError(f"{demos} holds {source.image_size} frames, this store {image_size} px")
                for i in source.filter(source="expert", task=sorted({t for t, _ in missing})):
                    meta = source.meta(i)
                    if (meta["task"], meta["seed"]) in missing:
                        add_expert(source.episode(i))
                        missing.discard((meta["task"], meta["seed"]))
        jobs = [dict(task=t, seed=s, image_size=image_size, camera=camera, instruction=instruction_for(t, s))
                for t, s in sorted(missing)]
        # ... and the noised experts, in the same worker pool.
        for noise in noise_stds:
            jobs += [dict(task=t, seed=s, image_size=image_size, camera=camera, noise_std=float(noise),
                          noise_seed=int(noise_seed), max_steps=max_steps, instruction=instruction_for(t, s))
                     for t in tasks for s in seeds if (t, s, noised_source(noise)) not in have]
        log.info("rolling out %d episodes into %s", len(jobs), out)
        episodes = rollout_many(jobs, workers=workers, progress=progress)
        for job, episode in zip(jobs, episodes):
            if "noise_std" in job:
                add(replace(episode, meta={**episode.meta, "source": noised_source(job["noise_std"])}))
            else:
                add_expert(episode)
        counts: dict[str, int] = {}
        for m in map(store.meta, range(len(store))):
            counts[m["source"]] = counts.get(m["source"], 0) + 1
    return counts


# --- choosing episodes and samples ---------------------------------------------------------------
def select_episodes(store, tasks: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                    min_seed: int | None = None, max_seed: int | None = None, labelled: bool = True) -> list[int]:
    """Episode ids of ``store`` by task, source and seed range (inclusive); ``labelled``: success_gt known."""
    conditions = {}
    if tasks is not None:
        conditions["task"] = list(tasks)
    if sources is not None:
        conditions["source"] = list(sources)
    if labelled:
        conditions["success_gt"] = [0, 1]
    seeds = store.column("seed")
    return [i for i in store.filter(**conditions)
            if (min_seed is None or seeds[i] >= min_seed) and (max_seed is None or seeds[i] <= max_seed)]


def sample_points(success: np.ndarray, success_gt: int, cfg) -> list[tuple[int, int]]:
    """(step, label) samples of one episode (see the module docstring); ``cfg``: a GraderDataConfig."""
    length = len(success)
    last = length - 1
    if success_gt == 1:
        f = first_success(success)
        if f is None:  # labelled a success without per-step flags: only the final frame is sure
            return [(last, 1)]
        flagged = np.flatnonzero(success)
        picks = flagged[np.linspace(0, len(flagged) - 1, min(len(flagged), cfg.positive_samples)).round().astype(int)]
        points = {(last, 1), *((int(t), 1) for t in picks)}
        early = int(cfg.early_frac * f)
        if cfg.early_samples and early >= 0:
            points |= {(int(t), 0) for t in np.linspace(0, early, cfg.early_samples).round()}
        return sorted(points)
    if success_gt == 0:
        spread = np.linspace(0, last, cfg.failed_samples + 1)[:-1].round() if cfg.failed_samples else []
        return sorted({(last, 0), *((int(t), 0) for t in spread)})
    return []


class GraderSamples:
    """Map-style dataset of labelled frame stacks: item j = {"frames": uint8 (F, H, W, 3), "label", "instruction"}.

    The frames every sample needs are read from the store once, at construction (a few frames per
    episode: ~25 MB per 100 episodes at 64 px), so training never goes back to zarr.
    """

    def __init__(self, store, episodes: Sequence[int], frames: int, frame_gap: int, cfg) -> None:
        labels, self.instructions = [], []
        blocks, rows, offset = [], [], 0
        for i in episodes:
            meta = store.meta(i)
            points = sample_points(store.get(i, "success"), meta["success_gt"], cfg)
            if not points:
                continue
            stacks = [trailing_indices(t + 1, frames, frame_gap) for t, _ in points]
            needed = np.unique(np.concatenate(stacks))
            blocks.append(store.get(i, "rgb", needed))
            where = {int(t): offset + k for k, t in enumerate(needed)}
            for (t, label), stack in zip(points, stacks):
                rows.append([where[int(s)] for s in stack])  # rows of self.frames, oldest first
                labels.append(label)
                self.instructions.append(meta["instruction"])
            offset += len(needed)
        self.frames = np.concatenate(blocks) if blocks else np.empty((0, 1, 1, 3), np.uint8)
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, frames)
        self.labels = np.asarray(labels, dtype=np.float32)

    @property
    def num_positive(self) -> int:
        return int(self.labels.sum())

    @property
    def num_negative(self) -> int:
        return len(self.labels) - self.num_positive

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, j: int) -> dict:
        return {"frames": self.frames[self.rows[j]], "label": self.labels[j], "instruction": self.instructions[j]}
