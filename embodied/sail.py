"""embodied-sail: the Self-Adapting Improvement Loop, resumable at any point.

    embodied-sail preset=cpu_tiny                       # what `make demo` runs
    embodied-sail grader=none                           # the filter ablation, one override each
    embodied-sail self_training=false                   # the "no self-training" baseline
    embodied-sail --multirun grader=oracle,learned,none

The algorithm (DESIGN.md), as ``run_sail`` below reads:

    collect expert demos of the training tasks; pretrain the video planner and the IDM on them
    for it in 0 .. iterations-1:
        roll out planner + executor on the target tasks (not in pretraining), R seeds per task
        grade each rollout; append the kept ones to the store, tagged sail_iteration=it
        evaluate on held-out seeds with the simulator's ground truth (95 % Wilson intervals)
        fine-tune the planner (and the IDM) from the last checkpoint on demos + kept episodes
    evaluate the last model; write the report

Every phase is recorded in ``sail_state.json`` once finished and skipped on a rerun of the same
command (same run dir); a phase killed midway resumes inside itself: training from its latest
checkpoint, rollouts from the (task, seed) pairs already graded, collection from the pairs in
the store. Nothing is lost or done twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import embodied.vlm.config  # noqa: F401  (registers the grader/ schemas with Hydra)
from embodied.config import EnvConfig, PresetConfig, TaskSetConfig
from embodied.training import TrainConfig
from policies.config import ExecutorConfig, PolicyConfig
from video_models.config import VideoModelConfig

log = logging.getLogger(__name__)

STATE_FILE = "sail_state.json"


@dataclass
class SailConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # pretraining tasks (in-domain demos)
    target_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # tasks the loop practises (unseen)
    video_model: VideoModelConfig = field(default_factory=VideoModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # the IDM / goal policy that executes plans
    pretrain_video: TrainConfig = field(default_factory=TrainConfig)  # planner pretraining on demos
    finetune_video: TrainConfig = field(default_factory=TrainConfig)  # per-iteration planner fine-tuning
    pretrain_policy: TrainConfig = field(default_factory=TrainConfig)
    finetune_policy: TrainConfig = field(default_factory=TrainConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # budget and replanning of every rollout
    grader: Any = field(default_factory=lambda: {"name": "oracle"})  # configs/grader/<name>.yaml (typed there)
    store: str | None = None  # episode store; None: <run dir>/store.zarr
    demos_per_task: int = 20  # expert demos per pretraining task (seeds 0..n-1)
    target_demos_per_task: int = 0  # expert demos of the target tasks (0: the planner never sees them)
    # Noisy expert demos of the training tasks, for the IDM only (the planner never sees them).
    # Actions off the expert's path make the IDM read the motion between two frames instead of
    # recognising the task: measured, oracle plans + IDM on target_12 went from 0.11 to 0.29
    # success (drawer-close 0 -> 1.0, button-press-wall 0 -> 1.0; README, "SAIL").
    explore_demos_per_task: int = 0
    explore_noise_std: float = 0.5  # std of the Gaussian action noise (actions in [-1, 1])
    explore_seed_start: int = 20_000  # disjoint from demo, rollout and evaluation seeds
    iterations: int = 3  # SAIL iterations
    rollouts_per_task: int = 10  # R: self-collected rollouts per target task and iteration
    # Exploration in self-collection: std of Gaussian noise on the executed actions of the
    # rollouts (never of the evaluation). Self-training only keeps what already works: without it
    # the kept handle-press-side successes all came from the easy third of handle positions.
    rollout_action_noise_std: float = 0.0
    rollout_seed_start: int = 1000  # iteration it uses seeds start + it * R .. (disjoint from demos)
    # Held-out evaluation episodes per target task after every iteration (fixed seeds from
    # eval_seed_start). 0: each iteration's success is the simulator's verdict on its own rollouts
    # (fresh seeds the model has never trained on when it is measured; half the simulation cost),
    # and the last model is measured on R fresh seeds.
    eval_episodes_per_task: int = 10
    eval_seed_start: int = 10_000  # disjoint from demo and rollout seeds
    self_training: bool = True  # false: the "no self-training" baseline (evaluate, never fine-tune)
    finetune_planner: bool = True  # fine-tune the planner on kept episodes each round (false: it stays as pretrained)
    finetune_policy_too: bool = True  # fine-tune the IDM on kept episodes each round (with or without the planner)
    # Share of the planner's fine-tuning clips drawn from the kept (self-collected) episodes: they
    # are repeated until they make up this share. Without it a few kept episodes drown in the demos
    # of other tasks. 0: demos and kept episodes pooled as they are.
    self_data_share: float = 0.5
    # The same for the IDM. It learns task-agnostic inverse dynamics, and repeating a dozen of its
    # own episodes made it forget them (measured: success fell to ~0 after two rounds), so pooled.
    policy_self_data_share: float = 0.0
    # Where each round's fine-tuning starts (planner and IDM): "previous" (the last round's model,
    # the paper's loop) or "pretrained" (the pretrained model, on demos + everything kept so far:
    # rounds do not pile up drift).
    finetune_from: str = "previous"
    # Keep a graded success only if it took at most this many steps (None: any length). Slow,
    # hesitant successes teach the planner slow plans: measured, the kept rollouts' mean length
    # grew from 106 to 135 steps after one round and success then fell with a 200-step budget.
    keep_max_steps: int | None = None
    upper_bounds: bool = True  # iteration 0's evaluation also runs the expert and oracle-plan rows
    # Wall-time budget of the whole run, minutes (None: none). After every phase the loop logs the
    # time still to go (from the finished phases of the same kind) and warns once it is on course
    # to go over.
    budget_minutes: float | None = None
    workers: int = 2  # rollout processes
    image_size: int = 64
    videos: int = 1  # MP4s per task in each evaluation
    progress: bool = True


ConfigStore.instance().store(name="sail_schema", node=SailConfig)


# --- run state: which phases are finished ------------------------------------------------------
class RunState:
    """Finished phases, persisted atomically after each one (the resume points of the loop)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATE_FILE
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {"done": {}}
        self.plan: list[str] = []  # the phases the run will go through (for the time still to go)
        self.budget_s: float | None = None

    def done(self, phase: str) -> bool:
        return phase in self.data["done"]

    def spent_s(self) -> float:
        """Wall seconds of the finished phases (over every session of the run)."""
        return sum(info.get("wall_s", 0.0) for info in self.data["done"].values())

    def finish(self, phase: str, **info: Any) -> None:
        self.data["done"][phase] = {"finished_at": time.time(), **info}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def info(self, phase: str) -> dict[str, Any]:
        return self.data["done"].get(phase, {})


