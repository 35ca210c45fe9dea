"""embodied-eval and plan-and-execute rollouts, on one task, tiny models and short step budgets."""

import csv
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.evaluate import EvalConfig, evaluate, methods_for
from embodied.rollouts import OraclePlanner, PlanJob, RolloutSettings, VideoPlanFn, rollout_plan_episode, rollout_plan_many
from embodied.stats import wilson_interval
from policies.config import ExecutorConfig

SIZE = 32
TASK = "reach-v3"
pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")  # MetaWorld's experts


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """A random IDM at 32 px, saved as a checkpoint. Its output layer is randomised (it starts at
    zero), so actions depend on the frames and determinism checks mean something."""
    import torch

    from policies import FrameGoalPolicy, IDMConfig
    from policies.testing import InMemoryEpisodeSource

    rng = np.random.default_rng(0)
    n = 6
    action = np.clip(rng.normal(0, 1, (n, 4)), -1, 1).astype(np.float32)
    action[0], action[1] = -1, 1  # the action normaliser spans [-1, 1]
    episode = dict(rgb=rng.integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8), action=action,
                   state=rng.normal(0, 1, (n, 39)).astype(np.float32), success=np.zeros(n, bool), meta={})
    torch.manual_seed(0)
    config = IDMConfig(image_size=SIZE, channels=[8], hidden_dim=16, chunk=3)
    policy = FrameGoalPolicy.from_source(config, InMemoryEpisodeSource([episode]), [0])
    torch.nn.init.normal_(policy.head[-1].weight, std=0.5)
    return policy.save(tmp_path_factory.mktemp("ckpt") / "tiny_policy")


def eval_cfg(*overrides) -> EvalConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"task_set.tasks=[{TASK}]", "task_set.name=one", "workers=0",
                                                      f"image_size={SIZE}", "progress=false", *overrides])
    return OmegaConf.to_object(cfg)


# --- statistics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (5, 10), (81, 263)])
def test_wilson_interval_known_values(k, n):
    low, high = wilson_interval(k, n)
    stats = pytest.importorskip("scipy.stats")
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-9)
    if (k, n) == (81, 263):  # Newcombe (1998), Table II
        assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    if k == 0:
        assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)


# --- planners --------------------------------------------------------------------------------------
def test_oracle_planner_aligns_to_the_current_frame():
    frames = np.stack([np.full((4, 4, 3), 10 * i, np.uint8) for i in range(21)])  # frame i: value 10 i
    oracle = OraclePlanner(frames, num_frames=4)
    now = frames[8].copy()
    now[0, 0] += 3  # not an exact copy: the nearest frame is still 8
    plan = oracle("reach the goal", now)
    assert plan.shape == (5, 4, 4, 3) and oracle.indices[-1].tolist() == [8, 11, 14, 17, 20]
    np.testing.assert_array_equal(plan[0], frames[8])
    np.testing.assert_array_equal(plan[-1], frames[-1])
    assert oracle.plan_indices(frames[-1]).tolist() == [20] * 5  # at the end: hold the last frame


def test_oracle_planner_on_a_real_expert_episode():
    from sim.rollout import rollout_episode

    episode = rollout_episode(TASK, 10_000, image_size=SIZE, max_steps=40)
    oracle = OraclePlanner(episode.rgb)  # K = 7 sub-goals by default
    plan = oracle("reach the goal", episode.rgb[12])
    idx = oracle.indices[-1]
    assert plan.shape == (8, SIZE, SIZE, 3) and idx[-1] == len(episode) - 1 and (np.diff(idx) >= 0).all()
    np.testing.assert_array_equal(plan[0], episode.rgb[12])  # the current frame, found in the episode
    np.testing.assert_array_equal(plan, episode.rgb[idx])


class FakeVideoPlanner:
    """The video_models planner API: plan(instruction, frame, num_steps, seed) -> uint8 (K, H, W, 3)."""

    def __init__(self, k=3):
        self.k, self.seeds = k, []

    def plan(self, instruction, first_frame, num_steps=None, seed=None):
        self.seeds.append(seed)
        rng = np.random.default_rng(seed)
        return rng.integers(0, 255, (self.k, *first_frame.shape), dtype=np.uint8)


