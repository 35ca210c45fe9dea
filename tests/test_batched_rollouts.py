"""Planning many episodes at once: the steppable executor, per-sample seeds, lockstep rollouts."""

import dataclasses

import numpy as np
import pytest
import torch

from embodied.rollouts import (UNIT_BLOCK, PlanJob, RolloutSettings, VideoPlanFn, _run_unit, plan_together, plan_units,
                               rollout_plan_many)
from policies import ExecutorConfig, PlanExecutor
from policies.executor import drive
from policies.testing import OraclePointPolicy, PointMassEnv, PointMassPlanner

SIZE = 32
TASK = "reach-v3"
pytestmark = pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")  # MetaWorld's experts


def tiny_planner_config(**overrides):
    from video_models import VideoModelConfig

    fields = dict(image_size=SIZE, num_frames=3, base_channels=8, channel_mult=(1, 2), attention_resolutions=(8,),
                  norm_groups=4, text_encoder="learned", instructions=["reach the goal", "push it"], text_dim=16,
                  sample_steps=3)
    return VideoModelConfig(**{**fields, **overrides})


def random_planner(**overrides):
    """A tiny Planner whose weights (zero-initialised branches included) are random: its plans
    depend on the frame, the instruction and the noise."""
    from video_models import Planner

    planner = Planner(tiny_planner_config(**overrides))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in planner.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    planner.ema = type(planner.ema)(planner.parameters(), decay=0.9)  # the EMA starts from these weights
    return planner


class PerSamplePlanner:
    """A deterministic planner with the batch API: plan_batch is one ``plan`` per sample, so a
    batched rollout must give exactly the episodes of the one-at-a-time path."""

    per_sample_seeds = True

    def __init__(self, k=3):
        self.k, self.batch_sizes = k, []

    def plan(self, instruction, first_frame, num_steps=None, seed=None):
        rng = np.random.default_rng([seed, len(instruction)])
        shift = rng.integers(-40, 40, (self.k, 1, 1, 3))  # a plan that depends on frame, seed and text
        return np.clip(first_frame[None].astype(np.int64) + shift, 0, 255).astype(np.uint8)

    def plan_batch(self, instructions, first_frames, num_steps=None, seed=None):
        self.batch_sizes.append(len(instructions))
        return np.stack([self.plan(i, f, num_steps, s) for i, f, s in zip(instructions, first_frames, seed)])


# --- the executor as a generator --------------------------------------------------------------------
def test_episode_generator_equals_run():
    cfg = ExecutorConfig(max_steps=60, replan_every=7, steps_per_subgoal=4, action_noise_std=0.05,
                         stop_on_success=False)
    env = PointMassEnv(size=SIZE)
    run = PlanExecutor(OraclePointPolicy(), PointMassPlanner(env, k=4), cfg).run(env, "go", seed=3)

    env = PointMassEnv(size=SIZE)
    planner = PointMassPlanner(env, k=4)
    steps = PlanExecutor(OraclePointPolicy(), planner, cfg).episode(env, "go", seed=3)
    requests = []
    stepped = drive(steps, lambda frame: requests.append(frame) or planner("go", frame))

    assert len(run.plans) > 2 and len(requests) == len(run.plans)
    assert run.replan_steps == stepped.replan_steps
    for name in ("frames", "actions", "states", "success", "plan_index", "subgoal_index"):
        np.testing.assert_array_equal(getattr(run, name), getattr(stepped, name), err_msg=name)
    for frame, plan in zip(requests, run.plans):  # each request is the frame the plan was made from
        np.testing.assert_array_equal(frame, run.frames[plan.step])