def _phase(state: RunState, name: str, fn, **kwargs) -> dict[str, Any]:
    """Run ``fn`` unless ``name`` is finished; record its result dict and wall time."""
    if state.done(name):
        log.info("phase %s: already done, skipped", name)
        return state.info(name)
    log.info("phase %s: start", name)
    t0 = time.perf_counter()
    result = fn(**kwargs) or {}
    state.finish(name, wall_s=time.perf_counter() - t0, **result)
    if state.plan:
        _log_time_to_go(state)
    return state.info(name)


def planned_phases(cfg: SailConfig) -> list[str]:
    """The phase names ``run_sail`` goes through for ``cfg``, in order."""
    names = ["demos", "pretrain_video", "pretrain_policy"]
    for it in range(cfg.iterations):
        kinds = [("rollouts", cfg.self_training), ("eval", cfg.eval_episodes_per_task > 0),
                 ("finetune_video", cfg.self_training and cfg.finetune_planner),
                 ("finetune_policy", cfg.self_training and cfg.finetune_policy_too)]
        names += [f"iter_{it}/{kind}" for kind, runs in kinds if runs]
    return names + [f"iter_{cfg.iterations}/eval"]


def time_to_go(state: RunState) -> tuple[float, float, int]:
    """(seconds spent in finished phases, seconds the unfinished planned ones should take, how
    many of those have no finished phase of their kind to go by). A phase is estimated as the
    mean wall time of the finished phases of its kind (``rollouts``, ``eval``, ...)."""
    done = state.data["done"]
    spent = state.spent_s()
    by_kind: dict[str, list[float]] = {}
    for phase, info in done.items():
        by_kind.setdefault(phase.split("/")[-1], []).append(info.get("wall_s", 0.0))
    to_go, unknown = 0.0, 0
    for phase in state.plan:
        if phase in done:
            continue
        seen = by_kind.get(phase.split("/")[-1])
        if seen:
            to_go += sum(seen) / len(seen)
        else:
            unknown += 1
    return spent, to_go, unknown


