"""Fault injection: a robot wrapper that fails the way hardware does, at a chosen step."""

from __future__ import annotations

import threading

import numpy as np

from embodied.robots.robot import Robot


class FaultyRobot(Robot):
    """Wraps ``robot``; after ``after`` calls of ``get_observation`` it misbehaves once per call:

    - ``fault="raise"``: the driver raises (an IOError, as a dropped serial link does),
    - ``fault="hang"``: the call blocks until ``release`` is set (a driver that stops answering),
    - ``fault="nan"``: the state comes back NaN (a broken encoder),
    - ``fault="disconnect"``: the robot reports itself disconnected and every call raises ConnectionError.
    Everything else is forwarded, including the twin's ``success`` and ``reset_scene``.
    """

    FAULTS = ("raise", "hang", "nan", "disconnect")

    def __init__(self, robot: Robot, fault: str, after: int):
        if fault not in self.FAULTS:
            raise ValueError(f"fault must be one of {self.FAULTS}, got {fault!r}")
        self.robot, self.fault, self.after = robot, fault, int(after)
        self.name = f"faulty({robot.name})"
        self.observations = 0
        self.release = threading.Event()
        self._gone = False

    def __getattr__(self, name: str):  # success, reset_scene, config, ...
        if name == "robot":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.robot, name)

    @property
    def observation_features(self) -> dict:
        return self.robot.observation_features

    @property
    def action_features(self) -> dict:
        return self.robot.action_features

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected and not self._gone

    def connect(self, calibrate: bool = True) -> None:
        self.robot.connect(calibrate)

    def disconnect(self) -> None:
        self.robot.disconnect()

    def get_observation(self) -> dict[str, np.ndarray]:
        if self._gone:
            raise ConnectionError(f"{self.name} is not connected")
        self.observations += 1
        if self.observations > self.after:
            if self.fault == "raise":
                raise OSError(f"{self.name}: [Errno 5] Input/output error (injected)")
            if self.fault == "hang":
                self.release.wait()
            if self.fault == "disconnect":
                self._gone = True
                raise ConnectionError(f"{self.name}: device disconnected (injected)")
        obs = self.robot.get_observation()
        if self.fault == "nan" and self.observations > self.after:
            obs["state"] = np.full_like(obs["state"], np.nan)
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        if self._gone:
            raise ConnectionError(f"{self.name} is not connected")
        return self.robot.send_action(action)
