"""One episode on a robot: a fixed-rate control loop, the policy on its own thread, a safe stop on any fault.

    io = RobotIO(robot, timeout_s=2.0)          # every robot call on one thread, with a deadline
    io.call("connect")
    result = run_episode(io, agent, SafetyLayer(...), rate_hz=10)
    result.episode                              # sim.types.Episode, kept (and marked) when aborted too

Threads. The control loop runs in the caller's thread (the main one, so Ctrl-C reaches it). Robot
calls run on the ``RobotIO`` thread, so a driver that stops answering is noticed after
``io_timeout_s`` instead of freezing the loop. The agent (planner + policy) runs on its own thread
against ``AgentEnv``, a gymnasium-style env whose ``step`` hands the action to the loop and returns
the next observation, so ``policies.PlanExecutor.run`` drives a robot unchanged.

Each tick: observe (faults: driver error, stall, NaN state, outside the workspace) -> record ->
e-stop / time limit -> publish to the agent and wait up to ``watchdog_s`` for its action, else hold
position (the watchdog) -> safety filter (faults: NaN, far out of bounds) -> send -> sleep to the
next tick. The end, whatever the reason: the agent is told to stop, the robot gets the hold action,
and one more observation closes the episode if the robot still answers. An episode of T actions is
T + 1 steps with a zero last action, like every episode in the store (``sim/types.py``).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.robots.estop import EStop
from embodied.robots.robot import RGB, Robot, image_shape
from embodied.robots.safety import SafetyFault, SafetyLayer
from sim.types import Episode

AGENT_JOIN_S = 1.0  # how long the end of an episode waits for the agent thread (a hung one is left behind, a daemon)


# --- robot calls with a deadline ----------------------------------------------------------------------
class RobotStall(RuntimeError):
    """The robot did not answer a call in time (or had already stopped answering)."""


class RobotIO:
    """Runs every call to ``robot`` on one daemon thread and waits at most ``timeout_s`` for it.

    One thread, so calls never overlap (drivers are not thread-safe, and the MuJoCo twin's GL
    context belongs to the thread that made it). Once a call times out the thread may be stuck
    for good: ``stalled`` says why, and every later call raises RobotStall at once.
    """

    def __init__(self, robot: Robot, timeout_s: float = 2.0):
        self.robot, self.timeout_s = robot, float(timeout_s)
        self.stalled: str | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"robot-io-{getattr(robot, 'name', 'robot')}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, future = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:  # handed to the caller
                    future.set_exception(e)

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        if self.stalled:
            raise RobotStall(f"the robot stopped answering earlier ({self.stalled}); {method} was not called")
        future: Future = Future()
        self._jobs.put((getattr(self.robot, method), args, future))
        wait = self.timeout_s if timeout is None else timeout
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            future.cancel()
            self.stalled = f"{method} gave no answer within {wait:g} s"
            raise RobotStall(self.stalled) from None

    def close(self) -> None:
        """End the thread once its queue is done (a stuck thread is a daemon: it does not block exit)."""
        self._jobs.put(None)


# --- the agent's side: a gymnasium-style env ----------------------------------------------------------
class EpisodeOver(Exception):
    """Raised inside the agent's env calls once the control loop has ended the episode."""


Agent = Callable[["AgentEnv"], Any]  # runs reset() / step() on the env it is given, e.g. PlanExecutor.run


class AgentEnv:
    """The control loop as a gymnasium env for the agent thread: obs ``{"rgb", "state"}``, info ``{"success"}``.

    ``step(action)`` leaves the action for the loop and returns the first observation taken after
    the loop sent it. Reward is 0, terminated / truncated are False: the loop decides the end.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._obs: dict[str, np.ndarray] | None = None
        self._info: dict[str, Any] = {}
        self._seq = 0  # observations published so far
        self._action: np.ndarray | None = None
        self._taken_at: int | None = None  # the observation the pending action was sent after
        self._closed: str | None = None
        self.done = False  # the agent returned (or raised)
        self.error: BaseException | None = None

    # agent thread
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with self._cond:
            self._wait(lambda: self._seq > 0)
            return self._obs, dict(self._info)

    def step(self, action):
        with self._cond:
            if self._closed is not None:
                raise EpisodeOver(self._closed)
            self._action = np.array(action, dtype=np.float32, copy=True)
            self._taken_at = None
            self._cond.notify_all()
            self._wait(lambda: self._taken_at is not None and self._seq > self._taken_at)
            return self._obs, 0.0, False, False, dict(self._info)

    def _wait(self, ready: Callable[[], bool]) -> None:
        while not ready():
            if self._closed is not None:
                raise EpisodeOver(self._closed)
            self._cond.wait()

    def run_agent(self, agent: Agent) -> None:
        try:
            agent(self)
        except EpisodeOver:
            pass
        except BaseException as e:  # reported by the loop as a fault
            self.error = e
        finally:
            with self._cond:
                self.done = True
                self._cond.notify_all()

    # control loop
    def publish(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        with self._cond:
            self._obs, self._info = obs, info
            self._seq += 1
            self._cond.notify_all()

    def take_action(self, timeout: float) -> np.ndarray | None:
        """The agent's next action, waiting up to ``timeout`` s; None if none came (or the agent is done)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._action is None and not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            action, self._action = self._action, None
            if action is not None:
                self._taken_at = self._seq
            return action

    def close(self, reason: str) -> None:
        with self._cond:
            self._closed = reason
            self._cond.notify_all()


