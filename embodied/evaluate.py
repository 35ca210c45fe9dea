"""embodied-eval: success in simulation of a planner + policy, beside its upper bounds, on held-out seeds.

    embodied-eval task_set=target_12 planner=runs/video/ckpt policy_ckpt=runs/idm/ckpt episodes_per_task=20
    embodied-eval task_set=train_8 policy_ckpt=expert     # the scripted experts alone

The policy field is ``policy_ckpt``, not ``policy``: ``policy/`` is a config group (the policy
architectures of embodied-train-policy), and Hydra reads ``policy=...`` as a choice of that group.

Every table holds, on the same (task, seed) pairs, the evaluated configuration and (with
``upper_bounds``) the scripted expert and the policy driven by the oracle planner (the expert's own
future frames). Writes into the output dir: episodes.jsonl (one row per episode), summary.md,
summary.csv, success.png and videos/<method>/<task>_seed<seed>.mp4 for the first seeds of each task.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from embodied.device import check_device
from embodied.config import (EnvConfig, PresetConfig, SeedRanges, TaskSetConfig, check_plan_sampling,
                             rollout_device_settings)
from embodied.report import TaskStats, write_eval_report
from embodied.rollouts import (
    DEFAULT_ORACLE_FRAMES,
    EXPERT,
    ORACLE,
    PlanJob,
    PlanResult,
    RolloutSettings,
    check_spec,
    rollout_plan_many,
)
from policies.config import ExecutorConfig
from sim.catalog import instruction_for, validate_task_names
import video_models.prior  # noqa: F401  (registers the schema configs/prior/ extend)

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)
    planner: str = ORACLE  # video planner checkpoint dir, or "oracle": the scripted expert's future frames
    policy_ckpt: str = EXPERT  # policy checkpoint dir (IDM / goal policy), or "expert": the scripted expert, no planner
    episodes_per_task: int = 5  # the first episodes_per_task seeds of the split's range, per task
    seeds: SeedRanges = field(default_factory=SeedRanges)  # configs/seeds/: what each seed range is for
    split: str = "validation"  # seed range measured: validation (tuning) | test (what results quote)
    seed_start: int | None = None  # measure seeds from here instead (outside the split's range)
    sampling_seed: int = 0  # mixed into every plan's sampling seed (a run's seed)
    # configs/prior/: the model the planner's plans are composed with (IPA); kind none: the planner alone
    prior: Any = field(default_factory=lambda: {"kind": "none"})
    train_store: str | None = None  # demo store the models were trained on: refuse eval seeds it holds
    workers: int = 2  # rollout processes (spawn); 0 or 1 runs in this process
    # auto | cpu | cuda | cuda:N (embodied.device): on a GPU one planner there serves every worker's
    # plans; on the CPU each worker plans alone. Environments and the policy stay on the CPU cores.
    device: str = "auto"
    image_size: int = 64  # square frames, pixels; checkpoints must have been trained at this size
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # budget, replanning (every method's budget)
    oracle_frames: int | None = None  # K sub-goals per oracle plan; None: the planner checkpoint's num_frames, else 7
    plan_sample_steps: int | None = None  # sampler steps per video plan; None: the checkpoint's sample_steps
    plan_sampler: str | None = None  # ddim | dpm_solver (VideoModelConfig.sampler); None: the checkpoint's
    videos: int = 1  # episodes per task and method written as MP4 (the lowest seeds)
    video_fps: int = 20  # frames per second of the MP4s
    upper_bounds: bool = True  # also run the expert and oracle planner + policy on the same seeds
    progress: bool = True  # tqdm progress bar

    def __post_init__(self) -> None:
        check_plan_sampling(self.plan_sampler, self.plan_sample_steps)
        check_device(self.device)


ConfigStore.instance().store(name="eval_schema", node=EvalConfig)


@dataclass(frozen=True)
class Method:
    """One row group of the table: a planner spec driving a policy spec."""

    name: str
    planner: str
    policy: str


@dataclass
class EvalResult:
    methods: list[Method]
    stats: dict[str, list[TaskStats]]  # method name -> per-task stats, in task order
    episodes: list[dict[str, Any]]  # the episodes.jsonl rows, in the order they finished
    table: str  # the Markdown table (summary.md)
    output_dir: Path | None


def _label(spec: str) -> str:
    return spec if spec in (ORACLE, EXPERT) else Path(spec).name


def methods_for(cfg: EvalConfig) -> list[Method]:
    """The evaluated configuration first, then the upper bounds that differ from it."""
    if cfg.policy_ckpt == EXPERT:
        main = Method(EXPERT, ORACLE, EXPERT)  # the expert needs no planner
    else:
        main = Method(f"{_label(cfg.planner)} + {_label(cfg.policy_ckpt)}", cfg.planner, cfg.policy_ckpt)
    methods = [main]
    if cfg.upper_bounds:
        if cfg.policy_ckpt != EXPERT:
            methods.append(Method(f"{ORACLE} + {_label(cfg.policy_ckpt)}", ORACLE, cfg.policy_ckpt))
        methods.append(Method(EXPERT, ORACLE, EXPERT))
    unique = []
    for m in methods:  # drop an upper bound that is the evaluated configuration itself
        if all((m.planner, m.policy) != (u.planner, u.policy) for u in unique):
            unique.append(m)
    return unique


def check_seeds(train_store: str, tasks: list[str], seeds: list[int]) -> None:
    """Refuse evaluation seeds that the training store holds for the same task (a train/test leak)."""
    from embodied.store import EpisodeStore

    if not Path(train_store).exists():
        raise FileNotFoundError(f"train_store {train_store!r} does not exist (give the demo store the models were trained on, or null)")
    with EpisodeStore(train_store, mode="r") as store:
        trained: dict[str, set[int]] = defaultdict(set)
        for task, seed in zip(store.column("task"), store.column("seed")):
            trained[task].add(int(seed))
    wanted = set(seeds)
    overlap = {task: sorted(trained[task] & wanted) for task in tasks if trained[task] & wanted}
    if overlap:
        used = sorted(set().union(*trained.values()))
        raise ValueError(
            f"evaluation seeds {seeds[0]}..{seeds[-1]} overlap the training seeds in {train_store} "
            f"({', '.join(f'{t}: {s[:5]}' for t, s in overlap.items())}); the store holds seeds "
            f"{used[0]}..{used[-1]}: set seed_start >= {used[-1] + 1}"
        )


def _row(result: PlanResult, video: str | None) -> dict[str, Any]:
    ep = result.episode
    return dict(
        method=result.job.method,
        task=ep.meta["task"],
        seed=ep.meta["seed"],
        instruction=ep.meta["instruction"],
        success=bool(ep.meta["success_gt"] == 1),
        length=ep.num_actions,  # actions taken (env steps)
        first_success=int(ep.success.argmax()) if ep.succeeded else None,
        plans=len(result.plans),
        replan_reasons=[p.reason for p in result.plans],
        replan_steps=[p.step for p in result.plans],
        checkpoint=ep.meta.get("checkpoint", ""),
        video=video,
    )


def prior_dict(prior: Any, planner: Any, image_size: int, plan_sampler: str | None = None) -> dict | None:
    """The prior as RolloutSettings carries it, checked against the in-domain planner (a checkpoint
    dir or a VideoModelConfig) and the plan_sampler override (a composed planner has its own): one
    clear error before any rollout. None when there is no prior."""
    from dataclasses import asdict

    from video_models.prior import check_prior, prior_config

    prior = prior_config(prior)
    if prior.kind == "none":
        return None
    if planner is None:
        raise ValueError(f"prior={prior.kind} composes a video planner's plans, but planner=oracle has none "
                         f"(give planner=<checkpoint dir>, or prior=none)")
    if plan_sampler:
        raise ValueError(f"plan_sampler={plan_sampler!r} with prior={prior.kind}: a composed planner samples "
                         f"with its own DDIM steps (prior.sample_steps); leave plan_sampler null")
    return asdict(check_prior(prior, planner, image_size))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def evaluate(cfg: EvalConfig, output_dir: str | Path | None = None) -> EvalResult:
    """Run every method on every (task, seed) and write the report; see the module docstring."""
    from embodied.video import write_rollout_video
    from sim.env import check_camera, check_image_size

    # --- check everything before the first rollout -------------------------------------------------
    tasks = validate_task_names(list(cfg.task_set.tasks))
    if cfg.episodes_per_task < 1:
        raise ValueError(f"episodes_per_task must be >= 1, got {cfg.episodes_per_task}")
    if cfg.videos < 0:
        raise ValueError(f"videos must be >= 0, got {cfg.videos}")
    image_size, camera = check_image_size(cfg.image_size), check_camera(cfg.env.camera)
    planner_cfg = check_spec(cfg.planner, "planner", image_size)
    prior = prior_dict(cfg.prior, None if cfg.planner == ORACLE else cfg.planner, image_size, cfg.plan_sampler)
    check_spec(cfg.policy_ckpt, "policy", image_size)
    if cfg.policy_ckpt == EXPERT and cfg.planner != ORACLE:
        log.warning("policy_ckpt=expert runs the scripted expert alone: planner=%s is not used", cfg.planner)
    if cfg.seed_start is None:
        seeds = cfg.seeds.range(cfg.split).take(cfg.episodes_per_task, what=f"{cfg.split} seeds")
    else:
        seeds = list(range(cfg.seed_start, cfg.seed_start + cfg.episodes_per_task))
    if cfg.train_store:
        check_seeds(cfg.train_store, tasks, seeds)
    oracle_frames = cfg.oracle_frames or (planner_cfg or {}).get("num_frames", DEFAULT_ORACLE_FRAMES)

    methods = methods_for(cfg)
    settings = RolloutSettings(image_size=image_size, camera=camera, executor=cfg.executor,
                               oracle_frames=int(oracle_frames), plan_sample_steps=cfg.plan_sample_steps,
                               plan_sampler=cfg.plan_sampler, plan_batch=cfg.preset.plan_batch,
                               max_episode_steps=cfg.env.max_steps, sampling_seed=cfg.sampling_seed, prior=prior,
                               **rollout_device_settings(cfg.preset, cfg.device))
    jobs = [PlanJob(task, seed, instruction_for(task, seed), m.planner, m.policy, m.name)
            for m in methods for task in tasks for seed in seeds]
    log.info("evaluating %s on %d tasks x %d seeds (%d..%d)", [m.name for m in methods], len(tasks), len(seeds),
             seeds[0], seeds[-1])

    # --- run, streaming rows (and videos) as episodes finish ------------------------------------------
    out = Path(output_dir) if output_dir is not None else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    video_seeds = set(seeds[: cfg.videos]) if out else set()
    rows: list[dict[str, Any]] = []
    jsonl = open(out / "episodes.jsonl", "w") if out else None
    try:
        for result in rollout_plan_many(jobs, settings, workers=cfg.workers, progress=cfg.progress):
            video = None
            if result.job.seed in video_seeds:
                path = out / "videos" / _slug(result.job.method) / f"{result.job.task}_seed{result.job.seed}.mp4"
                video = str(write_rollout_video(path, result, result.job.method, fps=cfg.video_fps).relative_to(out))
            rows.append(_row(result, video))
            if jsonl:
                jsonl.write(json.dumps(rows[-1]) + "\n")
                jsonl.flush()
    finally:
        if jsonl:
            jsonl.close()

    # --- tables and plots ---------------------------------------------------------------------------
    stats: dict[str, list[TaskStats]] = {}
    for m in methods:
        stats[m.name] = []
        for task in tasks:
            mine = [r for r in rows if r["method"] == m.name and r["task"] == task]
            stats[m.name].append(TaskStats.from_episodes(task, [r["success"] for r in mine], [r["length"] for r in mine]))
    title = (f"Evaluation: {cfg.task_set.name}, seeds {seeds[0]}..{seeds[-1]}, budget {cfg.executor.max_steps} steps, "
             f"{image_size} px")
    if out:
        table = write_eval_report(stats, out, title)
    else:
        from embodied.report import method_table

        table = method_table(stats)
    return EvalResult(methods, stats, rows, table, out)
