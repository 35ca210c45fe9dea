"""embodied-deploy on the sim twin: a dry run with tiny random checkpoints, and faults injected mid-episode.

Every fault must end in a safe stop with the episode so far kept in the store, marked
``grader="aborted: <reason>"`` and ``success_gt=0``.
"""

import dataclasses
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from embodied.deploy import DeployConfig, deploy, episode_columns, make_grader
from embodied.robots import SimTwinConfig, make_robot
from embodied.robots.runner import EpisodeResult
from embodied.robots.sim_twin.config_sim_twin import twin_safety
from embodied.robots.testing import FaultyRobot
from embodied.store import EpisodeStore

SIZE = 32
INSTRUCTION = "reach the goal"
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A random video planner and a random IDM at 32 px, saved as real checkpoints."""
    import torch

    from policies import FrameGoalPolicy, IDMConfig
    from policies.testing import InMemoryEpisodeSource
    from video_models import Planner, VideoModelConfig

    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    planner = Planner(VideoModelConfig(image_size=SIZE, num_frames=3, patch_size=2, base_channels=8, channel_mult=(1, 2),
                                       attention_resolutions=(), norm_groups=4, text_encoder="learned",
                                       instructions=[INSTRUCTION], text_dim=16, sample_steps=2))
    planner.save(root / "planner")
    rng = np.random.default_rng(0)
    action = np.clip(rng.normal(0, 1, (6, 4)), -1, 1).astype(np.float32)
    action[0], action[1] = -1, 1  # the normaliser spans MetaWorld's [-1, 1]
    episode = dict(rgb=rng.integers(0, 255, (6, SIZE, SIZE, 3), dtype=np.uint8), action=action,
                   state=rng.normal(0, 1, (6, 39)).astype(np.float32), success=np.zeros(6, bool), meta={})
    policy = FrameGoalPolicy.from_source(IDMConfig(image_size=SIZE, channels=[8], hidden_dim=16, chunk=2),
                                         InMemoryEpisodeSource([episode]), [0])
    torch.nn.init.normal_(policy.head[-1].weight, std=0.5)  # it starts at zero: make actions depend on frames
    policy.save(root / "policy")
    return root / "planner", root / "policy"


def composed(*overrides) -> DeployConfig:
    import embodied.deploy  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="deploy", overrides=list(overrides)))


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the dry run ------------------------------------------------------------------------------------
def test_dry_run_on_the_twin_executes_plans_and_records_episodes(checkpoints, tmp_path, capsys):
    planner, policy = checkpoints
    cfg = composed("robot=sim_twin", f"robot.image_size={SIZE}", f"instruction={INSTRUCTION}", f"planner={planner}",
                   f"policy_ckpt={policy}", f"store={tmp_path / 'robot.zarr'}", "episodes=2", "rate_hz=20",
                   "executor.max_steps=10", "executor.replan_every=5", "executor.steps_per_subgoal=3",
                   "robot.safety.watchdog_s=1.0")
    labels = iter([True, None])  # the operator labels the first episode, skips the second
    status = io.StringIO()
    result = deploy(cfg, tmp_path / "out", ask=lambda: next(labels), status_stream=status)

    assert [r.end_reason for r in result.results] == ["policy finished"] * 2
    assert all(not r.aborted and r.steps == 11 for r in result.results)  # 10, then the safe stop's hold
    assert all(row["plans"] >= 2 for row in result.rows)  # the start and a periodic replan
    with EpisodeStore(tmp_path / "robot.zarr") as store:
        assert len(store) == 2 and store.image_size == (SIZE, SIZE) and store.schema.camera == "corner2"
        first, second = store.meta(0), store.meta(1)
        assert first["source"] == second["source"] == "robot" and first["task"] == "reach-v3"
        assert first["instruction"] == INSTRUCTION and (first["seed"], second["seed"]) == (0, 1)
        assert first["success_gt"] == 1 and first["grader"] == "operator;oracle"  # the label wins
        assert second["grader"] == "oracle" and second["success_gt"] in (0, 1)  # the twin's own flag
        assert "planner=" in first["checkpoint"] and "policy=" in first["checkpoint"]
        frames, actions = store.get(0, "rgb"), store.get(0, "action")
        assert len(frames) == result.results[0].steps + 1 and frames.std() > 0
        assert not actions[-1].any() and np.abs(actions[:-1]).max() <= 1.0
    assert [r["index"] for r in read_rows(tmp_path / "out" / "episodes.jsonl")] == [0, 1]
    text = status.getvalue()
    assert "ep 1/2 'reach the goal' | running" in text and "done: policy finished" in text
    print(text)  # what an operator sees (not a terminal here: one line every 2 s and the last one)


def test_configs_compose_for_every_robot_and_the_twin_matches_its_defaults():
    for robot in ("sim_twin", "so101", "koch"):
        cfg = composed(f"robot={robot}", "instruction=x", "planner=p", "policy_ckpt=q")
        assert cfg.robot.safety.max_relative_target > 0 and cfg.robot.safety.action_low is not None
    twin = composed("robot=sim_twin", "instruction=x", "planner=p", "policy_ckpt=q").robot
    assert twin == SimTwinConfig(image_size=64)  # the YAML and the dataclass defaults say the same
    so101 = composed("robot=so101", "instruction=x", "planner=p", "policy_ckpt=q").robot
    assert so101.lerobot["type"] == "so101_follower" and so101.camera == "front"


def test_bad_inputs_fail_before_the_robot_moves(checkpoints, tmp_path):
    planner, policy = checkpoints
    cfg = composed("robot=sim_twin", "robot.image_size=64", f"instruction={INSTRUCTION}", f"planner={planner}",
                   f"policy_ckpt={policy}", f"store={tmp_path / 's.zarr'}")
    with pytest.raises(ValueError, match="trained on 32 px.*robot.image_size=64"):
        deploy(cfg)
    cfg.robot.image_size = SIZE
    cfg.planner = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="planner checkpoint not found"):
        deploy(cfg)
    assert not (tmp_path / "s.zarr").exists()


def test_grades_labels_and_aborts_in_the_store_columns():
    from embodied.graders import GradeResult

    aborted = EpisodeResult(None, "robot stalled: x", True, 3, 0, 0, 1.0)
    assert episode_columns(aborted, GradeResult(True, 1.0, ""), "oracle", True) == {
        "success_gt": 0, "grader": "aborted: robot stalled: x", "grader_score": pytest.approx(np.nan, nan_ok=True)}
    done = dataclasses.replace(aborted, aborted=False, end_reason="time limit")
    assert episode_columns(done, GradeResult(True, 1.0, ""), "oracle", None)["success_gt"] == 1  # the simulator's flag
    vlm = episode_columns(done, GradeResult(False, 0.3, ""), "vlm", None)
    assert vlm["success_gt"] == -1 and vlm["grader_score"] == 0.3  # an estimate is no ground truth
    assert episode_columns(done, GradeResult(False, 0.3, ""), "vlm", True)["success_gt"] == 1  # the label wins
    assert episode_columns(done, GradeResult(True, float("nan"), ""), "vlm", None)["grader_score"] == 1.0
    twin, arm = make_robot(SimTwinConfig(image_size=16)), SimpleNamespace(name="so101")  # no simulator flag
    assert make_grader(None, twin).name == "oracle" and make_grader(None, arm).name == "none"
    with pytest.raises(ValueError, match="so101 has none .use grader=vlm"):
        make_grader("oracle", arm)


# --- faults ---------------------------------------------------------------------------------------------
def reach_agent(at: int | None = None, act=None, steps: int = 10_000):
    """The scripted reach: move the hand toward the goal; at step ``at`` call ``act(action, env)`` instead."""
    def agent(env):
        obs, _ = env.reset()
        for t in range(steps):
            hand, goal = obs["state"][:3], obs["state"][-3:]
            action = np.r_[np.clip((goal - hand) * 50, -1, 1), 0.0].astype(np.float32)
            if at is not None and t >= at:
                action = act(action, env)
            obs, *_ = env.step(action)
    return agent


def run_faulty(tmp_path, fault=None, after=4, agent=None, **safety):
    twin = make_robot(SimTwinConfig(image_size=16, safety=dataclasses.replace(twin_safety(), **safety)))
    robot = FaultyRobot(twin, fault, after) if fault else twin
    cfg = DeployConfig(robot=twin.config, instruction=INSTRUCTION, store=str(tmp_path / "faults.zarr"), rate_hz=50,
                       ask_label=False)
    try:
        result = deploy(cfg, tmp_path, robot=robot, agent_factory=lambda i: agent or reach_agent(),
                        status_stream=io.StringIO())
    finally:
        if fault == "hang":
            robot.release.set()
            twin.disconnect()
    (res,) = result.results
    with EpisodeStore(tmp_path / "faults.zarr") as store:
        assert len(store) == 1, "the episode recorded so far is kept"
        meta, length = store.meta(0), store.episode_length(0)
        assert not store.get(0, "action")[-1].any()
    return res, meta, length


@pytest.mark.parametrize("fault, reason", [
    ("raise", "robot error in get_observation: OSError: faulty(sim_twin): [Errno 5] Input/output error"),
    ("nan", "bad state: state is not finite"),
    ("disconnect", "robot error in get_observation: ConnectionError"),
])
def test_driver_faults_stop_safely_and_keep_the_episode(tmp_path, fault, reason):
    res, meta, length = run_faulty(tmp_path, fault, after=4)
    assert res.aborted and res.end_reason.startswith(reason)
    assert meta["grader"].startswith("aborted: " + reason) and meta["success_gt"] == 0
    assert length == 4 and res.steps == 4  # the four good observations; the bad one is not stored


def test_a_driver_that_stops_answering_is_a_stall(tmp_path):
    res, meta, length = run_faulty(tmp_path, "hang", after=3, io_timeout_s=0.3)
    assert res.aborted and res.end_reason == "robot stalled: get_observation gave no answer within 0.3 s"
    assert res.stop_error.startswith("no safe stop") and meta["grader"].startswith("aborted: robot stalled")
    assert length == 3


@pytest.mark.parametrize("bad, reason", [
    (lambda a, env: np.full_like(a, np.nan), "unsafe action: action is not finite"),
    (lambda a, env: np.array([0, 5.0, 0, 0], np.float32), "unsafe action: action[1] = 5 is outside its bounds"),
    (lambda a, env: 1 / 0, "policy error: ZeroDivisionError"),
])
def test_policy_faults_stop_safely_and_keep_the_episode(tmp_path, bad, reason):
    res, meta, length = run_faulty(tmp_path, agent=reach_agent(at=5, act=bad))
    assert res.aborted and res.end_reason.startswith(reason) and meta["grader"].startswith("aborted: " + reason)
    # Five actions, then the safe stop's hold from the last observation and one more observation.
    assert res.steps == 6 and length == 7 and meta["success_gt"] == 0


def test_a_nan_policy_inside_the_plan_executor(tmp_path):
    from policies.config import ExecutorConfig
    from policies.executor import PlanExecutor

    class NaNPolicy:
        def predict_action(self, obs, goal, state):
            return np.full((1, 4), np.nan, np.float32)

    executor = PlanExecutor(NaNPolicy(), lambda text, frame: np.stack([frame, frame]), ExecutorConfig(max_steps=5))
    res, meta, length = run_faulty(tmp_path, agent=lambda env: executor.run(env, INSTRUCTION))
    assert res.end_reason == "policy error: ValueError: policy.predict_action returned NaN or inf"
    assert meta["grader"].startswith("aborted: policy error") and length == 2  # the first frame, then the hold's


def test_watchdog_holds_then_a_hung_policy_is_a_fault(tmp_path):
    import threading

    never = threading.Event()
    try:
        res, meta, length = run_faulty(tmp_path, agent=reach_agent(at=3, act=lambda a, env: never.wait() or a),
                                       watchdog_s=0.02, policy_timeout_s=0.4)
    finally:
        never.set()
    assert res.aborted and res.end_reason == "policy stalled: no action for 0.4 s"
    assert res.holds >= 5 and length == res.steps + 1  # every held tick is recorded, with the hold sent


def test_stop_file_and_time_limit(tmp_path):
    stop = tmp_path / "STOP"
    res, meta, _ = run_faulty(tmp_path / "a", agent=reach_agent(at=3, act=lambda a, env: stop.touch() or a),
                              stop_file=str(stop))
    assert res.aborted and res.end_reason == f"e-stop: stop file {stop}" and meta["grader"].startswith("aborted: e-stop")
    with pytest.raises(RuntimeError, match="remove it to start"):  # latched
        run_faulty(tmp_path / "b", stop_file=str(stop))
    res, meta, length = run_faulty(tmp_path / "c", episode_time_s=0.3)
    assert not res.aborted and res.end_reason == "time limit" and meta["grader"] == "oracle" and length > 5
