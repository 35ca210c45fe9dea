from embodied.robots.sim_twin.config_sim_twin import SimTwinConfig

__all__ = ["SimTwinConfig", "SimTwinRobot"]


def __getattr__(name: str):
    if name == "SimTwinRobot":  # imports MuJoCo: only when asked for
        from embodied.robots.sim_twin.sim_twin import SimTwinRobot

        return SimTwinRobot
    raise AttributeError(name)
