"""embodied-train-grader: train the learned success grader on store episodes labelled by the simulator.

    embodied-train-grader store=data/grader.zarr task_set=train_8 max_seed=13
    embodied-grade grader=learned grader.path=<this run dir>/grader store=data/grader.zarr min_seed=14

Positives: the final and success-flagged frames of successful episodes. Negatives: failed
episodes (truncated or noised experts, failed rollouts) and early frames of successful ones (the
task is not done yet); see embodied.graders.data. Same loop and run-dir layout as the other
trainers (metrics.jsonl, checkpoints/, resume); the grader is ``run_dir / "grader"``
(``embodied.graders.load_grader``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from embodied.checkpoints import write_checkpoint
from embodied.config import PresetConfig, TaskSetConfig
from embodied.training import TrainConfig, TrainResult, Trainable, fit, latest_checkpoint, seed_model_init
from embodied.graders.config import GraderDataConfig, SuccessClassifierConfig
from sim.catalog import validate_task_names

log = logging.getLogger(__name__)


@dataclass
class TrainGraderConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # train on these tasks' episodes
    model: SuccessClassifierConfig = field(default_factory=SuccessClassifierConfig)
    data: GraderDataConfig = field(default_factory=GraderDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # auto | cpu | cuda | cuda:N (embodied.device): where it trains (the yaml passes it to train.device)
    device: str = "auto"
    store: str = "data/grader.zarr"  # episode store with success_gt labels (unlabelled episodes are skipped)
    sources: list[str] | None = None  # episode sources to train on; None: all
    min_seed: int | None = None  # seed range to train on (inclusive): keep evaluation seeds outside it
    max_seed: int | None = None


ConfigStore.instance().store(name="train_grader_schema", node=TrainGraderConfig)


def train_grader(cfg: TrainGraderConfig, run_dir: str | Path, episodes: list[int] | None = None) -> TrainResult:
    """Train the success classifier on the selected episodes (or ``episodes``); saves run_dir / "grader"."""
    from embodied.store import EpisodeStore
    from embodied.graders.data import GraderSamples, select_episodes
    from embodied.graders.learned import SuccessClassifier

    run_dir = Path(run_dir)
    tasks = validate_task_names(list(cfg.task_set.tasks))
    store = EpisodeStore(cfg.store, mode="r")
    if episodes is None:
        episodes = select_episodes(store, tasks, cfg.sources, cfg.min_seed, cfg.max_seed)
    if store.image_size != (cfg.model.image_size, cfg.model.image_size):
        raise ValueError(f"the store's frames are {store.image_size} but model.image_size={cfg.model.image_size}")
    dataset = GraderSamples(store, episodes, cfg.model.frames, cfg.model.frame_gap, cfg.data)
    if not dataset.num_positive or not dataset.num_negative:
        raise ValueError(
            f"need successes and failures to train a grader: {len(episodes)} labelled episodes in {cfg.store} "
            f"(tasks={tasks}, sources={cfg.sources}, seeds {cfg.min_seed}..{cfg.max_seed}) give "
            f"{dataset.num_positive} positive and {dataset.num_negative} negative samples. Collect failures with "
            f"embodied.graders.data.build_grader_store")

    source = latest_checkpoint(run_dir) if cfg.train.resume else None
    source = source or (Path(cfg.train.init_from) if cfg.train.init_from else None)
    if source is not None:
        model = SuccessClassifier.load(source)
    else:
        seed_model_init(cfg.train)
        model = SuccessClassifier(cfg.model)
    model.train()
    # Balance the classes in the loss: a negative is as costly to miss as a positive.
    model.pos_weight.fill_(dataset.num_negative / dataset.num_positive)
    log.info("training the success grader on %d episodes: %d samples (%d positive)", len(episodes), len(dataset),
             dataset.num_positive)

    def load(path: Path) -> None:
        model.load_state_dict(SuccessClassifier.load(path).state_dict())

    trainable = Trainable(module=model, save=model.save, load=load)
    record = {"model": asdict(model.config), "data": asdict(cfg.data), "store": str(cfg.store),
              "episodes": len(episodes), "tasks": tasks, "seeds": [cfg.min_seed, cfg.max_seed]}
    result = fit(trainable, dataset, cfg.train, run_dir, config_record=record)
    if result.main_process:  # under DDP every rank holds the same weights; one writes them
        write_checkpoint(run_dir / "grader", model.save)
    return result
