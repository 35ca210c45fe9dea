"""Config of the LeRobot adapter: any robot LeRobot can build from its config (so101_follower, koch_follower, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from embodied.robots.robot import RobotConfig


@dataclass
class LeRobotArmConfig(RobotConfig):
    robot_class: ClassVar[str] = "embodied.robots.lerobot_arm.lerobot_arm:LeRobotArm"

    type: str = "lerobot"
    # LeRobot's own robot config, as its CLI takes it (`--robot.type=so101_follower --robot.port=...`):
    # {type: so101_follower, port: /dev/ttyACM0, id: my_arm, cameras: {front: {type: opencv, ...}}}.
    lerobot: dict[str, Any] = field(default_factory=dict)
    camera: str = "front"  # which of lerobot.cameras gives the rgb observation
    plugins: list[str] = field(default_factory=list)  # modules to import first (third-party robots / cameras for LeRobot)
