"""embodied-sail: the Self-Adapting Improvement Loop, reproducible and resumable at any point.

    embodied-sail preset=cpu_tiny                              # what `make demo` runs
    embodied-sail --multirun seed=0,1,2                        # three loop seeds
    embodied-sail --multirun seed=0,1,2 self_training=true,false   # loop and its control
    embodied-sail --multirun grader=oracle,learned,none        # the filter ablation
    embodied-sail-summary multirun/<date>/<time>               # mean and std over loop seeds

The algorithm (DESIGN.md), as ``run_sail`` below reads:

    collect expert demos of the training tasks; pretrain the video planner and the IDM on them
    (grader=learned without a checkpoint: train the success classifier on the training tasks)
    for it in 0 .. iterations-1:
        roll out planner + executor on the target tasks (not in pretraining), R seeds per task
        grade each rollout; append the kept ones to the store, tagged sail_iteration=it
        evaluate on the held-out test seeds with the simulator's ground truth
        fine-tune the planner (and the IDM) on demos + the kept episodes of iterations 0..it
    evaluate the last model; write the report (Wilson intervals, paired tests against iteration 0)

``self_training=false`` is the control: the same rounds (steps, lr, seeds) on the demos alone,
so that the loop's gain over it is what its own episodes taught.

Same command, same numbers: every random draw (model init, data order, augmentation, diffusion
noise, plan sampling, exploration noise) derives from ``seed``, rollouts reach the store in job
order, and environment seeds come from the disjoint named ranges of ``seeds`` (configs/seeds/).
Every phase is recorded in ``sail_state.json`` once finished and skipped on a rerun of the same
config (another config is refused, naming what differs); a phase killed midway resumes inside
itself: training from its latest checkpoint, rollouts from the verdicts already recorded,
collection from the pairs in the store. Nothing is lost or done twice.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore

from embodied.config import EnvConfig, PresetConfig, SeedRanges, TaskSetConfig, check_plan_sampling, rollout_device_settings
from embodied.device import check_device, resolve_device
from embodied.graders import grader_config
from embodied.graders.config import GraderDataConfig, SuccessClassifierConfig  # (also registers the grader/ schemas)
from embodied.proposers import config as _proposer_schemas  # noqa: F401  (registers the proposer/ schemas)
from embodied.training import TrainConfig, write_atomic
from policies.config import ExecutorConfig, PolicyConfig
from video_models.config import VideoModelConfig
import video_models.prior  # noqa: F401  (registers the schema configs/prior/ extend)

log = logging.getLogger(__name__)

STATE_FILE = "sail_state.json"
CONFIG_FILE = "sail_config.json"  # the run's config: a rerun with another one is refused
COSMETIC_KEYS = ("progress", "budget_minutes")  # may change between a run and its resumption
NOISY = "expert_noisy"  # the source tag of the exploration demos
KEPT = "plan"  # the source tag of a rollout the grader kept (the planner's self-collected data)
EXECUTED = "rollout"  # ... of one it did not keep (executed, so still inverse-dynamics data for the IDM)
MEASURE_ON = ("test", "validation")


@dataclass
class GraderTrainingConfig:
    """grader=learned without grader.path: the loop trains the success classifier itself, on the
    pretraining tasks' episodes labelled by the simulator (never a target task's label)."""

    model: SuccessClassifierConfig = field(default_factory=SuccessClassifierConfig)
    data: GraderDataConfig = field(default_factory=GraderDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Failures to learn from, beside the demos and their copies cut before success: one rollout of
    # the expert per demo seed and noise level, with this step budget (successes and near misses).
    noise_stds: list[float] = field(default_factory=lambda: [1.5, 3.0])
    max_steps: int = 120


@dataclass
class AblationConfig:
    """Experiment switches the recipe leaves at their defaults (configs/ablation/)."""

    # Where each round's fine-tuning starts: "previous" (the last round's model, the paper's loop)
    # or "pretrained" (the pretrained model, on demos + everything kept so far).
    finetune_from: str = "previous"
    # Std of Gaussian noise on the executed actions of the self-collection rollouts (never of the
    # evaluation): exploration beyond what the models already do.
    rollout_action_noise_std: float = 0.0
    # How self_data_share is spread over the kept episodes: per_task (split equally between the
    # target tasks) or per_episode (every kept episode repeated alike: a task with few kept
    # episodes gets a small share instead of having each of them repeated many times).
    kept_share: str = "per_task"

    def __post_init__(self) -> None:
        if self.kept_share not in ("per_task", "per_episode"):
            raise ValueError(f"ablation.kept_share must be per_task | per_episode, got {self.kept_share!r}")
        if self.finetune_from not in ("previous", "pretrained"):
            raise ValueError(f"ablation.finetune_from must be previous | pretrained, got {self.finetune_from!r}")
        if self.rollout_action_noise_std < 0:
            raise ValueError(f"ablation.rollout_action_noise_std must be >= 0, got {self.rollout_action_noise_std}")


FINETUNE = ("both", "planner", "policy", "none")


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
    # How every rollout and evaluation samples its plans: ddim | dpm_solver and its steps; None: the
    # planner checkpoint's own (video_model.sampler / sample_steps when it was trained).
    plan_sampler: str | None = None
    plan_sample_steps: int | None = None
    grader: Any = field(default_factory=lambda: {"name": "oracle"})  # configs/grader/<name>.yaml (typed there)
    grader_training: GraderTrainingConfig = field(default_factory=GraderTrainingConfig)  # grader=learned, no path
    # What each iteration practises: configs/proposer/<name>.yaml (embodied/practice.py): catalog
    # (uniform over the target tasks) | curriculum (SOAR) | vlm. The budget is rollouts_per_task x
    # the number of target tasks.
    proposer: Any = field(default_factory=lambda: {"name": "catalog"})
    # configs/prior/: a model the in-domain planner's plans are composed with (IPA) in every rollout
    # and evaluation; only the in-domain planner is fine-tuned. none (default) | planner | diffusers.
    prior: Any = field(default_factory=lambda: {"kind": "none"})
    store: str | None = None  # this run's episode store; None: <run dir>/store.zarr
    # The loop's seed: every random draw of the run derives from it (the training seeds of the four
    # train configs must stay 0). seed=0,1,2 under --multirun: independent loop seeds.
    seed: int = 0
    seeds: SeedRanges = field(default_factory=SeedRanges)  # disjoint environment-seed ranges (configs/seeds/)
    measure_on: str = "test"  # seed range every model is measured on: test (the report) | validation (tuning)
    demos_per_task: int = 20  # expert demos per pretraining task (the first seeds of seeds.demos)
    target_demos_per_task: int = 0  # expert demos of the target tasks (0: the planner never sees them)
    # Noisy expert demos of the training tasks (seeds.exploration), for the IDM only (the planner
    # never sees them). Actions off the expert's path make the IDM read the motion between two
    # frames instead of recognising the task: measured, oracle plans + IDM on target_12 went from
    # 0.11 to 0.29 success.
    explore_demos_per_task: int = 0
    explore_noise_std: float = 0.5  # std of the Gaussian action noise (actions in [-1, 1])
    iterations: int = 3  # SAIL iterations
    rollouts_per_task: int = 10  # R: rollouts per target task and iteration (seeds.self_collection)
    eval_episodes_per_task: int = 10  # every model measured on these first seeds of the measure_on range
    # false: only iteration 0 and the last are measured (the paired test that matters, at a third
    # of the evaluation time of three iterations).
    measure_intermediate: bool = True
    self_training: bool = True  # false: the control, the same fine-tuning rounds on the demos alone
    # What each round fine-tunes: both (the paper's loop: SILVR measured both 44.2 %, IDM only
    # 29.8 %, video model only 26.8 %) | planner | policy | none (every iteration measures the
    # pretrained models). The planner learns from demos + the kept rollouts; the IDM from its demos
    # + every rollout it executed, kept or not (inverse dynamics is true of any executed step).
    finetune: str = "both"
    # Share of the planner's fine-tuning steps drawn from the kept (self-collected) episodes: they
    # are repeated until they make up this share. Without it a few kept episodes drown in the demos
    # of other tasks. 0: demos and kept episodes pooled as they are.
    self_data_share: float = 0.5
    ablation: AblationConfig = field(default_factory=AblationConfig)  # switches the recipe does not use
    upper_bounds: bool = True  # iteration 0's evaluation also runs the expert and oracle-plan rows
    # Wall-time budget of the whole run, minutes (None: none). After every phase the loop logs the
    # time still to go (from the finished phases of the same kind) and warns once it is on course
    # to go over.
    budget_minutes: float | None = None
    workers: int = 2  # rollout processes
    # auto | cpu | cuda | cuda:N (embodied.device): where the models train and, on a GPU, where one
    # planner serves every rollout worker's plans (environments and the IDM stay on the CPU cores).
    device: str = "auto"
    image_size: int = 64
    videos: int = 1  # MP4s per task in each evaluation
    progress: bool = True

    def __post_init__(self) -> None:
        """ValueError with what was wrong and what is allowed, as the config is built."""
        if self.explore_demos_per_task < 0 or self.explore_noise_std < 0:
            raise ValueError(f"need explore_demos_per_task >= 0 and explore_noise_std >= 0, got "
                             f"{self.explore_demos_per_task}, {self.explore_noise_std}")
        if not 0 <= self.self_data_share < 1:
            raise ValueError(f"self_data_share must be in [0, 1), got {self.self_data_share}")
        if self.finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {' | '.join(FINETUNE)} (what each round fine-tunes), "
                             f"got {self.finetune!r}")
        check_plan_sampling(self.plan_sampler, self.plan_sample_steps)
        if self.eval_episodes_per_task < 1 or self.rollouts_per_task < 1 or self.iterations < 0:
            raise ValueError("need eval_episodes_per_task >= 1, rollouts_per_task >= 1 and iterations >= 0, got "
                             f"{self.eval_episodes_per_task}, {self.rollouts_per_task}, {self.iterations}")
        if self.measure_on not in MEASURE_ON:
            raise ValueError(f"measure_on must be test | validation (the seed range every model is measured on), "
                             f"got {self.measure_on!r}")
        check_device(self.device)
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes must be > 0 minutes or null (no budget), got {self.budget_minutes}")
        for name in ("pretrain_video", "finetune_video", "pretrain_policy", "finetune_policy"):
            if getattr(self, name).seed != 0:
                raise ValueError(f"{name}.seed={getattr(self, name).seed}: in the SAIL loop every training seed derives "
                                 f"from the loop's seed (set seed=... instead and leave {name}.seed at 0)")
        if self.grader_training.train.seed != 0:
            raise ValueError("grader_training.train.seed must stay 0: it derives from the loop's seed (set seed=...)")
        self.seeds.check()


ConfigStore.instance().store(name="sail_schema", node=SailConfig)


def derived_seed(seed: int, what: str) -> int:
    """The seed of one random source of a run (``what``: a phase name), fixed by the loop's seed."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(what.encode())]).generate_state(1)[0] % 2**31)