# --- per-sample seeds in a batch --------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver"])
def test_a_batch_of_plans_equals_the_plans_one_at_a_time(sampler):
    planner = random_planner(sampler=sampler)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    instructions, seeds = ["reach the goal", "push it", "reach the goal"], [11, 7, 11]
    batch = planner.plan_batch(instructions, frames, seed=seeds).astype(np.int64)
    alone = np.stack([planner.plan(i, f, seed=s) for i, f, s in zip(instructions, frames, seeds)]).astype(np.int64)
    assert batch.shape == (3, 3, SIZE, SIZE, 3)
    assert np.abs(batch - alone).max() <= 1 and (batch != alone).mean() < 0.01  # float rounding in batched kernels
    assert np.abs(batch[0] - batch[2]).max() > 10  # another frame: another plan, though the seed is the same
    other = planner.plan(instructions[0], frames[0], seed=12).astype(np.int64)
    assert np.abs(other - alone[0]).mean() > 1  # another seed, another plan


def test_plan_together_batches_only_what_one_call_can_serve():
    planner = PerSamplePlanner()
    frame = np.full((SIZE, SIZE, 3), 100, np.uint8)
    fns = [VideoPlanFn(planner, seed) for seed in (5, 6)]
    solo = [VideoPlanFn(planner, seed) for seed in (5, 6)]
    other = lambda instruction, f: np.stack([f, f])  # not a video planner: answered on its own
    plans = plan_together([(fns[0], "a", frame), (other, "b", frame), (fns[1], "c", frame)])
    assert planner.batch_sizes == [2]
    np.testing.assert_array_equal(plans[0], solo[0]("a", frame))
    np.testing.assert_array_equal(plans[2], solo[1]("c", frame))
    assert plans[1].shape == (2, SIZE, SIZE, 3) and [fn.calls for fn in fns] == [1, 1]


