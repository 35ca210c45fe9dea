"""policies.executor: the replanning decisions on their own, then whole runs in a point-mass env."""

from __future__ import annotations

import numpy as np
import pytest

from policies import ExecutorConfig, PlanExecutor, is_stalled, replan_reason
from policies.executor import frame_mse, should_advance
from policies.testing import OraclePointPolicy, PointMassEnv, PointMassPlanner, render_point


class ZeroPolicy:
    """Never moves (a policy that is stuck)."""

    def predict_action(self, obs_rgb, goal_rgb, state):
        return np.zeros((3, 2), np.float32)


class AwayPolicy:
    """Moves steadily away from the goal: never succeeds, never stalls."""

    def predict_action(self, obs_rgb, goal_rgb, state):
        return np.array([[-0.05, 0.0]], np.float32)


def no_stall(**kw) -> ExecutorConfig:
    return ExecutorConfig(**{"stall_window": None, **kw})


# --- pure decisions --------------------------------------------------------------------------------
def test_replan_reason_schedule():
    cfg = ExecutorConfig(max_steps=100, replan_every=10)
    assert replan_reason(cfg, 0, None, False, False) == "start"
    assert replan_reason(cfg, 5, 0, True, True) is None  # never twice at one step
    assert replan_reason(cfg, 9, 9, False, False) is None
    assert replan_reason(cfg, 10, 10, False, False) == "periodic"
    assert replan_reason(cfg, 13, 3, False, True) == "stall"
    assert replan_reason(cfg, 13, 3, True, True) == "plan exhausted"  # exhausted wins over stall
    assert replan_reason(cfg, 100, None, True, True) is None  # no budget left: no plan
    assert replan_reason(ExecutorConfig(replan_every=None), 500, 499, False, False) is None
    assert replan_reason(ExecutorConfig(replan_when_exhausted=False), 7, 7, True, False) is None


def test_replan_schedule_simulated_never_exceeds_budget():
    """Drive replan_reason like the executor does: plans at 0, every 7 steps, never at step >= budget."""
    cfg = ExecutorConfig(max_steps=30, replan_every=7)
    plans, last = [], None
    for t in range(cfg.max_steps + 5):
        reason = replan_reason(cfg, t, None if last is None else t - last, False, False)
        if reason:
            plans.append((t, reason))
            last = t
    assert plans == [(0, "start"), (7, "periodic"), (14, "periodic"), (21, "periodic"), (28, "periodic")]


def test_is_stalled():
    still = np.tile([0.3, 0.2], (11, 1)) + np.random.default_rng(0).normal(0, 1e-5, (11, 2))
    assert is_stalled(still, 1e-3)
    moving = np.linspace([0, 0], [0.1, 0], 11)
    assert not is_stalled(moving, 1e-3)
    jitter = np.tile([[0.0, 0.0], [0.05, 0.0]], (6, 1))  # back and forth: far from the latest point
    assert not is_stalled(jitter, 1e-3) and is_stalled(jitter, 0.1)
    assert not is_stalled(still[:1], 1.0)  # one point is no window


def test_should_advance_and_frame_mse():
    a, b = render_point(np.array([0.0, 0.0])), render_point(np.array([0.5, 0.5]))
    assert frame_mse(a, a) == 0.0 and 0 < frame_mse(a, b) < 1
    by_steps = ExecutorConfig(steps_per_subgoal=4)
    assert not should_advance(by_steps, 3, None) and should_advance(by_steps, 4, None)
    by_mse = ExecutorConfig(steps_per_subgoal=None, advance_mse=1e-3)
    assert should_advance(by_mse, 1, 0.0) and not should_advance(by_mse, 1000, 0.5)
    with pytest.raises(ValueError, match="never advance"):
        ExecutorConfig(steps_per_subgoal=None, advance_mse=None)
    with pytest.raises(ValueError, match="stall_metric"):
        ExecutorConfig(stall_metric="vibes")
    with pytest.raises(ValueError, match="max_steps"):
        ExecutorConfig(max_steps=0)