# --- checking a config before anything is written ---------------------------------------------------
def check_config(cfg: SailConfig) -> None:
    """What needs more than the config's own fields (task names, the prior's files, the seed ranges'
    room for the run): ValueError with what was wrong and what is allowed. Nothing is written
    before this passes; the fields themselves were checked when the config was built."""
    from sim.catalog import validate_task_names

    train_tasks = validate_task_names(list(cfg.task_set.tasks))
    targets = validate_task_names(list(cfg.target_set.tasks))
    from embodied.evaluate import prior_dict
    from embodied.practice import proposer_name

    proposer_name(cfg.proposer)
    resolve_device(cfg.device)  # device=cuda without a GPU: refused before any work
    prior_dict(cfg.prior, cfg.video_model, cfg.image_size, cfg.plan_sampler)  # a bad prior: refused up front
    r = cfg.rollouts_per_task
    cfg.seeds.demos.take(max(cfg.demos_per_task, cfg.target_demos_per_task), what="seeds.demos")
    cfg.seeds.exploration.take(cfg.explore_demos_per_task, what="seeds.exploration")
    # A proposer may give one task an iteration's whole budget.
    cfg.seeds.self_collection.take(cfg.iterations * r * len(targets),
                                   what="seeds.self_collection (iterations x rollouts_per_task x target tasks)")
    cfg.seeds.range(cfg.measure_on).take(cfg.eval_episodes_per_task, what=f"seeds.{cfg.measure_on}")
    if set(train_tasks) & set(targets) and cfg.target_demos_per_task == 0:
        log.warning("target tasks %s are also pretraining tasks", sorted(set(train_tasks) & set(targets)))


