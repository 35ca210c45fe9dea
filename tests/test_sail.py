"""The SAIL loop end to end on a tiny budget: keeping episodes, the control, seed ranges, the
paired report, same command same numbers, refusing another config, and resuming after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sail_with_expert
from conftest import FULL
from embodied.sail import RunState, SailConfig, planned_phases, run_sail, time_to_go
from embodied.store import EpisodeStore

TESTS = Path(__file__).parent
# Pretrain on reach, practise handle-press: the expert solves it in 26-37 steps from the first
# self-collection seeds, so with the expert executing (sail_with_expert) most rollouts are kept.
TINY = [
    "task_set.tasks=[reach-v3]", "target_set.name=tiny", "target_set.tasks=[handle-press-v3]",
    "preset.image_size=32", "workers=0", "progress=false", "demos_per_task=2", "iterations=2",
    "rollouts_per_task=3", "eval_episodes_per_task=2", "upper_bounds=true", "finetune=both",
    "executor.max_steps=40", "videos=1", "self_data_share=0.5", "measure_intermediate=true",
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


@pytest.fixture
def expert_rollouts(monkeypatch):
    """Self-collection rollouts executed by the scripted expert (see tests/sail_with_expert.py)."""
    import embodied.rollouts

    monkeypatch.setattr(embodied.rollouts, "_run_unit", sail_with_expert._run_unit)


def _rows(run: Path, it: int) -> list[dict]:
    return [json.loads(line) for line in (run / f"iter_{it}" / "rollouts.jsonl").read_text().splitlines()]


def _check_run(run: Path, iterations: int = 2, rollouts: int = 3) -> dict:
    """Every phase once; each kept (task, seed) exactly once in the store; rows and store agree."""
    state = json.loads((run / "sail_state.json").read_text())["done"]
    expected = ["demos", "pretrain_video", "pretrain_policy"]
    for it in range(iterations):
        expected += [f"iter_{it}/rollouts", f"iter_{it}/eval", f"iter_{it}/finetune_video", f"iter_{it}/finetune_policy"]
    expected.append(f"iter_{iterations}/eval")
    assert sorted(state) == sorted(expected)
    with EpisodeStore(run / "store.zarr") as store:
        metas = [store.meta(i) for i in range(len(store))]
    keys = [(m["task"], m["seed"], m["source"], m["sail_iteration"]) for m in metas]
    assert not [k for k, n in Counter(keys).items() if n > 1], "duplicated episodes"
    assert sum(1 for k in keys if k[2] == "expert") == 2
    kept_total = 0
    for it in range(iterations):
        rows = _rows(run, it)
        assert len(rows) == len({(r["task"], r["seed"]) for r in rows}) == rollouts, "a rollout ran twice or is missing"
        assert all(r["kept"] == (r["success_gt"] == 1) for r in rows)  # the oracle grader keeps exactly the successes
        stored = sorted((m["task"], m["seed"]) for m in metas if m["source"] == "plan" and m["sail_iteration"] == it)
        assert stored == sorted((r["task"], r["seed"]) for r in rows if r["kept"])
        executed = sorted((m["task"], m["seed"]) for m in metas if m["source"] in ("plan", "rollout")
                          and m["sail_iteration"] == it)
        assert executed == sorted((r["task"], r["seed"]) for r in rows)  # every rollout stored, kept or not
        kept_total += len(stored)
    assert kept_total >= 2, "the loop test must keep episodes"
    report = json.loads((run / "report" / "sail.json").read_text())
    assert [p["iteration"] for p in report["curve"]] == list(range(iterations + 1))
    assert all(p["episodes"] == 2 for p in report["curve"])
    return report


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_sail_keeps_and_fine_tunes_on_its_successes(tmp_path, caplog, expert_rollouts):
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="embodied.sail"):
        report = run_sail(_cfg("budget_minutes=0.001"), run)
    _check_run(run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg())
    assert "over the budget of 0 min" in caplog.text and "min to go" in caplog.text
    # The fine-tuning sets hold the kept episodes of iterations 0..it at the configured share of steps.
    kept = [sum(r["kept"] for r in _rows(run, it)) for it in range(2)]
    for it in range(2):
        info = state[f"iter_{it}/finetune_video"]
        assert info["self_episodes"] == sum(kept[: it + 1]) > 0
        assert abs(info["self_step_share"] - 0.5) < 0.15
        # The IDM's set holds every rollout executed so far, kept or not, each once (pooled).
        policy_set = state[f"iter_{it}/finetune_policy"]
        assert policy_set["self_episodes"] == 3 * (it + 1) and 0 < policy_set["self_step_share"] < 1
    # ... and the fine-tuned weights differ from the ones they started from.
    before = _safetensors(run / "pretrain" / "video" / "planner" / "ema.safetensors")
    after = _safetensors(run / "iter_0" / "video" / "planner" / "ema.safetensors")
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    # Paths in the state are the run dir's own; the report pairs every iteration with iteration 0.
    assert state["iter_1/finetune_video"]["checkpoint"] == "iter_1/video/planner"
    assert [row["iteration"] for row in report["paired"]] == [1, 2]
    pooled = report["paired"][0]["pooled"]
    assert pooled["episodes"] == 2 and pooled["gained"] + pooled["lost"] <= 2 and 0 < pooled["p_value"] <= 1
    summary = (run / "report" / "summary.md").read_text()
    for text in ("upper bound: expert", "| 2 |", "precision", "exact McNemar", "test seeds per task (100000-100001",
                 ", budget 0.001 min |", "their share of steps"):
        assert text in summary, text
    evaluated = [json.loads(line)["seed"] for line in (run / "iter_0" / "eval" / "episodes.jsonl").read_text().splitlines()]
    assert set(evaluated) == {100_000, 100_001}  # the test range, never a tuning seed
    assert (run / "report" / "success.png").stat().st_size > 1000
    assert list((run / "report" / "videos").rglob("*.mp4"))
    # Everything is done: running again does nothing new; a moved run dir resumes as well.
    before = (run / "sail_state.json").read_text()
    run_sail(_cfg("progress=true"), run)  # a cosmetic key may change
    assert (run / "sail_state.json").read_text() == before
    moved = tmp_path / "moved"
    shutil.move(run, moved)
    run_sail(_cfg(), moved)
    assert (moved / "sail_state.json").read_text() == before


def _store_files(store: Path) -> dict[str, bytes]:
    """Every file of a store, the wall-clock creation times left out (they are times, not results)."""
    files = {}
    for path in sorted(store.rglob("*")):
        rel = str(path.relative_to(store))
        if path.is_dir() or rel.startswith("meta/episodes/created_at/"):
            continue
        data = path.read_bytes()
        if rel == "zarr.json":
            doc = json.loads(data)
            doc["attributes"].pop("created_at")
            data = json.dumps(doc, sort_keys=True).encode()
        files[rel] = data
    return files


def _model_files(run: Path) -> dict[str, bytes]:
    """The weights and configs of every model the run made (final ones and training checkpoints)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and (p.suffix == ".safetensors" or (p.name == "config.json" and "checkpoints" not in p.parts
                                                                and p.parent.name in ("planner", "policy", "grader")))}


