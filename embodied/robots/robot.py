"""The robot interface: LeRobot's ``Robot`` shape, with observations and actions packed as our models use them.

    with make_robot(cfg.robot) as robot:        # connect() ... disconnect()
        obs = robot.get_observation()           # {"rgb": uint8 (H, W, 3), "state": float32 (S,)}
        sent = robot.send_action(action)        # float32 (A,) in; the action actually sent comes back

As in LeRobot, ``observation_features`` and ``action_features`` describe the I/O before anything
is connected, one entry per named value: ``{"shoulder_pan.pos": float, ..., "rgb": (H, W, 3)}``.
Unlike LeRobot, values travel packed: ``state`` holds the float features in that order and an
action is the vector of ``action_features`` in order, which is the layout of the episode store
and of the policies.

Optional, for robots that can do it (the sim twin): ``reset_scene(seed)`` puts the scene back to
a start state, and ``success`` is the simulator's ground-truth flag after the last action.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from omegaconf import MISSING

from embodied.robots.safety import SafetyConfig

RGB = "rgb"  # the observation feature holding the camera frame our models see


@runtime_checkable
class Robot(Protocol):
    """What a driver implements (subclass it to inherit the context manager)."""

    name: str

    @property
    @abstractmethod
    def observation_features(self) -> dict[str, Any]:
        """``{<state name>: float, ..., "rgb": (H, W, 3)}``, known before connecting."""
        ...

    @property
    @abstractmethod
    def action_features(self) -> dict[str, Any]:
        """``{<action name>: float, ...}`` in the order of the action vector."""
        ...

    @property
    @abstractmethod
    def is_connected(self) -> bool: ...

    @abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def get_observation(self) -> dict[str, np.ndarray]:
        """``{"rgb": uint8 (H, W, 3), "state": float32 (S,)}``."""
        ...

    @abstractmethod
    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Send float (A,); return what was actually sent (after the driver's own clipping)."""
        ...

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        if self.is_connected:
            self.disconnect()


def state_names(robot: Robot) -> list[str]:
    return [name for name, kind in robot.observation_features.items() if kind is float]


def action_names(robot: Robot) -> list[str]:
    return list(robot.action_features)


def image_shape(robot: Robot) -> tuple[int, int, int]:
    return tuple(robot.observation_features[RGB])


# --- configs --------------------------------------------------------------------------------------
@dataclass
class RobotConfig:
    """What every robot config has. Subclasses name their driver in ``robot_class`` (module:Class)."""

    robot_class: ClassVar[str]

    type: str = MISSING  # sim_twin | lerobot (configs/robot/<name>.yaml picks one)
    image_size: int = 64  # square frames our models see (camera images are centre-cropped and resized)
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # limits between the policy and the robot


def make_robot(config: RobotConfig) -> Robot:
    """The driver for ``config`` (its class is named by the config class: no separate registry)."""
    target = getattr(type(config), "robot_class", None)
    if not isinstance(config, RobotConfig) or target is None:
        raise TypeError(f"expected a robot config (embodied.robots.*Config), got {type(config).__name__}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(config)


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3): centre crop to a square, then resize (area filter)."""
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"camera image must be (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:  # some cameras give floats in [0, 1]
        image = np.clip(np.asarray(image, np.float32) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)