def config_record(cfg: SailConfig) -> dict[str, Any]:
    """The run's config as recorded in the run dir (cosmetic keys left out)."""
    record = asdict(cfg)
    for key in COSMETIC_KEYS:
        record.pop(key, None)
    return json.loads(json.dumps(record))  # plain JSON types, as read back


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(f"{where}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}")
            else:
                out += _differences(old[key], new[key], where)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def check_run_dir(run_dir: Path, record: dict[str, Any]) -> bool:
    """Refuse a run dir that holds a run of another config; True if it holds this one's."""
    path = run_dir / CONFIG_FILE
    if path.exists():
        diffs = _differences(json.loads(path.read_text()), record)
        if diffs:
            raise ValueError(f"{run_dir} holds a SAIL run with another config ({len(diffs)} key(s) differ: "
                             + "; ".join(diffs[:12]) + ("; ..." if len(diffs) > 12 else "")
                             + "). Resume it with its own overrides, or give a new hydra.run.dir. Nothing was written.")
        return True
    if (run_dir / STATE_FILE).exists():
        raise ValueError(f"{run_dir} holds a SAIL run without {CONFIG_FILE} (made by an older version): its config "
                         f"cannot be checked, so it is not resumed. Give a new hydra.run.dir. Nothing was written.")
    return False


