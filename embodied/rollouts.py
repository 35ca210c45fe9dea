"""Plan-and-execute rollouts in simulation: a planner's frames, followed by a policy, in MetaWorld.

    episode, plans = rollout_plan_episode("reach-v3", 10_000, "oracle", policy, ExecutorConfig())
    for result in rollout_plan_many(jobs, settings, workers=2):   # spawn workers, in job order
        ...

Used by evaluation (``embodied.evaluate``) and, later, by the SAIL loop to practise target tasks.

Planner specs: a ``video_models`` checkpoint directory, or ``"oracle"``: the scripted expert's own
future frames for the same (task, seed) (see ``OraclePlanner``). Policy specs: a ``policies``
checkpoint directory, or ``"expert"``: the scripted expert acts alone and no planner is asked
(the upper bound of every planner + policy pair).

Plans handed to ``policies.PlanExecutor`` are ``1 + K`` frames: frame 0 stands for the current
frame (the executor skips it) and frames 1..K are the sub-goals, the last one the task's end. A
video model predicts K future frames after its conditioning frame; the current frame is put in
front of them, so both kinds of planner give the executor the same layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied import plan_server
from embodied.checkpoints import check_kind, load_checkpoint
from embodied.config import check_plan_batch
from policies.config import ExecutorConfig
from sim.catalog import instruction_for, validate_task_names
from sim.pool import WORKER_ENV, run_in_workers
from sim.types import Episode

ORACLE = "oracle"  # planner spec: the scripted expert's future frames for the same (task, seed)
EXPERT = "expert"  # policy spec: the scripted expert itself, no planner
DEFAULT_ORACLE_FRAMES = 7  # K sub-goal frames per oracle plan: the video model's default num_frames

log = logging.getLogger(__name__)


# --- planners ---------------------------------------------------------------------------------------
class OraclePlanner:
    """Ground-truth plans: the frames of one expert episode of the same (task, seed).

    Asked to plan from the current frame, it finds the expert frame closest to it (pixel MSE; the
    earliest on ties) and returns that frame followed by ``num_frames`` frames evenly spaced after
    it, ending at the expert's last frame: uint8 (1 + K, H, W, 3). ``indices`` logs which expert
    frames each plan used.
    """

    def __init__(self, expert_frames: np.ndarray, num_frames: int = DEFAULT_ORACLE_FRAMES):
        frames = np.asarray(expert_frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) == 0:
            raise ValueError(f"expert_frames must be uint8 (L, H, W, 3), got {frames.dtype} {frames.shape}")
        if int(num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.frames, self.num_frames = frames, int(num_frames)
        self._flat = frames.reshape(len(frames), -1).astype(np.float32)
        self.indices: list[np.ndarray] = []

    def closest(self, frame: np.ndarray) -> int:
        d = self._flat - np.asarray(frame, np.float32).reshape(1, -1)
        return int(np.argmin(np.mean(d * d, axis=1)))

    def plan_indices(self, frame: np.ndarray) -> np.ndarray:
        start = self.closest(frame)
        return np.rint(np.linspace(start, len(self.frames) - 1, self.num_frames + 1)).astype(np.int64)

    def __call__(self, instruction: str, frame: np.ndarray) -> np.ndarray:
        if np.shape(frame) != self.frames.shape[1:]:
            raise ValueError(f"frame must have shape {self.frames.shape[1:]}, got {np.shape(frame)}")
        idx = self.plan_indices(frame)
        self.indices.append(idx)
        return self.frames[idx]


class VideoPlanFn:
    """A ``video_models`` planner (``.plan(instruction, frame, num_steps, seed)``) as the executor's
    planner: the current frame, then the K predicted frames. Plan i of an episode samples with a
    seed fixed by (episode seed, i) and the run's ``sampling_seed``, so reruns and worker processes
    give the same plans, and another run seed other ones.
    """

    def __init__(self, planner: Any, seed: int, num_steps: int | None = None, sampling_seed: int = 0):
        if not callable(getattr(planner, "plan", None)):
            raise TypeError(f"planner must have plan(instruction, first_frame, num_steps, seed), got {type(planner).__name__}")
        self.planner, self.seed, self.num_steps, self.calls = planner, int(seed), num_steps, 0
        self.sampling_seed = int(sampling_seed)

    def next_seed(self) -> int:
        """The sampling seed of this episode's next plan (and count it as made)."""
        entropy = [self.seed, self.calls] + ([self.sampling_seed] if self.sampling_seed else [])
        self.calls += 1
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def with_current(self, frame: np.ndarray, future: np.ndarray) -> np.ndarray:
        """The executor's plan: ``frame`` (H, W, 3), then the planner's K frames uint8 (K, H, W, 3)."""
        future = np.asarray(future)
        if future.ndim != 4 or future.shape[1:] != frame.shape:
            raise ValueError(f"planner.plan must return uint8 (K, {', '.join(map(str, frame.shape))}), got {future.shape}")
        return np.concatenate([frame[None], future.astype(np.uint8, copy=False)])

    def __call__(self, instruction: str, frame: np.ndarray) -> np.ndarray:
        future = self.planner.plan(instruction, frame, num_steps=self.num_steps, seed=self.next_seed())
        return self.with_current(frame, future)