# --- status line --------------------------------------------------------------------------------------
class StatusLine:
    """One line rewritten in place on a terminal; elsewhere a line every ``every_s`` seconds."""

    def __init__(self, stream=None, every_s: float = 2.0):
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s, self._last, self._width = every_s, -float("inf"), 0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif force or now - self._last >= self.every_s:
            self.stream.write(text + "\n")
            self._last = now
        self.stream.flush()

    def done(self, text: str) -> None:
        if self.tty:
            self.update(text)
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
        else:
            self.update(text, force=True)


# --- one episode --------------------------------------------------------------------------------------
@dataclass
class EpisodeResult:
    episode: Episode | None  # None only when not even the first observation came
    end_reason: str  # "policy finished" | "time limit" | "e-stop: ..." | "<fault>: ..."
    aborted: bool  # a fault or an e-stop stopped the robot mid-episode
    steps: int  # actions recorded: the policy's, the watchdog's holds and the safe stop's hold
    holds: int  # ticks the watchdog held position (no action in time)
    clamps: int  # actions a limit changed
    duration_s: float
    has_ground_truth: bool = False  # the robot reports success itself (the twin)
    stop_error: str | None = None  # the safe stop itself failed (then: check the robot by hand)

    @property
    def success(self) -> bool | None:
        """Ground truth where the robot knows it (the twin), else None."""
        return self.episode.succeeded if (self.has_ground_truth and self.episode is not None) else None


class _Recorder:
    """Steps as they happen: (rgb, state, success) when observed, the action once sent."""

    def __init__(self) -> None:
        self.rgb: list[np.ndarray] = []
        self.state: list[np.ndarray] = []
        self.success: list[bool] = []
        self.action: list[np.ndarray | None] = []

    def observe(self, rgb: np.ndarray, state: np.ndarray, success: bool) -> None:
        self.rgb.append(rgb)
        self.state.append(np.asarray(state, np.float32))
        self.success.append(bool(success))
        self.action.append(None)

    def act(self, action: np.ndarray) -> None:
        self.action[-1] = np.asarray(action, np.float32)

    @property
    def acted_last(self) -> bool:
        return bool(self.action) and self.action[-1] is not None

    def episode(self, action_dim: int) -> Episode | None:
        if not self.rgb:
            return None
        zero = np.zeros(action_dim, np.float32)
        # The last step's action is zero by contract: nothing observed follows it.
        actions = [a if (a is not None and i < len(self.action) - 1) else zero for i, a in enumerate(self.action)]
        return Episode(rgb=np.stack(self.rgb), action=np.stack(actions), state=np.stack(self.state),
                       success=np.asarray(self.success, bool))


def _unpack(obs: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obs, dict) or RGB not in obs or "state" not in obs:
        raise ValueError(f"get_observation must return {{'rgb', 'state'}}, got {type(obs).__name__}")
    rgb = np.asarray(obs[RGB])
    if rgb.dtype != np.uint8 or rgb.shape != shape:
        raise ValueError(f"observation rgb is {rgb.dtype} {rgb.shape}, the robot declares uint8 {shape}")
    return rgb, np.asarray(obs["state"], dtype=np.float32).reshape(-1)


def _ground_truth(robot: Robot) -> bool:
    return bool(getattr(robot, "success", False))


