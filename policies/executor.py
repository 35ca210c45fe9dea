"""Plan executor: follow a video plan sub-goal by sub-goal, replanning from the current frame.

Environment-agnostic (numpy only, no torch): it needs
- a gymnasium-style ``env``: ``reset(seed=...) -> (obs, info)``, ``step(a) -> (obs, r, terminated,
  truncated, info)``, obs = {"rgb": uint8 (H, W, 3), "state": float (S,)}, info may hold "success";
- a ``planner(instruction, first_frame uint8 (H, W, 3)) -> uint8 (K, H, W, 3)``; plan frame 0 is
  (a re-rendering of) the current frame, frames 1..K-1 the sub-goals, the last one the task's end;
- a policy with ``predict_action(obs_rgb, goal_rgb, state) -> (c, A)`` (IDM or goal policy).

The loop, per env step: decide whether to replan (``replan_reason``: start | plan exhausted |
stall | periodic), query the policy when its action queue is empty, step, then advance the
sub-goal after ``steps_per_subgoal`` steps or once the frame is within ``advance_mse`` of it.
AVDC reports that replanning more than doubles success; the step budget bounds everything.

``PlanExecutor.run`` owns the planner; ``PlanExecutor.episode`` is the same loop as a generator that
yields each plan request to its caller, so that one planner call can serve many episodes at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from policies.config import ExecutorConfig

REPLAN_REASONS = ("start", "periodic", "stall", "plan exhausted")
DISTANCE_GAP = 16  # steps to a sub-goal a gap-conditioned policy is told when sub-goals advance by distance only


class ActionPolicy(Protocol):
    """A policy whose ``conditions_on_gap`` is true also gets ``gap=``: the steps it has to reach the goal."""

    def predict_action(self, obs_rgb: np.ndarray, goal_rgb: np.ndarray, state: np.ndarray) -> np.ndarray: ...


Planner = Callable[[str, np.ndarray], np.ndarray]


# --- the decisions, as small pure functions (unit-tested on their own) ----------------------------
def replan_reason(
    config: ExecutorConfig, step: int, steps_since_plan: int | None, plan_exhausted: bool, stalled: bool
) -> str | None:
    """Why to ask for a new plan before the action at env step ``step``, or None to keep the plan.

    ``steps_since_plan``: env steps taken since the last plan, None before the first one. Never
    plans when no step of the budget is left, and never twice at one step (so the number of plans
    is at most the number of steps taken + 1).
    """
    if step >= config.max_steps:
        return None
    if steps_since_plan is None:
        return "start"
    if steps_since_plan == 0:
        return None
    if plan_exhausted and config.replan_when_exhausted:
        return "plan exhausted"
    if stalled:
        return "stall"
    if config.replan_every is not None and steps_since_plan >= config.replan_every:
        return "periodic"
    return None


def is_stalled(history: np.ndarray, threshold: float) -> bool:
    """True if every row of ``history`` (W + 1, D) lies within L2 ``threshold`` of the last row.

    Measured against the latest point (not start-to-end displacement), so jittering on the spot
    counts as stalled too. Rows are state vectors, or frames scaled so that L2 = RMS pixel change.
    """
    history = np.asarray(history, dtype=np.float64)
    if len(history) < 2:
        return False
    dist = np.sqrt(((history - history[-1]) ** 2).sum(axis=1))
    return bool(dist.max() < threshold)


def frame_mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared pixel difference of two uint8 frames, in units of [0, 1] intensities."""
    d = a.astype(np.float32) - b.astype(np.float32)
    return float(np.mean(d * d) / (255.0 * 255.0))


def should_advance(config: ExecutorConfig, steps_on_subgoal: int, mse_to_subgoal: float | None) -> bool:
    """Move to the next sub-goal: enough steps spent on it, or the frame is close enough to it."""
    if config.steps_per_subgoal is not None and steps_on_subgoal >= config.steps_per_subgoal:
        return True
    return config.advance_mse is not None and mse_to_subgoal is not None and mse_to_subgoal <= config.advance_mse


# --- what a run returns ---------------------------------------------------------------------------
@dataclass
class PlanRecord:
    step: int  # env step at which it was made: frames[step] was the planner's first frame
    reason: str  # one of REPLAN_REASONS
    frames: np.ndarray  # uint8 (K, H, W, 3)


