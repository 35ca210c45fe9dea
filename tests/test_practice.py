"""What the SAIL loop practises: catalog (uniform), curriculum (SOAR) and VLM allocations."""

from __future__ import annotations

import numpy as np
import pytest

from embodied.practice import allocate, iteration_allocation, split_evenly

TASKS = ["door-close-v3", "drawer-close-v3", "reach-v3", "push-v3"]


def test_split_evenly_gives_the_whole_budget_by_weight():
    assert split_evenly(["a", "b", "c"], [1, 1, 1], 7) == {"a": 3, "b": 2, "c": 2}
    assert split_evenly(["a", "b"], [3, 1], 8) == {"a": 6, "b": 2}
    assert split_evenly(["a", "b"], [0, 0], 4) == {"a": 2, "b": 2}  # no weight: even


def test_catalog_is_uniform_and_bad_names_are_refused():
    assert allocate("catalog", TASKS, 40, [], seed=0) == dict.fromkeys(TASKS, 10)
    with pytest.raises(ValueError, match="proposer must be one of catalog | curriculum | vlm"):
        allocate("random", TASKS, 40, [], seed=0)


def test_curriculum_favours_tasks_near_the_target_rate_from_the_verdicts():
    # door-close always succeeds, reach never, drawer-close ~0.3, push untried.
    history = ([("door-close-v3", True)] * 10 + [("reach-v3", False)] * 10
               + [("drawer-close-v3", s) for s in [True, False, False] * 4])
    counts = allocate({"name": "curriculum"}, TASKS, 80, history, seed=3)
    assert sum(counts.values()) == 80
    assert counts["drawer-close-v3"] > counts["door-close-v3"] and counts["drawer-close-v3"] > counts["reach-v3"]
    assert counts["push-v3"] > counts["reach-v3"]  # the untried one is explored
    assert min(counts.values()) > 0  # the random picks (p = 0.2) reach every task
    assert allocate({"name": "curriculum"}, TASKS, 80, history, seed=3) == counts  # the seed fixes it
    assert allocate({"name": "curriculum", "random_prob": 0.0}, TASKS, 80, history, seed=3) != counts


def test_curriculum_allocation_spreads_a_batch_and_leaves_the_counts():
    from embodied.proposers import make_proposer

    proposer = make_proposer({"name": "curriculum", "random_prob": 0.0})
    counts = proposer.allocate(TASKS, 40)  # nothing tried: the exploration bonus spreads the batch
    assert counts == dict.fromkeys(TASKS, 10)
    assert proposer.attempts == {} and proposer.successes == {}


def test_vlm_allocation_follows_feasible_proposals(monkeypatch):
    import embodied.proposers

    class Proposer:
        def propose(self, frame, context):
            assert list(context.tasks) == TASKS
            # the drawer scene: closing it, twice; the three other scenes: closing the door
            return ["close the drawer", "close the drawer"] if frame.mean() > 0 else ["close the door"]

    monkeypatch.setattr(embodied.proposers, "make_proposer", lambda cfg: Proposer())
    frames = {t: np.full((8, 8, 3), 255 if t == "drawer-close-v3" else 0, np.uint8) for t in TASKS}
    counts = allocate({"name": "vlm", "model_path": "unused"}, TASKS, 12, [], seed=0, first_frames=frames)
    assert counts == {"door-close-v3": 7, "drawer-close-v3": 5, "reach-v3": 0, "push-v3": 0}  # 3 votes vs 2


def test_an_iteration_allocation_is_recorded_before_use(tmp_path):
    path = tmp_path / "iter_0" / "allocation.json"
    assert iteration_allocation(path, lambda: {"a": 3}) == {"a": 3}
    assert iteration_allocation(path, lambda: {"a": 99}) == {"a": 3}  # a resumed run reads it back
