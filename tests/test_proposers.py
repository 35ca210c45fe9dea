"""Catalog and curriculum proposers: catalog instructions, SOAR scoring, seeded picks, resumable state."""

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_module

import embodied.proposers.config  # noqa: F401  (registers the proposer schemas)
from embodied.proposers import SceneContext, make_proposer
from sim.catalog import instructions, task_for_instruction

SCENE = ["drawer-open-v3", "drawer-close-v3", "door-open-v3"]


def test_catalog_proposes_the_scene_tasks_instructions():
    proposer = make_proposer("catalog")
    assert proposer.propose(None, SCENE) == [i for t in SCENE for i in instructions(t)]
    picked = make_proposer({"name": "catalog", "num": 2, "seed": 1}).propose(None, SceneContext(SCENE))
    again = make_proposer({"name": "catalog", "num": 2, "seed": 1}).propose(None, SceneContext(SCENE))
    assert picked == again and len(picked) == 2 and {task_for_instruction(i) for i in picked} <= set(SCENE)
    with pytest.raises(ValueError, match="unknown MetaWorld task"):
        proposer.propose(None, ["drawer-opn-v3"])


def test_curriculum_prefers_success_near_target_and_the_untried():
    cur = make_proposer({"name": "curriculum", "random_prob": 0.0})
    for _ in range(10):  # door: always fails; drawer-open: 3 / 10; drawer-close: never tried
        cur.update("open the door", False)
    for k in range(10):
        cur.update("open the drawer", k < 3)
    assert cur.success_rate("drawer-open-v3") == pytest.approx(0.3)
    assert cur.score("drawer-open-v3") > cur.score("door-open-v3")
    assert cur.score("drawer-close-v3") == pytest.approx(1.0 + 0.5)  # untried: sr = target, full bonus
    assert task_for_instruction(cur.propose(None, SCENE)[0]) == "drawer-close-v3"
    assert task_for_instruction(cur.propose(None, SCENE[::2])[0]) == "drawer-open-v3"
    with pytest.raises(ValueError, match="no catalog instruction"):
        cur.update("juggle three balls", True)


def test_curriculum_random_picks_and_seeds():
    uniform = make_proposer({"name": "curriculum", "random_prob": 1.0, "seed": 3})
    tasks = {task_for_instruction(uniform.propose(None, SCENE)[0]) for _ in range(60)}
    assert tasks == set(SCENE)
    a = [make_proposer({"name": "curriculum", "seed": 7}).propose(None, SCENE) for _ in range(2)]
    assert a[0] == a[1]
    two = make_proposer({"name": "curriculum", "num": 2}).propose(None, SceneContext(SCENE))
    assert len({task_for_instruction(i) for i in two}) == 2


def test_curriculum_state_resumes_the_same_sequence(tmp_path):
    def run(proposer, steps, log):
        for k in range(steps):
            [instruction] = proposer.propose(None, SCENE)
            log.append(instruction)
            proposer.update(instruction, success=(k * 7) % 3 == 0)

    straight: list[str] = []
    run(make_proposer({"name": "curriculum", "seed": 5}), 20, straight)
    state = tmp_path / "curriculum.json"
    resumed: list[str] = []
    run(make_proposer({"name": "curriculum", "seed": 5, "state_path": str(state)}), 12, resumed)
    saved = json.loads(state.read_text())
    assert sum(saved["attempts"].values()) == 12
    restarted = make_proposer({"name": "curriculum", "seed": 5, "state_path": str(state)})  # a killed loop restarts
    assert restarted.attempts == {k: int(v) for k, v in saved["attempts"].items()}
    for k in range(12, 20):  # the same picks as the uninterrupted run (rng state came back too)
        [instruction] = restarted.propose(None, SCENE)
        resumed.append(instruction)
        restarted.update(instruction, success=(k * 7) % 3 == 0)
    assert resumed == straight
    with pytest.raises(ValueError, match="not a curriculum state"):
        make_proposer({"name": "curriculum", "key": "instruction", "state_path": str(state)})


def test_curriculum_per_instruction_and_config_group(tmp_path):
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("proposer/curriculum", overrides=["proposer.key=instruction",
                                                         f"proposer.state_path={tmp_path / 's.json'}"])
    proposer = make_proposer(cfg.proposer)
    [instruction] = proposer.propose(np.zeros((8, 8, 3), np.uint8), ["door-open-v3"])
    assert instruction in instructions("door-open-v3")
    proposer.update(instruction, True)
    assert proposer.table() == [{"key": instruction, "attempts": 1, "success_rate": 1.0,
                                 "score": pytest.approx(0.3 + 0.5 / 2**0.5)}]