# --- whole runs ------------------------------------------------------------------------------------
def test_reaches_the_goal_and_stops_on_success():
    env = PointMassEnv(size=32)
    planner = PointMassPlanner(env, k=7)
    cfg = ExecutorConfig(max_steps=100, replan_every=40, steps_per_subgoal=3)
    rec = PlanExecutor(OraclePointPolicy(), planner, cfg).run(env, "reach the goal", seed=3)
    assert rec.succeeded and rec.success[-1] and not rec.success[:-1].any()  # stopped at the first success
    n = len(rec)
    assert rec.frames.shape == (n, 32, 32, 3) and rec.frames.dtype == np.uint8
    assert rec.actions.shape == (n, 2) and rec.actions.dtype == np.float32 and (rec.actions[-1] == 0).all()
    assert rec.states.shape == (n, 4) and rec.success.shape == (n,) and not rec.success[0]
    assert rec.plan_index.shape == (n,) and rec.plan_index[-1] == -1 and rec.subgoal_index[0] == 1
    assert rec.plans[0].step == 0 and rec.plans[0].reason == "start" and rec.plans[0].frames.shape == (7, 32, 32, 3)
    assert len(planner.calls) == len(rec.plans) and planner.calls[0][0] == "reach the goal"
    np.testing.assert_array_equal(planner.calls[0][1], rec.frames[0])  # planned from the current frame
    # extra steps after success keep acting a little longer
    env2 = PointMassEnv(size=32)
    cfg2 = ExecutorConfig(max_steps=100, replan_every=40, steps_per_subgoal=3, extra_steps_after_success=2)
    rec2 = PlanExecutor(OraclePointPolicy(), PointMassPlanner(env2), cfg2).run(env2, "reach", seed=3)
    assert len(rec2) == n + 2 and rec2.success[-3]