def plan_together(requests: list[tuple[Any, str, np.ndarray]]) -> list[np.ndarray]:
    """Answer the plan requests ``(plan_fn, instruction, frame)`` of several episodes at once.

    Requests of ``VideoPlanFn`` s over one planner that seeds each plan of a batch on its own
    (``per_sample_seeds``) become one ``plan_batch`` call, each plan with the seed it would get
    alone; any other request is answered by its own plan_fn.
    """
    plans: list[np.ndarray | None] = [None] * len(requests)
    batches: dict[int, list[int]] = {}
    for i, (plan_fn, _, _) in enumerate(requests):
        if isinstance(plan_fn, VideoPlanFn) and getattr(plan_fn.planner, "per_sample_seeds", False):
            batches.setdefault(id(plan_fn.planner), []).append(i)
        else:
            plans[i] = plan_fn(requests[i][1], requests[i][2])
    for members in batches.values():
        fns = [requests[i][0] for i in members]
        if len({fn.num_steps for fn in fns}) > 1:
            raise ValueError("the plans of one batch must use one number of sampling steps")
        frames = [requests[i][2] for i in members]
        futures = fns[0].planner.plan_batch([requests[i][1] for i in members], np.stack(frames),
                                            num_steps=fns[0].num_steps, seed=[fn.next_seed() for fn in fns])
        for i, fn, frame, future in zip(members, fns, frames, futures):
            plans[i] = fn.with_current(frame, future)
    return plans


# --- one episode ------------------------------------------------------------------------------------
def rollout_plan_episode(
    task: str,
    seed: int,
    planner: Any,
    policy: Any,
    executor_cfg: ExecutorConfig | None = None,
    image_size: int = 64,
    camera: str = "corner2",
    *,
    instruction: str | None = None,
    checkpoint: str = "",
    oracle_frames: int = DEFAULT_ORACLE_FRAMES,
    plan_sample_steps: int | None = None,
    max_episode_steps: int | None = None,
    env: Any = None,
    sampling_seed: int = 0,
) -> tuple[Episode, list]:
    """One episode of ``task`` from ``reset(seed=seed)``: ``policy`` follows ``planner``'s plans.

    planner: ``"oracle"``, a ``video_models`` planner (has ``.plan``), or an executor-style callable
    ``(instruction, frame) -> uint8 (K, H, W, 3)`` whose frame 0 is the current frame.
    policy: ``"expert"`` (then ``planner`` is not used) or an object with ``predict_action``.
    The step budget, replanning and stopping come from ``executor_cfg`` for every kind of policy.
    Returns the Episode (meta: source "plan" or "expert", success_gt from the simulator, task,
    seed, instruction, checkpoint) and the plans made (``policies.PlanRecord``; none for the expert).
    ``env``: a ``sim.make_env`` env of this task to reuse (its image size and camera apply).
    ``sampling_seed``: mixed into the seeds of the plans' sampling and of the action noise (a run's seed).
    """
    episode, plans, _ = _rollout(task, seed, planner, policy, executor_cfg or ExecutorConfig(), image_size, camera,
                                 instruction, checkpoint, oracle_frames, plan_sample_steps, max_episode_steps, env,
                                 sampling_seed)
    return episode, plans