def test_plan_episode_with_a_video_planner(tiny_policy):
    from policies import load_policy

    planner = FakeVideoPlanner(k=3)
    cfg = ExecutorConfig(max_steps=12, replan_every=5, stall_window=None)
    episode, plans = rollout_plan_episode(TASK, 10_000, planner, load_policy(tiny_policy), cfg, image_size=SIZE,
                                          checkpoint="ckpt-1")
    assert episode.num_actions == 12 and episode.meta["source"] == "plan" and episode.meta["checkpoint"] == "ckpt-1"
    assert episode.meta["success_gt"] in (0, 1) and episode.meta["seed"] == 10_000 and episode.meta["instruction"]
    assert [(p.step, p.reason) for p in plans] == [(0, "start"), (5, "periodic"), (10, "periodic")]
    for p in plans:  # the current frame in front of the K predicted ones
        assert p.frames.shape == (4, SIZE, SIZE, 3)
        np.testing.assert_array_equal(p.frames[0], episode.rgb[p.step])
    assert len(set(planner.seeds)) == 3  # a fresh, reproducible sample per plan
    again = VideoPlanFn(FakeVideoPlanner(), seed=10_000)
    np.testing.assert_array_equal(again("x", episode.rgb[0])[1:], FakeVideoPlanner().plan("x", episode.rgb[0], seed=planner.seeds[0]))


# --- the CLI's function, end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluation(tiny_policy, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    cfg = eval_cfg(f"policy_ckpt={tiny_policy}", "planner=oracle", "episodes_per_task=2", "executor.max_steps=80", "videos=1")
    return cfg, evaluate(cfg, out)


