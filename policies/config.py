"""Typed configs of the policies package: the two image policies and the plan executor.

Every field is documented where it is declared (so Hydra's ``--cfg job`` explains a run). The
defaults are the ``cpu_tiny`` preset (2 CPU cores, minutes; < 20 ms per query on CPU);
``GPU_PRESET`` holds the suggested paper-scale values, applied by ``make_config(..., preset="gpu")``.

Both models are one network class (``policies.modeling.FrameGoalPolicy``): current frame + goal
frame (+ state) -> action chunk. They differ only in how training pairs are drawn:

- IDM (``IDMConfig``): the goal is a *near* frame, ``g`` in ``[min_gap, max_gap]`` steps ahead,
  matching the spacing of plan frames (a planner spreads K=7 frames over episodes of 80-200
  steps: ~10-25 steps apart). ``min_gap = max_gap = chunk`` is the classic "gap = chunk" IDM.
- Goal policy (``GoalPolicyConfig``, SOAR's GCBC): hindsight relabelling, any later frame of the
  episode is a goal (``g`` in ``[1, max_gap]``, ``max_gap=None``: up to the episode end).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

LOSSES = ("l1", "mse")


@dataclass
class PolicyConfig:
    """Frame + goal frame (+ state) -> action chunk. Field defaults: the cpu_tiny preset."""

    # --- identity / shapes ---
    type: str = "idm"  # model kind, picks the config class in load_policy: "idm" | "goal"
    image_size: int = 64  # frames are uint8 (image_size, image_size, 3); other sizes raise
    state_dim: int | None = None  # S, proprioception size; None: taken from the data (from_source)
    action_dim: int | None = None  # A, action size; None: taken from the data (from_source)
    chunk: int = 8  # c, actions predicted per query (a_t .. a_t+c-1)

    # --- training pairs: goal = frame t + g ---
    min_gap: int = 8  # smallest goal gap g in steps (>= 1)
    max_gap: int | None = 32  # largest goal gap; None: up to the last frame of the episode

    # The goal's distance in steps (g, log-scaled) is an input too. Without it g is hidden and the
    # policy learns the speed typical of its data (measured: one IDM round on its own slow rollouts
    # halved its speed and broke it); with it, slow and fast episodes agree: speed = motion / g.
    # The executor passes the steps left on the current sub-goal.
    condition_on_gap: bool = False

    # --- network ---
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])  # conv widths, each stage stride 2
    pooled_size: int = 4  # conv features are pooled to (pooled_size x pooled_size) before the MLP
    hidden_dim: int = 256  # width of the MLP head
    use_state: bool = True  # feed state_t through an MLP next to the image features
    state_embed_dim: int = 64  # state MLP output width

    # --- loss / augmentation ---
    # L1 on normalised actions: the median of the demonstrated actions rather than the mean, less
    # pulled by the jumps of scripted experts (gripper flips) and the one ACT found better. "mse"
    # is the alternative.
    loss: str = "l1"
    random_shift: int = 4  # DrQ shift augmentation in pixels (same shift for both frames); 0: off

    # --- action bounds used to clip predictions ---
    action_low: list[float] | None = None  # declared lower bounds (A,); None: learned data minimum
    action_high: list[float] | None = None  # declared upper bounds (A,); None: learned data maximum

    # --- optimisation (read by the shared training loop in embodied/) ---
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    batch_size: int = 32  # training batch size
    train_steps: int = 2000  # optimizer steps

    def __post_init__(self) -> None:
        if self.type not in CONFIG_TYPES:
            raise ValueError(f"unknown policy type {self.type!r}; known: {sorted(CONFIG_TYPES)}")
        _check_int(self, "image_size", 8)
        _check_int(self, "chunk", 1)
        _check_int(self, "min_gap", 1)
        _check_int(self, "pooled_size", 1)
        _check_int(self, "hidden_dim", 1)
        _check_int(self, "state_embed_dim", 1)
        _check_int(self, "random_shift", 0)
        if self.max_gap is not None:
            _check_int(self, "max_gap", self.min_gap)
        for name in ("state_dim", "action_dim"):
            if getattr(self, name) is not None:
                _check_int(self, name, 1 if name == "action_dim" else 0)
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty list of positive ints, got {self.channels}")
        self.channels = [int(c) for c in self.channels]
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if (self.action_low is None) != (self.action_high is None):
            raise ValueError("declare both action_low and action_high, or neither")
        if self.action_low is not None:
            self.action_low = [float(v) for v in self.action_low]
            self.action_high = [float(v) for v in self.action_high]
            if len(self.action_low) != len(self.action_high):
                raise ValueError("action_low and action_high must have the same length")
            if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
                raise ValueError(f"action_low must be <= action_high, got {self.action_low} {self.action_high}")
            if self.action_dim is not None and len(self.action_low) != self.action_dim:
                raise ValueError(f"action bounds have {len(self.action_low)} entries, action_dim is {self.action_dim}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PolicyConfig":
        """The config of ``d["type"]``; unknown keys raise (a checkpoint from a newer version)."""
        kind = d.get("type")
        if kind not in CONFIG_TYPES:
            raise ValueError(f"unknown policy type {kind!r}; known: {sorted(CONFIG_TYPES)}")
        klass = CONFIG_TYPES[kind]
        names = {f.name for f in dataclasses.fields(klass)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {klass.__name__} fields {sorted(unknown)}")
        return klass(**d)


@dataclass
class IDMConfig(PolicyConfig):
    """Inverse dynamics: (frame_t, frame_t+g, state_t) -> a_t .. a_t+c-1, g ~ plan-frame spacing."""

    type: str = "idm"  # fixed: inverse dynamics model
    chunk: int = 8  # the executor runs the chunk, then re-queries from the new frame
    min_gap: int = 8  # plan frames are ~10-25 steps apart; cover a margin either side
    max_gap: int | None = 32


@dataclass
class GoalPolicyConfig(PolicyConfig):
    """Goal-reaching policy (GCBC): hindsight relabelling, any later frame of the episode is a goal."""

    type: str = "goal"  # fixed: goal-conditioned behaviour cloning
    chunk: int = 4  # a short chunk: re-queried often, smooths the deterministic regression
    min_gap: int = 1  # every later frame is a valid goal
    max_gap: int | None = None  # None: up to the end of the episode


# One registry: the "type" in config.json picks the config class (the network is shared).
CONFIG_TYPES: dict[str, type[PolicyConfig]] = {"idm": IDMConfig, "goal": GoalPolicyConfig}

# Suggested paper-scale values (one GPU): bigger frames and network, longer training.
GPU_PRESET: dict[str, Any] = dict(
    image_size=128,
    channels=[32, 64, 128, 256],
    pooled_size=4,
    hidden_dim=512,
    state_embed_dim=128,
    random_shift=8,
    lr=3e-4,
    batch_size=256,
    train_steps=50_000,
)
PRESETS: dict[str, dict[str, Any]] = {"cpu_tiny": {}, "gpu": GPU_PRESET}


def make_config(type: str = "idm", preset: str = "cpu_tiny", **overrides: Any) -> PolicyConfig:
    """The config of model ``type`` at ``preset`` ("cpu_tiny" | "gpu"), with ``overrides`` on top."""
    if type not in CONFIG_TYPES:
        raise ValueError(f"unknown policy type {type!r}; known: {sorted(CONFIG_TYPES)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    return CONFIG_TYPES[type](**{**PRESETS[preset], **overrides})


STALL_METRICS = ("state", "frame")


@dataclass
class ExecutorConfig:
    """How ``PlanExecutor`` follows a plan of K frames and when it asks for a new one."""

    max_steps: int = 200  # env step budget per episode (never exceeded)
    replan_every: int | None = 40  # replan after this many steps on one plan; None: never periodically
    replan_when_exhausted: bool = True  # replan once the last sub-goal is passed; False: keep the last frame as goal
    skip_first_plan_frame: bool = True  # plan frame 0 is the current frame: start from sub-goal 1

    # --- advancing sub-goals: whichever comes first ---
    steps_per_subgoal: int | None = 16  # advance after this many steps on a sub-goal; None: only by distance
    advance_mse: float | None = None  # advance when pixel MSE (frames in [0, 1]) to the sub-goal <= this; None: off
    actions_per_query: int | None = None  # actions of each predicted chunk run before re-querying; None: the whole chunk

    # --- stall detection: replan when nothing moved over a window ---
    stall_window: int | None = 10  # steps; None: no stall detection. Only checked >= this many steps after a plan
    stall_threshold: float = 1e-3  # stalled if every step of the window is within this L2 distance of the latest
    stall_metric: str = "state"  # "state": L2 of the state vector; "frame": RMS pixel difference in [0, 1]

    # --- ending ---
    stop_on_success: bool = True  # end the episode at info["success"] (after extra_steps_after_success)
    extra_steps_after_success: int = 0  # keep acting this many steps after the first success (video shows the end)

    # --- exploration ---
    # Std of Gaussian noise added to every executed action (then clipped to [-1, 1]); seeded by
    # the episode seed. For self-collection only: reaching initial states where the noiseless
    # system always fails. 0 (evaluation): the policy's actions as they are.
    action_noise_std: float = 0.0

    def __post_init__(self) -> None:
        _check_int(self, "max_steps", 1)
        _check_int(self, "extra_steps_after_success", 0)
        for name in ("replan_every", "steps_per_subgoal", "actions_per_query", "stall_window"):
            if getattr(self, name) is not None:
                _check_int(self, name, 1)
        if self.steps_per_subgoal is None and self.advance_mse is None:
            raise ValueError("set steps_per_subgoal or advance_mse: otherwise sub-goals never advance")
        if self.advance_mse is not None and not self.advance_mse >= 0:
            raise ValueError(f"advance_mse must be >= 0, got {self.advance_mse}")
        if not self.stall_threshold >= 0:
            raise ValueError(f"stall_threshold must be >= 0, got {self.stall_threshold}")
        if not self.action_noise_std >= 0:
            raise ValueError(f"action_noise_std must be >= 0, got {self.action_noise_std}")
        if self.stall_metric not in STALL_METRICS:
            raise ValueError(f"stall_metric must be one of {STALL_METRICS}, got {self.stall_metric!r}")


def _check_int(obj: object, name: str, minimum: int) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{type(obj).__name__}.{name} must be an int >= {minimum}, got {value!r}")
