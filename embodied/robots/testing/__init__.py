"""Fakes for tests and smoke runs, no hardware: servo SDKs at the serial boundary for LeRobot's own
bus classes (``fake_servo``), a camera registered with LeRobot (``fake_camera``), and a robot
wrapper that injects faults (``FaultyRobot``). Modules importing lerobot load on first use.
"""

from embodied.robots.testing.faulty import FaultyRobot

__all__ = ["FaultyRobot"]