def test_periodic_replans_and_step_budget():
    env = PointMassEnv(size=32, max_episode_steps=1000)
    planner = PointMassPlanner(env, k=7)
    cfg = no_stall(max_steps=23, replan_every=5, steps_per_subgoal=100)
    rec = PlanExecutor(AwayPolicy(), planner, cfg).run(env, "go", seed=0)
    assert rec.num_actions == 23 and env.steps_taken == 23  # the whole budget, not one step more
    assert rec.replan_steps == [(0, "start")] + [(s, "periodic") for s in (5, 10, 15, 20)]
    assert len(planner.calls) == 5
    for (_, first_frame), p in zip(planner.calls, rec.plans):  # each plan starts from the frame current then
        np.testing.assert_array_equal(first_frame, rec.frames[p.step])
    assert rec.plan_index[:-1].tolist() == [i // 5 for i in range(23)]


def test_replans_when_the_plan_is_used_up():
    env = PointMassEnv(size=32, max_episode_steps=1000)
    planner = PointMassPlanner(env, k=3)  # frame 0 = now, 2 sub-goals
    cfg = no_stall(max_steps=20, replan_every=None, steps_per_subgoal=4)
    rec = PlanExecutor(AwayPolicy(), planner, cfg).run(env, "go", seed=0)
    assert rec.replan_steps == [(0, "start"), (8, "plan exhausted"), (16, "plan exhausted")]
    assert rec.subgoal_index[:8].tolist() == [1] * 4 + [2] * 4
    # without replanning the last frame stays the goal
    env = PointMassEnv(size=32, max_episode_steps=1000)
    cfg = no_stall(max_steps=20, replan_every=None, steps_per_subgoal=4, replan_when_exhausted=False)
    rec = PlanExecutor(AwayPolicy(), PointMassPlanner(env, k=3), cfg).run(env, "go", seed=0)
    assert rec.replan_steps == [(0, "start")] and rec.subgoal_index[8:-1].tolist() == [2] * 12


@pytest.mark.parametrize("metric", ["state", "frame"])
def test_replans_on_stall(metric):
    env = PointMassEnv(size=32, stuck=True)
    cfg = ExecutorConfig(max_steps=25, replan_every=None, steps_per_subgoal=100, stall_window=6,
                         stall_threshold=1e-3, stall_metric=metric)
    rec = PlanExecutor(ZeroPolicy(), PointMassPlanner(env), cfg).run(env, "go", seed=0)
    assert rec.replan_steps == [(0, "start"), (6, "stall"), (12, "stall"), (18, "stall"), (24, "stall")]
    assert rec.num_actions == 25


def test_advances_subgoals_by_pixel_distance():
    env = PointMassEnv(size=32)
    cfg = ExecutorConfig(max_steps=100, replan_every=None, steps_per_subgoal=None, advance_mse=1e-4)
    rec = PlanExecutor(OraclePointPolicy(), PointMassPlanner(env, k=5), cfg).run(env, "go", seed=1)
    assert rec.succeeded
    goals = rec.subgoal_index[:-1]
    assert goals[0] == 1 and (np.diff(goals) >= 0).all() and goals.max() >= 3  # sub-goals in order


def test_runs_a_real_policy(tmp_path):
    from policies import FrameGoalPolicy, IDMConfig
    from policies.testing import InMemoryEpisodeSource, point_mass_episodes

    src = InMemoryEpisodeSource(point_mass_episodes(2, size=32))
    policy = FrameGoalPolicy.from_source(IDMConfig(image_size=32, channels=[8], hidden_dim=16, chunk=3), src, [0, 1])
    env = PointMassEnv(size=32)
    rec = PlanExecutor(policy, PointMassPlanner(env), ExecutorConfig(max_steps=7)).run(env, "go", seed=0)
    assert rec.actions.shape == (8, 2) and rec.actions.dtype == np.float32


# --- bad inputs ------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    env = PointMassEnv(size=32)

    def wrong_size(instruction, frame):
        return np.zeros((7, 64, 64, 3), np.uint8)

    with pytest.raises(ValueError, match=r"planner must return uint8 \(K, 32, 32, 3\)"):
        PlanExecutor(OraclePointPolicy(), wrong_size).run(env, "go", seed=0)

    def one_frame(instruction, frame):
        return frame[None]

    with pytest.raises(ValueError, match="K >= 2"):
        PlanExecutor(OraclePointPolicy(), one_frame).run(env, "go", seed=0)

    class NaNPolicy:
        def predict_action(self, obs_rgb, goal_rgb, state):
            return np.full((1, 2), np.nan, np.float32)

    with pytest.raises(ValueError, match="NaN"):
        PlanExecutor(NaNPolicy(), PointMassPlanner(env)).run(env, "go", seed=0)

    nan_env = PointMassEnv(size=32, nan_state_at=2)
    with pytest.raises(ValueError, match=r"obs\['state'\] must be a finite"):
        PlanExecutor(OraclePointPolicy(), PointMassPlanner(nan_env)).run(nan_env, "go", seed=0)

    with pytest.raises(TypeError, match="predict_action"):
        PlanExecutor(object(), PointMassPlanner(env))
    with pytest.raises(TypeError, match="callable"):
        PlanExecutor(OraclePointPolicy(), "not a planner")


def test_action_noise_explores_reproducibly():
    def run(std, seed):
        env = PointMassEnv(size=32, max_episode_steps=1000)
        cfg = no_stall(max_steps=30, replan_every=10, steps_per_subgoal=100, action_noise_std=std)
        return PlanExecutor(AwayPolicy(), PointMassPlanner(env, k=7), cfg).run(env, "go", seed=seed)

    clean, noisy, again, other = run(0.0, 1), run(0.3, 1), run(0.3, 1), run(0.3, 2)
    assert np.allclose(clean.actions[:-1], [-0.05, 0.0])
    deviation = noisy.actions[:-1] - clean.actions[:-1]
    assert 0.15 < deviation.std() < 0.45 and np.abs(noisy.actions).max() <= 1  # what was executed, clipped
    np.testing.assert_array_equal(noisy.actions, again.actions)  # seeded by the episode seed
    assert not np.array_equal(noisy.actions, other.actions)
    assert not np.array_equal(noisy.states, clean.states)  # the env saw the noisy actions
    with pytest.raises(ValueError, match="action_noise_std"):
        ExecutorConfig(action_noise_std=-0.1)
