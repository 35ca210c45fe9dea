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
from embodied.sail import RunState, SailConfig, planned_phases, run_sail, time_to_go
from embodied.store import EpisodeStore

TINY = [
    "task_set.tasks=[reach-v3]", "target_set.name=tiny", "target_set.tasks=[button-press-v3]",
    "preset.image_size=32", "workers=0", "progress=false", "demos_per_task=2", "iterations=2",
    "rollouts_per_task=2", "eval_episodes_per_task=2", "upper_bounds=true", "finetune_policy_too=true", "executor.max_steps=20", "videos=1",
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


def test_sail_end_to_end(tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="embodied.sail"):
        report = run_sail(_cfg("budget_minutes=0.001"), run)
    _check_run(run)
    # The phases ran in the order the time-to-go estimate assumes, and the budget was watched.
    assert list(json.loads((run / "sail_state.json").read_text())["done"]) == planned_phases(_cfg())
    assert "over the budget of 0 min" in caplog.text and "min to go" in caplog.text
    summary = (run / "report" / "summary.md").read_text()
    assert "upper bound: expert" in summary and "| 2 |" in summary and "precision" in summary
    assert ", budget 0.001 min |" in summary
    assert (run / "report" / "success.png").stat().st_size > 1000
    assert list((run / "report" / "videos").rglob("*.mp4"))
    assert report["graders"][0]["rollouts"] == 2
    # Everything is done: running again does nothing new.
    before = (run / "sail_state.json").read_text()
    run_sail(_cfg(), run)
    assert (run / "sail_state.json").read_text() == before


def test_time_to_go_goes_by_finished_phases_of_the_same_kind(tmp_path):
    cfg = _cfg("iterations=2", "finetune_policy_too=false")
    state = RunState(tmp_path)
    state.plan = planned_phases(cfg)
    assert state.plan == ["demos", "pretrain_video", "pretrain_policy",
                          "iter_0/rollouts", "iter_0/eval", "iter_0/finetune_video",
                          "iter_1/rollouts", "iter_1/eval", "iter_1/finetune_video", "iter_2/eval"]
    for phase, wall in [("demos", 10), ("pretrain_video", 100), ("pretrain_policy", 50),
                        ("iter_0/rollouts", 30), ("iter_0/eval", 20)]:
        state.finish(phase, wall_s=wall)
    # to go: iter_1's rollouts (30) and two evaluations (20 each); no fine-tuning measured yet.
    assert time_to_go(state) == (210.0, 70.0, 2)
    state.finish("iter_0/finetune_video", wall_s=40)
    assert time_to_go(state) == (250.0, 110.0, 0)
    with pytest.raises(ValueError, match="budget_minutes must be > 0"):
        run_sail(_cfg("budget_minutes=0"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_no_self_training_baseline_only_evaluates(tmp_path):
    run = tmp_path / "base"
    run_sail(_cfg("self_training=false", "upper_bounds=false"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg("self_training=false"))
    assert not [p for p in state if "rollouts" in p or "finetune" in p]
    assert [p for p in state if p.endswith("/eval")] == ["iter_0/eval", "iter_1/eval", "iter_2/eval"]


def test_success_measured_on_rollouts_and_self_data_upweighted(tmp_path):
    """eval_episodes_per_task=0: iteration k's point is the simulator's verdict on its own R
    rollouts, the last model is measured on R fresh seeds; kept episodes are repeated in fine-tuning."""
    run = tmp_path / "run"
    report = run_sail(_cfg("eval_episodes_per_task=0", "iterations=1", "self_data_share=0.75",
                           "explore_demos_per_task=1"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    # The noisy exploration demo trains the IDM only: never the planner.
    with EpisodeStore(run / "store.zarr") as store:
        assert Counter(m["source"] for m in map(store.meta, range(len(store))) if m["source"] != "plan") == \
            {"expert": 2, "expert_noisy": 1}
    assert (state["pretrain_video"]["episodes"], state["pretrain_policy"]["episodes"]) == (2, 3)
    assert sorted(state) == sorted(["demos", "pretrain_video", "pretrain_policy", "iter_0/rollouts",
                                    "iter_0/finetune_video", "iter_0/finetune_policy", "iter_1/eval"])
    rows = [json.loads(line) for line in (run / "iter_0" / "rollouts.jsonl").read_text().splitlines()]
    first, last = report["curve"]
    assert (first["iteration"], first["episodes"], first["successes"]) == (0, 2, sum(r["success_gt"] for r in rows))
    assert (last["iteration"], last["episodes"]) == (1, 2)
    final = [json.loads(line) for line in (run / "iter_1" / "eval" / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["seed"] for r in final) == [1002, 1003]  # the seeds after iteration 0's rollouts
    assert list((run / "report" / "videos" / "first_iter_0").glob("*.mp4"))  # rollout videos
    assert "own rollouts" in (run / "report" / "summary.md").read_text()


def test_finetune_episodes_give_kept_ones_their_share(tmp_path):
    from embodied.sail import finetune_episodes
    from test_store import make_episode

    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        demos = store.extend([make_episode(s, length=30) for s in range(6)])  # 180 steps
        kept = store.extend([make_episode(10 + s, length=20) for s in range(2)])  # 40 steps
        mixed = finetune_episodes(store, demos, kept, 0.5)
        assert mixed[:6] == demos and Counter(mixed[6:]) == {kept[0]: 4, kept[1]: 4}  # 160 vs 180 steps
        # Per task: three kept episodes of task-1 and one of task-2 get the same number of steps.
        more = store.extend([make_episode(s, length=10) for s in (31, 34, 37, 32)])
        assert [store.meta(i)["task"] for i in more] == ["task-1"] * 3 + ["task-2"]
        mixed = Counter(finetune_episodes(store, demos, more, 0.5))
        assert mixed[more[0]] == mixed[more[1]] == mixed[more[2]] == 3 and mixed[more[3]] == 9  # 90 steps each
        assert finetune_episodes(store, demos, kept, 0.0) == demos + kept
        assert finetune_episodes(store, demos, [], 0.5) == demos
    with pytest.raises(ValueError, match="self_data_share"):
        run_sail(_cfg("self_data_share=1.0"), tmp_path / "bad")


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


def test_finetune_from_pretrained_restarts_every_round(tmp_path):
    run = tmp_path / "run"
    run_sail(_cfg("finetune_from=pretrained", "eval_episodes_per_task=0", "finetune_policy_too=true"), run)

    def started_from(it: int, model: str = "video") -> str:
        latest = sorted((run / f"iter_{it}" / model / "checkpoints").glob("step_*"))[-1]
        return json.loads((latest / "trainer_state.json").read_text())["train_config"]["init_from"]

    pretrained = str(run / "pretrain" / "video" / "planner")
    assert started_from(0) == started_from(1) == pretrained
    assert started_from(0, "policy") == started_from(1, "policy") == str(run / "pretrain" / "policy" / "policy")
    with pytest.raises(ValueError, match="finetune_from"):
        run_sail(_cfg("finetune_from=best"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_idm_only_rounds_keep_the_pretrained_planner(tmp_path):
    """finetune_planner=false: each round fine-tunes the IDM alone; the planner stays as pretrained."""
    run = tmp_path / "run"
    run_sail(_cfg("finetune_planner=false", "finetune_policy_too=true", "policy_self_data_share=0.5"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg("finetune_planner=false", "finetune_policy_too=true"))
    assert not [p for p in state if p.endswith("finetune_video")]
    assert [p for p in state if p.endswith("finetune_policy")] == ["iter_0/finetune_policy", "iter_1/finetune_policy"]
    last = json.loads((run / "iter_2" / "eval" / "episodes.jsonl").read_text().splitlines()[0])["checkpoint"]
    assert last == f"planner={run / 'pretrain' / 'video' / 'planner'};policy={run / 'iter_1' / 'policy' / 'policy'}"
    with pytest.raises(ValueError, match="nothing learns"):
        run_sail(_cfg("finetune_planner=false", "finetune_policy_too=false"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_rollout_action_noise_is_for_self_collection_only(tmp_path, monkeypatch):
    import embodied.rollouts
    from embodied.sail import collect_rollouts

    seen = []
    monkeypatch.setattr(embodied.rollouts, "rollout_plan_many",
                        lambda jobs, settings, **kw: seen.append((len(jobs), settings.executor)) or iter(()))
    cfg = _cfg("rollout_action_noise_std=0.3")
    result = collect_rollouts(cfg, tmp_path / "s.zarr", tmp_path / "out", 0, "planner", "policy", grader=None)
    assert result["rollouts"] == 0 and seen[0][0] == 2 and seen[0][1].action_noise_std == 0.3
    assert seen[0][1].max_steps == cfg.executor.max_steps == 20  # the rest of the executor as configured
    assert cfg.executor.action_noise_std == 0.0  # what evaluate_targets hands the evaluation
    with pytest.raises(ValueError, match="eval_episodes_per_task"):
        run_sail(_cfg("rollout_action_noise_std=0.3", "eval_episodes_per_task=0"), tmp_path / "bad")
    with pytest.raises(ValueError, match="rollout_action_noise_std"):
        run_sail(_cfg("rollout_action_noise_std=-1"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
