"""Config of the sim twin: MetaWorld's Sawyer arm behind the robot interface (dry runs, tests, CI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from embodied.robots.robot import RobotConfig
from embodied.robots.safety import SafetyConfig


def twin_safety() -> SafetyConfig:
    """MetaWorld's actions: hand displacement (x, y, z) in [-1, 1] x 1 cm, and a gripper effort."""
    return SafetyConfig(
        action_mode="delta",
        position_index=[0, 1, 2, -1],  # state[0:3] is the hand position; the gripper effort is no position
        delta_scale=[0.01, 0.01, 0.01, 1.0],  # MetaWorld's action_scale: 1 action unit = 1 cm
        action_low=[-1.0, -1.0, -1.0, -1.0],
        action_high=[1.0, 1.0, 1.0, 1.0],
        reject_margin=0.5,
        max_relative_target=0.01,  # m per step (MetaWorld's own maximum)
        workspace_low=[-0.45, 0.40, 0.05],  # inside MetaWorld's hand box (-0.5, 0.4, 0.05) .. (0.5, 1, 0.5)
        workspace_high=[0.45, 0.95, 0.45],
        watchdog_s=0.5,  # software rendering on a CPU is slow: be patient with a dry run
        policy_timeout_s=60.0,
        io_timeout_s=5.0,
    )


@dataclass
class SimTwinConfig(RobotConfig):
    robot_class: ClassVar[str] = "embodied.robots.sim_twin.sim_twin:SimTwinRobot"

    type: str = "sim_twin"
    task: str = "reach-v3"  # MetaWorld v3 task whose scene the twin shows
    seed: int = 0  # scene seed of the first episode (reset_scene(seed) picks others)
    camera: str = "corner2"  # MetaWorld camera that gives the rgb observation
    safety: SafetyConfig = field(default_factory=twin_safety)
