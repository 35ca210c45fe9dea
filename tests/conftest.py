import os

# Headless rendering everywhere, and nothing reaches for the network.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FULL = os.environ.get("EMBODIED_FULL_TESTS") == "1"
