"""The one pool of spawn worker processes that every batch of rollouts runs in.

Results come back in job order, whatever order the workers finish in: the episodes of a run
then enter the store (and training sees them) in an order fixed by the jobs, so the same
command gives the same numbers.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# Environment of a worker process: headless EGL, and one thread for llvmpipe/OpenMP/BLAS so that
# N workers use N cores. LP_NUM_THREADS=0 makes Mesa's llvmpipe rasterize in the calling thread
# (no rasterizer thread to hand frames to): the same pixels as 1, measured ~15% faster here.
WORKER_ENV: dict[str, str] = {
    "MUJOCO_GL": "egl",
    "PYOPENGL_PLATFORM": "egl",
    "LP_NUM_THREADS": "0",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


@contextlib.contextmanager
def environ(env: dict[str, str]):
    """Temporarily set ``env`` in this process (spawned children inherit it at start)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _set_environ(env: dict[str, str]) -> None:
    os.environ.update(env)


def run_in_workers(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int,
    job_error: Callable[[Any, BaseException], Exception],
    initializer: Callable[..., Any] = _set_environ,
    initargs: tuple = (WORKER_ENV,),
    on_done: Callable[[], Any] | None = None,
) -> Iterator[Any]:
    """``fn(job)`` for every job in ``workers`` spawn processes; yields the results in job order.

    At most ``8 * workers`` jobs are in flight or finished-but-not-yielded: enough that a slow job
    at the head (a failed episode runs its whole budget) rarely idles a worker, few enough to bound
    the memory that finished episodes hold. ``on_done()`` is called as each job finishes (a progress bar). A
    failing job raises ``job_error(job, exc)`` (the worker's error as its cause). ``fn`` and the
    initializer must be importable module-level functions (spawn pickles them by name).
    """
    jobs = list(jobs)
    window = 8 * max(1, workers)
    pool = cf.ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"),
                                  initializer=initializer, initargs=initargs)
    pending: dict[cf.Future, int] = {}
    done: dict[int, Any] = {}
    next_submit = next_yield = 0

    def submit() -> None:
        nonlocal next_submit
        while next_submit < len(jobs) and len(pending) + len(done) < window:
            pending[pool.submit(fn, jobs[next_submit])] = next_submit
            next_submit += 1

    try:
        with environ(WORKER_ENV):  # workers start during the first submits and inherit this
            submit()
        while pending:
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    done[i] = fut.result()
                except Exception as exc:
                    raise job_error(jobs[i], exc) from exc
                if on_done is not None:
                    on_done()
            while next_yield in done:
                yield done.pop(next_yield)
                next_yield += 1
            submit()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
