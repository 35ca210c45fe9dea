"""Robots: LeRobot's ``Robot`` shape, a LeRobot adapter, a MuJoCo sim twin, the safety layer and the episode runner.

    from embodied.robots import SimTwinConfig, make_robot, RobotIO, SafetyLayer, run_episode

- ``robot.py``: the ``Robot`` protocol (observations ``{"rgb", "state"}``, action vectors) and ``make_robot``.
- ``lerobot_arm/``: ``LeRobotArm``, any LeRobot robot from its config (so101_follower, koch_follower, ...).
- ``sim_twin/``: ``SimTwinRobot``, MetaWorld's Sawyer scene behind the same protocol (dry runs, tests, CI).
- ``safety.py``: ``SafetyConfig`` / ``SafetyLayer``: bounds, per-step clamp, velocity, workspace, NaN.
- ``estop.py``: Ctrl-C, a key, a stop file. ``runner.py``: the control loop and its safe stop.
- ``testing/``: fakes for tests (servo SDKs at the serial boundary, a camera, fault injection).

Drivers load lazily: importing this package imports neither MuJoCo nor lerobot.
"""

from embodied.robots.estop import EStop
from embodied.robots.lerobot_arm.config_lerobot_arm import LeRobotArmConfig
from embodied.robots.robot import Robot, RobotConfig, action_names, image_shape, make_robot, state_names
from embodied.robots.runner import EpisodeResult, RobotIO, RobotStall, StatusLine, run_episode
from embodied.robots.safety import SafetyConfig, SafetyFault, SafetyLayer
from embodied.robots.sim_twin.config_sim_twin import SimTwinConfig

__all__ = [
    "EStop", "EpisodeResult", "LeRobotArmConfig", "Robot", "RobotConfig", "RobotIO", "RobotStall", "SafetyConfig",
    "SafetyFault", "SafetyLayer", "SimTwinConfig", "StatusLine", "action_names", "image_shape", "make_robot",
    "run_episode", "state_names",
]
