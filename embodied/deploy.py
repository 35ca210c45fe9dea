"""embodied-deploy: a planner + policy on a robot, at a fixed control rate, behind the safety layer.

    embodied-deploy robot=sim_twin instruction="reach the goal" planner=<video ckpt> policy_ckpt=<policy ckpt>
    embodied-deploy robot=so101 robot.lerobot.port=/dev/ttyACM0 instruction="put the cube in the bowl" \
        planner=... policy_ckpt=... episodes=5 store=data/so101.zarr

``robot=sim_twin`` is the dry run: MetaWorld's Sawyer scene behind the same robot interface. Each
episode: the planner imagines the task from the current frame, the policy follows the plan
(``policies.PlanExecutor``, replanning), and ``embodied.robots.run_episode`` runs the control loop
(watchdog, limits, e-stop: Ctrl-C, space / q / Esc, or ``robot.safety.stop_file``). Episodes go to
the store with ``source=robot``: graded by ``grader`` (``embodied.graders``: the twin's own flag by
default, ``grader=vlm`` / ``learned`` on an arm), and, on a
terminal, labelled by the operator (the label wins). An aborted episode is kept, with
``success_gt=0`` and ``grader="aborted: <reason>"``, and ends the run.

Writes into the output dir: episodes.jsonl (one row per episode). The policy field is
``policy_ckpt`` (as in embodied-eval: ``policy/`` is the config group of policy architectures).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from embodied.robots import (
    EpisodeResult,
    EStop,
    LeRobotArmConfig,
    RobotConfig,
    RobotIO,
    SafetyLayer,
    SimTwinConfig,
    StatusLine,
    image_shape,
    make_robot,
    run_episode,
    state_names,
)
from embodied.graders import config as _grader_schemas  # noqa: F401  (registers configs/grader/* schemas)
from embodied.graders.base import GradeResult
from policies.config import ExecutorConfig

log = logging.getLogger(__name__)


@dataclass
class DeployConfig:
    robot: Any = MISSING  # configs/robot/<sim_twin|so101|koch>.yaml: driver, camera, image size, safety limits
    instruction: str = MISSING  # what to do, in words (the planner's text prompt)
    planner: str = MISSING  # video planner checkpoint dir (video_models)
    policy_ckpt: str = MISSING  # policy checkpoint dir (IDM / goal policy)
    task: str = ""  # the store's task column; "": the twin's task, else the instruction
    store: str = "data/robot.zarr"  # episode store (created if missing)
    episodes: int = 1  # episodes to run (an aborted one ends the run)
    rate_hz: float = 10.0  # control rate
    seed: int = 0  # episode i samples plans (and sets the twin's scene) with seed + i
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # replanning, sub-goals, step budget
    plan_sample_steps: int | None = None  # DDIM steps per plan; None: the checkpoint's
    grader: Any = None  # configs/grader/<name>.yaml: oracle | learned | vlm | none; null: oracle on the twin, else none
    ask_label: bool = True  # ask the operator "success?" after each episode (on a terminal only); the label wins
    source: str = "robot"  # the store's source column
    sail_iteration: int = -1  # the store's sail_iteration column (-1: not from the SAIL loop)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (embodied.device): where the planner and policy run
    connect_timeout_s: float = 120.0  # connecting may include LeRobot's calibration prompt
    reset_wait_s: float = 5.0  # between episodes on an arm: the pause to reset the scene (a terminal asks for Enter)


cs = ConfigStore.instance()
cs.store(name="deploy_schema", node=DeployConfig)
cs.store(group="robot", name="sim_twin_schema", node=SimTwinConfig)
cs.store(group="robot", name="lerobot_schema", node=LeRobotArmConfig)


# --- grading --------------------------------------------------------------------------------------------
def make_grader(spec: Any, robot):
    """An ``embodied.graders`` grader: ``spec`` as configs/grader/<name>.yaml gives it (oracle | learned | vlm | none,
    a name, a dict or a config); None: the simulator's flag (oracle) on a robot that has one, else none."""
    from embodied.graders import make_grader as build

    has_gt = hasattr(robot, "success")
    grader = build(spec if spec is not None else ("oracle" if has_gt else "none"))
    if grader.name == "oracle" and not has_gt:
        raise ValueError(f"grader=oracle reads the simulator's success flag; {robot.name} has none "
                         f"(use grader=vlm, grader=learned or grader=none on a real arm)")
    return grader


def ask_operator(prompt: str = "success? [y/n, Enter: skip] ") -> bool | None:
    """The operator's label from a terminal; None when skipped or when stdin is no terminal."""
    if not sys.stdin.isatty():
        return None
    answer = input(prompt).strip().lower()
    return True if answer in ("y", "yes", "1") else False if answer in ("n", "no", "0") else None


