import os

# Headless rendering everywhere, and nothing reaches for the network.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the Makefile

FULL = os.environ.get("EMBODIED_FULL_TESTS") == "1"


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A small expert-demo store shared by the training tests: debug_2 tasks, seeds 0-1, 32 px."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from embodied.collect import collect

    path = tmp_path_factory.mktemp("demos") / "demos.zarr"
    with initialize_config_module(config_module="configs", version_base="1.3"):
        cfg = compose("collect", overrides=["task_set=debug_2", "episodes_per_task=2", "workers=0", "image_size=32",
                                            f"store={path}", "progress=false"])
    collect(OmegaConf.to_object(cfg))
    return path
