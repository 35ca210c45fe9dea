"""embodied-train-grader and embodied-grade end to end on a tiny synthetic store (16 px, no simulator)."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.grade import grade_store
from embodied.store import EpisodeStore
from embodied.train_grader import train_grader
from embodied.graders.config import GraderDataConfig
from embodied.graders.data import GraderSamples, sample_points, select_episodes, truncate_before_success
from sim.types import Episode

SIZE = 16
TASKS = ["drawer-open-v3", "door-open-v3"]


def synthetic_episode(task: str, seed: int, succeed: bool, length: int = 24) -> Episode:
    """A bright block slides right on a dark floor; the task is done when it reaches the right edge."""
    rng = np.random.default_rng(seed)
    rgb = np.full((length, SIZE, SIZE, 3), 30, np.uint8)
    rgb += rng.integers(0, 20, rgb.shape, dtype=np.uint8)  # per-seed texture: the scene differs by seed
    done_at = length - 6 if succeed else None
    row = 4 + seed % 6
    for t in range(length):
        x = min(12, t * 12 // (length - 6)) if succeed else min(6, t // 4)  # failures stall half way
        rgb[t, row:row + 4, x:x + 4] = 230
    success = np.zeros(length, bool)
    if done_at is not None:
        success[done_at:] = True
    action = np.zeros((length, 4), np.float32)
    return Episode(rgb=rgb, action=action, state=np.zeros((length, 3), np.float32), success=success,
                   meta={"task": task, "instruction": "open the drawer" if task == TASKS[0] else "open the door",
                         "source": "expert" if succeed else "noised1.5", "seed": seed, "success_gt": int(succeed)})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("grader") / "grader.zarr"
    with EpisodeStore(path, mode="a") as s:
        for task in TASKS:
            for seed in range(8):
                s.append(synthetic_episode(task, seed, succeed=seed % 2 == 0))
        unlabelled = synthetic_episode(TASKS[0], 99, True)
        unlabelled.meta["success_gt"] = -1
        s.append(unlabelled)
    return path


def _train_cfg(store, *overrides):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("train_grader", overrides=[
            f"store={store}", "task_set.tasks=[drawer-open-v3,door-open-v3]", "model.image_size=16",
            "model.channels=[8,16]", "model.hidden_dim=32", "model.random_shift=1", "model.frame_gap=2",
            "train.batch_size=16", "train.log_every=1", "train.progress=false", "train.lr=3e-3",
            "train.warmup_steps=5", *overrides])
    return OmegaConf.to_object(cfg)


def _grade_cfg(store, *overrides):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("grade", overrides=[f"store={store}", "task_set.tasks=[drawer-open-v3,door-open-v3]",
                                          "progress=false", *overrides])
    return OmegaConf.to_object(cfg)


def test_samples_label_early_frames_negative_and_done_frames_positive():
    cfg = GraderDataConfig(early_frac=0.5, early_samples=3, failed_samples=2, positive_samples=2)
    success = np.array([False] * 10 + [True] * 4)
    points = sample_points(success, 1, cfg)
    assert (13, 1) in points and (10, 1) in points
    assert {t for t, label in points if label == 0} == {0, 2, 5}  # <= 0.5 * first success (10)
    assert all(label == (t >= 10) for t, label in points)
    assert sample_points(np.zeros(9, bool), 0, cfg) == [(0, 0), (4, 0), (8, 0)]
    assert sample_points(success, -1, cfg) == []


def test_truncated_demo_is_a_failure_before_success():
    ep = synthetic_episode(TASKS[0], 0, succeed=True)
    cut = truncate_before_success(ep, 0.5)
    assert len(cut) == 9 and not cut.success.any() and cut.meta["success_gt"] == 0
    assert cut.meta["source"] == "truncated" and not cut.action[-1].any()
    with pytest.raises(ValueError, match="never succeeds"):
        truncate_before_success(synthetic_episode(TASKS[0], 1, succeed=False), 0.5)


def test_select_episodes_by_seed_range_and_labels(store):
    s = EpisodeStore(store)
    ids = select_episodes(s, TASKS, None, 2, 5)
    assert sorted({s.meta(i)["seed"] for i in ids}) == [2, 3, 4, 5] and len(ids) == 8
    assert len(select_episodes(s, TASKS)) == 16  # the unlabelled one is left out
    data = GraderSamples(s, ids, frames=2, frame_gap=2, cfg=GraderDataConfig())
    item = data[0]
    assert item["frames"].shape == (2, SIZE, SIZE, 3) and item["frames"].dtype == np.uint8
    assert data.num_positive and data.num_negative and item["instruction"] in ("open the drawer", "open the door")


def test_train_grade_resume_and_reports(store, tmp_path):
    run = tmp_path / "run"
    result = train_grader(_train_cfg(store, "max_seed=5", "train.steps=60"), run)
    assert result.steps == 60 and np.isfinite(result.last_loss)
    assert (run / "grader" / "model.safetensors").is_file() and (run / "grader" / "config.json").is_file()
    again = train_grader(_train_cfg(store, "max_seed=5", "train.steps=62"), run)
    assert again.resumed_from == 60 and again.steps == 62

    # Held-out seeds 6, 7: the block's position tells success apart.
    held_out = ("min_seed=6", "max_seed=7")
    learned = grade_store(_grade_cfg(store, "grader=learned", f"grader.path={run / 'grader'}", *held_out),
                          tmp_path / "learned")
    assert learned.overall.total == 4 and learned.overall.accuracy.value >= 0.75
    oracle = grade_store(_grade_cfg(store, "grader=oracle", *held_out), tmp_path / "oracle")
    assert oracle.overall.accuracy.value == 1.0 and oracle.overall.f1 == 1.0
    none = grade_store(_grade_cfg(store, "grader=none"), tmp_path / "none")
    assert none.overall.tp == 8 and none.overall.fp == 8 and none.overall.recall == 1.0
    assert none.overall.accuracy.value == 0.5 and set(none.by_source) == {"expert", "noised1.5"}

    rows = [json.loads(line) for line in (tmp_path / "learned" / "grades.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(0.0 <= r["score"] <= 1.0 for r in rows)
    assert {r["seed"] for r in rows} == {6, 7}
    summary = (tmp_path / "none" / "summary.md").read_text()
    assert "| all | 16 |" in summary and "Confusion" in summary
    assert json.loads((tmp_path / "none" / "summary.json").read_text())["overall"]["precision"] == 0.5
    assert json.loads((tmp_path / "none" / "grades.jsonl").read_text().splitlines()[0])["score"] is None


def test_bad_inputs(store, tmp_path):
    with pytest.raises(ValueError, match="need successes and failures"):
        train_grader(_train_cfg(store, "sources=[noised1.5]", "train.steps=1"), tmp_path / "a")
    with pytest.raises(ValueError, match="image_size"):
        train_grader(_train_cfg(store, "model.image_size=32", "train.steps=1"), tmp_path / "b")
    with pytest.raises(ValueError, match="no labelled episodes"):
        grade_store(_grade_cfg(store, "min_seed=50"), tmp_path / "c")
    with pytest.raises(ValueError, match="grader.path"):
        grade_store(_grade_cfg(store, "grader=learned"), tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="embodied-train-grader"):
        grade_store(_grade_cfg(store, "grader=learned", f"grader.path={tmp_path}"), tmp_path / "e")


def test_build_grader_store_collects_truncated_and_noised_failures(tmp_path):
    """Simulator rollouts (one task, one seed, 32 px): expert + truncated copy + noised expert, resumable."""
    from embodied.graders.data import build_grader_store

    path = tmp_path / "g.zarr"
    kw = dict(tasks=["reach-v3"], seeds=[0], noise_stds=(3.0,), max_steps=20, image_size=32, workers=0, progress=False)
    assert build_grader_store(path, **kw) == {"expert": 1, "truncated": 1, "noised3": 1}
    assert build_grader_store(path, **kw) == {"expert": 1, "truncated": 1, "noised3": 1}  # nothing twice
    s = EpisodeStore(path)
    by_source = {s.meta(i)["source"]: i for i in range(len(s))}
    assert s.meta(by_source["expert"])["success_gt"] == 1 and s.meta(by_source["truncated"])["success_gt"] == 0
    assert s.episode_length(by_source["truncated"]) < s.episode_length(by_source["expert"])
    assert s.episode_length(by_source["noised3"]) <= 21 and s.get(by_source["noised3"], "rgb", -1).max() > 0
