"""A camera without hardware: a moving square on a gradient, (height, width, 3) uint8 RGB, for LeRobot robots in tests."""

from __future__ import annotations

import numpy as np
from lerobot.cameras.camera import Camera
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from embodied.robots.testing.config_fake_camera import FakeCameraConfig


class FakeCamera(Camera):
    def __init__(self, config: FakeCameraConfig):
        super().__init__(config)
        self.config = config
        self.frames = 0
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    @staticmethod
    def find_cameras() -> list[dict]:
        return []

    def connect(self, warmup: bool = True) -> None:
        if self._connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected")
        self._connected = True

    def read(self) -> np.ndarray:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        if self.config.fail_after is not None and self.frames >= self.config.fail_after:
            raise RuntimeError(f"{self} read failed (status=False)")
        h, w, k = self.height, self.width, self.frames + self.config.seed
        self.frames += 1
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        img[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
        r, c = (3 * k) % max(1, h - 8), (5 * k) % max(1, w - 8)
        img[r : r + 8, c : c + 8] = 255
        return img

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        return self.read()

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        return self.read()

    def disconnect(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        self._connected = False
