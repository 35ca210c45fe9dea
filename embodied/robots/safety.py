"""The safety layer between the policy and the robot. Every limit lives in ``SafetyConfig``.

Per action, in this order (``SafetyLayer.filter``):

1. NaN / inf anywhere: rejected (``SafetyFault``; the runner stops the robot safely).
2. Action bounds (joint limits for position targets): beyond them by more than ``reject_margin``
   is a fault (a broken policy), within the margin the action is clipped.
3. Where the action sends each position (absolute mode: the target itself; delta mode: present
   position + action * ``delta_scale``), clamped to the present position +- ``max_relative_target``
   (LeRobot's per-step clamp), to the previous target +- ``max_velocity * dt``, and into the
   workspace box; then turned back into an action.

``check_state`` rejects a NaN / inf state and a measured position outside the workspace box
(plus ``workspace_margin``), e.g. the arm was pushed or a joint slipped. ``hold`` is the action
that keeps the robot where it is: present positions (absolute) or zero motion (delta), with
non-position entries (a gripper effort) left at their last value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTION_MODES = ("absolute", "delta")


@dataclass
class SafetyConfig:
    """Limits between the policy and the robot; None switches a limit off."""

    action_mode: str = "absolute"  # absolute: actions are position targets (LeRobot arms); delta: displacements (twin)
    # Per action entry, the state entry holding its present position; -1: no position (a gripper
    # effort); None: action i <-> state i.
    position_index: list[int] | None = None
    delta_scale: list[float] | None = None  # delta mode: position units per action unit (MetaWorld: 0.01 m); None: 1
    action_low: list[float] | None = None  # bounds per action entry (joint limits for position targets)
    action_high: list[float] | None = None
    reject_margin: float = 0.0  # beyond the bounds by more than this: fault (broken policy); within: clipped
    max_relative_target: float | None = None  # |target - present position| per step, position units (LeRobot's)
    max_velocity: float | None = None  # |target - previous target| per second, position units
    workspace_low: list[float] | None = None  # box on the positions (one value per position entry); targets are kept in it
    workspace_high: list[float] | None = None
    workspace_margin: float = 0.05  # a measured position outside the box by more than this: fault
    watchdog_s: float = 0.2  # an action must come within this of its observation, else the robot holds still
    policy_timeout_s: float = 30.0  # no fresh action for this long: fault (the policy hangs)
    io_timeout_s: float = 2.0  # a robot call slower than this: fault (the driver stopped answering)
    episode_time_s: float = 60.0  # wall-clock limit of one episode
    stop_file: str | None = None  # e-stop: the episode stops as soon as this file exists (and will not start while it does)
    stop_keys: bool = True  # e-stop: a key (space, q, Esc) on a TTY; Ctrl-C always


class SafetyFault(Exception):
    """An action or state the safety layer refuses; the message is the reason."""


def _vector(name: str, values, n: int) -> np.ndarray | None:
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) != n:
        raise ValueError(f"safety.{name} has {len(v)} values; it needs {n}")
    return v


class SafetyLayer:
    """Applies ``SafetyConfig`` to the actions of a robot with ``action_dim`` actions, ``state_dim`` states.

    ``dt``: the control period in seconds (for ``max_velocity``). ``clamps`` counts the actions a
    limit changed; ``last_clamp`` names the limits that changed the latest one.
    """

    def __init__(self, config: SafetyConfig, action_dim: int, state_dim: int, dt: float):
        c = config
        if c.action_mode not in ACTION_MODES:
            raise ValueError(f"safety.action_mode must be one of {ACTION_MODES}, got {c.action_mode!r}")
        if dt <= 0:
            raise ValueError(f"control period must be > 0, got {dt}")
        self.config, self.action_dim, self.state_dim, self.dt = c, int(action_dim), int(state_dim), float(dt)
        index = list(range(action_dim)) if c.position_index is None else [int(i) for i in c.position_index]
        if len(index) != action_dim:
            raise ValueError(f"safety.position_index has {len(index)} entries; the robot has {action_dim} actions")
        bad = [i for i in index if i >= state_dim or i < -1]
        if bad:
            raise ValueError(f"safety.position_index {bad} outside the state (dim {state_dim}; -1 = not a position)")
        self.is_position = np.array([i >= 0 for i in index])
        self.state_index = np.array([i for i in index if i >= 0], dtype=np.int64)
        npos = len(self.state_index)
        self.low = _vector("action_low", c.action_low, action_dim)
        self.high = _vector("action_high", c.action_high, action_dim)
        if (self.low is None) != (self.high is None):
            raise ValueError("give both safety.action_low and safety.action_high, or neither")
        if self.low is not None and (self.low > self.high).any():
            raise ValueError(f"safety.action_low must be <= action_high, got {c.action_low} / {c.action_high}")
        scale = _vector("delta_scale", c.delta_scale, action_dim)
        self.scale = (np.ones(action_dim) if scale is None else scale)[self.is_position]
        if (self.scale <= 0).any():
            raise ValueError(f"safety.delta_scale must be > 0 for position entries, got {c.delta_scale}")
        self.ws_low = _vector("workspace_low", c.workspace_low, npos)
        self.ws_high = _vector("workspace_high", c.workspace_high, npos)
        if (self.ws_low is None) != (self.ws_high is None):
            raise ValueError("give both safety.workspace_low and safety.workspace_high, or neither")
        for name in ("max_relative_target", "max_velocity"):
            value = getattr(c, name)
            if value is not None and value <= 0:
                raise ValueError(f"safety.{name} must be > 0 (or null to switch it off), got {value}")
        self.reset()

    def reset(self) -> None:
        """Forget the previous target, command and clamp count (call at the start of each episode)."""
        self.clamps = 0
        self.last_clamp: list[str] = []
        self._last_target: np.ndarray | None = None
        self._last_action: np.ndarray | None = None

    # --- states -------------------------------------------------------------------------------------
    def check_state(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state, dtype=np.float64).reshape(-1)
        if state.shape != (self.state_dim,):
            raise SafetyFault(f"state has shape {state.shape}, the robot declares ({self.state_dim},)")
        if not np.isfinite(state).all():
            bad = np.flatnonzero(~np.isfinite(state))
            raise SafetyFault(f"state is not finite at entries {bad.tolist()}: {state[bad].tolist()}")
        if self.ws_low is not None:
            pos, m = state[self.state_index], self.config.workspace_margin
            out = np.flatnonzero((pos < self.ws_low - m) | (pos > self.ws_high + m))
            if len(out):
                i = out[0]
                raise SafetyFault(f"measured position {self.state_index[i]} = {pos[i]:.4g} is outside the workspace "
                                  f"[{self.ws_low[i]:.4g}, {self.ws_high[i]:.4g}] (+- {m})")
        return state

    # --- actions ------------------------------------------------------------------------------------
    def filter(self, action: np.ndarray, state: np.ndarray) -> np.ndarray:
        """The safe version of ``action`` from ``state`` (float32 (A,)); SafetyFault if it is refused."""
        c = self.config
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise SafetyFault(f"action has shape {np.shape(action)}, the robot takes ({self.action_dim},)")
        if not np.isfinite(a).all():
            raise SafetyFault(f"action is not finite: {a.tolist()}")
        clamped = []
        if self.low is not None:
            over = np.maximum(self.low - a, a - self.high)
            if (over > c.reject_margin).any():
                i = int(np.argmax(over))
                raise SafetyFault(f"action[{i}] = {a[i]:.4g} is outside its bounds [{self.low[i]:.4g}, {self.high[i]:.4g}] "
                                  f"by more than reject_margin={c.reject_margin}")
            if (over > 0).any():
                clamped.append("bounds")
            a = np.clip(a, self.low, self.high)

        pos = np.asarray(state, dtype=np.float64)[self.state_index]
        delta = c.action_mode == "delta"
        wanted = pos + a[self.is_position] * self.scale if delta else a[self.is_position]
        target = wanted.copy()
        if c.max_relative_target is not None:
            target = np.clip(target, pos - c.max_relative_target, pos + c.max_relative_target)
        if c.max_velocity is not None:
            ref = self._last_target if (self._last_target is not None and not delta) else pos
            step = c.max_velocity * self.dt
            target = np.clip(target, ref - step, ref + step)
        if self.ws_low is not None:
            target = np.clip(target, self.ws_low, self.ws_high)
        if not np.allclose(target, wanted, rtol=0, atol=1e-9):
            clamped.append("motion")
        a[self.is_position] = (target - pos) / self.scale if delta else target
        if self.low is not None:  # a workspace pull-back may ask for more than the bounds allow
            a = np.clip(a, self.low, self.high)

        self.last_clamp = clamped
        self.clamps += bool(clamped)
        self._last_target = target
        self._last_action = a.copy()
        return a.astype(np.float32)

    def hold(self, state: np.ndarray | None) -> np.ndarray | None:
        """The action that keeps the robot where it is (see the module docstring).

        None in absolute mode when neither a state nor a previous command is known: then nothing
        should be sent (position servos keep their last goal).
        """
        if self.config.action_mode == "absolute" and state is None and self._last_action is None:
            return None
        a = self._last_action.copy() if self._last_action is not None else np.zeros(self.action_dim)
        if self.config.action_mode == "delta":
            a[self.is_position] = 0.0
        elif state is not None:
            a[self.is_position] = np.asarray(state, dtype=np.float64)[self.state_index]
        if self.low is not None:
            a = np.clip(a, self.low, self.high)
        self._last_target = None
        return a.astype(np.float32)