def _rollout(task, seed, planner, policy, cfg, image_size, camera, instruction, checkpoint, oracle_frames,
             plan_sample_steps, max_episode_steps, env, sampling_seed=0):
    """``rollout_plan_episode`` plus the executor's sub-goal index per step (for videos)."""
    from policies.executor import PlanExecutor
    from sim.env import make_env

    instruction = instruction if instruction is not None else instruction_for(task, seed)
    own_env = env is None
    if own_env:
        env = make_env(task, image_size=image_size, camera=camera, max_episode_steps=max_episode_steps)
    try:
        if isinstance(policy, str):
            if policy != EXPERT:
                raise ValueError(f"policy must be {EXPERT!r} or a policy object, got the string {policy!r}")
            episode = _expert_episode(task, seed, cfg, instruction, env)
            episode.meta.update(checkpoint=checkpoint, created_at=time.time())
            return episode, [], None
        plan_fn = _plan_fn(task, seed, planner, cfg, instruction, env, oracle_frames, plan_sample_steps, sampling_seed)
        record = PlanExecutor(policy, plan_fn, cfg).run(env, instruction, seed=int(seed), noise_stream=sampling_seed)
    finally:
        if own_env:
            env.close()
    return _executed(record, task, seed, instruction, checkpoint)


def _expert_episode(task, seed, cfg, instruction, env) -> Episode:
    """The expert under the executor's budget and stopping rule: the same episode the oracle shows."""
    from sim.rollout import rollout_episode

    return rollout_episode(task, seed, max_steps=cfg.max_steps, instruction=instruction,
                           stop_on_success=cfg.stop_on_success,
                           extra_steps_after_success=cfg.extra_steps_after_success, env=env)


def _plan_fn(task, seed, planner, cfg, instruction, env, oracle_frames, plan_sample_steps, sampling_seed):
    """What answers one episode's plan requests: ``(instruction, frame) -> uint8 (1 + K, H, W, 3)``."""
    if isinstance(planner, str):
        if planner != ORACLE:
            raise ValueError(f"planner must be {ORACLE!r} or a planner object, got the string {planner!r}")
        return OraclePlanner(_expert_episode(task, seed, cfg, instruction, env).rgb, oracle_frames)
    if callable(getattr(planner, "plan", None)):
        return VideoPlanFn(planner, seed, plan_sample_steps, sampling_seed)
    return planner


def _executed(record, task, seed, instruction, checkpoint) -> tuple[Episode, list, np.ndarray]:
    """An ExecutionRecord as (Episode, plans, sub-goal index per step)."""
    meta = dict(task=task, instruction=instruction, source="plan", seed=int(seed),
                success_gt=int(record.succeeded), checkpoint=checkpoint, created_at=time.time())
    episode = Episode(rgb=record.frames, action=record.actions, state=record.states, success=record.success, meta=meta)
    return episode, record.plans, record.subgoal_index


# --- specs: checkpoint paths or the scripted stand-ins ------------------------------------------------
def check_spec(spec: str, kind: str, image_size: int) -> dict[str, Any] | None:
    """Check a planner / policy spec without loading weights; return its checkpoint config (None for
    the oracle / expert). Raises FileNotFoundError for a missing path and ValueError for a
    checkpoint whose image size is not the env's."""
    word = ORACLE if kind == "planner" else EXPERT
    if spec == word:
        return None
    try:
        config = check_kind(spec, kind).get("config")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{kind} checkpoint not found: {e} (give a {kind} checkpoint directory, or {word!r})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{Path(spec) / 'config.json'} has no 'config' section")
    size = config.get("image_size")
    if size != image_size:
        raise ValueError(
            f"the {kind} checkpoint {str(spec)!r} was trained on {size} px frames but the env renders "
            f"{image_size} px (set image_size={size}, or use a {kind} trained at {image_size} px)"
        )
    return config


def checkpoint_id(spec: str) -> str:
    """What the episode's ``checkpoint`` column records for a spec: the resolved path, or the word."""
    return spec if spec in (ORACLE, EXPERT) else str(Path(spec).resolve())


def prior_id(prior: dict | None) -> str:
    """What the episode's ``checkpoint`` column adds for a prior ("" without one)."""
    if not prior or prior.get("kind", "none") == "none":
        return ""
    return f";prior={prior['kind']}:{checkpoint_id(prior['path'])},w={prior['w']},g={prior['g']}"


def _load(kind: str, spec: str, prior: dict | None = None, device: str = "cpu") -> Any:
    if spec in (ORACLE, EXPERT):
        return spec
    if kind == "planner":  # the in-domain planner, composed with the prior when one is set
        from video_models import load_plan_model

        return load_plan_model(spec, prior, device=device)
    return load_checkpoint(spec, "policy", device)