def _log_time_to_go(state: RunState) -> None:
    spent, to_go, unknown = time_to_go(state)
    unknown_note = f" + {unknown} phase(s) of a kind not run yet" if unknown else ""
    log.info("time: %.1f min in finished phases, ~%.1f min to go%s", spent / 60, to_go / 60, unknown_note)
    if state.budget_s is not None and spent + to_go > state.budget_s:
        log.warning("on course to take ~%.1f min%s, over the budget of %.0f min (budget_minutes): fewer "
                    "rollouts_per_task / eval_episodes_per_task or training steps would fit it",
                    (spent + to_go) / 60, " or more" if unknown else "", state.budget_s / 60)


# --- the phases ----------------------------------------------------------------------------------
def _store_path(cfg: SailConfig, run_dir: Path) -> Path:
    return Path(cfg.store) if cfg.store else run_dir / "store.zarr"


def collect_demos(cfg: SailConfig, run_dir: Path) -> dict[str, Any]:
    """Expert demos of the pretraining tasks (and, if asked, of the targets) into the store."""
    from embodied.collect import CollectConfig, collect

    stats = []
    for task_set, n, noisy in ((cfg.task_set, cfg.demos_per_task, False),
                               (cfg.target_set, cfg.target_demos_per_task, False),
                               (cfg.task_set, cfg.explore_demos_per_task, True)):
        if n > 0:
            extra = dict(noise_std=cfg.explore_noise_std, seed_start=cfg.explore_seed_start, source=NOISY) if noisy else {}
            stats += collect(CollectConfig(preset=cfg.preset, env=cfg.env, task_set=task_set, episodes_per_task=n,
                                           workers=cfg.workers, image_size=cfg.image_size,
                                           store=str(_store_path(cfg, run_dir)), progress=cfg.progress, **extra),
                             output_dir=run_dir / "demos" / (f"{task_set.name}_noisy" if noisy else task_set.name))
    return {"episodes": sum(s.episodes for s in stats), "expert_success": sum(s.successes for s in stats)}


NOISY = "expert_noisy"  # the source tag of the exploration demos


def _demo_episodes(store, cfg: SailConfig) -> list[int]:
    """The planner's pretraining data: successful clean expert demos."""
    tasks = list(cfg.task_set.tasks) + (list(cfg.target_set.tasks) if cfg.target_demos_per_task else [])
    return store.filter(source="expert", task=tasks, success_gt=1)


def _policy_demo_episodes(store, cfg: SailConfig, demos: list[int]) -> list[int]:
    """The IDM's: the planner's ``demos`` plus the noisy exploration demos (failed ones too: they
    still show what actions do)."""
    return sorted(demos + store.filter(source=NOISY, task=list(cfg.task_set.tasks)))


def _kept_episodes(store, up_to_iteration: int) -> list[int]:
    return [i for i in store.filter(source="plan") if 0 <= store.meta(i)["sail_iteration"] <= up_to_iteration]