def episode_columns(result: EpisodeResult, verdict: GradeResult | None, grader_name: str,
                    label: bool | None) -> dict[str, Any]:
    """success_gt / grader / grader_score for the store.

    Aborted: success_gt 0, grader "aborted: <reason>". An operator's label wins: success_gt = label,
    grader "operator;<grader>". Otherwise success_gt is ground truth only from the oracle (the
    twin's simulator), -1 from an estimating grader, whose verdict is kept in grader_score (its
    score, or 1 / 0 when it gives none; the none grader keeps NaN).
    """
    if result.aborted:
        return {"success_gt": 0, "grader": f"aborted: {result.end_reason}", "grader_score": math.nan}
    score = math.nan
    if verdict is not None:
        no_score = math.nan if grader_name == "none" else float(verdict.success)
        score = verdict.score if math.isfinite(verdict.score) else no_score
    if label is not None:
        return {"success_gt": int(label), "grader": f"operator;{grader_name}", "grader_score": score}
    success_gt = int(verdict.success) if (verdict is not None and grader_name == "oracle") else -1
    return {"success_gt": success_gt, "grader": grader_name, "grader_score": score}


# --- the agent: plan, then follow the plan -----------------------------------------------------------------
def load_models(cfg: DeployConfig, robot) -> tuple[Any, Any]:
    """The planner and policy, checked against the robot's frame size and action / state sizes."""
    from embodied.checkpoints import load_checkpoint
    from embodied.rollouts import check_spec

    size = image_shape(robot)[0]
    for spec, kind in ((cfg.planner, "planner"), (cfg.policy_ckpt, "policy")):
        try:
            check_spec(spec, kind, size)
        except ValueError as e:
            raise ValueError(f"{e} [deploy: the robot's frames are robot.image_size={size} px]") from None
    from embodied.device import resolve_device

    device = resolve_device(cfg.device)
    policy = load_checkpoint(cfg.policy_ckpt, "policy", device)
    dims = {"action_dim": len(robot.action_features), "state_dim": len(state_names(robot))}
    for name, want in dims.items():
        got = getattr(policy.config, name)
        if got != want:
            raise ValueError(f"the policy {cfg.policy_ckpt} has {name}={got}, the robot {robot.name} has {want}: "
                             f"train it on this robot's episodes")
    return load_checkpoint(cfg.planner, "planner", device), policy


def plan_and_execute(planner, policy, executor: ExecutorConfig, instruction: str, seed: int,
                     plan_sample_steps: int | None = None):
    """The agent: ``PlanExecutor`` following plans of ``planner`` (a video_models planner) on the robot."""
    from embodied.rollouts import VideoPlanFn
    from policies.executor import PlanExecutor

    plan_fn = VideoPlanFn(planner, seed, plan_sample_steps)
    executor_obj = PlanExecutor(policy, plan_fn, executor)

    def agent(env) -> None:
        executor_obj.run(env, instruction)

    agent.plan_fn = plan_fn  # plans made so far: agent.plan_fn.calls
    return agent


# --- the run -------------------------------------------------------------------------------------------------
@dataclass
class DeployResult:
    rows: list[dict[str, Any]]  # one per episode, as in episodes.jsonl
    results: list[EpisodeResult]
    store_indices: list[int]