@pytest.mark.parametrize("n_jobs,plan_batch", [(32, 8), (5, 2), (7, 1), (UNIT_BLOCK * 3 + 5, 3)])
def test_units_hold_every_job_once_and_mix_the_tasks(n_jobs, plan_batch):
    units = plan_units(n_jobs, plan_batch)
    assert sorted(i for unit in units for i in unit) == list(range(n_jobs))
    assert all(1 <= len(unit) <= plan_batch for unit in units)
    assert len(units) == sum(-(-min(UNIT_BLOCK * plan_batch, n_jobs - s) // plan_batch)
                             for s in range(0, n_jobs, UNIT_BLOCK * plan_batch))
    if n_jobs == 32:  # 4 tasks x 8 seeds, jobs task by task: every unit gets each task twice
        assert all(sorted(i // 8 for i in unit) == [0, 0, 1, 1, 2, 2, 3, 3] for unit in units)


# --- lockstep rollouts --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_policy():
    """A random IDM at 32 px whose actions depend on the frames (its output layer is randomised)."""
    from policies import FrameGoalPolicy, IDMConfig
    from policies.testing import InMemoryEpisodeSource

    rng = np.random.default_rng(0)
    n = 6
    action = np.clip(rng.normal(0, 1, (n, 4)), -1, 1).astype(np.float32)
    action[0], action[1] = -1, 1
    episode = dict(rgb=rng.integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8), action=action,
                   state=rng.normal(0, 1, (n, 39)).astype(np.float32), success=np.zeros(n, bool), meta={})
    torch.manual_seed(0)
    policy = FrameGoalPolicy.from_source(IDMConfig(image_size=SIZE, channels=[8], hidden_dim=16, chunk=3),
                                         InMemoryEpisodeSource([episode]), [0])
    torch.nn.init.normal_(policy.head[-1].weight, std=0.5)
    return policy


def assert_same_episodes(a, b):
    assert [(r.job.task, r.job.seed, r.job.method) for r in a] == [(r.job.task, r.job.seed, r.job.method) for r in b]
    for x, y in zip(a, b):
        for name in ("rgb", "action", "state", "success"):
            np.testing.assert_array_equal(getattr(x.episode, name), getattr(y.episode, name), err_msg=name)
        assert [(p.step, p.reason) for p in x.plans] == [(p.step, p.reason) for p in y.plans]
        assert {k: v for k, v in x.episode.meta.items() if k != "created_at"} == \
               {k: v for k, v in y.episode.meta.items() if k != "created_at"}


def test_lockstep_group_gives_the_episodes_of_one_at_a_time(tiny_policy):
    """Three episodes side by side (different step counts, so they ask for plans at different
    times), a noisy executor, and an expert job in the group: the same episodes as one by one."""
    settings = RolloutSettings(image_size=SIZE, sampling_seed=3,
                               executor=ExecutorConfig(max_steps=25, replan_every=6, steps_per_subgoal=3,
                                                       action_noise_std=0.1))
    jobs = [PlanJob(TASK, 10_000, planner="fake", policy="tiny", method="m"),
            PlanJob(TASK, 10_001, planner="fake", policy="tiny", method="m"),
            PlanJob(TASK, 10_002, method="expert"),
            PlanJob("push-v3", 10_000, planner="fake", policy="tiny", method="m")]

    def run(plan_batch):
        planner = PerSamplePlanner()
        cache = {("planner", "fake", ""): planner, ("policy", "tiny"): tiny_policy, ("policy", "expert"): "expert"}
        s = dataclasses.replace(settings, plan_batch=plan_batch)
        units = [jobs[i : i + plan_batch] for i in range(0, len(jobs), plan_batch)]
        try:
            return [r for unit in units for r in _run_unit((unit, s), cache)], planner, cache
        finally:
            for key in [k for k in cache if k[0] == "env"]:
                cache.pop(key).close()

    alone, planner_1, _ = run(1)
    together, planner_4, _ = run(4)
    assert_same_episodes(alone, together)
    assert planner_1.batch_sizes == [] and max(planner_4.batch_sizes) == 3  # batched only where episodes wait together
    assert sum(planner_4.batch_sizes) == sum(len(r.plans) for r in alone)


def test_lockstep_error_names_the_job(tiny_policy):
    class Broken(PerSamplePlanner):
        def plan(self, instruction, first_frame, num_steps=None, seed=None):
            return np.zeros((2, 5, 5, 3), np.uint8)  # the wrong frame size

    cache = {("planner", "fake", ""): Broken(), ("policy", "tiny"): tiny_policy}
    jobs = [PlanJob(TASK, 10_000 + i, planner="fake", policy="tiny") for i in range(2)]
    s = RolloutSettings(image_size=SIZE, executor=ExecutorConfig(max_steps=5), plan_batch=2)
    try:
        with pytest.raises(RuntimeError, match="task='reach-v3' seed=10000 failed: ValueError"):
            _run_unit((jobs, s), cache)
    finally:
        for key in [k for k in cache if k[0] == "env"]:
            cache.pop(key).close()


def test_batched_rollouts_in_workers_keep_job_order(tmp_path, tiny_policy):
    """A real (tiny, random) planner checkpoint in 2 spawn workers, 2 episodes per group: results
    come in job order and are the ones this process computes for the same groups."""
    planner_dir = random_planner().save(tmp_path / "planner")
    policy_dir = tiny_policy.save(tmp_path / "policy")
    jobs = [PlanJob(task, seed, text, str(planner_dir), str(policy_dir), method=f"{task}:{seed}")
            for task, text in ((TASK, "reach the goal"), ("push-v3", "push it")) for seed in (10_000, 10_001)] + [PlanJob(TASK, 10_003, method="expert")]
    settings = RolloutSettings(image_size=SIZE, executor=ExecutorConfig(max_steps=8, replan_every=3), plan_batch=2)
    pool = list(rollout_plan_many(jobs, settings, workers=2, progress=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker: the same float reductions, the same numbers
    try:
        here = list(rollout_plan_many(jobs, settings, workers=0, progress=False))
    finally:
        torch.set_num_threads(threads)
    assert [r.job for r in pool] == jobs
    assert_same_episodes(pool, here)
    assert all(len(r.plans) >= 3 for r in pool[:-1])
