"""The SAIL loop with the scripted expert executing its self-collection rollouts (tests only).

Tiny random models never succeed, so a loop test built on them would never keep an episode. With
the expert in their place the rollouts succeed (or not, within the step budget) and everything
after them is the loop's own path: grading, the verdict rows, the store, mixing the kept episodes
into fine-tuning, resuming. Evaluation still runs the loop's own planner + IDM.

    python tests/sail_with_expert.py <embodied-sail overrides>       # as embodied-sail
    SAIL_TEST_KILL_AT_PLAN_APPEND=1 ...                               # SIGKILL itself right after the
                                                                      # first verdict row, before its append
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

import embodied.rollouts as rollouts

_real_run_unit = rollouts._run_unit


def _run_unit(item, cache=None):
    jobs, settings = item
    # Self-collection rollouts (evaluation jobs are left alone) are executed by the expert.
    jobs = [dataclasses.replace(job, planner=rollouts.ORACLE, policy=rollouts.EXPERT) if job.method.startswith("sail_")
            else job for job in jobs]
    return _real_run_unit((jobs, settings), cache)


def install(kill_at_plan_append: bool = False) -> None:
    """Patch the in-process rollout runner (the loop must run with workers=0)."""
    rollouts._run_unit = _run_unit
    if kill_at_plan_append:
        from embodied.store import EpisodeStore

        real_append = EpisodeStore.append

        def append(self, episode):
            if episode.meta.get("source") == "plan":  # the verdict row is written, the episode is not
                os.kill(os.getpid(), signal.SIGKILL)
            return real_append(self, episode)

        EpisodeStore.append = append


if __name__ == "__main__":
    install(os.environ.get("SAIL_TEST_KILL_AT_PLAN_APPEND") == "1")
    from embodied.cli.sail import main

    sys.argv[0] = "embodied-sail"
    main()