def deploy(
    cfg: DeployConfig,
    output_dir: str | Path | None = None,
    *,
    robot=None,
    agent_factory: Callable[[int], Callable] | None = None,
    grader=None,
    ask: Callable[[], bool | None] | None = None,
    status_stream=None,
) -> DeployResult:
    """Run ``cfg.episodes`` episodes and append them to the store.

    For tests and embedding: ``robot`` replaces the one ``cfg.robot`` describes (e.g. wrapped in
    ``embodied.robots.testing.FaultyRobot``); ``agent_factory(episode_index)`` replaces plan +
    policy (then no checkpoints are loaded); ``grader`` replaces ``cfg.grader``; ``ask`` replaces
    the terminal prompt for the operator's label.
    """
    from embodied.store import EpisodeStore

    if not isinstance(cfg.robot, RobotConfig):
        raise TypeError(f"cfg.robot must be a robot config (configs/robot/*.yaml), got {type(cfg.robot).__name__}")
    if cfg.episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {cfg.episodes}")
    if not cfg.instruction or cfg.instruction == MISSING:
        raise ValueError("give the instruction: instruction='...'")
    robot = robot if robot is not None else make_robot(cfg.robot)
    safety = SafetyLayer(cfg.robot.safety, len(robot.action_features), len(state_names(robot)), 1.0 / cfg.rate_hz)
    estop = EStop(cfg.robot.safety.stop_file, keys=cfg.robot.safety.stop_keys)
    estop.check_clear()
    grader = grader if grader is not None else make_grader(cfg.grader, robot)
    if agent_factory is None:
        planner, policy = load_models(cfg, robot)
        checkpoint = f"planner={Path(cfg.planner).resolve()};policy={Path(cfg.policy_ckpt).resolve()}"

        def agent_factory(i: int):
            return plan_and_execute(planner, policy, cfg.executor, cfg.instruction, cfg.seed + i, cfg.plan_sample_steps)
    else:
        checkpoint = ""
    if ask is None:
        ask = ask_operator if cfg.ask_label else (lambda: None)
    task = cfg.task or getattr(cfg.robot, "task", "") or cfg.instruction
    size = image_shape(robot)[0]
    camera = getattr(cfg.robot, "camera", "")
    low, high = cfg.robot.safety.action_low, cfg.robot.safety.action_high

    out = Path(output_dir) if output_dir is not None else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    status = StatusLine(status_stream)
    rows: list[dict[str, Any]] = []
    results: list[EpisodeResult] = []
    indices: list[int] = []
    io = RobotIO(robot, cfg.robot.safety.io_timeout_s)
    with EpisodeStore(cfg.store, mode="a", image_size=size, camera=camera, action_dim=len(robot.action_features),
                      state_dim=len(state_names(robot)), action_low=low, action_high=high) as store:
        try:
            io.call("connect", timeout=cfg.connect_timeout_s)
            for i in range(cfg.episodes):
                seed = cfg.seed + i
                _reset_scene(io, seed, i, cfg.reset_wait_s)
                estop.check_clear()
                label = f"ep {i + 1}/{cfg.episodes} {cfg.instruction[:40]!r}"
                agent = agent_factory(i)
                with estop:
                    result = run_episode(io, agent, safety, rate_hz=cfg.rate_hz, estop=estop, status=status, label=label)
                results.append(result)
                row = _record(store, result, agent, grader, ask, cfg, task, seed, checkpoint)
                if row.get("index") is not None:
                    indices.append(row["index"])
                rows.append(row)
                if out:
                    with open(out / "episodes.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                if result.aborted:
                    log.warning("episode %d aborted (%s): the run stops here", i, result.end_reason)
                    break
        finally:
            _shut_down(io, cfg.connect_timeout_s)
    return DeployResult(rows, results, indices)


def _shut_down(io: RobotIO, timeout_s: float) -> None:
    """Disconnect if connected; a robot that stopped answering can only be told about."""
    if io.stalled:
        log.error("the robot stopped answering (%s): it could not be stopped or disconnected; cut its power by hand",
                  io.stalled)
    elif io.robot.is_connected:
        try:
            io.call("disconnect", timeout=timeout_s)
        except Exception as e:
            log.error("disconnecting failed (%s: %s): check the robot", type(e).__name__, e)
    io.close()


def _reset_scene(io: RobotIO, seed: int, i: int, wait_s: float) -> None:
    """The twin resets itself; on an arm the operator resets the scene (Enter on a terminal, else a pause)."""
    if hasattr(io.robot, "reset_scene"):
        io.call("reset_scene", seed)
    elif i > 0:
        if sys.stdin.isatty():
            input("reset the scene, then press Enter to start the next episode ")
        else:
            time.sleep(wait_s)


def _record(store, result: EpisodeResult, agent, grader, ask, cfg: DeployConfig, task: str, seed: int,
            checkpoint: str) -> dict[str, Any]:
    """Grade, ask for a label, append to the store; the episodes.jsonl row."""
    row: dict[str, Any] = {"end_reason": result.end_reason, "aborted": result.aborted, "steps": result.steps,
                           "holds": result.holds, "clamps": result.clamps, "duration_s": round(result.duration_s, 3),
                           "plans": getattr(getattr(agent, "plan_fn", None), "calls", None), "seed": seed,
                           "stop_error": result.stop_error, "index": None}
    episode = result.episode
    if episode is None:
        log.error("episode recorded nothing (%s)", result.end_reason)
        return row
    verdict = label = None
    if not result.aborted:
        info = {"success": episode.success if result.has_ground_truth else None, "success_gt": -1, "task": task}
        verdict = grader.grade(episode.rgb, cfg.instruction, info)
        label = ask()
    columns = episode_columns(result, verdict, grader.name, label)
    episode.meta = dict(task=task, instruction=cfg.instruction, source=cfg.source, sail_iteration=cfg.sail_iteration,
                        seed=seed, checkpoint=checkpoint, created_at=time.time(), **columns)
    row["index"] = store.append(episode)
    row.update(length=len(episode), **{k: v for k, v in columns.items()})
    if isinstance(row["grader_score"], float) and math.isnan(row["grader_score"]):
        row["grader_score"] = None  # JSON has no NaN
    return row


# --- the CLI ---------------------------------------------------------------------------------------------------
