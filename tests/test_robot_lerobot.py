"""LeRobotArm against lerobot's own SO101Follower / KochFollower, with the servo SDKs faked at the serial port.

Everything above the serial boundary is lerobot's: ``make_robot_from_config``, the follower classes,
FeetechMotorsBus / DynamixelMotorsBus (handshake, calibration check, sign encoding, normalisation,
sync read / write, torque), and camera construction (a fake camera type registered with lerobot).
"""

import io
import json
import uuid

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

from embodied.robots import LeRobotArmConfig, make_robot  # noqa: E402
from embodied.robots.testing.fake_servo import FakeServoBus, fake_servo_sdks  # noqa: E402

MOTORS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
SIZE = 32


@pytest.fixture
def sdks():
    with fake_servo_sdks():
        yield


def arm_config(tmp_path, kind: str, **lerobot) -> LeRobotArmConfig:
    """An arm of lerobot type ``kind`` on a fresh fake port, calibrated over the full 0..4095 range."""
    port = f"/dev/fake-{uuid.uuid4().hex[:8]}"
    calibration = {m: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 4095}
                   for i, m in enumerate(MOTORS)}
    (tmp_path / "arm.json").write_text(json.dumps(calibration))
    camera = {"type": "embodied_fake", "width": 64, "height": 48, "fps": 30}
    return LeRobotArmConfig(lerobot={"type": kind, "port": port, "id": "arm", "calibration_dir": str(tmp_path),
                                     "cameras": {"front": camera}, **lerobot},
                            camera="front", image_size=SIZE, plugins=["embodied.robots.testing.config_fake_camera"])


def plug_in(arm, kind: str) -> FakeServoBus:
    """The motors behind the arm's port, with the calibration registers the file says (so no prompt)."""
    bus = FakeServoBus.for_lerobot_motors(arm.robot.config.port, kind, arm.robot.bus.motors)
    bus.set_register("Max_Position_Limit", 4095)
    return bus


@pytest.mark.parametrize("kind, bus_kind, lerobot_class, raw_for_10", [
    ("so101_follower", "feetech", "SOFollower", int(10 * 4095 / 360 + 4095 / 2)),  # degrees about the middle
    ("koch_follower", "dynamixel", "KochFollower", int(110 / 200 * 4095)),  # -100..100 over the range
])
def test_adapter_drives_lerobots_own_robot(tmp_path, sdks, kind, bus_kind, lerobot_class, raw_for_10):
    arm = make_robot(arm_config(tmp_path, kind))
    assert type(arm.robot).__name__ == lerobot_class and type(arm.robot.bus).__module__.startswith("lerobot.motors")
    assert list(arm.action_features) == [f"{m}.pos" for m in MOTORS]
    assert arm.observation_features["rgb"] == (SIZE, SIZE, 3)  # known before connecting, like lerobot's
    bus = plug_in(arm, bus_kind)

    with arm:  # connect: ping + model numbers (+ firmware), calibration check, configure, camera
        assert arm.is_connected and bus.read_register("Torque_Enable", 1) == 1
        obs = arm.get_observation()
        assert obs["rgb"].dtype == np.uint8 and obs["rgb"].shape == (SIZE, SIZE, 3) and obs["rgb"].std() > 0
        assert obs["state"].shape == (6,) and np.abs(obs["state"][:5]).max() < 0.1  # the servos sit mid-range

        target = np.array([10.0, -20.0, 5.0, 0.0, 0.0, 30.0], np.float32)
        sent = arm.send_action(target)
        np.testing.assert_allclose(sent, target)
        assert bus.goal_raw(1) == raw_for_10  # lerobot's unnormalisation reached the Goal_Position register
        np.testing.assert_allclose(arm.get_observation()["state"], target, atol=0.1)  # ideal servos follow
        with pytest.raises(ValueError, match="takes 6"):
            arm.send_action(np.zeros(5))
    assert not arm.is_connected and bus.read_register("Torque_Enable", 1) == 0  # torque off on disconnect
    bus.unplug()


def test_lerobots_own_clamp_is_what_comes_back(tmp_path, sdks):
    arm = make_robot(arm_config(tmp_path, "so101_follower", max_relative_target=5.0))
    bus = plug_in(arm, "feetech")
    with arm:
        sent = arm.send_action(np.array([30.0, 0, 0, 0, 0, 50.0], np.float32))
    assert sent[0] == pytest.approx(5.0, abs=0.1) and sent[5] == pytest.approx(50.0, abs=0.1)
    bus.unplug()


def test_config_errors_are_clear(tmp_path, sdks):
    with pytest.raises(ValueError, match="not a valid LeRobot robot config.*prt"):
        make_robot(LeRobotArmConfig(lerobot={"type": "so101_follower", "prt": "/dev/x"}))
    with pytest.raises(ValueError, match="not a valid LeRobot robot config.*nope"):
        make_robot(LeRobotArmConfig(lerobot={"type": "nope"}))
    cfg = arm_config(tmp_path, "so101_follower")
    cfg.camera = "wrist"
    with pytest.raises(ValueError, match="robot.camera='wrist' is not a camera of so_follower.*front"):
        make_robot(cfg)
    arm = make_robot(arm_config(tmp_path, "so101_follower"))  # nothing plugged into its port
    with pytest.raises(ConnectionError, match="Could not connect on port"):
        arm.connect()


def test_deploy_on_a_lerobot_arm_whose_bus_fails_mid_episode(tmp_path, sdks):
    """The SO-101 config's safety limits; the serial link dies after a few ticks: safe stop, episode kept."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from embodied.deploy import deploy
    from embodied.store import EpisodeStore

    def composed(*overrides):
        with initialize_config_module(config_module="configs", version_base="1.3"):
            return OmegaConf.to_object(compose(config_name="deploy", overrides=list(overrides)))

    cfg = composed("robot=so101", "instruction=wave", "planner=p", "policy_ckpt=q", f"store={tmp_path / 'arm.zarr'}",
                   "rate_hz=10", "ask_label=false", "robot.safety.stop_file=null", f"robot.image_size={SIZE}")
    cfg.robot.lerobot = arm_config(tmp_path, "so101_follower").lerobot
    cfg.robot.plugins = ["embodied.robots.testing.config_fake_camera"]
    arm = make_robot(cfg.robot)
    bus = plug_in(arm, "feetech")

    def wave(env):  # swing the shoulder toward 40 degrees: 90 degrees / s at 10 Hz allows 9 a step
        obs, _ = env.reset()
        for t in range(1000):
            target = obs["state"].copy()
            target[0] = 40.0
            if t == 3:
                bus.fail_after = bus.transactions  # the cable comes out
            obs, *_ = env.step(target)

    result = deploy(cfg, tmp_path, robot=arm, agent_factory=lambda i: wave, status_stream=io.StringIO())
    (res,) = result.results
    assert res.aborted and res.end_reason.startswith("robot error in ")  # in get_observation or send_action
    assert "ConnectionError: Failed to sync" in res.end_reason and "There is no status packet" in res.end_reason
    assert res.clamps >= 1
    with EpisodeStore(tmp_path / "arm.zarr") as store:
        meta, states = store.meta(0), store.get(0, "state")
        assert meta["grader"].startswith("aborted: robot error") and meta["success_gt"] == 0 and meta["source"] == "robot"
        assert store.schema.action_dim == store.schema.state_dim == 6 and store.image_size == (SIZE, SIZE)
        assert np.diff(states[:, 0]).max() <= 9.0 + 0.1 and states[-1, 0] > 5.0  # moved, never more than 9 a step
    bus.unplug()