def test_same_command_same_numbers_and_seeds_differ(tmp_path, expert_rollouts):
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "seed1"
    run_sail(_cfg(), a)
    run_sail(_cfg(), b)
    _check_run(a)
    store_a, store_b = _store_files(a / "store.zarr"), _store_files(b / "store.zarr")
    assert store_a.keys() == store_b.keys() and [k for k in store_a if store_a[k] != store_b[k]] == []
    models_a, models_b = _model_files(a), _model_files(b)
    assert len(models_a) > 10 and models_a == models_b
    assert (a / "report" / "sail.json").read_bytes() == (b / "report" / "sail.json").read_bytes()
    # Another loop seed: other initial weights, other plans.
    run_sail(_cfg("seed=1", "iterations=0"), other)
    pretrained = "pretrain/video/planner/ema.safetensors"
    assert (other / pretrained).read_bytes() != (a / pretrained).read_bytes()
    plans = [json.loads(line)["plans"] for line in (other / "iter_0" / "eval" / "episodes.jsonl").read_text().splitlines()]
    assert plans and (other / "report" / "sail.json").read_bytes() != (a / "report" / "sail.json").read_bytes()


def test_control_runs_the_same_rounds_on_the_demos_alone(tmp_path):
    run = tmp_path / "control"
    report = run_sail(_cfg("self_training=false", "upper_bounds=false"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg("self_training=false"))
    assert not [p for p in state if "rollouts" in p]
    cfg = _cfg()
    for it in range(2):
        for model, train in (("video", cfg.finetune_video), ("policy", cfg.finetune_policy)):
            info = state[f"iter_{it}/finetune_{model}"]
            assert info["self_episodes"] == 0 and info["self_step_share"] == 0
            assert info["episodes"] == state[f"pretrain_{model}"]["episodes"]  # the demos, nothing else
            latest = sorted((run / f"iter_{it}" / model / "checkpoints").glob("step_*"))[-1]
            used = json.loads((latest / "trainer_state.json").read_text())["train_config"]
            assert (used["steps"], used["lr"], used["lr_schedule"]) == (train.steps, train.lr, train.lr_schedule)
    assert [p["iteration"] for p in report["curve"]] == [0, 1, 2]
    assert "the demos alone (the control)" in (run / "report" / "summary.md").read_text()


def test_no_ground_truth_reaches_self_collection_without_the_oracle(tmp_path, expert_rollouts):
    """grader=none: a rollout runs its whole step budget, whatever the simulator says; the
    simulator's verdict is recorded (for the grader's precision) and decides nothing."""
    run = tmp_path / "none"
    report = run_sail(_cfg("grader=none", "iterations=1", "upper_bounds=false"), run)
    rows = _rows(run, 0)
    assert all(r["kept"] for r in rows) and any(r["success_gt"] == 1 for r in rows)
    assert all(r["length"] == 40 for r in rows)  # the expert succeeds by step 37, and goes on
    with EpisodeStore(run / "store.zarr") as store:
        plan = store.filter(source="plan")
        assert len(plan) == 3 and all(store.episode_length(i) == 41 for i in plan)
    assert report["graders"][0]["precision"] == sum(r["success_gt"] for r in rows) / 3


def test_refuses_another_config_and_bad_seed_ranges(tmp_path):
    run = tmp_path / "run"
    cfg = _cfg("iterations=0", "upper_bounds=false")
    run_sail(cfg, run)
    files = sorted(p for p in run.rglob("*"))
    state = (run / "sail_state.json").read_text()
    with pytest.raises(ValueError, match=r"another config \(2 key\(s\) differ: finetune_video.lr: 0.0005 -> 0.001; "
                                         r"seed: 0 -> 3\)"):
        run_sail(_cfg("iterations=0", "upper_bounds=false", "seed=3", "finetune_video.lr=1e-3"), run)
    assert sorted(p for p in run.rglob("*")) == files and (run / "sail_state.json").read_text() == state
    # A store written by another config is refused too (a shared store= would mix kept episodes).
    with pytest.raises(ValueError, match="each run needs its own store"):
        run_sail(_cfg("iterations=0", "seed=3", f"store={run / 'store.zarr'}"), tmp_path / "other")
    assert not (tmp_path / "other").exists()
    for overrides, message in [
        (["seeds.test.start=25000"], r"seeds.exploration = \[20000, 30000\) and seeds.test = \[25000, 200000\) overlap"),
        (["seeds.validation.stop=10001", "measure_on=validation"], "seeds.validation: 2 seeds from 10000 do not fit"),
        (["rollouts_per_task=5000"], r"seeds.self_collection \(iterations x rollouts_per_task x target tasks\): 10000 seeds from 1000 do not fit"),
        (["measure_on=train"], "measure_on must be test | validation"),
        (["pretrain_video.seed=1"], "every training seed derives from the loop's seed"),
        (["plan_sampler=euler"], "plan_sampler must be one of ddim, dpm_solver or null"),
        (["preset.plan_batch=0"], "preset.plan_batch must be an integer >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_sail(_cfg(*overrides), tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


def test_learned_grader_is_trained_in_the_loop_on_pretraining_tasks(tmp_path, expert_rollouts):
    run = tmp_path / "learned"
    report = run_sail(_cfg("grader=learned", "iterations=1", "upper_bounds=false", "grader_training.max_steps=30",
                           "grader_training.noise_stds=[2.0]", "grader_training.train.steps=3",
                           "grader_training.train.batch_size=8", "grader_training.model.channels=[8,8]"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg("grader=learned", "iterations=1"))
    assert state["train_grader"]["checkpoint"] == "grader/grader"
    with EpisodeStore(run / "grader" / "data.zarr") as data:
        assert set(data.column("task")) == {"reach-v3"}  # never a target task's label
        assert set(data.column("success_gt")) == {0, 1}
    rows = _rows(run, 0)
    assert all(r["reason"].startswith("P(success)=") for r in rows)
    assert {"precision", "recall"} <= set(report["graders"][0])


def test_time_to_go_goes_by_finished_phases_of_the_same_kind(tmp_path):
    cfg = _cfg("iterations=2", "finetune=planner")
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


def test_finetune_episodes_give_kept_ones_their_share(tmp_path):
    from embodied.sail import data_mix, finetune_episodes
    from test_store import make_episode

    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        demos = store.extend([make_episode(s, length=30) for s in range(6)])  # 180 steps
        kept = store.extend([make_episode(10 + s, length=20) for s in range(2)])  # 40 steps
        mixed = finetune_episodes(store, demos, kept, 0.5)
        assert mixed[:6] == demos and Counter(mixed[6:]) == {kept[0]: 4, kept[1]: 4}  # 160 vs 180 steps
        assert data_mix(store, mixed, kept) == {"self_episodes": 2, "self_step_share": 160 / 340}
        # Per task: three kept episodes of task-1 and one of task-2 get the same number of steps.
        more = store.extend([make_episode(s, length=10) for s in (31, 34, 37, 32)])
        assert [store.meta(i)["task"] for i in more] == ["task-1"] * 3 + ["task-2"]
        mixed = Counter(finetune_episodes(store, demos, more, 0.5))
        assert mixed[more[0]] == mixed[more[1]] == mixed[more[2]] == 3 and mixed[more[3]] == 9  # 90 steps each
        pooled = Counter(finetune_episodes(store, demos, more, 0.5, by_task=False))
        assert len({pooled[i] for i in more}) == 1 and pooled[more[0]] == 4  # 180 steps over 4 alike
        assert finetune_episodes(store, demos, kept, 0.0) == demos + kept
        assert finetune_episodes(store, demos, [], 0.5) == demos
    with pytest.raises(ValueError, match="self_data_share"):
        run_sail(_cfg("self_data_share=1.0"), tmp_path / "bad")


def test_finetune_from_pretrained_restarts_every_round(tmp_path):
    run = tmp_path / "run"
    run_sail(_cfg("+ablation=restart_rounds", "self_training=false", "upper_bounds=false"), run)

    def started_from(it: int, model: str = "video") -> str:
        latest = sorted((run / f"iter_{it}" / model / "checkpoints").glob("step_*"))[-1]
        return json.loads((latest / "trainer_state.json").read_text())["train_config"]["init_from"]

    pretrained = str(run / "pretrain" / "video" / "planner")
    assert started_from(0) == started_from(1) == pretrained
    assert started_from(0, "policy") == started_from(1, "policy") == str(run / "pretrain" / "policy" / "policy")
    with pytest.raises(ValueError, match="finetune_from"):
        run_sail(_cfg("ablation.finetune_from=best"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_idm_only_rounds_keep_the_pretrained_planner(tmp_path, expert_rollouts):
    """finetune=policy: each round fine-tunes the IDM alone, on every rollout it executed (failed
    ones too); the planner stays as pretrained."""
    run = tmp_path / "run"
    run_sail(_cfg("finetune=policy", "upper_bounds=false", "executor.max_steps=30"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == planned_phases(_cfg("finetune=policy"))
    assert not [p for p in state if p.endswith("finetune_video")]
    assert [p for p in state if p.endswith("finetune_policy")] == ["iter_0/finetune_policy", "iter_1/finetune_policy"]
    rows = _rows(run, 0) + _rows(run, 1)
    assert any(not r["kept"] for r in rows), "the test must execute a rollout that is not kept"
    assert state["iter_1/finetune_policy"]["self_episodes"] == len(rows) == 6
    last = json.loads((run / "iter_2" / "eval" / "episodes.jsonl").read_text().splitlines()[0])["checkpoint"]
    assert last == f"planner={run / 'pretrain' / 'video' / 'planner'};policy={run / 'iter_1' / 'policy' / 'policy'}"
    with pytest.raises(ValueError, match="finetune must be one of both | planner | policy | none"):
        run_sail(_cfg("finetune=all"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_no_finetuning_measures_the_pretrained_models_each_iteration(tmp_path):
    run = tmp_path / "run"
    run_sail(_cfg("finetune=none", "self_training=false", "upper_bounds=false", "iterations=1"), run)
    state = json.loads((run / "sail_state.json").read_text())["done"]
    assert list(state) == ["demos", "pretrain_video", "pretrain_policy", "iter_0/eval", "iter_1/eval"]
    assert state["iter_0/eval"]["success"] == state["iter_1/eval"]["success"]


def test_rollout_action_noise_is_for_self_collection_only(tmp_path, monkeypatch):
    import embodied.rollouts
    from embodied.sail import collect_rollouts
    from embodied.graders import make_grader

    seen = []
    monkeypatch.setattr(embodied.rollouts, "rollout_plan_many",
                        lambda jobs, settings, **kw: seen.append((len(jobs), settings)) or iter(()))
    cfg = _cfg("ablation.rollout_action_noise_std=0.3", "seed=4")
    result = collect_rollouts(cfg, tmp_path, tmp_path / "s.zarr", 0, "planner", "policy", grader=make_grader("oracle"))
    executor = seen[0][1].executor
    assert result["rollouts"] == 0 and seen[0][0] == 3 and executor.action_noise_std == 0.3
    assert seen[0][1].sampling_seed == 4  # the loop's seed reaches the plans and the noise
    assert executor.max_steps == cfg.executor.max_steps == 40 and executor.stop_on_success  # the oracle may stop
    assert cfg.executor.action_noise_std == 0.0  # what evaluate_targets hands the evaluation
    collect_rollouts(cfg, tmp_path, tmp_path / "s.zarr", 0, "planner", "policy", grader=make_grader("none"))
    assert not seen[1][1].executor.stop_on_success
    with pytest.raises(ValueError, match="rollout_action_noise_std"):
        run_sail(_cfg("ablation.rollout_action_noise_std=-1"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_rollout_rows_are_reconciled_with_the_store(tmp_path):
    """What a kill can leave: a torn last line, rows whose episode never reached the store (every
    rollout is stored, kept or not), an episode whose row was lost. The rows that come back agree
    with the store."""
    from embodied.sail import _rollout_rows
    from test_store import make_episode

    log = tmp_path / "rollouts.jsonl"
    row = {"kept": False, "graded_success": False, "score": 0.0, "reason": "", "success_gt": 0, "length": 9}
    lines = [json.dumps({**row, "task": "task-1", "seed": 1}),  # graded, not kept, stored: done
             json.dumps({**row, "task": "task-1", "seed": 4, "kept": True}),  # kept, but not in the store
             json.dumps({**row, "task": "task-1", "seed": 13}),  # not kept and not in the store
             '{"task": "task-2", "se']  # cut short by the kill
    log.write_text("\n".join(lines))
    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        store.append(make_episode(1, length=10, source="rollout", sail_iteration=0))
        store.append(make_episode(7, length=12, source="plan", sail_iteration=0, grader_score=1.0))  # its row was lost
        store.append(make_episode(10, length=12, source="plan", sail_iteration=1))  # another iteration's
        rows = _rollout_rows(log, store, iteration=0)
    assert [(r["task"], r["seed"], r["kept"]) for r in rows] == [("task-1", 1, False), ("task-1", 7, True)]
    assert rows[1]["length"] == 11 and rows[1]["reason"] == "row rebuilt from the store"
    assert [json.loads(line) for line in log.read_text().splitlines()] == rows  # rewritten whole
    with EpisodeStore(tmp_path / "s.zarr", mode="a") as store:
        assert _rollout_rows(log, store, iteration=0) == rows  # nothing more to mend


# --- kill -9 ---------------------------------------------------------------------------------------
def _command(run: Path) -> list[str]:
    return [sys.executable, str(TESTS / "sail_with_expert.py"), *TINY, f"hydra.run.dir={run}"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(TESTS), **extra}


def test_kill_between_the_verdict_and_the_store_append(tmp_path):
    """A rollout's verdict row is written, then the process dies before its episode is appended:
    the rerun redoes that rollout, and the record and the store agree."""
    run = tmp_path / "run"
    killed = subprocess.run(_command(run), capture_output=True, text=True, timeout=600,
                            env=_env(SAIL_TEST_KILL_AT_PLAN_APPEND="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    rows = _rows(run, 0)
    assert rows and rows[-1]["kept"]
    with EpisodeStore(run / "store.zarr") as store:
        assert store.filter(source="plan") == []  # the kept row's episode never made it
    out = subprocess.run(_command(run), capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    _check_run(run)


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
    """kill -9 at several points of a loop that keeps episodes; rerunning the same command finishes
    with each kept (task, seed) exactly once and nothing lost."""
    run = tmp_path / "run"
    points = [lambda: _lines(run / "iter_0" / "rollouts.jsonl") >= 2]  # mid-rollouts, two graded
    if FULL:
        points += [
            lambda: (run / "pretrain" / "video" / "checkpoints" / "latest").exists(),  # mid-pretraining
            lambda: _done(run, "iter_0/eval"),  # between phases (fine-tuning starts)
            lambda: _lines(run / "iter_1" / "rollouts.jsonl") >= 1,  # mid-rollouts of iteration 1
            lambda: (run / "iter_1" / "video" / "checkpoints" / "latest").exists(),  # mid fine-tuning
        ]
    for point in points:
        proc = subprocess.Popen(_command(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        try:
            _wait(proc, point)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    out = subprocess.run(_command(run), capture_output=True, text=True, env=_env(), timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    _check_run(run)


def test_multirun_filter_ablation_then_summary(tmp_path):
    """embodied-sail --multirun grader=oracle,learned,none: three runs, each with its own store (the
    learned grader trained inside its loop), and the summary groups them by grader."""
    sweep = tmp_path / "multi"
    command = [sys.executable, str(TESTS / "sail_with_expert.py"), "--multirun", *TINY, "iterations=1",
               "rollouts_per_task=2", "upper_bounds=false", "grader=oracle,learned,none", f"hydra.sweep.dir={sweep}",
               "grader_training.max_steps=30", "grader_training.noise_stds=[2.0]", "grader_training.train.steps=2",
               "grader_training.train.batch_size=8", "grader_training.model.channels=[8,8]"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(p.parent.parent for p in sweep.rglob("report/sail.json"))
    assert len(runs) == 3 and all((run / "store.zarr").is_dir() for run in runs)
    graders = {json.loads((run / "report" / "sail.json").read_text())["config"]["grader"]["name"]: run for run in runs}
    assert sorted(graders) == ["learned", "none", "oracle"]
    assert (graders["learned"] / "grader" / "grader" / "model.safetensors").is_file()
    from embodied.sail_report import summarize

    assert sorted(g["label"] for g in summarize(sweep)["groups"]) == ["grader=learned", "grader=none", "grader=oracle"]


def test_curriculum_allocates_each_iteration_and_resumes_it(tmp_path, expert_rollouts):
    """proposer=curriculum: each iteration's budget (rollouts_per_task x targets) goes over the
    targets by the grader's earlier verdicts; every (task, seed) is fresh; the report shows it."""
    cfg = _cfg("proposer=curriculum", "target_set.tasks=[handle-press-v3,button-press-v3]", "rollouts_per_task=2",
               "finetune=none", "upper_bounds=false", "eval_episodes_per_task=1")
    run = tmp_path / "run"
    run_sail(cfg, run)
    allocations = [json.loads((run / f"iter_{it}" / "allocation.json").read_text()) for it in range(2)]
    assert all(sum(a.values()) == 4 for a in allocations)
    rows = _rows(run, 0) + _rows(run, 1)
    assert len(rows) == 8 and len({(r["task"], r["seed"]) for r in rows}) == 8  # fresh seeds per task
    for it, allocation in enumerate(allocations):
        assert Counter(r["task"] for r in _rows(run, it)) == {t: n for t, n in allocation.items() if n}
    summary = (run / "report" / "summary.md").read_text()
    assert "Rollouts per target task (proposer=curriculum)" in summary
    # A resumed run recomputes the same allocation from the same verdicts.
    from embodied.sail import rollout_allocation

    (run / "iter_1" / "allocation.json").unlink()
    assert rollout_allocation(cfg, run, 1) == allocations[1]


def test_a_prior_composes_every_plan_and_a_bad_one_is_refused_up_front(tmp_path, monkeypatch):
    """prior=planner: rollouts and evaluations plan with the composed model (recorded in each
    episode's checkpoint column); only the in-domain planner is fine-tuned. A missing prior
    directory is refused before anything is written."""
    from video_models import Planner

    cfg = _cfg()
    prior_dir = Planner(cfg.video_model).save(tmp_path / "prior")  # a second (random) planner: the prior
    with pytest.raises(FileNotFoundError, match="prior"):
        run_sail(_cfg("prior=planner", f"prior.path={tmp_path / 'missing'}"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="a composed planner samples with its own DDIM steps"):
        run_sail(_cfg("prior=planner", f"prior.path={prior_dir}", "plan_sampler=ddim"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "run"
    run_sail(_cfg("prior=planner", f"prior.path={prior_dir}", "iterations=1", "upper_bounds=false", "finetune=planner"),
             run)
    with EpisodeStore(run / "store.zarr") as store:
        columns = {store.meta(i)["checkpoint"] for i in store.filter(source=["plan", "rollout"])}
    assert columns and all(f"prior=planner:{prior_dir.resolve()},w=2.5,g=0.5" in c for c in columns)
    evaluated = json.loads((run / "iter_1" / "eval" / "episodes.jsonl").read_text().splitlines()[0])["checkpoint"]
    assert "prior=planner:" in evaluated and "iter_0/video/planner" in evaluated