def run_episode(
    io: RobotIO,
    agent: Agent,
    safety: SafetyLayer,
    *,
    rate_hz: float,
    estop: EStop | None = None,
    status: StatusLine | None = None,
    label: str = "",
) -> EpisodeResult:
    """Run ``agent`` on the connected robot behind ``io`` until it finishes, a limit, an e-stop or a fault."""
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    cfg, robot = safety.config, io.robot
    shape, period = image_shape(robot), 1.0 / rate_hz
    has_gt = hasattr(robot, "success")
    safety.reset()
    env, rec = AgentEnv(), _Recorder()
    thread = threading.Thread(target=env.run_agent, args=(agent,), name="agent", daemon=True)
    thread.start()

    counts = {"steps": 0, "holds": 0}
    last_state: list[np.ndarray | None] = [None]
    t0 = time.monotonic()

    def line(state: str) -> str:
        elapsed = time.monotonic() - t0
        rate = counts["steps"] / elapsed if elapsed > 0 else 0.0
        gt = f" | success {int(_ground_truth(robot))}" if has_gt else ""
        return (f"{label} | {state} | t {elapsed:5.1f}s | step {counts['steps']:4d} | {rate:4.1f} Hz | "
                f"holds {counts['holds']} | clamps {safety.clamps}{gt}")

    def loop() -> tuple[str, bool]:
        """Tick until the end; returns (reason, aborted)."""
        next_tick, last_fresh = t0, t0
        while True:
            try:
                rgb, state = _unpack(io.call("get_observation"), shape)
                safety.check_state(state)
            except RobotStall as e:
                return f"robot stalled: {e}", True
            except SafetyFault as e:
                return f"bad state: {e}", True
            except Exception as e:
                return f"robot error in get_observation: {type(e).__name__}: {e}", True
            last_state[0] = state
            success = _ground_truth(robot)
            rec.observe(rgb, state, success)

            if estop is not None and (reason := estop.poll()):
                return f"e-stop: {reason}", True
            if time.monotonic() - t0 >= cfg.episode_time_s:
                return "time limit", False
            env.publish({RGB: rgb, "state": state}, {"success": success})
            action = env.take_action(cfg.watchdog_s)
            if env.error is not None:
                return f"policy error: {type(env.error).__name__}: {env.error}", True
            if action is None and env.done:
                return "policy finished", False
            if action is None:  # the watchdog: nothing in time, keep still
                if time.monotonic() - last_fresh > cfg.policy_timeout_s:
                    return f"policy stalled: no action for {cfg.policy_timeout_s:g} s", True
                action = safety.hold(state)
                counts["holds"] += 1
            else:
                last_fresh = time.monotonic()
                try:
                    action = safety.filter(action, state)
                except SafetyFault as e:
                    return f"unsafe action: {e}", True
            try:
                sent = io.call("send_action", action)
            except RobotStall as e:
                return f"robot stalled: {e}", True
            except Exception as e:
                return f"robot error in send_action: {type(e).__name__}: {e}", True
            rec.act(np.asarray(sent, np.float32).reshape(-1))
            counts["steps"] += 1
            if status is not None:
                status.update(line("running"))
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # far behind (a slow tick): do not burst to catch up
                next_tick = time.monotonic()

    try:
        end, aborted = loop()
    except KeyboardInterrupt:  # a second Ctrl-C during a blocking call: still stop safely
        end, aborted = "e-stop: Ctrl-C (twice)", True
    finally:
        env.close("episode ended")
        thread.join(AGENT_JOIN_S)

    stop_error, held = _safe_stop(io, safety, rec, last_state[0], robot)
    counts["steps"] += held
    episode = rec.episode(len(robot.action_features))
    result = EpisodeResult(episode, end, aborted, counts["steps"], counts["holds"], safety.clamps,
                           time.monotonic() - t0, has_gt, stop_error)
    if status is not None:
        status.done(line(("ABORTED: " if aborted else "done: ") + end))
    return result


def _safe_stop(io: RobotIO, safety: SafetyLayer, rec: _Recorder, state: np.ndarray | None,
               robot: Robot) -> tuple[str | None, int]:
    """Hold position, then close the episode with one more observation.

    Returns (what went wrong, or None; 1 if the hold became the last observation's recorded action).
    """
    if io.stalled:
        return f"no safe stop: {io.stalled}", 0
    hold, held = safety.hold(state), 0
    try:
        if hold is not None:
            sent = io.call("send_action", hold)
            if rec.rgb and not rec.acted_last:
                rec.act(np.asarray(sent, np.float32).reshape(-1))
                held = 1
        if rec.acted_last:  # what the last action did is only known from one more observation
            rgb, final = _unpack(io.call("get_observation"), image_shape(robot))
            if np.isfinite(final).all():
                rec.observe(rgb, final, _ground_truth(robot))
    except Exception as e:
        return f"safe stop incomplete: {type(e).__name__}: {e}", held
    return None, held
