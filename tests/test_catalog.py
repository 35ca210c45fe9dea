"""sim.catalog: task names, instructions and the unknown-task error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim import catalog
from sim.catalog import TASKS, instruction_for, instructions, task_for_instruction, validate_task_names


def test_tasks_match_metaworld_order():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert TASKS == list(ALL_V3_ENVIRONMENTS)
    assert len(TASKS) == 50


def test_instructions_are_plentiful_and_unique():
    seen: dict[str, str] = {}
    for task in TASKS:
        texts = instructions(task)
        assert len(texts) >= 3, task
        assert len(set(texts)) == len(texts), task
        for text in texts:
            assert text == text.strip() and text.islower(), text
            key = " ".join(text.split())
            assert key not in seen, f"{text!r} is used by {seen.get(key)} and {task}"
            seen[key] = task
            assert task_for_instruction(text) == task


def test_instruction_for_is_deterministic_and_varies():
    for task in TASKS[:10]:
        picks = [instruction_for(task, seed) for seed in range(30)]
        assert picks == [instruction_for(task, seed) for seed in range(30)]
        assert set(picks) <= set(instructions(task))
        assert len(set(picks)) > 1  # seeds spread over the paraphrases
    # the same in a fresh interpreter (no dependence on hash randomisation)
    code = "from sim.catalog import instruction_for as f; print(f('drawer-open-v3', 3), f('reach-v3', 11))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{instruction_for('drawer-open-v3', 3)} {instruction_for('reach-v3', 11)}"


def test_task_for_instruction_normalises_case_and_space():
    assert task_for_instruction("  Open   the DRAWER ") == "drawer-open-v3"
    assert task_for_instruction("open the drawer please") is None
    assert task_for_instruction("") is None


def test_validate_task_names():
    assert validate_task_names(["reach-v3", "drawer-open-v3"]) == ["reach-v3", "drawer-open-v3"]
    assert validate_task_names(("reach-v3",)) == ["reach-v3"]
    with pytest.raises(ValueError, match="drawer-open-v3") as err:
        validate_task_names(["reach-v3", "drawer-opne-v3"])
    assert "drawer-opne-v3" in str(err.value) and "did you mean" in str(err.value)
    with pytest.raises(ValueError, match="unknown MetaWorld task"):
        instructions("nope")


def test_one_error_helper_shared_with_make_env():
    with pytest.raises(ValueError) as from_catalog:
        validate_task_names(["drawer-opne-v3"])
    from sim.env import make_env

    with pytest.raises(ValueError) as from_env:
        make_env("drawer-opne-v3")
    assert str(from_env.value) == str(from_catalog.value) == str(catalog.unknown_task_error("drawer-opne-v3"))


def test_catalog_does_not_import_mujoco():
    code = "import sim, sim.catalog, sim.rollout, sys; print('mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