# --- run state: which phases are finished ------------------------------------------------------
class RunState:
    """Finished phases, persisted atomically after each one (the resume points of the loop).
    Paths in it are relative to the run dir: a moved run resumes."""

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
        write_atomic(self.path, json.dumps(self.data, indent=1))

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


def _learns_grader(cfg: SailConfig) -> bool:
    """grader=learned without a checkpoint: the loop trains one (phase train_grader)."""
    grader = grader_config(cfg.grader)
    return grader.name == "learned" and not grader.path


def iteration_phases(cfg: SailConfig, it: int) -> list[str]:
    """What iteration ``it`` does, in order: the one table ``run_sail`` and the time estimate follow."""
    table = [("rollouts", cfg.self_training),  # the control collects nothing
             ("eval", it == 0 or cfg.measure_intermediate or it == cfg.iterations),
             ("finetune_video", it < cfg.iterations and cfg.finetune in ("both", "planner")),
             ("finetune_policy", it < cfg.iterations and cfg.finetune in ("both", "policy"))]
    return [kind for kind, runs in table if runs and (it < cfg.iterations or kind == "eval")]


def planned_phases(cfg: SailConfig) -> list[str]:
    """The phase names ``run_sail`` goes through for ``cfg``, in order."""
    names = ["demos", "pretrain_video", "pretrain_policy"] + (["train_grader"] if _learns_grader(cfg) else [])
    return names + [f"iter_{it}/{kind}" for it in range(cfg.iterations + 1) for kind in iteration_phases(cfg, it)]


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


def _rel(path: Path, run_dir: Path) -> str:
    """What sail_state.json records for a path of the run: relative to the run dir where inside it."""
    try:
        return str(Path(path).relative_to(run_dir))
    except ValueError:
        return str(path)


def collect_demos(cfg: SailConfig, run_dir: Path) -> dict[str, Any]:
    """Expert demos of the pretraining tasks (and, if asked, of the targets) into the store."""
    from embodied.collect import CollectConfig, collect

    stats = []
    for task_set, n, noisy in ((cfg.task_set, cfg.demos_per_task, False),
                               (cfg.target_set, cfg.target_demos_per_task, False),
                               (cfg.task_set, cfg.explore_demos_per_task, True)):
        if n > 0:
            seeds = cfg.seeds.exploration if noisy else cfg.seeds.demos
            extra = dict(noise_std=cfg.explore_noise_std, noise_seed=cfg.seed, source=NOISY) if noisy else {}
            stats += collect(CollectConfig(preset=cfg.preset, env=cfg.env, task_set=task_set, episodes_per_task=n,
                                           seed_start=seeds.start, workers=cfg.workers, image_size=cfg.image_size,
                                           store=str(_store_path(cfg, run_dir)), progress=cfg.progress, **extra),
                             output_dir=run_dir / "demos" / (f"{task_set.name}_noisy" if noisy else task_set.name))
    return {"episodes": sum(s.episodes for s in stats), "expert_success": sum(s.successes for s in stats)}


def _demo_episodes(store, cfg: SailConfig) -> list[int]:
    """The planner's pretraining data: successful clean expert demos."""
    tasks = list(cfg.task_set.tasks) + (list(cfg.target_set.tasks) if cfg.target_demos_per_task else [])
    return store.filter(source="expert", task=tasks, success_gt=1)


def _policy_demo_episodes(store, cfg: SailConfig, demos: list[int]) -> list[int]:
    """The IDM's: the planner's ``demos`` plus the noisy exploration demos (failed ones too: they
    still show what actions do)."""
    return sorted(demos + store.filter(source=NOISY, task=list(cfg.task_set.tasks)))


def _loop_episodes(store, up_to_iteration: int, sources: list[str]) -> list[int]:
    """Self-collected episodes of iterations 0..``up_to_iteration`` with one of ``sources``."""
    return [i for i in store.filter(source=sources) if 0 <= store.meta(i)["sail_iteration"] <= up_to_iteration]


