"""The sim twin: a MetaWorld Sawyer scene (MuJoCo) behind the robot interface.

Observations are the env's own: ``rgb`` from the configured camera and MetaWorld's 39-d state
(hand position, gripper opening, object poses, goal), so policies trained in simulation run on the
twin unchanged. ``send_action`` steps the simulation once; ``success`` is the simulator's flag
after the last step (ground truth, for grading dry runs).
"""

from __future__ import annotations

import numpy as np

from embodied.robots.robot import RGB, Robot
from embodied.robots.sim_twin.config_sim_twin import SimTwinConfig

# MetaWorld's 39-d goal-observable state, in order.
_OBJ = [f"{o}.{k}" for o in ("obj1", "obj2") for k in ("x", "y", "z", "qw", "qx", "qy", "qz")]
_NOW = ["hand.x", "hand.y", "hand.z", "gripper.opening", *_OBJ]
STATE_NAMES = [*_NOW, *(f"prev.{n}" for n in _NOW), "goal.x", "goal.y", "goal.z"]
ACTION_NAMES = ["hand.dx", "hand.dy", "hand.dz", "gripper.effort"]


class SimTwinRobot(Robot):
    name = "sim_twin"

    def __init__(self, config: SimTwinConfig):
        from sim.catalog import check_task
        from sim.env import check_camera, check_image_size

        self.config = config
        check_task(config.task)
        check_camera(config.camera)
        check_image_size(config.image_size)
        self._env = None
        self._obs: dict[str, np.ndarray] | None = None
        self.success = False

    @property
    def observation_features(self) -> dict:
        size = self.config.image_size
        return {**dict.fromkeys(STATE_NAMES, float), RGB: (size, size, 3)}

    @property
    def action_features(self) -> dict:
        return dict.fromkeys(ACTION_NAMES, float)

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self, calibrate: bool = True) -> None:
        from sim.env import make_env

        if self._env is not None:
            raise RuntimeError("sim twin is already connected")
        self._env = make_env(self.config.task, image_size=self.config.image_size, camera=self.config.camera)
        self.reset_scene(self.config.seed)

    def reset_scene(self, seed: int | None = None) -> None:
        """Put the scene back to a start state (the same one for the same seed)."""
        self._require()
        obs, info = self._env.reset(seed=seed)
        self._obs, self.success = obs, bool(info.get("success", False))

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        return {RGB: self._obs[RGB].copy(), "state": self._obs["state"].copy()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._require()
        action = np.clip(np.asarray(action, np.float32).reshape(-1), -1.0, 1.0)
        if self._env.elapsed_steps >= self._env.max_episode_steps:
            raise RuntimeError(f"sim twin: the scene's budget of {self._env.max_episode_steps} steps is used up; "
                               f"call reset_scene() (or shorten the episode)")
        obs, _, _, _, info = self._env.step(action)
        self._obs, self.success = obs, bool(info["success"])
        return action

    def disconnect(self) -> None:
        self._require()
        self._env.close()
        self._env = None

    def _require(self) -> None:
        if self._env is None:
            raise ConnectionError("sim twin is not connected: call connect() first")
