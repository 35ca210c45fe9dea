"""Config of the fake camera, registered with LeRobot as camera type ``embodied_fake``.

LeRobot builds cameras it does not know by name from the config class (``FakeCameraConfig`` ->
``FakeCamera`` in ``fake_camera.py`` beside it), so a robot config can say
``cameras: {front: {type: embodied_fake, width: 64, height: 48, fps: 30}}``.
"""

from dataclasses import dataclass

from lerobot.cameras import CameraConfig


@CameraConfig.register_subclass("embodied_fake")
@dataclass
class FakeCameraConfig(CameraConfig):
    seed: int = 0  # changes the picture
    fail_after: int | None = None  # reads after this many raise (a camera unplugged mid-episode)
