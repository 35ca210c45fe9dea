"""embodied-grade: grade a store's episodes with any grader and measure it against the simulator.

    embodied-grade grader=learned grader.path=<run>/grader store=data/grader.zarr min_seed=14
    embodied-grade grader=oracle store=data/grader.zarr        # the reference: 100 %
    embodied-grade grader=none store=data/grader.zarr          # keep-everything: the success share

Prints accuracy (95 % Wilson interval), precision, recall and F1 against ``success_gt`` with a
confusion table, overall and per source; writes ``grades.jsonl`` (one row per episode),
``summary.md`` and ``summary.json`` into the Hydra output dir. The store is only read (it has no
update API): grades are reported, not written back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from embodied.config import PresetConfig, TaskSetConfig
from embodied.graders import config as _grader_schemas  # noqa: F401  (registers the grader/ schemas)
from embodied.graders.metrics import BinaryMetrics, confusion_table, metrics_table

log = logging.getLogger(__name__)


@dataclass
class GradeConfig:
    preset: PresetConfig = field(default_factory=PresetConfig)
    task_set: TaskSetConfig = field(default_factory=TaskSetConfig)  # grade these tasks' episodes
    grader: Any = MISSING  # configs/grader/<oracle|learned|vlm|none>.yaml
    store: str = "data/grader.zarr"  # episode store to grade (read only)
    sources: list[str] | None = None  # episode sources to grade; None: all
    min_seed: int | None = None  # inclusive seed range (e.g. the seeds a learned grader never saw)
    max_seed: int | None = None
    max_episodes: int | None = None  # grade at most this many (the first ones); None: all
    batch_size: int = 32  # episodes read and graded together
    progress: bool = True


ConfigStore.instance().store(name="grade_schema", node=GradeConfig)


@dataclass
class GradeReport:
    overall: BinaryMetrics
    by_source: dict[str, BinaryMetrics]
    by_task: dict[str, BinaryMetrics]
    grades: list[dict[str, Any]]

    def markdown(self, title: str) -> str:
        return (f"# {title}\n\n{metrics_table({'all': self.overall, **self.by_source})}\n\n"
                f"Confusion (rows: simulator, columns: grader):\n\n{confusion_table(self.overall)}\n\n"
                f"Per task:\n\n{metrics_table(self.by_task, label='task')}\n")


def grade_store(cfg: GradeConfig, out_dir: str | Path | None = None) -> GradeReport:
    """Grade the selected labelled episodes of ``cfg.store``; write the report into ``out_dir``."""
    from tqdm.auto import tqdm

    from embodied.store import EpisodeStore
    from embodied.graders import make_grader
    from embodied.graders.base import nan_to_none
    from embodied.graders.data import select_episodes
    from sim.catalog import validate_task_names

    grader = make_grader(cfg.grader)
    store = EpisodeStore(cfg.store, mode="r")
    episodes = select_episodes(store, validate_task_names(list(cfg.task_set.tasks)), cfg.sources,
                               cfg.min_seed, cfg.max_seed)[: cfg.max_episodes]
    if not episodes:
        raise ValueError(f"no labelled episodes (success_gt 0 / 1) to grade in {cfg.store} for tasks "
                         f"{list(cfg.task_set.tasks)}, sources={cfg.sources}, seeds {cfg.min_seed}..{cfg.max_seed}")
    log.info("grading %d episodes of %s with the %s grader", len(episodes), cfg.store, grader.name)
    grades: list[dict[str, Any]] = []
    bar = tqdm(total=len(episodes), desc=f"grading ({grader.name})", unit="ep", disable=not cfg.progress)
    for start in range(0, len(episodes), max(1, cfg.batch_size)):
        batch = episodes[start:start + cfg.batch_size]
        metas = [store.meta(i) for i in batch]
        frames = [_trailing_frames(store, i, grader.frames_needed) for i in batch]
        infos = [{"success": store.get(i, "success"), "success_gt": m["success_gt"], "task": m["task"]}
                 for i, m in zip(batch, metas)]
        results = grader.grade_batch(frames, [m["instruction"] for m in metas], infos)
        for i, m, r in zip(batch, metas, results):
            grades.append({"index": i, "task": m["task"], "seed": m["seed"], "source": m["source"],
                           "instruction": m["instruction"], "success_gt": m["success_gt"], "success": r.success,
                           "score": nan_to_none(r.score), "reason": r.reason})
        bar.update(len(batch))
    bar.close()

    def metrics(rows) -> BinaryMetrics:
        return BinaryMetrics.from_labels([g["success_gt"] == 1 for g in rows], [g["success"] for g in rows])

    def split(key: str) -> dict[str, BinaryMetrics]:
        return {v: metrics([g for g in grades if g[key] == v]) for v in sorted({g[key] for g in grades})}

    report = GradeReport(metrics(grades), split("source"), split("task"), grades)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "grades.jsonl", "w") as f:
            f.writelines(json.dumps(g) + "\n" for g in grades)
        title = f"Grader {grader.name} on {cfg.store} ({len(grades)} episodes, seeds {cfg.min_seed}..{cfg.max_seed})"
        (out / "summary.md").write_text(report.markdown(title))
        summary = {"grader": grader.name, "store": str(cfg.store), "overall": report.overall.to_dict(),
                   "by_source": {s: m.to_dict() for s, m in report.by_source.items()},
                   "by_task": {t: m.to_dict() for t, m in report.by_task.items()}}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return report


def _trailing_frames(store, i: int, count: int | None):
    """The last ``count`` frames of episode ``i`` (all of them for None): only those chunks are read."""
    length = store.episode_length(i)
    return store.get(i, "rgb", slice(0 if count is None else max(0, length - count), length))
