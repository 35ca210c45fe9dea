"""The grader interface: oracle, none, learned (direct API, checkpoints), the registry and Hydra's _target_."""

import math

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import embodied.grade  # noqa: F401  (registers the grade schema)
from embodied.graders import GradeResult, load_grader, make_grader
from embodied.graders.base import as_frames, trailing_indices
from embodied.graders.config import LearnedGraderConfig, SuccessClassifierConfig
from sim.types import Episode


def _episode(success: bool) -> Episode:
    n = 6
    flags = np.zeros(n, bool)
    flags[-2:] = success
    return Episode(rgb=np.zeros((n, 16, 16, 3), np.uint8), action=np.zeros((n, 4), np.float32),
                   state=np.zeros((n, 3), np.float32), success=flags,
                   meta={"task": "drawer-open-v3", "instruction": "open the drawer", "success_gt": int(success)})


def test_oracle_reads_the_simulator_flags():
    oracle = make_grader("oracle")
    assert oracle.grade_episode(_episode(True)) == GradeResult(True, 1.0, "simulator success flag")
    assert not oracle.grade_episode(_episode(False)).success
    frame = np.zeros((16, 16, 3), np.uint8)
    assert oracle.grade(frame, "open the drawer", {"success": [False, True]}).success  # per-step flags alone
    assert not oracle.grade(frame, "open the drawer", {"success_gt": 0, "success": [True]}).success  # label wins
    with pytest.raises(ValueError, match="simulator's flags"):
        oracle.grade(frame, "open the drawer", {})


def test_none_keeps_everything():
    results = make_grader({"name": "none"}).grade_batch([np.zeros((16, 16, 3), np.uint8)] * 3, ["a", "b", "c"])
    assert all(r.success and math.isnan(r.score) and r.reason == "no filter" for r in results)


def test_registry_and_hydra_target_build_the_same_backends():
    from hydra.utils import instantiate

    for name in ("oracle", "none"):
        with initialize_config_module(config_module="configs", version_base="1.3"):
            cfg = compose("grade", overrides=[f"grader={name}"])
        assert make_grader(OmegaConf.to_object(cfg).grader).name == name
        assert make_grader(cfg.grader).name == name  # a DictConfig works too
        assert instantiate(cfg.grader).name == name  # and Hydra's own instantiate
    with pytest.raises(ValueError, match="unknown grader 'gpt'"):
        make_grader("gpt")
    with pytest.raises(Exception, match="thresold"):
        make_grader({"name": "learned", "thresold": 0.2})


def test_frame_helpers_refuse_bad_input():
    assert as_frames(np.zeros((8, 8, 3), np.uint8)).shape == (1, 8, 8, 3)
    assert as_frames([np.zeros((8, 8, 3), np.uint8)] * 2).shape == (2, 8, 8, 3)
    with pytest.raises(ValueError, match="uint8"):
        as_frames(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        as_frames(np.zeros((2, 8, 8), np.uint8))
    assert trailing_indices(10, 3, 4).tolist() == [1, 5, 9]
    assert trailing_indices(3, 3, 4).tolist() == [0, 0, 2]  # short episodes repeat their first frame


def test_learned_grader_checkpoint_round_trip(tmp_path):
    import torch

    from embodied.graders import LearnedGrader, SuccessClassifier

    torch.manual_seed(0)
    model = SuccessClassifier(SuccessClassifierConfig(image_size=16, channels=[8], hidden_dim=16))
    model.save(tmp_path / "g")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["config.json", "model.safetensors"]
    grader = load_grader(tmp_path / "g", threshold=0.0)
    frames = np.random.default_rng(0).integers(0, 255, (2, 7, 16, 16, 3), dtype=np.uint8)
    results = grader.grade_batch(list(frames), ["open the drawer", "open the door"])
    assert all(r.success and 0.0 < r.score < 1.0 and "P(success)" in r.reason for r in results)
    direct = LearnedGrader(LearnedGraderConfig(), model=model).grade(frames[0], "open the drawer")
    assert direct.score == pytest.approx(results[0].score, abs=1e-6)
    assert grader.frames_needed == 5  # 2 frames, 4 steps apart
    with pytest.raises(ValueError, match="16 px"):
        grader.grade(np.zeros((3, 32, 32, 3), np.uint8), "open the drawer")
    with pytest.raises(FileNotFoundError, match="grader.path"):
        load_grader(tmp_path / "missing")


def test_grader_and_proposer_packages_stay_apart_and_light():
    """Graders and proposers are separate concerns: neither package imports the other, and
    importing either (with its configs) loads neither torch nor transformers (CLIs compose cheaply)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "embodied"
    for package, other in (("graders", "proposers"), ("proposers", "graders")):
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    assert not node.module.startswith(f"embodied.{other}"), f"{path} imports {node.module}"
    code = ("import sys, embodied.graders, embodied.graders.config, embodied.proposers, embodied.proposers.config, "
            "embodied.vlm; bad = {'torch', 'transformers'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