def train_planner(cfg: SailConfig, run_dir: Path, store: Path, out: Path, train: TrainConfig, init_from: str | None,
                  episodes: list[int], seed: int, mix: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pretrain (init_from=None) or fine-tune the video planner on ``episodes`` of the store."""
    from embodied.train_video import TrainVideoConfig, train_video

    train = replace(train, init_from=init_from and str(run_dir / init_from), progress=cfg.progress, seed=seed)
    tv = TrainVideoConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.task_set, video_model=cfg.video_model,
                          train=train, store=str(store))
    result = train_video(tv, out, episodes=episodes)
    return {"checkpoint": _rel(out / "planner", run_dir), "steps": result.steps, "last_loss": result.last_loss,
            "episodes": len(episodes), **(mix or {})}


def train_executor_policy(cfg: SailConfig, run_dir: Path, store: Path, out: Path, train: TrainConfig,
                          init_from: str | None, episodes: list[int], seed: int,
                          mix: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pretrain or fine-tune the IDM / goal policy on ``episodes`` of the store."""
    from embodied.train_policy import TrainPolicyConfig, train_policy

    train = replace(train, init_from=init_from and str(run_dir / init_from), progress=cfg.progress, seed=seed)
    tp = TrainPolicyConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.task_set, policy=cfg.policy, train=train,
                           store=str(store))
    result = train_policy(tp, out, episodes=episodes)
    return {"checkpoint": _rel(out / "policy", run_dir), "steps": result.steps, "last_loss": result.last_loss,
            "episodes": len(episodes), **(mix or {})}


def train_loop_grader(cfg: SailConfig, run_dir: Path, store: Path) -> dict[str, Any]:
    """The learned grader, trained on the pretraining tasks only: their demos (positives; early
    frames negatives), copies cut before success and noised-expert rollouts (failures), all
    labelled by the simulator. No target task's label reaches it."""
    from embodied.train_grader import TrainGraderConfig, train_grader
    from embodied.graders.data import build_grader_store

    g = cfg.grader_training
    data = run_dir / "grader" / "data.zarr"
    counts = build_grader_store(data, list(cfg.task_set.tasks), cfg.seeds.demos.take(cfg.demos_per_task), demos=store,
                                noise_stds=list(g.noise_stds), max_steps=g.max_steps, image_size=cfg.image_size,
                                camera=cfg.env.camera, workers=cfg.workers, progress=cfg.progress, noise_seed=cfg.seed)
    train = replace(g.train, progress=cfg.progress, seed=derived_seed(cfg.seed, "train_grader"))
    tg = TrainGraderConfig(preset=cfg.preset, task_set=cfg.task_set, model=replace(g.model, image_size=cfg.image_size),
                           data=g.data, train=train, store=str(data))
    result = train_grader(tg, run_dir / "grader")
    return {"checkpoint": _rel(run_dir / "grader" / "grader", run_dir), "episodes": counts, "steps": result.steps,
            "last_loss": result.last_loss}