def train_planner(cfg: SailConfig, store: Path, out: Path, train: TrainConfig, init_from: str | None,
                  episodes: list[int]) -> dict[str, Any]:
    """Pretrain (init_from=None) or fine-tune the video planner on ``episodes`` of the store."""
    from embodied.train_video import TrainVideoConfig, train_video

    train = TrainConfig(**{**asdict(train), "init_from": init_from, "progress": cfg.progress})
    tv = TrainVideoConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.task_set, video_model=cfg.video_model,
                          train=train, store=str(store))
    result = train_video(tv, out, episodes=episodes)
    return {"checkpoint": str(out / "planner"), "steps": result.steps, "last_loss": result.last_loss,
            "episodes": len(episodes)}


def train_executor_policy(cfg: SailConfig, store: Path, out: Path, train: TrainConfig, init_from: str | None,
                          episodes: list[int]) -> dict[str, Any]:
    """Pretrain or fine-tune the IDM / goal policy on ``episodes`` of the store."""
    from embodied.train_policy import TrainPolicyConfig, train_policy

    train = TrainConfig(**{**asdict(train), "init_from": init_from, "progress": cfg.progress})
    tp = TrainPolicyConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.task_set, policy=cfg.policy, train=train,
                           store=str(store))
    result = train_policy(tp, out, episodes=episodes)
    return {"checkpoint": str(out / "policy"), "steps": result.steps, "last_loss": result.last_loss,
            "episodes": len(episodes)}


def collect_rollouts(cfg: SailConfig, store_path: Path, out: Path, iteration: int, planner: str, policy: str,
                     grader) -> dict[str, Any]:
    """R plan-and-execute rollouts per target task; graded; the kept ones appended to the store.

    Every graded rollout gets a row in ``rollouts.jsonl`` (kept or not, with the simulator's
    verdict, so the grader can be measured); pairs already there or in the store are not rerun.
    """
    from embodied.rollouts import PlanJob, RolloutSettings, rollout_plan_many
    from embodied.store import EpisodeStore
    from embodied.video import write_rollout_video

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "rollouts.jsonl"
    rows = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    done = {(r["task"], r["seed"]) for r in rows}
    first = cfg.rollout_seed_start + iteration * cfg.rollouts_per_task
    seeds = range(first, first + cfg.rollouts_per_task)
    executor = replace(cfg.executor, action_noise_std=cfg.rollout_action_noise_std)
    settings = RolloutSettings(image_size=cfg.image_size, camera=cfg.env.camera, executor=executor)
    with EpisodeStore(store_path, mode="a") as store:
        done |= {(store.meta(i)["task"], store.meta(i)["seed"])
                 for i in store.filter(source="plan", sail_iteration=iteration)}
        jobs = [PlanJob(task, seed, planner=planner, policy=policy, method=f"sail_{iteration}")
                for task in cfg.target_set.tasks for seed in seeds if (task, seed) not in done]
        with open(log_path, "a") as log_file:
            for result in rollout_plan_many(jobs, settings, workers=cfg.workers, progress=cfg.progress):
                episode = result.episode
                if result.job.seed < first + cfg.videos:  # plan beside execution, the lowest seeds
                    write_rollout_video(out / "videos" / f"{result.job.task}_seed{result.job.seed}.mp4", result,
                                        f"iteration {iteration}")
                verdict = grader.grade_episode(episode)
                episode.meta.update(source="plan", sail_iteration=iteration, grader=grader.name,
                                    grader_score=float(verdict.score), checkpoint=planner)
                keep = verdict.success and (cfg.keep_max_steps is None or episode.num_actions <= cfg.keep_max_steps)
                if keep:
                    store.append(episode)  # the commit; the log row below only records the verdict
                row = {"task": episode.meta["task"], "seed": episode.meta["seed"], "kept": bool(keep),
                       "graded_success": bool(verdict.success),
                       "score": float(verdict.score), "reason": verdict.reason,
                       "success_gt": int(episode.meta["success_gt"]), "length": episode.num_actions}
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
                rows.append(row)
    current = [r for r in rows if (r["task"], r["seed"]) in {(t, s) for t in cfg.target_set.tasks for s in seeds}]
    per_task = {t: [sum(r["success_gt"] == 1 for r in current if r["task"] == t),
                    sum(r["task"] == t for r in current)] for t in cfg.target_set.tasks}
    return {"rollouts": len(current), "kept": sum(r["kept"] for r in current),
            "rollout_success_gt": sum(r["success_gt"] for r in current), "tasks": per_task,
            "seeds": [first, first + cfg.rollouts_per_task], **grader_agreement(current)}


