"""embodied-train-policy: train the inverse dynamics model or the goal-reaching policy on store episodes.

    embodied-train-policy policy=idm preset=cpu_tiny task_set=train_8 store=data/demos.zarr
    embodied-train-policy policy=goal sources=[expert,plan]        # hindsight-relabelled GCBC

Same loop and run-dir layout as embodied-train-video (metrics.jsonl, checkpoints/, resume); the
final policy is ``run_dir / "policy"`` (``policies.load_policy``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from embodied.checkpoints import write_checkpoint
from embodied.config import EnvConfig, PresetConfig, TaskSetConfig
from embodied.training import TrainConfig, TrainResult, Trainable, fit, latest_checkpoint, seed_model_init
from policies.config import PolicyConfig
from sim.catalog import validate_task_names

log = logging.getLogger(__name__)


@dataclass
class TrainPolicyConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # train on these tasks' episodes
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # configs/policy/<idm|goal>.yaml
    train: TrainConfig = field(default_factory=TrainConfig)
    # auto | cpu | cuda | cuda:N (embodied.device): where it trains (the yaml passes it to train.device)
    device: str = "auto"
    store: str = "data/demos.zarr"  # episode store to read
    sources: list[str] = field(default_factory=lambda: ["expert"])  # episode sources to train on
    success_only: bool = False  # IDM: every episode shows what actions do; goal policy: may want True


ConfigStore.instance().store(name="train_policy_schema", node=TrainPolicyConfig)


def train_policy(cfg: TrainPolicyConfig, run_dir: str | Path, episodes: list[int] | None = None) -> TrainResult:
    """Train the policy on the selected store episodes (or ``episodes``); the result's checkpoint is in run_dir."""
    from embodied.store import EpisodeStore
    from policies import FrameGoalDataset, FrameGoalPolicy, load_policy

    run_dir = Path(run_dir)
    tasks = validate_task_names(list(cfg.task_set.tasks))
    if not Path(cfg.store).exists():
        raise FileNotFoundError(f"no episode store at {cfg.store}: collect demos first (embodied-collect store={cfg.store})")
    store = EpisodeStore(cfg.store, mode="r")
    if episodes is None:
        conditions = {"task": tasks, "source": list(cfg.sources)}
        if cfg.success_only:
            conditions["success_gt"] = 1
        episodes = store.filter(**conditions)
    if not episodes:
        raise ValueError(f"no episodes to train on in {cfg.store}: tasks={tasks}, sources={list(cfg.sources)}, "
                         f"success_only={cfg.success_only} (collect demos first: embodied-collect store={cfg.store})")
    if store.image_size != (cfg.policy.image_size, cfg.policy.image_size):
        raise ValueError(f"the store's frames are {store.image_size} but model.image_size={cfg.policy.image_size}")

    source = latest_checkpoint(run_dir) if cfg.train.resume else None
    source = source or (Path(cfg.train.init_from) if cfg.train.init_from else None)
    if source is not None:  # dims and normalisers come with the checkpoint
        policy = load_policy(source)
    else:
        seed_model_init(cfg.train)
        policy = FrameGoalPolicy.from_source(cfg.policy, store, episodes)
    dataset = FrameGoalDataset.from_config(store, episodes, policy.config)
    log.info("training a %s policy on %d episodes (%d samples)", policy.config.type, len(episodes), len(dataset))

    def load(path: Path) -> None:
        policy.load_state_dict(load_policy(path).state_dict())

    trainable = Trainable(module=policy, save=policy.save, load=load)
    record = {"model": policy.config.to_dict(), "store": str(cfg.store), "episodes": len(episodes), "tasks": tasks}
    result = fit(trainable, dataset, cfg.train, run_dir, config_record=record)
    if result.main_process:  # under DDP every rank holds the same weights; one writes them
        write_checkpoint(run_dir / "policy", policy.save)
    return result
