"""Expert rollouts into ``Episode``s, in this process or in a pool of spawn worker processes.

MuJoCo is imported lazily (inside functions) so that a worker's initializer can set its
rendering and threading environment before anything loads the GL or BLAS libraries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from sim.catalog import instruction_for, validate_task_names
from sim.pool import run_in_workers
from sim.types import Episode

JOB_KEYS = ("task", "seed", "image_size", "camera", "noise_std", "noise_seed", "max_steps", "extra_steps_after_success",
            "instruction")


def rollout_episode(
    task: str,
    seed: int,
    image_size: int = 64,
    camera: str = "corner2",
    noise_std: float = 0.0,
    noise_seed: int = 0,
    max_steps: int | None = None,
    instruction: str | None = None,
    stop_on_success: bool = True,
    extra_steps_after_success: int = 5,
    env=None,
) -> Episode:
    """One expert episode of ``task`` from ``reset(seed=seed)``.

    The episode ends at the step budget (``min(max_steps, 500)``) or, with ``stop_on_success``,
    ``extra_steps_after_success`` steps after the first success. Arrays follow ``sim.types``:
    L = T + 1 steps, the last with a zero action; ``success[0]`` is False.
    ``env``: an env from ``make_env`` for this task to reuse (its image size and camera apply).
    The action noise is seeded by (``seed``, ``noise_seed``): a run's seed gives other noise.
    """
    from sim.env import MAX_PATH_LENGTH, make_env
    from sim.experts import make_expert

    own_env = env is None
    if own_env:
        env = make_env(task, image_size=image_size, camera=camera)
    elif getattr(env.unwrapped, "task", task) != task:
        raise ValueError(f"env is for task {env.unwrapped.task!r}, not {task!r}")
    if extra_steps_after_success < 0:
        raise ValueError(f"extra_steps_after_success must be >= 0, got {extra_steps_after_success}")
    budget = MAX_PATH_LENGTH if max_steps is None else min(int(max_steps), MAX_PATH_LENGTH)
    budget = min(budget, getattr(env.unwrapped, "max_episode_steps", budget))
    if budget < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    try:
        # Noise stream independent of the scene draw, but fixed by the seed.
        entropy = [int(seed), 0x5EED] + ([int(noise_seed)] if noise_seed else [])
        expert = make_expert(task, noise_std=noise_std, seed=np.random.SeedSequence(entropy))
        obs, _ = env.reset(seed=int(seed))
        rgbs, states, actions, successes = [obs["rgb"]], [obs["state"]], [], [False]
        first_success = None
        for t in range(budget):
            action = expert.act(obs["state"])
            obs, _, terminated, truncated, info = env.step(action)
            actions.append(action)
            rgbs.append(obs["rgb"])
            states.append(obs["state"])
            successes.append(bool(info["success"]))
            if successes[-1] and first_success is None:
                first_success = t + 1
            if terminated or truncated:
                break
            if stop_on_success and first_success is not None and (t + 1) - first_success >= extra_steps_after_success:
                break
    finally:
        if own_env:
            env.close()
    actions.append(np.zeros(4, np.float32))
    success = np.asarray(successes, dtype=bool)
    meta = dict(
        task=task,
        instruction=instruction if instruction is not None else instruction_for(task, seed),
        source="expert",
        seed=int(seed),
        success_gt=int(success.any()),
        created_at=time.time(),
    )
    return Episode(
        rgb=np.stack(rgbs).astype(np.uint8, copy=False),
        action=np.stack(actions).astype(np.float32, copy=False),
        state=np.stack(states).astype(np.float32, copy=False),
        success=success,
        meta=meta,
    )


# --- running jobs ----------------------------------------------------------------------------------
_ENV_CACHE: dict[tuple[str, int, str], Any] = {}


def _cached_env(cache: dict, task: str, image_size: int, camera: str):
    from sim.env import make_env

    key = (task, int(image_size), camera)
    if key not in cache:
        cache[key] = make_env(task, image_size=image_size, camera=camera)
    return cache[key]


def _job_kwargs(job: dict[str, Any]) -> dict[str, Any]:
    unknown = set(job) - set(JOB_KEYS)
    if unknown:
        raise ValueError(f"unknown rollout job keys {sorted(unknown)}; allowed: {list(JOB_KEYS)}")
    kw = {k: job[k] for k in JOB_KEYS if k in job and job[k] is not None}
    kw.setdefault("image_size", 64)
    kw.setdefault("camera", "corner2")
    return kw


def _run_job(job: dict[str, Any], cache: dict | None = None) -> Episode:
    kw = _job_kwargs(job)
    cache = _ENV_CACHE if cache is None else cache
    env = _cached_env(cache, kw["task"], kw["image_size"], kw["camera"])
    return rollout_episode(**kw, env=env)


def _job_error(job: dict[str, Any], exc: BaseException) -> RuntimeError:
    return RuntimeError(
        f"rollout of task={job.get('task')!r} seed={job.get('seed')!r} failed: {type(exc).__name__}: {exc}"
    )


def rollout_many(
    jobs: Iterable[dict[str, Any]],
    workers: int = 2,
    progress: bool = True,
    in_process: bool | None = None,
) -> Iterator[Episode]:
    """Run rollout jobs (dicts of ``rollout_episode`` arguments) and yield their Episodes in job order.

    ``workers`` > 1 runs them in that many spawn processes (``sim.pool``; each caches one env per
    (task, image_size, camera)); 0 or 1 runs them here (``in_process=False`` forces a pool even
    for one worker).
    A failing job raises RuntimeError naming its task and seed (the worker's error is the cause).
    """
    jobs = list(jobs)
    for job in jobs:
        _job_kwargs(job)
    validate_task_names([job["task"] for job in jobs])
    if in_process is None:
        in_process = workers <= 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="rollouts", unit="ep")
    try:
        if in_process:
            yield from _run_here(jobs, bar)
        else:
            yield from run_in_workers(_run_job, jobs, max(1, int(workers)), _job_error,
                                      on_done=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def _run_here(jobs: list[dict[str, Any]], bar) -> Iterator[Episode]:
    cache: dict = {}
    try:
        for job in jobs:
            try:
                episode = _run_job(job, cache)
            except Exception as exc:
                raise _job_error(job, exc) from exc
            if bar is not None:
                bar.update(1)
            yield episode
    finally:
        for env in cache.values():
            env.close()