def finetune_episodes(store, demos: list[int], kept: list[int], share: float) -> list[int]:
    """Demos + kept episodes, the kept ones repeated so that they give ~``share`` of the steps,
    split equally between the tasks they come from: an easy task's many successes must not crowd
    out a hard task's few (measured, unbalanced: the task with fewer kept episodes lost what the
    first round had taught it)."""
    if not kept or share <= 0:
        return demos + kept
    demo_steps = sum(store.episode_length(i) for i in demos)
    by_task: dict[str, list[int]] = {}
    for i in kept:
        by_task.setdefault(store.meta(i)["task"], []).append(i)
    per_task = share / (1 - share) * max(demo_steps, 1) / len(by_task)
    mixed = list(demos)
    for episodes in by_task.values():
        steps = sum(store.episode_length(i) for i in episodes)
        mixed += episodes * max(1, round(per_task / max(steps, 1)))
    return mixed


def grader_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision / recall / accuracy of the grader's verdicts against the simulator's success."""
    said = [r.get("graded_success", r["kept"]) for r in rows]
    tp = sum(s and r["success_gt"] == 1 for s, r in zip(said, rows))
    fp = sum(s and r["success_gt"] != 1 for s, r in zip(said, rows))
    fn = sum(not s and r["success_gt"] == 1 for s, r in zip(said, rows))
    tn = len(rows) - tp - fp - fn
    nan = float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else nan, "recall": tp / (tp + fn) if tp + fn else nan,
            "accuracy": (tp + tn) / len(rows) if rows else nan}


def evaluate_targets(cfg: SailConfig, out: Path, planner: str, policy: str, upper_bounds: bool,
                     episodes: int | None = None, seed_start: int | None = None) -> dict[str, Any]:
    """Held-out seeds, simulator ground truth: per-task successes of planner + policy on the targets."""
    from embodied.evaluate import EvalConfig, evaluate

    ec = EvalConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.target_set, planner=planner, policy_ckpt=policy,
                    episodes_per_task=episodes or cfg.eval_episodes_per_task,
                    seed_start=cfg.eval_seed_start if seed_start is None else seed_start,
                    workers=cfg.workers, image_size=cfg.image_size, executor=cfg.executor, videos=cfg.videos,
                    upper_bounds=upper_bounds, progress=cfg.progress)
    result = evaluate(ec, out)
    main = result.methods[0].name
    return {"tasks": {s.task: [s.successes, s.episodes] for s in result.stats[main]},
            "upper_bounds": {m.name: {s.task: [s.successes, s.episodes] for s in result.stats[m.name]}
                             for m in result.methods[1:]}}


# --- the loop ------------------------------------------------------------------------------------
def run_sail(cfg: SailConfig, run_dir: str | Path) -> dict[str, Any]:
    """The SAIL loop of the module docstring; returns the report's numbers (also in report/)."""
    from embodied.store import EpisodeStore
    from sim.catalog import validate_task_names

    run_dir = Path(run_dir)
    train_tasks = validate_task_names(list(cfg.task_set.tasks))
    targets = validate_task_names(list(cfg.target_set.tasks))
    if cfg.explore_demos_per_task < 0 or cfg.explore_noise_std < 0:
        raise ValueError(f"need explore_demos_per_task >= 0 and explore_noise_std >= 0, got "
                         f"{cfg.explore_demos_per_task}, {cfg.explore_noise_std}")
    for name in ("self_data_share", "policy_self_data_share"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.eval_episodes_per_task < 0 or cfg.rollouts_per_task < 1 or cfg.iterations < 0:
        raise ValueError("need eval_episodes_per_task >= 0, rollouts_per_task >= 1 and iterations >= 0, got "
                         f"{cfg.eval_episodes_per_task}, {cfg.rollouts_per_task}, {cfg.iterations}")
    if cfg.finetune_from not in ("previous", "pretrained"):
        raise ValueError(f"finetune_from must be previous | pretrained, got {cfg.finetune_from!r}")
    if cfg.budget_minutes is not None and not cfg.budget_minutes > 0:
        raise ValueError(f"budget_minutes must be > 0 minutes or null (no budget), got {cfg.budget_minutes}")
    if cfg.rollout_action_noise_std < 0:
        raise ValueError(f"rollout_action_noise_std must be >= 0, got {cfg.rollout_action_noise_std}")
    if cfg.eval_episodes_per_task == 0 and cfg.rollout_action_noise_std > 0:
        raise ValueError("rollout_action_noise_std > 0 makes the rollouts unfit to measure success: set "
                         "eval_episodes_per_task > 0")
    if cfg.self_training and not (cfg.finetune_planner or cfg.finetune_policy_too):
        raise ValueError("self_training=true but finetune_planner=false and finetune_policy_too=false: nothing "
                         "learns from the kept episodes (use self_training=false for that baseline)")
    if cfg.eval_episodes_per_task == 0 and not cfg.self_training:
        raise ValueError("self_training=false has no rollouts to measure: set eval_episodes_per_task > 0")
    if set(train_tasks) & set(targets) and cfg.target_demos_per_task == 0:
        log.warning("target tasks %s are also pretraining tasks", sorted(set(train_tasks) & set(targets)))
    from embodied.vlm import make_grader

    grader = make_grader(cfg.grader)  # configs/grader/<name>.yaml: oracle | learned | vlm | none
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the config is known to be valid
    state = RunState(run_dir)
    state.plan = planned_phases(cfg)
    state.budget_s = None if cfg.budget_minutes is None else 60.0 * cfg.budget_minutes
    store = _store_path(cfg, run_dir)

    # Pretraining on expert demos of the training tasks.
    _phase(state, "demos", collect_demos, cfg=cfg, run_dir=run_dir)
    with EpisodeStore(store) as s:
        demos = _demo_episodes(s, cfg)
        policy_demos = _policy_demo_episodes(s, cfg, demos)
    planner = pretrained = _phase(state, "pretrain_video", train_planner, cfg=cfg, store=store,
                                  out=run_dir / "pretrain" / "video", train=cfg.pretrain_video, init_from=None,
                                  episodes=demos)["checkpoint"]
    policy = pretrained_policy = _phase(state, "pretrain_policy", train_executor_policy, cfg=cfg, store=store,
                                        out=run_dir / "pretrain" / "policy", train=cfg.pretrain_policy,
                                        init_from=None, episodes=policy_demos)["checkpoint"]
    restart = cfg.finetune_from == "pretrained"  # every round from the pretrained models

    for it in range(cfg.iterations):
        out = run_dir / f"iter_{it}"
        if cfg.self_training:
            _phase(state, f"iter_{it}/rollouts", collect_rollouts, cfg=cfg, store_path=store, out=out, iteration=it,
                   planner=planner, policy=policy, grader=grader)
        if cfg.eval_episodes_per_task:
            _phase(state, f"iter_{it}/eval", evaluate_targets, cfg=cfg, out=out / "eval", planner=planner,
                   policy=policy, upper_bounds=cfg.upper_bounds and it == 0)
        if cfg.self_training:
            with EpisodeStore(store) as s:
                kept = _kept_episodes(s, it)
                for_planner = finetune_episodes(s, demos, kept, cfg.self_data_share)
                for_policy = finetune_episodes(s, policy_demos, kept, cfg.policy_self_data_share)
            if cfg.finetune_planner:
                planner = _phase(state, f"iter_{it}/finetune_video", train_planner, cfg=cfg, store=store,
                                 out=out / "video", train=cfg.finetune_video,
                                 init_from=pretrained if restart else planner, episodes=for_planner)["checkpoint"]
            if cfg.finetune_policy_too:
                policy = _phase(state, f"iter_{it}/finetune_policy", train_executor_policy, cfg=cfg, store=store,
                                out=out / "policy", train=cfg.finetune_policy,
                                init_from=pretrained_policy if restart else policy,
                                episodes=for_policy)["checkpoint"]
        write_report(cfg, run_dir, state)
    final = f"iter_{cfg.iterations}"
    if cfg.eval_episodes_per_task:
        _phase(state, f"{final}/eval", evaluate_targets, cfg=cfg, out=run_dir / final / "eval", planner=planner,
               policy=policy, upper_bounds=False)
    else:  # the last model on R fresh seeds, as every earlier one was measured on its rollouts
        _phase(state, f"{final}/eval", evaluate_targets, cfg=cfg, out=run_dir / final / "eval", planner=planner,
               policy=policy, upper_bounds=False, episodes=cfg.rollouts_per_task,
               seed_start=cfg.rollout_seed_start + cfg.iterations * cfg.rollouts_per_task)
    return write_report(cfg, run_dir, state)


# --- the report ----------------------------------------------------------------------------------
def _grader_name(spec: Any) -> str:
    return spec.get("name", "?") if isinstance(spec, dict) else getattr(spec, "name", "?")


def _evaluations(state: RunState) -> list[tuple[int, dict[str, list[int]]]]:
    """(iteration, {task: [successes, episodes]}) of every finished evaluation, in order."""
    found: dict[int, dict[str, list[int]]] = {}
    for phase, info in state.data["done"].items():  # an evaluation wins over the rollouts' verdicts
        it = int(phase.split("/")[0].removeprefix("iter_")) if phase.startswith("iter_") else None
        if phase.endswith("/eval") or (phase.endswith("/rollouts") and f"iter_{it}/eval" not in state.data["done"]):
            found[it] = info["tasks"]
    return sorted(found.items())


def write_report(cfg: SailConfig, run_dir: Path, state: RunState) -> dict[str, Any]:
    """report/: summary.md (success per iteration and task with 95 % Wilson intervals, grader
    agreement, kept episodes, wall time per phase), success.png (the curve), sail.json, videos/."""
    import shutil

    from embodied.stats import success_rate

    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    points = _evaluations(state)
    tasks = list(cfg.target_set.tasks)
    lines = [f"# SAIL on {cfg.target_set.name} (pretrained on {cfg.task_set.name}), grader={_grader_name(cfg.grader)}, "
             f"self_training={cfg.self_training}", "",
             "Success on held-out seeds (simulator ground truth), 95 % Wilson intervals. Iteration k = the model "
             "after k rounds of fine-tuning on its own filtered rollouts. "
             + ("Measured on fixed evaluation seeds." if cfg.eval_episodes_per_task else
                "Measured on iteration k's own rollouts (fresh seeds, graded by the simulator before any training "
                "on them); the last row on fresh seeds after the last fine-tuning."), "",
             "| iteration | " + " | ".join(tasks) + " | mean (all episodes) |",
             "|---:|" + "---:|" * (len(tasks) + 1)]
    curve = []
    for it, per_task in points:
        cells = [str(success_rate(*per_task[t])) if t in per_task else "n/a" for t in tasks]
        k, n = sum(v[0] for v in per_task.values()), sum(v[1] for v in per_task.values())
        mean = success_rate(k, n)
        curve.append({"iteration": it, "successes": k, "episodes": n, "rate": mean.value, "low": mean.low,
                      "high": mean.high, "tasks": per_task})
        lines.append(f"| {it} | " + " | ".join(cells) + f" | {mean} |")
    uppers = state.info("iter_0/eval").get("upper_bounds", {})
    for name, per_task in uppers.items():
        k, n = sum(v[0] for v in per_task.values()), sum(v[1] for v in per_task.values())
        cells = [str(success_rate(*per_task[t])) if t in per_task else "n/a" for t in tasks]
        lines.append(f"| upper bound: {name} | " + " | ".join(cells) + f" | {success_rate(k, n)} |")

    lines += ["", "## Self-collected rollouts and the grader (against the simulator's verdict)", "",
              "| iteration | rollouts | sim successes | kept | precision | recall | accuracy |", "|---:|---:|---:|---:|---:|---:|---:|"]
    graders = []
    for it in range(cfg.iterations):
        info = state.info(f"iter_{it}/rollouts")
        if info:
            graders.append({"iteration": it, **{k: info[k] for k in ("rollouts", "kept", "rollout_success_gt", "precision",
                                                                     "recall", "accuracy")}})
            lines.append(f"| {it} | {info['rollouts']} | {info['rollout_success_gt']} | {info['kept']} | "
                         f"{info['precision']:.2f} | {info['recall']:.2f} | {info['accuracy']:.2f} |")
    lines += ["", "## Wall time per phase", "", "| phase | seconds |", "|---|---:|"]
    lines += [f"| {phase} | {info.get('wall_s', float('nan')):.0f} |" for phase, info in state.data["done"].items()]
    spent = state.spent_s()
    budget = f", budget {cfg.budget_minutes:g} min" if cfg.budget_minutes is not None else ""
    lines += [f"| **total**: {spent / 60:.1f} min{budget} | {spent:.0f} |"]

    videos = out / "videos"
    if videos.exists():  # the latest iteration moves on: no stale copies
        shutil.rmtree(videos)
    if points:
        for label, (it, _) in (("first", points[0]), ("latest", points[-1])):
            src = run_dir / f"iter_{it}" / "eval" / "videos"
            src = src if src.exists() else run_dir / f"iter_{it}" / "videos"  # measured on its rollouts
            if src.exists():
                shutil.copytree(src, videos / f"{label}_iter_{it}", dirs_exist_ok=True)
        lines += ["", f"Videos (plan beside execution): `videos/first_iter_{points[0][0]}/`, "
                      f"`videos/latest_iter_{points[-1][0]}/`."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    report = {"curve": curve, "graders": graders, "upper_bounds": uppers, "phases": state.data["done"]}
    (out / "sail.json").write_text(json.dumps(report, indent=1))
    if curve:
        _plot_curve(curve, tasks, out / "success.png", lines[0].removeprefix("# "))
    return report


def _plot_curve(curve: list[dict[str, Any]], tasks: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from embodied.stats import success_rate

    its = [c["iteration"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = ["--", ":", "-.", (0, (1, 3)), (0, (5, 2, 1, 2))]
    for n, task in enumerate(tasks):
        rates = [success_rate(*c["tasks"][task]).value if task in c["tasks"] else float("nan") for c in curve]
        ax.plot(its, rates, color="0.55", linewidth=1, linestyle=styles[n % len(styles)], label=task)
    rate = [c["rate"] for c in curve]
    err = [[c["rate"] - c["low"] for c in curve], [c["high"] - c["rate"] for c in curve]]
    ax.errorbar(its, rate, yerr=err, color="#c44e52", marker="o", capsize=4, linewidth=2, label="mean (95% Wilson)")
    ax.set_xticks(its)
    ax.set_ylim(0, 1)
    ax.set_xlabel("SAIL iteration (rounds of self-training)")
    ax.set_ylabel("success on held-out seeds")
    ax.set_title(title, fontsize=8)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@hydra.main(config_path="pkg://configs", config_name="sail", version_base="1.3")
def main(cfg) -> None:
    cfg_obj: SailConfig = OmegaConf.to_object(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_sail(cfg_obj, run_dir)
    print((run_dir / "report" / "summary.md").read_text())
    print(f"Report: {run_dir / 'report'} (summary.md, success.png, videos/). Rerunning the same command with "
          f"hydra.run.dir={run_dir} resumes or, when finished, does nothing.")


if __name__ == "__main__":
    main()