# --- many episodes, in this process or in spawn workers -----------------------------------------------
@dataclass(frozen=True)
class PlanJob:
    """One episode to run: (task, seed, instruction) under a planner spec and a policy spec."""

    task: str
    seed: int
    instruction: str = ""  # "": the catalog's instruction for (task, seed)
    planner: str = ORACLE  # video_models checkpoint dir | "oracle"
    policy: str = EXPERT  # policies checkpoint dir | "expert"
    method: str = ""  # a label carried to the result (e.g. the evaluation's row name)


@dataclass(frozen=True)
class RolloutSettings:
    """What every job of a run shares."""

    image_size: int = 64  # square frames, pixels
    camera: str = "corner2"  # MetaWorld camera
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # step budget, replanning, stopping
    oracle_frames: int = DEFAULT_ORACLE_FRAMES  # K sub-goals per oracle plan
    plan_sample_steps: int | None = None  # sampler steps of a video planner; None: its config's
    plan_sampler: str | None = None  # a video planner's sampler (VideoModelConfig.sampler); None: its config's
    max_episode_steps: int | None = None  # env truncation; None: MetaWorld's 500
    # Mixed into every plan's sampling seed and the executor's action-noise seed (with the episode
    # seed): the SAIL loop's seed, so that loop seeds differ in their plans, not only in training.
    sampling_seed: int = 0
    # The prior the plans are composed with (video_models.prior.ComposeConfig fields as a dict, so
    # it travels to spawn workers); None or kind "none": the in-domain planner alone.
    prior: dict | None = None
    # Episodes a worker runs side by side (one env each; ``plan_units`` picks them), the plans
    # they wait for sampled in one planner call; 1: one episode at a time.
    plan_batch: int = 1
    # Where video plans are sampled: None: each worker holds its own planner on its CPU core; a
    # torch device ("cuda", "cuda:1"; embodied.device.plan_device): one planner there, in this
    # process, answers every worker's requests in merged batches (embodied.plan_server).
    plan_device: str | None = None
    plan_precision: str = "float32"  # float32 | bfloat16: the served planner's sampling precision
    plan_compile: str = "none"  # none | cuda_graphs | inductor: the served planner's network (VideoDiffusion.compile_network)
    plan_max_batch: int = 64  # plans per call of the served planner at most


@dataclass
class PlanResult:
    job: PlanJob
    episode: Episode
    plans: list  # policies.PlanRecord, in order
    subgoal_index: np.ndarray | None  # (L,) plan frame used as goal for action t; None for the expert


_WORKER_CACHE: dict[Any, Any] = {}  # in a worker: envs and models, kept across jobs


def _init_worker(env: dict[str, str], channel: tuple | None = None) -> None:
    os.environ.update(env)
    import torch

    from embodied.plan_server import connect

    torch.set_num_threads(1)  # N workers use N cores
    connect(channel)  # a plan server's channel: this worker asks it for video plans


def _cached(cache: dict, key: tuple, make) -> Any:
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _env(cache: dict, task: str, settings: RolloutSettings, slot: int = 0) -> Any:
    """The cached env ``slot`` of ``task``: one per episode that runs at the same time."""
    from sim.env import make_env

    s = settings
    return _cached(cache, ("env", task, slot), lambda: make_env(task, image_size=s.image_size, camera=s.camera,
                                                                 max_episode_steps=s.max_episode_steps))


def _close_envs(cache: dict, keep=lambda key: False) -> None:
    for key in [key for key in cache if key[0] == "env" and not keep(key)]:
        cache.pop(key).close()


def _job_parts(job: PlanJob, settings: RolloutSettings, cache: dict) -> tuple[Any, Any, str]:
    """(planner, policy, checkpoint column) of a job, the models loaded once per process."""
    s = settings
    policy = _cached(cache, ("policy", job.policy), lambda: _load("policy", job.policy))
    prior_key = json.dumps(s.prior, sort_keys=True) if s.prior else ""
    served = plan_server.connected() and job.planner != ORACLE
    planner = job.planner if job.policy == EXPERT else _cached(
        cache, ("planner", job.planner, prior_key) + (("served",) if served else ()),
        lambda: plan_server.RemotePlanner(job.planner) if served else _device_planner(job.planner, s))
    checkpoint = f"planner={checkpoint_id(job.planner)};policy={checkpoint_id(job.policy)}" if job.policy != EXPERT else EXPERT
    if job.policy != EXPERT and job.planner != ORACLE:
        checkpoint += prior_id(s.prior)
    return planner, policy, checkpoint


