"""sim.experts and sim.rollout: expert actions, the Episode contract, worker processes."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from sim.catalog import instruction_for
from sim.experts import make_expert
from sim.rollout import rollout_episode, rollout_many
from sim.types import EPISODE_META_DEFAULTS


def test_expert_actions_are_clipped_float32_and_seeded():
    state = np.zeros(39, np.float32)
    state[:3] = [0.0, 0.6, 0.2]
    state[36:] = [0.1, 0.8, 0.2]
    clean = make_expert("reach-v3").act(state)
    assert clean.dtype == np.float32 and clean.shape == (4,)
    a = make_expert("reach-v3", noise_std=5.0, seed=1)
    b = make_expert("reach-v3", noise_std=5.0, seed=1)
    c = make_expert("reach-v3", noise_std=5.0, seed=2)
    xa, xb, xc = (np.stack([e.act(state) for _ in range(20)]) for e in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)
    assert xa.min() >= -1 and xa.max() <= 1 and np.isin(xa, [-1.0, 1.0]).any()  # clipped
    with pytest.raises(ValueError, match="reach-v3"):
        make_expert("reach-v33")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["reach-v3", "button-press-v3", "drawer-open-v3"])
def test_experts_succeed(task):
    for seed in (0, 1):
        ep = rollout_episode(task, seed, image_size=16)
        assert ep.meta["success_gt"] == 1, (task, seed, len(ep))


def _check_contract(ep, extra):
    L = len(ep)
    assert ep.rgb.shape[0] == ep.action.shape[0] == ep.state.shape[0] == ep.success.shape[0] == L
    assert ep.rgb.dtype == np.uint8 and ep.action.dtype == np.float32 and ep.state.dtype == np.float32
    assert ep.success.dtype == bool and not ep.success[0]
    np.testing.assert_array_equal(ep.action[-1], np.zeros(4, np.float32))
    assert np.abs(ep.action[:-1]).sum(axis=1).min() > 0  # real actions before the last step
    assert ep.meta["success_gt"] == int(ep.success.any())
    assert set(ep.meta) <= set(EPISODE_META_DEFAULTS) and ep.meta["source"] == "expert"
    if ep.success.any():
        first = int(np.argmax(ep.success))
        assert ep.num_actions == first + extra  # stopped `extra` steps after the first success


def test_rollout_episode_contract_success():
    ep = rollout_episode("reach-v3", 0, image_size=24, extra_steps_after_success=3, instruction="reach it")
    assert ep.meta["success_gt"] == 1
    assert ep.meta["task"] == "reach-v3" and ep.meta["seed"] == 0 and ep.meta["instruction"] == "reach it"
    assert ep.meta["created_at"] > 1.6e9
    assert ep.rgb.shape[1:] == (24, 24, 3)
    _check_contract(ep, 3)


def test_rollout_episode_contract_budget_and_env_reuse():
    from sim.env import make_env

    env = make_env("drawer-open-v3", image_size=16)
    try:
        ep = rollout_episode("drawer-open-v3", 4, max_steps=12, env=env)
        again = rollout_episode("drawer-open-v3", 4, max_steps=12, env=env)
    finally:
        env.close()
    assert len(ep) == 13 and ep.num_actions == 12
    assert ep.meta["success_gt"] == 0 and ep.meta["instruction"] == instruction_for("drawer-open-v3", 4)
    _check_contract(ep, 0)
    np.testing.assert_array_equal(ep.state, again.state)  # reusing an env is reproducible
    np.testing.assert_array_equal(ep.rgb, again.rgb)


def test_rollout_keeps_going_without_stop_on_success():
    ep = rollout_episode("reach-v3", 0, image_size=16, max_steps=120, stop_on_success=False)
    assert ep.num_actions == 120 and ep.success.any()


JOBS = [
    dict(task="reach-v3", seed=s, image_size=24, camera="corner2", noise_std=0.1, max_steps=25,
         extra_steps_after_success=5, instruction=None)
    for s in (0, 1, 2)
] + [dict(task="button-press-v3", seed=0, image_size=24, camera="corner3", noise_std=0.0, max_steps=25,
          extra_steps_after_success=5, instruction="press it")]


def test_rollout_many_workers_match_in_process():
    here = list(rollout_many(JOBS, workers=1, progress=False))
    pooled = list(rollout_many(JOBS, workers=2, progress=False))
    assert [(e.meta["task"], e.meta["seed"]) for e in pooled] == [(j["task"], j["seed"]) for j in JOBS]
    for a, b in zip(here, pooled):
        assert a.meta["task"] == b.meta["task"] and a.meta["seed"] == b.meta["seed"]
        assert a.meta["instruction"] == b.meta["instruction"]
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.success, b.success)
        np.testing.assert_array_equal(a.rgb, b.rgb)
    assert pooled[3].meta["instruction"] == "press it" and pooled[3].rgb.shape[1:] == (24, 24, 3)


def test_rollout_many_yields_in_job_order_whoever_finishes_first():
    # The first job runs 120 steps (door-lock's expert fails from this seed), the others 5: the
    # workers finish them first, and the episodes still come back in job order (the store order).
    slow = dict(task="door-lock-v3", seed=1001, image_size=24, max_steps=120)
    fast = [dict(task="reach-v3", seed=s, image_size=24, max_steps=5) for s in range(5)]
    episodes = list(rollout_many([slow, *fast], workers=2, progress=False))
    assert [(e.meta["task"], e.meta["seed"]) for e in episodes] == [("door-lock-v3", 1001)] + [("reach-v3", s) for s in range(5)]
    assert len(episodes[0]) == 121 and not episodes[0].succeeded


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_error_names_task_and_seed(workers):
    jobs = [dict(JOBS[0]), dict(JOBS[1], seed=17, camera="nope")]
    with pytest.raises(RuntimeError, match=r"task='reach-v3' seed=17") as err:
        list(rollout_many(jobs, workers=workers, progress=False))
    assert "nope" in str(err.value) and "corner2" in str(err.value)  # the worker's message


def test_rollout_many_rejects_bad_jobs_up_front():
    with pytest.raises(ValueError, match="drawer-open-v3"):
        list(rollout_many([dict(JOBS[0], task="drawer-opne-v3")], workers=2, progress=False))
    with pytest.raises(ValueError, match="unknown rollout job keys"):
        list(rollout_many([dict(JOBS[0], colour="red")], workers=2, progress=False))