def test_evaluate_writes_tables_rows_and_videos(evaluation):
    import imageio.v3 as iio

    cfg, result = evaluation
    out = result.output_dir
    assert [m.name for m in result.methods] == ["oracle + tiny_policy", "expert"]  # the upper bounds, once each
    for name in ("episodes.jsonl", "summary.md", "summary.csv", "success.png"):
        assert (out / name).stat().st_size > 100, name
    md = (out / "summary.md").read_text()
    assert "oracle + tiny_policy: success [95% CI]" in md and "expert: success [95% CI]" in md
    assert f"| {TASK} | 2 |" in md and "| mean over tasks | 2 |" in md

    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert rows == result.episodes and len(rows) == 4
    assert sorted((r["method"], r["seed"]) for r in rows) == sorted(
        (m, s) for m in ("oracle + tiny_policy", "expert") for s in (10_000, 10_001))
    for r in rows:
        assert r["task"] == TASK and 1 <= r["length"] <= 80 and r["plans"] == len(r["replan_reasons"])
        assert r["success"] == (r["first_success"] is not None)
        if r["method"] == "expert":
            assert r["success"] and r["plans"] == 0  # the scripted expert solves reach-v3
        else:
            assert r["replan_reasons"][0] == "start" and r["replan_steps"][0] == 0

    by_method = {(r["method"], r["task"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    expert = by_method[("expert", TASK)]
    assert expert["successes"] == "2" and float(expert["success_low"]) == pytest.approx(wilson_interval(2, 2)[0], abs=1e-4)
    lengths = [r["length"] for r in rows if r["method"] == "expert"]
    assert float(by_method[("expert", "mean over tasks")]["mean_length"]) == pytest.approx(np.mean(lengths), abs=0.01)

    videos = [r for r in rows if r["video"]]
    assert sorted((r["method"], r["seed"]) for r in videos) == [("expert", 10_000), ("oracle + tiny_policy", 10_000)]
    for r in videos:
        frames = iio.imread(out / r["video"], plugin="pyav")
        assert frames.shape[0] == r["length"] + 1 and frames.shape[-1] == 3  # one video frame per episode step
        panels = 1 if r["method"] == "expert" else 2  # executed | goal frame of the plan, side by side
        assert frames.shape[2] == panels * (frames.shape[1] - 16)  # under a 16 px caption row


def test_evaluate_the_expert_alone(tmp_path):
    result = evaluate(eval_cfg("policy_ckpt=expert", "episodes_per_task=1", "videos=0", "executor.max_steps=100"), tmp_path)
    assert [m.name for m in result.methods] == ["expert"]
    assert result.stats["expert"][0].successes == 1 and not (tmp_path / "videos").exists()
    assert "| reach-v3 | 1 | 1.00 [" in result.table


def test_methods_skip_an_upper_bound_that_is_the_evaluated_one():
    names = lambda **kw: [m.name for m in methods_for(EvalConfig(**kw))]
    assert names(planner="runs/vid", policy_ckpt="runs/idm") == ["vid + idm", "oracle + idm", "expert"]
    assert names(planner="oracle", policy_ckpt="runs/idm") == ["oracle + idm", "expert"]
    assert names(planner="runs/vid", policy_ckpt="expert") == ["expert"]
    assert names(planner="runs/vid", policy_ckpt="runs/idm", upper_bounds=False) == ["vid + idm"]


def test_worker_pool_matches_in_process(tiny_policy):
    settings = RolloutSettings(image_size=SIZE, executor=ExecutorConfig(max_steps=20, replan_every=8), oracle_frames=3)
    jobs = [PlanJob(TASK, 10_000, planner="oracle", policy=str(tiny_policy), method="oracle"),
            PlanJob(TASK, 10_001, planner="oracle", policy=str(tiny_policy), method="oracle"),
            PlanJob(TASK, 10_002, policy="expert", method="expert")]
    here = {(r.job.method, r.job.seed): r for r in rollout_plan_many(jobs, settings, workers=0, progress=False)}
    pool = {(r.job.method, r.job.seed): r for r in rollout_plan_many(jobs, settings, workers=2, progress=False)}
    assert here.keys() == pool.keys() and len(here) == 3
    for key, a in here.items():
        b = pool[key]
        np.testing.assert_allclose(a.episode.action, b.episode.action, atol=1e-6)
        np.testing.assert_array_equal(a.episode.rgb, b.episode.rgb)
        assert a.episode.meta["success_gt"] == b.episode.meta["success_gt"]
        assert [(p.step, p.reason) for p in a.plans] == [(p.step, p.reason) for p in b.plans]
        if key[0] == "oracle":  # the expert's episode starts in the same scene: its frame 0 is the current one
            assert a.plans[0].frames.shape == (4, SIZE, SIZE, 3)
            np.testing.assert_array_equal(a.plans[0].frames[0], a.episode.rgb[0])


# --- bad inputs fail before any rollout --------------------------------------------------------------
def test_bad_inputs_give_clear_errors(tiny_policy, tmp_path):
    with pytest.raises(FileNotFoundError, match="policy checkpoint not found"):
        evaluate(eval_cfg(f"policy_ckpt={tmp_path / 'nope'}"))
    with pytest.raises(FileNotFoundError, match="planner checkpoint not found"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", f"planner={tmp_path / 'nope'}"))
    with pytest.raises(ValueError, match="did you mean reach-v3"):
        evaluate(eval_cfg("task_set.tasks=[reach-v9]"))
    with pytest.raises(ValueError, match="trained on 32 px frames but the env renders 48 px"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", "image_size=48"))
    planner_dir = tmp_path / "planner"
    planner_dir.mkdir()
    (planner_dir / "config.json").write_text(json.dumps({"format": "video_models.planner", "config": {"image_size": 64}}))
    with pytest.raises(ValueError, match="planner checkpoint .* 64 px"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", f"planner={planner_dir}"))
    with pytest.raises(ValueError, match=r"is a policy checkpoint \(policies.checkpoint\), not a planner"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", f"planner={tiny_policy}"))
    with pytest.raises(ValueError, match="plan_sampler must be one of ddim, dpm_solver"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", "plan_sampler=euler"))
    with pytest.raises(ValueError, match="preset.plan_batch must be an integer >= 1"):
        evaluate(eval_cfg(f"policy_ckpt={tiny_policy}", "preset.plan_batch=0"))


def test_seeds_overlapping_the_training_store_are_refused(tmp_path):
    from embodied.store import EpisodeStore
    from sim.types import Episode

    store = tmp_path / "demos.zarr"
    n = 3
    with EpisodeStore(store, mode="a") as s:
        for seed in (10_000, 10_001):
            s.append(Episode(rgb=np.zeros((n, SIZE, SIZE, 3), np.uint8), action=np.zeros((n, 4), np.float32),
                             state=np.zeros((n, 39), np.float32), success=np.zeros(n, bool),
                             meta=dict(task=TASK, seed=seed, source="expert")))
    with pytest.raises(ValueError, match="overlap the training seeds .* seed_start >= 10002"):
        evaluate(eval_cfg("policy_ckpt=expert", f"train_store={store}", "episodes_per_task=2"))
    with pytest.raises(FileNotFoundError, match="train_store"):
        evaluate(eval_cfg("policy_ckpt=expert", f"train_store={tmp_path / 'missing.zarr'}"))
    # Another task's seeds are no leak; past the store's seeds is fine too (checked, then run).
    result = evaluate(eval_cfg("policy_ckpt=expert", f"train_store={store}", "seed_start=10002", "episodes_per_task=1",
                               "executor.max_steps=5", "videos=0"))
    assert result.episodes[0]["seed"] == 10_002


def test_prior_is_checked_before_any_rollout(tmp_path):
    from embodied.evaluate import prior_dict
    from video_models import Planner
    from video_models.config import VideoModelConfig

    small = VideoModelConfig(image_size=32, base_channels=8, channel_mult=[1, 2], attention_resolutions=[8],
                             norm_groups=4, num_frames=3, text_encoder="minilm")
    planner = Planner(small).save(tmp_path / "planner")
    prior = Planner(small).save(tmp_path / "prior")
    assert prior_dict({"kind": "none"}, planner, 32) is None
    got = prior_dict({"kind": "planner", "path": str(prior)}, planner, 32)
    assert got["kind"] == "planner" and got["path"] == str(prior)  # a plain dict: it travels to the workers
    with pytest.raises(ValueError, match="planner=oracle has none"):
        prior_dict({"kind": "planner", "path": str(prior)}, None, 32)
    with pytest.raises(FileNotFoundError):
        prior_dict({"kind": "planner", "path": str(tmp_path / "missing")}, planner, 32)
