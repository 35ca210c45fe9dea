from embodied.robots.lerobot_arm.config_lerobot_arm import LeRobotArmConfig

__all__ = ["LeRobotArmConfig", "LeRobotArm"]


def __getattr__(name: str):
    if name == "LeRobotArm":  # imports lerobot (seconds): only when asked for
        from embodied.robots.lerobot_arm.lerobot_arm import LeRobotArm

        return LeRobotArm
    raise AttributeError(name)
