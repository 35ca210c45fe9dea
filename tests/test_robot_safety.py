"""The safety layer, the e-stop, robot calls with a deadline and the agent's env: no simulator, no lerobot."""

import threading
import time

import numpy as np
import pytest

from embodied.robots import EStop, RobotIO, RobotStall, SafetyConfig, SafetyFault, SafetyLayer
from embodied.robots.runner import AgentEnv, EpisodeOver
from embodied.robots.sim_twin.config_sim_twin import twin_safety


def joint_layer(**overrides) -> SafetyLayer:
    """A 3-joint arm with position targets: bounds +-90, 10 per step, 100 per second at 10 Hz."""
    cfg = SafetyConfig(action_low=[-90.0] * 3, action_high=[90.0] * 3, reject_margin=5.0, max_relative_target=10.0,
                       max_velocity=100.0, workspace_low=[-80.0] * 3, workspace_high=[80.0] * 3, workspace_margin=5.0)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return SafetyLayer(cfg, action_dim=3, state_dim=3, dt=0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_actions_are_rejected(bad):
    layer = joint_layer()
    with pytest.raises(SafetyFault, match="not finite"):
        layer.filter(np.array([0.0, bad, 0.0]), np.zeros(3))


def test_far_out_of_bounds_is_a_fault_and_slightly_out_is_clipped():
    layer = joint_layer(max_relative_target=None, max_velocity=None, workspace_low=None, workspace_high=None)
    with pytest.raises(SafetyFault, match=r"action\[2\] = 120 is outside its bounds \[-90, 90\]"):
        layer.filter(np.array([0.0, 0.0, 120.0]), np.zeros(3))
    out = layer.filter(np.array([93.0, -94.0, 0.0]), np.zeros(3))
    np.testing.assert_allclose(out, [90.0, -90.0, 0.0])
    assert layer.last_clamp == ["bounds"] and layer.clamps == 1
    with pytest.raises(SafetyFault, match="shape"):
        layer.filter(np.zeros(4), np.zeros(3))


def test_per_step_clamp_velocity_and_workspace():
    layer = joint_layer(max_velocity=None)
    # LeRobot's max_relative_target: the target stays within 10 of the present position
    np.testing.assert_allclose(layer.filter(np.array([50.0, -50.0, 3.0]), np.zeros(3)), [10.0, -10.0, 3.0])
    assert layer.last_clamp == ["motion"]
    # the workspace box: targets are pulled inside it
    np.testing.assert_allclose(layer.filter(np.array([85.0, 0.0, 0.0]), np.array([78.0, 0.0, 0.0])), [80.0, 0.0, 0.0])
    # the velocity limit: 100 / s at 10 Hz = 10 per step, from the previous target
    layer = joint_layer(max_relative_target=None)
    np.testing.assert_allclose(layer.filter(np.array([30.0, 0, 0]), np.zeros(3)), [10.0, 0, 0])
    np.testing.assert_allclose(layer.filter(np.array([30.0, 0, 0]), np.zeros(3)), [20.0, 0, 0])  # robot lags: still +10


def test_measured_state_checks():
    layer = joint_layer()
    layer.check_state(np.array([84.0, 0.0, 0.0]))  # inside the margin
    with pytest.raises(SafetyFault, match="outside the workspace"):
        layer.check_state(np.array([86.0, 0.0, 0.0]))
    with pytest.raises(SafetyFault, match=r"not finite at entries \[1\]"):
        layer.check_state(np.array([0.0, np.nan, 0.0]))


def test_delta_mode_like_the_twin():
    """MetaWorld actions: displacement x 1 cm (clamped by the workspace), gripper effort left alone."""
    layer = SafetyLayer(twin_safety(), action_dim=4, state_dim=39, dt=0.1)
    state = np.zeros(39)
    state[:3] = [0.0, 0.6, 0.2]
    np.testing.assert_allclose(layer.filter(np.array([0.5, -1.0, 1.0, 0.7]), state), [0.5, -1.0, 1.0, 0.7], atol=1e-6)
    state[2] = 0.445  # 5 mm under the ceiling: +1 cm would leave the workspace
    np.testing.assert_allclose(layer.filter(np.array([0.0, 0.0, 1.0, 1.0]), state), [0.0, 0.0, 0.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(layer.hold(state), [0.0, 0.0, 0.0, 1.0])  # no motion, the grip kept
    with pytest.raises(SafetyFault, match="outside its bounds"):
        layer.filter(np.array([0.0, 2.0, 0.0, 0.0]), state)


def test_hold_keeps_the_present_position():
    layer = joint_layer()
    assert layer.hold(None) is None  # nothing known: send nothing, the servos keep their goal
    np.testing.assert_allclose(layer.hold(np.array([1.0, 2.0, 3.0])), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("field, value, message", [
    ("action_mode", "velocity", "action_mode"),
    ("position_index", [0, 1], "position_index has 2"),
    ("position_index", [0, 1, 7], "outside the state"),
    ("action_low", [0.0], "action_low has 1"),
    ("max_relative_target", -1.0, "must be > 0"),
])
def test_bad_config_says_what_is_wrong(field, value, message):
    with pytest.raises(ValueError, match=message):
        joint_layer(**{field: value})


def test_estop_file_is_latched(tmp_path):
    stop = tmp_path / "STOP"
    estop = EStop(stop_file=stop, keys=True)
    assert not estop.keys  # stdin is no terminal under pytest
    with estop:
        assert estop.poll() is None
        stop.touch()
        assert estop.poll() == f"stop file {stop}"
    with pytest.raises(RuntimeError, match="remove it to start"):
        estop.check_clear()


def test_estop_catches_ctrl_c_once():
    import os
    import signal

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs as a background job
    with EStop() as estop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert estop.poll() == "Ctrl-C"
        with pytest.raises(KeyboardInterrupt):  # the second one is not swallowed
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before  # the handler that was there is back


class SlowThing:
    def __init__(self):
        self.release = threading.Event()

    def quick(self, x):
        return 2 * x

    def stuck(self):
        self.release.wait()

    def broken(self):
        raise OSError("Input/output error")


def test_robot_io_deadline_and_errors():
    thing = SlowThing()
    io = RobotIO(thing, timeout_s=0.2)
    assert io.call("quick", 21) == 42
    with pytest.raises(OSError, match="Input/output"):
        io.call("broken")
    t = time.monotonic()
    with pytest.raises(RobotStall, match="stuck gave no answer within 0.2 s"):
        io.call("stuck")
    assert time.monotonic() - t < 1.0
    with pytest.raises(RobotStall, match="stopped answering earlier"):  # no call queues behind a stuck one
        io.call("quick", 1)
    thing.release.set()
    io.close()


def test_agent_env_hands_actions_to_the_loop_and_stops_the_agent():
    env = AgentEnv()
    seen = []

    def agent(e):
        obs, _ = e.reset()
        for _ in range(100):
            obs, *_ = e.step(np.array([obs["state"][0]]))
            seen.append(float(obs["state"][0]))

    thread = threading.Thread(target=env.run_agent, args=(agent,), daemon=True)
    thread.start()
    for k in range(3):
        env.publish({"rgb": None, "state": np.array([k], np.float32)}, {"success": False})
        assert env.take_action(1.0)[0] == k  # the action answers the observation just published
    env.publish({"rgb": None, "state": np.array([3.0], np.float32)}, {})
    env.close("test over")
    thread.join(2.0)
    assert not thread.is_alive() and env.done and env.error is None and seen[:3] == [1.0, 2.0, 3.0]
    with pytest.raises(EpisodeOver):
        env.step(np.zeros(1))
    assert AgentEnv().take_action(0.05) is None  # nothing came: the watchdog's case