def _device_planner(spec: str, settings: RolloutSettings) -> Any:
    """A video planner loaded where ``settings`` plan (the CPU without a plan device), with the
    sampler override and, on a plan device, its precision and compilation."""
    s = settings
    planner = _load("planner", spec, s.prior, s.plan_device or "cpu")
    if s.plan_sampler:
        if not callable(getattr(planner, "set_sampler", None)):
            raise ValueError(f"plan_sampler={s.plan_sampler!r} needs a video_models Planner, not a "
                             f"{type(planner).__name__} (a composed planner samples with its own DDIM)")
        if planner.config.sampler != s.plan_sampler:
            planner.set_sampler(s.plan_sampler)
    if s.plan_device and callable(getattr(planner, "for_inference", None)):
        planner.for_inference(precision=s.plan_precision, compile=s.plan_compile)
    return planner


def _run_job(job: PlanJob, settings: RolloutSettings, cache: dict | None = None, slot: int = 0) -> PlanResult:
    cache = _WORKER_CACHE if cache is None else cache
    s = settings
    planner, policy, checkpoint = _job_parts(job, s, cache)
    episode, plans, goals = _rollout(job.task, job.seed, planner, policy, s.executor, s.image_size, s.camera,
                                     job.instruction or None, checkpoint, s.oracle_frames, s.plan_sample_steps,
                                     s.max_episode_steps, _env(cache, job.task, s, slot), s.sampling_seed)
    return PlanResult(job, episode, plans, goals)


def _run_group(jobs: list[PlanJob], settings: RolloutSettings, cache: dict | None = None) -> list[PlanResult]:
    """``_run_job`` for each of ``jobs``, their episodes side by side, one env each.

    Every episode runs until it asks for a plan (``PlanExecutor.episode``) or ends; then the
    waiting ones are planned together (``plan_together``: one planner call), and so on. Decisions,
    plan seeds and action noise stay each episode's own, so the episodes are those of ``_run_job``
    (with a video planner: up to float rounding in batched sampling). Expert jobs run on their own.
    """
    from policies.executor import PlanExecutor

    cache = _WORKER_CACHE if cache is None else cache
    s = settings
    tasks = [job.task for job in jobs]
    _close_envs(cache, keep=lambda key: key[1] in tasks)  # envs of earlier tasks: memory, not speed
    slots = [tasks[:i].count(task) for i, task in enumerate(tasks)]
    results: dict[int, PlanResult] = {}
    running: dict[int, tuple] = {}  # job index -> (episode generator, plan_fn, instruction, checkpoint)
    requests: dict[int, np.ndarray] = {}  # job index -> the frame it waits for a plan from
    try:
        for i, job in enumerate(jobs):
            with _naming(job):
                if job.policy == EXPERT:
                    results[i] = _run_job(job, s, cache, slots[i])
                    continue
                planner, policy, checkpoint = _job_parts(job, s, cache)
                env = _env(cache, job.task, s, slots[i])
                instruction = job.instruction or instruction_for(job.task, job.seed)
                plan_fn = _plan_fn(job.task, job.seed, planner, s.executor, instruction, env, s.oracle_frames,
                                   s.plan_sample_steps, s.sampling_seed)
                steps = PlanExecutor(policy, plan_fn, s.executor).episode(env, instruction, int(job.seed), s.sampling_seed)
                running[i] = (steps, plan_fn, instruction, checkpoint)
                requests[i] = next(steps)  # every episode plans at its first step
        while requests:
            waiting = sorted(requests)
            with _naming(jobs[waiting[0]]):
                plans = plan_together([(running[i][1], running[i][2], requests[i]) for i in waiting])
            requests = {}
            for i, plan in zip(waiting, plans):
                steps, _, instruction, checkpoint = running[i]
                with _naming(jobs[i]):
                    try:
                        requests[i] = steps.send(plan)
                    except StopIteration as end:
                        job = jobs[i]
                        results[i] = PlanResult(job, *_executed(end.value, job.task, job.seed, instruction, checkpoint))
    finally:
        for steps, *_ in running.values():
            steps.close()
    return [results[i] for i in range(len(jobs))]


class RolloutError(RuntimeError):
    """A job failed; the message names its task and seed, the cause is the job's own error."""


@contextlib.contextmanager
def _naming(job: PlanJob):
    """Errors inside become a RolloutError that names ``job``."""
    try:
        yield
    except RolloutError:
        raise
    except Exception as exc:
        raise _job_error(job, exc) from exc


