"""embodied-sail-summary: mean and std over loop seeds, the pooled paired test, loop beside control."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embodied.cli.sail_summary import main as summary_main
from embodied.sail_report import summarize


def _write_run(root: Path, seed: int, self_training: bool, outcomes: dict[int, dict[str, list[int]]]) -> None:
    """A run dir's report/sail.json, as the loop writes it (only the keys the summary reads)."""
    config = {"seed": seed, "self_training": self_training, "grader": {"name": "oracle"}, "store": None,
              "task_set": {"name": "train"}, "target_set": {"name": "t", "tasks": ["a", "b"]}}
    report = {"config": config, "tasks": ["a", "b"], "outcomes": {str(it): o for it, o in outcomes.items()}}
    path = root / f"{int(self_training)}_{seed}" / "report" / "sail.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(report))


def test_summary_over_loop_seeds_and_against_the_control(tmp_path, capsys):
    first = {"a": [0, 0, 1, 1], "b": [0, 0, 0, 1]}
    # Loop: seed 0 gains 2 episodes on a, seed 1 gains 1 on b and loses 1 on a.
    _write_run(tmp_path, 0, True, {0: first, 1: {"a": [1, 1, 1, 1], "b": [0, 0, 0, 1]}})
    _write_run(tmp_path, 1, True, {0: first, 1: {"a": [0, 0, 0, 1], "b": [1, 0, 0, 1]}})
    # Control: unchanged on both seeds.
    _write_run(tmp_path, 0, False, {0: first, 1: first})
    _write_run(tmp_path, 1, False, {0: first, 1: first})
    summary = summarize(tmp_path)
    loop, control = sorted(summary["groups"], key=lambda g: not g["self_training"])
    assert loop["label"] == "self_training=True" and control["label"] == "self_training=False"
    assert loop["loop_seeds"] == [0, 1]
    assert loop["rose_in"] == [0] and control["rose_in"] == []  # seed 1: gained one, lost one
    it1 = loop["rows"][1]
    assert it1["tasks"]["a"][0] == pytest.approx((1.0 + 0.25) / 2)  # mean over loop seeds
    assert it1["tasks"]["a"][1] == pytest.approx(0.5303, abs=1e-4)  # sample std of 1.0 and 0.25
    assert it1["pooled"][0] == pytest.approx((5 / 8 + 3 / 8) / 2)
    # Pooled over both seeds and tasks against iteration 0: gained 2 + 1, lost 1.
    test = it1["paired_vs_first"]
    assert (test["episodes"], test["gained"], test["lost"]) == (16, 3, 1) and test["p_value"] == pytest.approx(0.625)
    vs = loop["loop_vs_control"][1]
    assert (vs["gained"], vs["lost"]) == (3, 1)
    text = (tmp_path / "summary.md").read_text()
    assert "Loop against its control" in text and "+3 / -1, p = 0.625" in text
    assert "above iteration 0 in 1 of 2 loop seeds ([0])" in text
    assert json.loads((tmp_path / "summary.json").read_text())["groups"][0]["loop_seeds"] == [0, 1]
    from PIL import Image

    assert "](summary.png)" in text and Image.open(tmp_path / "summary.png").size[0] > 300
    summary_main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "Mean ± std over loop seeds" in out and f"Written: {tmp_path / 'summary.md'}" in out
    with pytest.raises(SystemExit) as exit_info:
        summary_main([str(tmp_path / "empty")])
    assert exit_info.value.code == 2 and "embodied-sail-summary: no SAIL run under" in capsys.readouterr().err