def _read_rows(log_path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in log_path.read_text().splitlines() if log_path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # the last line of a killed write
    return rows


def _rollout_rows(log_path: Path, store, iteration: int) -> list[dict[str, Any]]:
    """The verdicts of iteration ``iteration``'s finished rollouts, made to agree with the store.

    A verdict's row is written before its episode is appended to the store (every rollout is
    stored, kept or not). A kill between the two leaves a row whose episode is not in the store:
    the row is dropped here and that rollout runs again (same seeds, same episode). A line cut
    short by a kill is dropped too.
    """
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    rows = _read_rows(log_path)
    stored = {(store.meta(i)["task"], store.meta(i)["seed"]): i
              for i in store.filter(source=[KEPT, EXECUTED], sail_iteration=iteration)}
    rows = [r for r in rows if (r["task"], r["seed"]) in stored]
    have = {(r["task"], r["seed"]) for r in rows}
    for (task, seed), i in stored.items():  # an episode without its row (the log lost): rebuilt from the store
        if (task, seed) not in have:
            meta = store.meta(i)
            kept = meta["source"] == KEPT
            rows.append({"task": task, "seed": seed, "kept": kept, "graded_success": kept,
                         "score": meta["grader_score"], "reason": "row rebuilt from the store",
                         "success_gt": meta["success_gt"], "length": store.episode_length(i) - 1})
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if text != "".join(line + "\n" for line in lines):  # rows dropped or rebuilt
        write_atomic(log_path, text)
    return rows


def collect_rollouts(cfg: SailConfig, run_dir: Path, store_path: Path, iteration: int, planner: str, policy: str,
                     grader) -> dict[str, Any]:
    """R plan-and-execute rollouts per target task; graded; the kept ones appended to the store.

    Every graded rollout gets a row in ``rollouts.jsonl`` (kept or not, with the simulator's
    verdict, so the grader can be measured); pairs already graded are not rerun. With any grader
    but the oracle a rollout never stops at the simulator's success flag: it runs its step budget
    (the executor's own stop rules apply), and the flag is only recorded.
    """
    from embodied.evaluate import prior_dict
    from embodied.rollouts import PlanJob, RolloutSettings, prior_id, rollout_plan_many
    from embodied.store import EpisodeStore
    from embodied.video import write_rollout_video

    out = run_dir / f"iter_{iteration}"
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "rollouts.jsonl"
    allocation = rollout_allocation(cfg, run_dir, iteration)
    used = {t: sum(rollout_allocation(cfg, run_dir, k)[t] for k in range(iteration)) for t in cfg.target_set.tasks}
    seeds = {t: cfg.seeds.self_collection.take(n, offset=used[t]) for t, n in allocation.items()}  # fresh ones per task
    oracle = getattr(grader, "name", "") == "oracle"
    executor = replace(cfg.executor, action_noise_std=cfg.ablation.rollout_action_noise_std,
                       stop_on_success=cfg.executor.stop_on_success and oracle)
    settings = RolloutSettings(image_size=cfg.image_size, camera=cfg.env.camera, executor=executor,
                               plan_batch=cfg.preset.plan_batch, plan_sampler=cfg.plan_sampler,
                               plan_sample_steps=cfg.plan_sample_steps, sampling_seed=cfg.seed,
                               prior=prior_dict(cfg.prior, str(run_dir / planner), cfg.image_size),
                               **rollout_device_settings(cfg.preset, cfg.device))
    # Relative to the run dir: the same in every copy of the run (a prior is outside it).
    checkpoint = f"planner={planner};policy={policy}" + prior_id(settings.prior)
    with EpisodeStore(store_path, mode="a") as store:
        rows = _rollout_rows(log_path, store, iteration)
        done = {(row["task"], row["seed"]) for row in rows}
        jobs = [PlanJob(task, seed, planner=str(run_dir / planner), policy=str(run_dir / policy),
                        method=f"sail_{iteration}")
                for task in cfg.target_set.tasks for seed in seeds[task] if (task, seed) not in done]
        first_seed = {t: s[0] for t, s in seeds.items() if s}
        with open(log_path, "a") as log_file:
            for result in rollout_plan_many(jobs, settings, workers=cfg.workers, progress=cfg.progress):
                episode = result.episode
                if result.job.seed < first_seed[result.job.task] + cfg.videos:  # plan beside execution, the lowest seeds
                    write_rollout_video(out / "videos" / f"{result.job.task}_seed{result.job.seed}.mp4", result,
                                        f"iteration {iteration}")
                verdict = grader.grade_episode(episode)
                keep = verdict.success
                row = {"task": episode.meta["task"], "seed": episode.meta["seed"], "kept": bool(keep),
                       "graded_success": bool(verdict.success), "score": float(verdict.score),
                       "reason": verdict.reason, "success_gt": int(episode.meta["success_gt"]),
                       "length": episode.num_actions}
                log_file.write(json.dumps(row) + "\n")  # the verdict first, then the episode (see _rollout_rows)
                log_file.flush()
                # Every executed rollout is stored (the IDM learns from all); the kept ones as "plan".
                episode.meta.update(source=KEPT if keep else EXECUTED, sail_iteration=iteration, grader=grader.name,
                                    grader_score=float(verdict.score), checkpoint=checkpoint)
                store.append(episode)
                rows.append(row)
    wanted = {(t, s) for t in cfg.target_set.tasks for s in seeds[t]}
    current = [row for row in rows if (row["task"], row["seed"]) in wanted]
    per_task = {t: [sum(row["success_gt"] == 1 for row in current if row["task"] == t),
                    sum(row["task"] == t for row in current)] for t in cfg.target_set.tasks}
    return {"rollouts": len(current), "kept": sum(row["kept"] for row in current),
            "rollout_success_gt": sum(row["success_gt"] for row in current), "tasks": per_task,
            "kept_per_task": {t: sum(row["kept"] for row in current if row["task"] == t) for t in cfg.target_set.tasks},
            "mean_length": float(np.mean([row["length"] for row in current])) if current else float("nan"),
            "allocation": allocation, **grader_agreement(current)}


def rollout_allocation(cfg: SailConfig, run_dir: Path, iteration: int) -> dict[str, int]:
    """Rollouts per target task in ``iteration`` (embodied/practice.py), from the grader's verdicts
    of the earlier iterations; recorded in iter_<k>/allocation.json before its rollouts start."""
    from embodied.practice import allocate, iteration_allocation, proposer_name

    tasks = list(cfg.target_set.tasks)

    def compute() -> dict[str, int]:
        history = [(row["task"], row["graded_success"]) for k in range(iteration)
                   for row in _read_rows(run_dir / f"iter_{k}" / "rollouts.jsonl")]
        frames = _first_frames(cfg, iteration) if proposer_name(cfg.proposer) == "vlm" else None
        return allocate(cfg.proposer, tasks, cfg.rollouts_per_task * len(tasks), history,
                        derived_seed(cfg.seed, f"iter_{iteration}/proposer"), frames)

    return iteration_allocation(run_dir / f"iter_{iteration}" / "allocation.json", compute)


def _first_frames(cfg: SailConfig, iteration: int) -> dict[str, np.ndarray]:
    """What the VLM proposer looks at: each target task's scene at a self-collection seed."""
    from sim.env import make_env

    frames = {}
    for task in cfg.target_set.tasks:
        env = make_env(task, image_size=cfg.image_size, camera=cfg.env.camera)
        try:
            obs, _ = env.reset(seed=cfg.seeds.self_collection.take(1, offset=iteration)[0])
            frames[task] = obs["rgb"]
        finally:
            env.close()
    return frames


def finetune_episodes(store, demos: list[int], kept: list[int], share: float, by_task: bool = True) -> list[int]:
    """Demos + kept episodes, the kept ones repeated so that they give ~``share`` of the steps,
    split equally between the tasks they come from: an easy task's many successes must not crowd
    out a hard task's few (measured, unbalanced: the task with fewer kept episodes lost what the
    first round had taught it). ``by_task=False``: one pool, every kept episode repeated alike."""
    if not kept or share <= 0:
        return demos + kept
    demo_steps = sum(store.episode_length(i) for i in demos)
    groups: dict[str, list[int]] = {}
    for i in kept:
        groups.setdefault(store.meta(i)["task"] if by_task else "", []).append(i)
    per_group = share / (1 - share) * max(demo_steps, 1) / len(groups)
    mixed = list(demos)
    for episodes in groups.values():
        steps = sum(store.episode_length(i) for i in episodes)
        mixed += episodes * max(1, round(per_group / max(steps, 1)))
    return mixed


def data_mix(store, episodes: list[int], own: list[int]) -> dict[str, Any]:
    """What a fine-tuning set is made of: how many self-collected episodes (``own``: the kept ones
    for the planner, every executed one for the IDM), and their share of its steps."""
    own_set = set(own)
    steps = [store.episode_length(i) for i in episodes]
    self_steps = sum(n for i, n in zip(episodes, steps) if i in own_set)
    return {"self_episodes": len(own_set), "self_step_share": self_steps / sum(steps) if steps else 0.0}


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


def evaluate_targets(cfg: SailConfig, run_dir: Path, out: Path, planner: str, policy: str,
                     upper_bounds: bool) -> dict[str, Any]:
    """Simulator ground truth on the first ``eval_episodes_per_task`` seeds of the ``measure_on``
    range: per-task successes and every episode's outcome (for the paired tests)."""
    from embodied.evaluate import EvalConfig, evaluate

    ec = EvalConfig(preset=cfg.preset, env=cfg.env, task_set=cfg.target_set, planner=str(run_dir / planner),
                    policy_ckpt=str(run_dir / policy), episodes_per_task=cfg.eval_episodes_per_task, seeds=cfg.seeds,
                    split=cfg.measure_on, sampling_seed=cfg.seed, plan_sampler=cfg.plan_sampler,
                    plan_sample_steps=cfg.plan_sample_steps, prior=cfg.prior, workers=cfg.workers, image_size=cfg.image_size,
                    device=cfg.device, executor=cfg.executor, videos=cfg.videos, upper_bounds=upper_bounds, progress=cfg.progress)
    result = evaluate(ec, out)
    main = result.methods[0].name
    seeds = cfg.seeds.range(cfg.measure_on).take(cfg.eval_episodes_per_task)
    outcome = {(r["task"], r["seed"]): int(r["success"]) for r in result.episodes if r["method"] == main}
    return {"seeds": seeds,
            "tasks": {s.task: [s.successes, s.episodes] for s in result.stats[main]},
            "success": {t: [outcome[(t, seed)] for seed in seeds] for t in cfg.target_set.tasks},
            "upper_bounds": {m.name: {s.task: [s.successes, s.episodes] for s in result.stats[m.name]}
                             for m in result.methods[1:]}}


# --- the loop ------------------------------------------------------------------------------------
def run_sail(cfg: SailConfig, run_dir: str | Path) -> dict[str, Any]:
    """The SAIL loop of the module docstring; returns the report's numbers (also in report/)."""
    from embodied.sail_report import write_report
    from embodied.store import EpisodeStore
    from embodied.graders import make_grader

    run_dir = Path(run_dir)
    check_config(cfg)
    record = config_record(cfg)
    learned = _learns_grader(cfg)
    grader = None if learned else make_grader(cfg.grader)  # oracle | learned | vlm | none
    resuming = check_run_dir(run_dir, record)
    store = _store_path(cfg, run_dir)
    claim_store(store, record)  # before anything is written: a store holds one config's episodes
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the config is known to be valid
    if not resuming:
        write_atomic(run_dir / CONFIG_FILE, json.dumps(record, indent=1))
    state = RunState(run_dir)
    state.plan = planned_phases(cfg)
    state.budget_s = None if cfg.budget_minutes is None else 60.0 * cfg.budget_minutes
    seed = cfg.seed

    # Pretraining on expert demos of the training tasks.
    _phase(state, "demos", collect_demos, cfg=cfg, run_dir=run_dir)
    with EpisodeStore(store) as s:
        demos = _demo_episodes(s, cfg)
        policy_demos = _policy_demo_episodes(s, cfg, demos)
    common = dict(cfg=cfg, run_dir=run_dir, store=store)
    planner = pretrained = _phase(state, "pretrain_video", train_planner, **common, out=run_dir / "pretrain" / "video",
                                  train=cfg.pretrain_video, init_from=None, episodes=demos,
                                  seed=derived_seed(seed, "pretrain_video"))["checkpoint"]
    policy = pretrained_policy = _phase(state, "pretrain_policy", train_executor_policy, **common,
                                        out=run_dir / "pretrain" / "policy", train=cfg.pretrain_policy, init_from=None,
                                        episodes=policy_demos, seed=derived_seed(seed, "pretrain_policy"))["checkpoint"]
    if learned:
        path = _phase(state, "train_grader", train_loop_grader, **common)["checkpoint"]
        grader = make_grader(replace(grader_config(cfg.grader), path=str(run_dir / path)))
    restart = cfg.ablation.finetune_from == "pretrained"  # every round from the pretrained models

    for it in range(cfg.iterations + 1):  # iteration `iterations` only measures the last models
        out = run_dir / f"iter_{it}"
        for kind in iteration_phases(cfg, it):
            name = f"iter_{it}/{kind}"
            if kind == "rollouts":
                _phase(state, name, collect_rollouts, cfg=cfg, run_dir=run_dir, store_path=store, iteration=it,
                       planner=planner, policy=policy, grader=grader)
            elif kind == "eval":
                _phase(state, name, evaluate_targets, cfg=cfg, run_dir=run_dir, out=out / "eval", planner=planner,
                       policy=policy, upper_bounds=cfg.upper_bounds and it == 0)
            elif kind == "finetune_video":
                with EpisodeStore(store) as s:  # the control (no self-training): the demos alone
                    kept = _loop_episodes(s, it, [KEPT]) if cfg.self_training else []
                    episodes = finetune_episodes(s, demos, kept, cfg.self_data_share,
                                                 by_task=cfg.ablation.kept_share == "per_task")
                    mix = data_mix(s, episodes, kept)
                planner = _phase(state, name, train_planner, **common, out=out / "video", train=cfg.finetune_video,
                                 init_from=pretrained if restart else planner, episodes=episodes,
                                 seed=derived_seed(seed, name), mix=mix)["checkpoint"]
            elif kind == "finetune_policy":
                with EpisodeStore(store) as s:  # every rollout executed so far, kept or not, pooled
                    executed = _loop_episodes(s, it, [KEPT, EXECUTED]) if cfg.self_training else []
                    mix = data_mix(s, policy_demos + executed, executed)
                policy = _phase(state, name, train_executor_policy, **common, out=out / "policy",
                                train=cfg.finetune_policy, init_from=pretrained_policy if restart else policy,
                                episodes=policy_demos + executed, seed=derived_seed(seed, name), mix=mix)["checkpoint"]
        if it < cfg.iterations:
            write_report(cfg, run_dir, state)  # readable while the loop goes on
    return write_report(cfg, run_dir, state)


def claim_store(path: Path, record: dict[str, Any]) -> None:
    """A store holds the self-collected episodes of one config: refuse one that another run's
    config wrote (a shared ``store=`` would mix their kept episodes), and mark a new one as ours."""
    from embodied.store import EpisodeStore

    owner = config_fingerprint(record)
    if Path(path).exists():
        with EpisodeStore(path) as s:
            theirs = s.attrs.get("sail_config")
        if theirs not in (None, owner):
            raise ValueError(f"the store {path} holds the episodes of a SAIL run with another config "
                             f"(fingerprint {theirs}, this run's {owner}): each run needs its own store. Leave "
                             f"store unset (the run dir's store.zarr) or give a new path. Nothing was written.")
    with EpisodeStore(path, mode="a", image_size=record["image_size"], camera=record["env"]["camera"]) as s:
        if s.attrs.get("sail_config") != owner:
            s.set_attrs(sail_config=owner)


def config_fingerprint(record: dict[str, Any]) -> str:
    """A short hash of a config record (the store path left out: it names where, not what)."""
    import hashlib

    return hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != "store"}, sort_keys=True)
                          .encode()).hexdigest()[:16]