def _job_error(job: PlanJob, exc: BaseException) -> RolloutError:
    if isinstance(exc, RolloutError):  # from a group of jobs: it names its own
        return RolloutError(*exc.args)
    return RolloutError(f"rollout of {job.method or 'job'} task={job.task!r} seed={job.seed} failed: "
                        f"{type(exc).__name__}: {exc}")


def rollout_plan_many(
    jobs: Iterable[PlanJob], settings: RolloutSettings, workers: int = 2, progress: bool = True
) -> Iterator[PlanResult]:
    """Run ``jobs`` and yield their results in job order (whichever worker finishes first).

    ``workers`` > 1: that many spawn processes (``sim.pool``), each loading a planner / policy
    checkpoint once and caching envs; 0 or 1: here. ``settings.plan_batch`` > 1: each unit of work
    is up to that many jobs run side by side, their plans sampled together (``_run_group``).
    A failing job raises RolloutError (a RuntimeError) naming its task and seed.
    """
    jobs = list(jobs)
    validate_task_names([job.task for job in jobs])
    units = plan_units(len(jobs), check_plan_batch(settings.plan_batch))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="eval rollouts", unit="ep")
    items = [([jobs[i] for i in unit], settings) for unit in units]
    server, stack, results = None, contextlib.ExitStack(), None
    if workers > 1 and settings.plan_device and any(j.planner != ORACLE and j.policy != EXPERT for j in jobs):
        server = plan_server.PlanServer(lambda spec: _device_planner(spec, settings), int(workers),
                                        max_batch=settings.plan_max_batch, bucket=settings.plan_compile != "none")
    try:
        if workers <= 1:
            results = _run_here(items)
        else:
            if server is not None:
                stack.enter_context(server)
            results = run_in_workers(_run_unit, items, int(workers), lambda item, exc: _job_error(item[0][0], exc),
                                     initializer=_init_worker, initargs=(WORKER_ENV, server and server.channel))
        finished: dict[int, PlanResult] = {}
        next_job = 0
        for unit, unit_results in zip(units, results):
            if bar is not None:
                bar.update(len(unit_results))
            finished.update(zip(unit, unit_results))
            while next_job in finished:  # job order, whatever order the units hold them in
                yield finished.pop(next_job)
                next_job += 1
    finally:
        if bar is not None:
            bar.close()
        if results is not None:
            results.close()  # the pool shuts down (its running units still get their plans) ...
        stack.close()  # ... then the plan server stops
        if server is not None:
            log.info("plan server on %s: %d calls, %.1f plans a call", settings.plan_device, len(server.calls),
                     sum(server.calls) / max(1, len(server.calls)))


# Jobs a batched run spreads over its units at a time: results wait at most this many jobs for
# the ones before them (memory), and every unit of a block mixes its tasks (balance).
UNIT_BLOCK = 16


def plan_units(n_jobs: int, plan_batch: int) -> list[list[int]]:
    """Job indices of each unit of work, in the order the units are run.

    One job a unit at ``plan_batch`` 1. Otherwise jobs (ordered task by task) are dealt out in
    turn over the units of each block of ``UNIT_BLOCK * plan_batch`` jobs, so that a unit holds a
    mix of tasks and seeds: a unit lasts as long as its longest episode, and units of one hard task
    measured 2x the wall time of mixed ones on 2 workers.
    """
    if plan_batch == 1:
        return [[i] for i in range(n_jobs)]
    units = []
    block = UNIT_BLOCK * plan_batch
    for start in range(0, n_jobs, block):
        size = min(block, n_jobs - start)
        n_units = -(-size // plan_batch)
        units += [list(range(start + u, start + size, n_units)) for u in range(n_units)]
    return units


def _run_here(items: list) -> Iterator[list[PlanResult]]:
    """``_run_unit`` of each item in this process, one cache (envs, models) for all of them."""
    cache: dict = {}
    try:
        for item in items:
            yield _run_unit(item, cache)
    finally:
        _close_envs(cache)


def _run_unit(item: tuple[list[PlanJob], RolloutSettings], cache: dict | None = None) -> list[PlanResult]:
    """One unit of work: a single job as it always ran, or a group planned together."""
    jobs, settings = item
    if len(jobs) == 1:
        with _naming(jobs[0]):
            return [_run_job(jobs[0], settings, cache)]
    return _run_group(jobs, settings, cache)


