"""The SAIL loop end to end on a tiny budget, and resuming after kill -9 at several points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from conftest import FULL
from embodied.sail import SailConfig, run_sail
from embodied.store import EpisodeStore

TINY = [
    "task_set.tasks=[reach-v3]", "target_set.name=tiny", "target_set.tasks=[button-press-v3]",
    "preset.image_size=32", "workers=0", "progress=false", "demos_per_task=2", "iterations=2",
    "rollouts_per_task=2", "eval_episodes_per_task=2", "executor.max_steps=20", "videos=1",
    "video_model.base_channels=8", "video_model.channel_mult=[1,2]", "video_model.attention_resolutions=[8]",
    "video_model.norm_groups=4", "video_model.num_frames=3", "video_model.sample_steps=2",
    "policy.channels=[8,8]", "policy.hidden_dim=32",
    "pretrain_video.steps=2", "pretrain_video.batch_size=2", "pretrain_video.checkpoint_every=1",
    "finetune_video.steps=2", "finetune_video.batch_size=2", "finetune_video.checkpoint_every=1",
    "pretrain_policy.steps=2", "pretrain_policy.batch_size=4", "pretrain_policy.num_workers=0",
    "finetune_policy.steps=2", "finetune_policy.batch_size=4", "finetune_policy.num_workers=0",
]


def _cfg(*overrides) -> SailConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_object(compose("sail", overrides=[*TINY, *overrides]))


def _check_run(run: Path, iterations: int = 2, rollouts: int = 2) -> dict:
    state = json.loads((run / "sail_state.json").read_text())["done"]
    expected = ["demos", "pretrain_video", "pretrain_policy"]
    for it in range(iterations):
        expected += [f"iter_{it}/rollouts", f"iter_{it}/eval", f"iter_{it}/finetune_video", f"iter_{it}/finetune_policy"]
    expected.append(f"iter_{iterations}/eval")
    assert sorted(state) == sorted(expected)
    with EpisodeStore(run / "store.zarr") as store:
        keys = [(m["task"], m["seed"], m["source"], m["sail_iteration"]) for m in map(store.meta, range(len(store)))]
        assert not [k for k, n in Counter(keys).items() if n > 1], "duplicated episodes"
        kept = Counter(m["sail_iteration"] for m in map(store.meta, range(len(store))) if m["source"] == "plan")
        assert sum(1 for k in keys if k[2] == "expert") == 2
    for it in range(iterations):
        rows = [json.loads(line) for line in (run / f"iter_{it}" / "rollouts.jsonl").read_text().splitlines()]
        assert len(rows) == len({(r["task"], r["seed"]) for r in rows}) == rollouts, "a rollout ran twice or is missing"
        assert sum(r["kept"] for r in rows) == kept.get(it, 0)
        assert all(r["kept"] == (r["success_gt"] == 1) for r in rows)  # the oracle grader keeps exactly the successes
    report = json.loads((run / "report" / "sail.json").read_text())
    assert [p["iteration"] for p in report["curve"]] == list(range(iterations + 1))
    assert all(p["episodes"] == 2 for p in report["curve"])
    return report


def test_sail_end_to_end(tmp_path):
    run = tmp_path / "run"
    report = run_sail(_cfg(), run)
    _check_run(run)
    summary = (run / "report" / "summary.md").read_text()
    assert "upper bound: expert" in summary and "| 2 |" in summary and "precision" in summary
    assert (run / "report" / "success.png").stat().st_size > 1000
    assert list((run / "report" / "videos").rglob("*.mp4"))
    assert report["graders"][0]["rollouts"] == 2
    # Everything is done: running again does nothing new.
    before = (run / "sail_state.json").read_text()
    run_sail(_cfg(), run)
    assert (run / "sail_state.json").read_text() == before


def test_no_self_training_baseline_only_evaluates(tmp_path):
    run = tmp_path / "base"
    run_sail(_cfg("self_training=false", "upper_bounds=false"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert not [p for p in state if "rollouts" in p or "finetune" in p]
    assert [p for p in state if p.endswith("/eval")] == ["iter_0/eval", "iter_1/eval", "iter_2/eval"]


def _wait(proc: subprocess.Popen, condition, timeout: float = 300) -> None:
    t0 = time.time()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the loop ended before the kill point: {proc.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout:
            raise AssertionError("kill point not reached in time")
        time.sleep(0.05)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _done(run: Path, phase: str) -> bool:
    path = run / "sail_state.json"
    try:
        return phase in json.loads(path.read_text())["done"]
    except (OSError, ValueError):
        return False


@pytest.mark.slow
def test_kill_9_anywhere_then_rerun_resumes(tmp_path):
    """kill -9 at several points; rerunning the same command finishes with nothing lost or doubled."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "embodied.sail", *TINY, f"hydra.run.dir={run}"]
    points = [lambda: _lines(run / "iter_0" / "rollouts.jsonl") >= 1]  # mid-rollouts, one graded
    if FULL:
        points += [
            lambda: (run / "pretrain" / "video" / "checkpoints" / "latest").exists(),  # mid-pretraining
            lambda: _done(run, "iter_0/eval"),  # between phases (fine-tuning starts)
            lambda: (run / "iter_1" / "video" / "checkpoints" / "latest").exists(),  # mid fine-tuning
        ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    for point in points:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            _wait(proc, point)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    _check_run(run)
