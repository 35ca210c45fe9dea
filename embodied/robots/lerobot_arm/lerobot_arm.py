"""Drives any LeRobot robot through LeRobot's own ``make_robot_from_config``, cameras included.

    arm = LeRobotArm(LeRobotArmConfig(lerobot={"type": "so101_follower", "port": "/dev/ttyACM0",
                                              "id": "arm", "cameras": {"front": {...}}}))
    with arm:
        obs = arm.get_observation()      # {"rgb": uint8 (64, 64, 3), "state": float32 (6,)}
        arm.send_action(obs["state"])    # joint targets in LeRobot's units, in action_features order

Mapping. LeRobot observes ``{"<motor>.pos": float, ..., "<camera>": uint8 (H, W, 3)}`` and takes
``{"<motor>.pos": float}``. Our ``state`` is every float observation in LeRobot's order, ``rgb``
the configured camera centre-cropped and resized to ``image_size``, and an action vector maps onto
``action_features`` in order. What LeRobot returns from ``send_action`` (after its own
``max_relative_target`` clamp) comes back as a vector.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

from embodied.robots.lerobot_arm.config_lerobot_arm import LeRobotArmConfig
from embodied.robots.robot import RGB, Robot, square_resize

# Importing these registers LeRobot's robot and camera config types (its CLIs import them the same way).
# Not unitree_g1: importing it appends site-packages/lerobot to sys.path, where lerobot's own
# `policies` package would shadow ours.
LEROBOT_ROBOT_MODULES = ("so_follower", "koch_follower", "omx_follower", "bi_so_follower", "hope_jr", "lekiwi",
                         "reachy2", "openarm_follower", "bi_openarm_follower", "earthrover_mini_plus")
LEROBOT_CAMERA_MODULES = ("opencv", "realsense", "reachy2_camera", "zmq")


def _register_lerobot_types(plugins: list[str]) -> None:
    path = list(sys.path)
    try:
        for name in LEROBOT_ROBOT_MODULES:
            _try_import(f"lerobot.robots.{name}")
        for name in LEROBOT_CAMERA_MODULES:
            _try_import(f"lerobot.cameras.{name}")
        for module in plugins:
            importlib.import_module(module)  # named by the user: a failure is theirs to see
    finally:
        sys.path[:] = path  # a module that edits sys.path must not change what our imports find


def _try_import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception:  # an optional SDK of that robot / camera is missing: that type is not available
        pass


def lerobot_config(config: LeRobotArmConfig):
    """LeRobot's ``RobotConfig`` for ``config.lerobot`` (decoded by draccus, as LeRobot's CLIs do)."""
    import draccus
    from lerobot.robots import RobotConfig

    _register_lerobot_types(list(config.plugins))
    raw = dict(config.lerobot)
    if "type" not in raw:
        raise ValueError("robot.lerobot needs a type (so101_follower, koch_follower, ...): LeRobot's robot config")
    try:
        return draccus.decode(RobotConfig, raw)
    except Exception as e:  # draccus' message names the bad field or the unknown type
        raise ValueError(f"robot.lerobot is not a valid LeRobot robot config: {e}") from e


class LeRobotArm(Robot):
    name = "lerobot"

    def __init__(self, config: LeRobotArmConfig, robot=None):
        """``robot``: an already built LeRobot robot (tests); else built from ``config.lerobot``."""
        from lerobot.robots import make_robot_from_config

        self.config = config
        self.robot = robot if robot is not None else make_robot_from_config(lerobot_config(config))
        self.name = f"lerobot:{self.robot.name}"
        features = self.robot.observation_features
        cameras = [k for k, v in features.items() if isinstance(v, tuple)]
        if config.camera not in cameras:
            raise ValueError(f"robot.camera={config.camera!r} is not a camera of {self.robot.name} "
                             f"(its cameras: {cameras or 'none: add one under robot.lerobot.cameras'})")
        self._state_keys = [k for k, v in features.items() if v is float]
        self._action_keys = list(self.robot.action_features)
        if not self._state_keys:
            raise ValueError(f"{self.robot.name} observes no float values: nothing to use as state")

    @property
    def observation_features(self) -> dict:
        size = self.config.image_size
        return {**dict.fromkeys(self._state_keys, float), RGB: (size, size, 3)}

    @property
    def action_features(self) -> dict:
        return dict.fromkeys(self._action_keys, float)

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self, calibrate: bool = True) -> None:
        self.robot.connect(calibrate=calibrate)

    def disconnect(self) -> None:
        self.robot.disconnect()

    def get_observation(self) -> dict[str, np.ndarray]:
        raw = self.robot.get_observation()
        missing = [k for k in (*self._state_keys, self.config.camera) if k not in raw]
        if missing:
            raise KeyError(f"{self.robot.name} observation lacks {missing}")
        state = np.array([raw[k] for k in self._state_keys], dtype=np.float32)
        return {RGB: square_resize(raw[self.config.camera], self.config.image_size), "state": state}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if len(action) != len(self._action_keys):
            raise ValueError(f"action has {len(action)} values; {self.robot.name} takes {len(self._action_keys)}: "
                             f"{self._action_keys}")
        wanted = {k: float(v) for k, v in zip(self._action_keys, action)}
        sent = self.robot.send_action(wanted)
        return np.array([sent.get(k, wanted[k]) for k in self._action_keys], dtype=np.float32)
