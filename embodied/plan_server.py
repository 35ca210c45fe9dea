"""One planner on the GPU serving the plan requests of every rollout worker.

On a GPU machine the rollout workers step their environments (and run the small policy) on the
CPU cores, and ask this process for plans; a thread here holds one copy of each planner on the
device and answers whatever requests are waiting with one batched call:

    server = PlanServer(load=lambda spec: load_planner(spec).to("cuda"), workers=16)
    with server:                                   # the thread runs while the pool does
        pool initializer: connect(server.channel)  # each worker takes its own reply queue
        in a worker: planner = RemotePlanner(spec)  # plan_batch / plan, as a local Planner

Plans are the ones the planner gives for each request's seeds (one seed per plan), up to float
rounding in batched kernels: which requests share a call depends on timing, not on the plans.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_STOP = None  # sentinel on the request queue


class PlanServerError(RuntimeError):
    """The server could not answer a request; the message carries its error."""


class PlanServer:
    """A thread answering plan requests from ``workers`` processes with planners made by ``load(spec)``.

    ``max_batch``: plans per planner call at most (requests waiting beyond it wait for the next
    call). ``bucket``: pad each call to the next power of two (a compiled planner then sees a few
    batch shapes, not every size from 1 to max_batch).
    """

    def __init__(self, load: Callable[[str], Any], workers: int, max_batch: int = 64, bucket: bool = False) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError(f"need workers >= 1 and max_batch >= 1, got {workers}, {max_batch}")
        ctx = mp.get_context("spawn")
        self.requests = ctx.Queue()
        self.replies = [ctx.Queue() for _ in range(workers)]
        self.claimed = ctx.Value("i", 0)
        self.load, self.max_batch, self.bucket = load, int(max_batch), bool(bucket)
        self.planners: dict[str, Any] = {}
        self.calls: list[int] = []  # plans per planner call, in order (for logs and tests)
        self._thread = threading.Thread(target=self._serve, name="plan-server", daemon=True)

    @property
    def channel(self) -> tuple:
        """What a worker needs to reach the server (pass to ``connect`` in the pool's initializer)."""
        return self.requests, self.replies, self.claimed

    def __enter__(self) -> PlanServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.requests.put(_STOP)
        self._thread.join()
        for q in [self.requests, *self.replies]:
            q.close()
            q.join_thread()

    # --- the thread -------------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            first = self.requests.get()
            if first is _STOP:
                return
            waiting, stop = [first], False
            while True:  # everything that arrived while the last call ran goes into this one
                try:
                    item = self.requests.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                waiting.append(item)
            self._answer(waiting)
            if stop:
                return

    def _answer(self, waiting: list[tuple]) -> None:
        groups: dict[tuple, list[tuple]] = {}
        for request in waiting:  # (worker, request id, spec, num_steps, instructions, frames, seeds)
            groups.setdefault((request[2], request[3]), []).append(request)
        for (spec, num_steps), requests in groups.items():
            try:
                planner = self._planner(spec)
                instructions = [s for r in requests for s in r[4]]
                frames = np.concatenate([r[5] for r in requests])
                seeds = [s for r in requests for s in r[6]]
                plans = np.concatenate([self._plan(planner, instructions[i:i + self.max_batch],
                                                   frames[i:i + self.max_batch], num_steps, seeds[i:i + self.max_batch])
                                        for i in range(0, len(seeds), self.max_batch)])
            except Exception as exc:  # every waiting worker gets the error; the pool then stops
                log.error("plan server: %s", traceback.format_exc())
                for worker, rid, *_ in requests:
                    self.replies[worker].put((rid, f"{type(exc).__name__}: {exc}"))
                continue
            start = 0
            for worker, rid, _, _, instr, _, _ in requests:
                self.replies[worker].put((rid, plans[start:start + len(instr)]))
                start += len(instr)

    def _planner(self, spec: str) -> Any:
        if spec not in self.planners:
            self.planners[spec] = self.load(spec)
        return self.planners[spec]

    def _plan(self, planner: Any, instructions: list[str], frames: np.ndarray, num_steps: int | None,
              seeds: list[int]) -> np.ndarray:
        n = len(seeds)
        self.calls.append(n)
        if not getattr(planner, "per_sample_seeds", False):  # e.g. a composed planner: one plan a call
            return np.stack([planner.plan(s, f, num_steps=num_steps, seed=seed)
                             for s, f, seed in zip(instructions, frames, seeds)])
        size = 1 << (n - 1).bit_length() if self.bucket else n
        if size > n:  # padding rows: copies of the last request, their plans dropped
            pad = size - n
            instructions = instructions + instructions[-1:] * pad
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
            seeds = seeds + seeds[-1:] * pad
        return planner.plan_batch(instructions, frames, num_steps=num_steps, seed=seeds)[:n]


# --- the worker side ---------------------------------------------------------------------------------
_CLIENT: dict[str, Any] = {}  # in a worker: the connection made by connect()


def connect(channel: tuple | None) -> None:
    """Pool initializer part: take this worker's reply queue (None: no server, plan locally)."""
    _CLIENT.clear()
    if channel is None:
        return
    requests, replies, claimed = channel
    with claimed.get_lock():
        index = claimed.value
        claimed.value += 1
    if index >= len(replies):
        raise RuntimeError(f"plan server has {len(replies)} reply queues, worker {index} asked for one")
    _CLIENT.update(requests=requests, replies=replies[index], index=index, next_id=0)


def connected() -> bool:
    return bool(_CLIENT)


class RemotePlanner:
    """The planner ``spec`` as the server holds it: ``plan_batch`` / ``plan`` like a local Planner."""

    per_sample_seeds = True  # the server seeds every plan on its own

    def __init__(self, spec: str) -> None:
        if not _CLIENT:
            raise RuntimeError("RemotePlanner needs connect(server.channel) in this process first")
        self.spec = spec

    def plan_batch(self, instructions: list[str], first_frames: np.ndarray, num_steps: int | None = None,
                   seed: int | Sequence[int] | None = None) -> np.ndarray:
        instructions = list(instructions)
        frames = np.asarray(first_frames, dtype=np.uint8)
        if not isinstance(seed, Sequence):  # plans are seeded one by one (VideoPlanFn gives each its seed)
            raise TypeError(f"RemotePlanner.plan_batch takes one seed per plan, got {seed!r}")
        seeds = [int(s) for s in seed]
        if not (len(instructions) == len(frames) == len(seeds)):
            raise ValueError(f"{len(frames)} frames, {len(instructions)} instructions and {len(seeds)} seeds")
        rid = _CLIENT["next_id"]
        _CLIENT["next_id"] += 1
        _CLIENT["requests"].put((_CLIENT["index"], rid, self.spec, num_steps, instructions, frames, seeds))
        got, plans = _CLIENT["replies"].get()
        if got != rid:
            raise PlanServerError(f"plan server answered request {got}, expected {rid}")
        if isinstance(plans, str):
            raise PlanServerError(f"the plan server failed on planner {self.spec!r}: {plans}")
        return plans

    def plan(self, instruction: str, first_frame: np.ndarray, num_steps: int | None = None,
             seed: int | None = None) -> np.ndarray:
        """One plan; ``seed`` None plans with seed 0 (a served plan is always seeded)."""
        return self.plan_batch([instruction], np.asarray(first_frame)[None], num_steps, [0 if seed is None else seed])[0]