@dataclass
class ExecutionRecord:
    """One executed episode, aligned like ``sim.types.Episode``: L = T + 1 steps, last action zero.

    frames uint8 (L, H, W, 3); actions float32 (L, A); states float32 (L, S); success bool (L,);
    plan_index int64 (L,): plan (index into ``plans``) that chose action t, -1 at the last step;
    subgoal_index int64 (L,): frame of that plan used as goal for action t, -1 at the last step.
    """

    frames: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    success: np.ndarray
    plans: list[PlanRecord] = field(default_factory=list)
    plan_index: np.ndarray | None = None
    subgoal_index: np.ndarray | None = None
    terminated: bool = False  # the env ended the episode (terminated or truncated)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_actions(self) -> int:
        return len(self.frames) - 1

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())

    @property
    def replan_steps(self) -> list[tuple[int, str]]:
        return [(p.step, p.reason) for p in self.plans]


# --- the executor ---------------------------------------------------------------------------------
class PlanExecutor:
    """Runs ``policy`` on plans from ``planner`` in an env; see the module docstring."""

    def __init__(self, policy: ActionPolicy, planner: Planner, config: ExecutorConfig | None = None):
        if not callable(getattr(policy, "predict_action", None)):
            raise TypeError(f"policy must have predict_action(obs_rgb, goal_rgb, state), got {type(policy).__name__}")
        if not callable(planner):
            raise TypeError(f"planner must be callable (instruction, first_frame) -> frames, got {type(planner).__name__}")
        self.policy, self.planner = policy, planner
        self.config = config if config is not None else ExecutorConfig()

    def run(self, env: Any, instruction: str, seed: int | None = None, noise_stream: int = 0) -> ExecutionRecord:
        """Reset ``env`` (with ``seed``) and act until success, the env's end, or ``max_steps``.

        The action noise (``action_noise_std``) is seeded by (``seed``, ``noise_stream``). This is
        ``episode`` with every plan request answered by this executor's planner.
        """
        return drive(self.episode(env, instruction, seed, noise_stream), lambda frame: self.planner(instruction, frame))

    def episode(
        self, env: Any, instruction: str, seed: int | None = None, noise_stream: int = 0
    ) -> Generator[np.ndarray, np.ndarray, ExecutionRecord]:
        """``run`` as a generator, so that a caller can plan for many episodes at once.

        Yields the current frame uint8 (H, W, 3) whenever a plan is needed and expects the plan
        (uint8 (K, H, W, 3), the planner's layout) back by ``send``; returns the ExecutionRecord.
        The executor's own ``planner`` is not called.
        """
        cfg = self.config
        obs, info = env.reset(seed=seed) if seed is not None else env.reset()
        rgb, state = _read_obs(obs)
        frames, states, actions = [rgb], [state], []
        success = [bool((info or {}).get("success", False))]
        plans: list[PlanRecord] = []
        plan_log: list[int] = []
        goal_log: list[int] = []
        plan: np.ndarray | None = None
        subgoal = steps_on_subgoal = 0
        last_plan_step: int | None = None
        queue: deque[np.ndarray] = deque()
        window = deque(maxlen=(cfg.stall_window or 0) + 1)  # stall signal since the last plan
        first_success: int | None = None
        ended = False
        entropy = [0 if seed is None else int(seed), 0x5EED] + ([int(noise_stream)] if noise_stream else [])
        noise = np.random.default_rng(entropy) if cfg.action_noise_std > 0 else None

        for t in range(cfg.max_steps):  # t = actions taken so far
            exhausted = plan is not None and subgoal >= len(plan)
            stalled = cfg.stall_window is not None and len(window) == window.maxlen and is_stalled(
                np.stack(window), cfg.stall_threshold
            )
            since = None if last_plan_step is None else t - last_plan_step
            reason = replan_reason(cfg, t, since, exhausted, stalled)
            if reason is not None:
                plan = self._check_plan((yield frames[-1]), frames[-1])
                plans.append(PlanRecord(step=t, reason=reason, frames=plan))
                subgoal, steps_on_subgoal, last_plan_step = int(cfg.skip_first_plan_frame), 0, t
                queue.clear()
                window.clear()
                window.append(self._stall_signal(frames[-1], states[-1]))
            goal = min(subgoal, len(plan) - 1)  # exhausted without replanning: hold the last frame

            if not queue:
                chunk = self._query(frames[-1], plan[goal], states[-1], steps_on_subgoal)
                queue.extend(chunk[: cfg.actions_per_query] if cfg.actions_per_query else chunk)
            action = queue.popleft()
            if noise is not None:  # exploration: the noisy action is what is executed and recorded
                action = np.clip(action + noise.normal(0.0, cfg.action_noise_std, action.shape), -1, 1).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(action)
            rgb, state = _read_obs(obs, like=frames[0])
            frames.append(rgb)
            states.append(state)
            actions.append(action)
            success.append(bool((info or {}).get("success", False)))
            plan_log.append(len(plans) - 1)
            goal_log.append(goal)
            window.append(self._stall_signal(rgb, state))

            steps_on_subgoal += 1
            if subgoal < len(plan):
                mse = frame_mse(rgb, plan[goal]) if cfg.advance_mse is not None else None
                if should_advance(cfg, steps_on_subgoal, mse):
                    subgoal, steps_on_subgoal = subgoal + 1, 0
                    queue.clear()  # the rest of the chunk aimed at the old sub-goal

            if success[-1] and first_success is None:
                first_success = t + 1
            if terminated or truncated:
                ended = True
                break
            if cfg.stop_on_success and first_success is not None and (t + 1) - first_success >= cfg.extra_steps_after_success:
                break

        actions.append(np.zeros_like(actions[0]))  # the last step: nothing was done after it
        return ExecutionRecord(
            frames=np.stack(frames),
            actions=np.stack(actions).astype(np.float32, copy=False),
            states=np.stack(states).astype(np.float32, copy=False),
            success=np.asarray(success, dtype=bool),
            plans=plans,
            plan_index=np.asarray(plan_log + [-1], dtype=np.int64),
            subgoal_index=np.asarray(goal_log + [-1], dtype=np.int64),
            terminated=ended,
        )

    # --- helpers -----------------------------------------------------------------------------------
    def _check_plan(self, plan: Any, frame: np.ndarray) -> np.ndarray:
        plan = np.asarray(plan)
        k_min = 2 if self.config.skip_first_plan_frame else 1
        if plan.dtype != np.uint8 or plan.ndim != 4 or plan.shape[1:] != frame.shape or len(plan) < k_min:
            raise ValueError(
                f"planner must return uint8 (K, {', '.join(map(str, frame.shape))}) with K >= {k_min} "
                f"(frames the size of the env's), got {plan.dtype} {plan.shape}"
            )
        return plan

    def _query(self, rgb: np.ndarray, goal: np.ndarray, state: np.ndarray, steps_on_subgoal: int) -> np.ndarray:
        if getattr(self.policy, "conditions_on_gap", False):
            chunk = self.policy.predict_action(rgb, goal, state, gap=self.steps_left(steps_on_subgoal))
        else:
            chunk = self.policy.predict_action(rgb, goal, state)
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim == 1:  # a policy that returns one action (A,)
            chunk = chunk[None]
        if chunk.ndim != 2 or len(chunk) == 0:
            raise ValueError(f"policy.predict_action must return (c, A) or (A,), got shape {chunk.shape}")
        if not np.isfinite(chunk).all():
            raise ValueError("policy.predict_action returned NaN or inf")
        return chunk

    def steps_left(self, steps_on_subgoal: int) -> int:
        """The steps the policy has to reach the current sub-goal: the rest of ``steps_per_subgoal``
        (sub-goals advanced only by distance: ``DISTANCE_GAP``)."""
        per = self.config.steps_per_subgoal
        return DISTANCE_GAP if per is None else max(per - steps_on_subgoal, 1)

    def _stall_signal(self, rgb: np.ndarray, state: np.ndarray) -> np.ndarray:
        if self.config.stall_metric == "state":
            return state.astype(np.float64)
        # Scaled so that the L2 distance of two signals is their RMS pixel difference in [0, 1].
        return rgb.reshape(-1).astype(np.float64) / (255.0 * np.sqrt(rgb.size))


def drive(episode: Generator[np.ndarray, np.ndarray, ExecutionRecord],
          plan: Callable[[np.ndarray], np.ndarray]) -> ExecutionRecord:
    """Run one ``PlanExecutor.episode`` to its end, answering each plan request with ``plan(frame)``."""
    try:
        frame = next(episode)
        while True:
            frame = episode.send(plan(frame))
    except StopIteration as end:
        return end.value


def _read_obs(obs: Any, like: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check an env observation: {"rgb": uint8 (H, W, 3), "state": finite float (S,)}."""
    if not isinstance(obs, dict) or "rgb" not in obs or "state" not in obs:
        keys = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
        raise ValueError(f"env observations must be dicts with 'rgb' and 'state', got {keys}")
    rgb, state = np.asarray(obs["rgb"]), np.asarray(obs["state"], dtype=np.float32)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"obs['rgb'] must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if like is not None and rgb.shape != like.shape:
        raise ValueError(f"obs['rgb'] changed shape during the episode: {like.shape} -> {rgb.shape}")
    if state.ndim != 1 or not np.isfinite(state).all():
        raise ValueError(f"obs['state'] must be a finite 1-D vector, got shape {state.shape} {state[:8]}")
    return rgb, state
