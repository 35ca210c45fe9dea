"""A MetaWorld v3 task as a Gymnasium env with fast, small, upright RGB observations.

Observations are ``{"rgb": uint8 (H, W, 3), "state": float32 (39,)}`` (goal-observable state).
Frames come from one ``mujoco.Renderer`` per env with shadows, reflections and multisampling off,
which is an order of magnitude faster than MetaWorld's default rendering under software EGL.
The renderer draws simplified copies of the large visual meshes (the Sawyer robot's and a few
task objects', see sim/lod.py), which look the same at these sizes and render about twice as
fast; the physics keeps MetaWorld's model untouched. ``make_env(..., mesh_detail=1.0)`` renders
MetaWorld's full meshes.

Seeding: ``reset(seed=s)`` reseeds MetaWorld's own RNG and draws the task's initial
configuration from it (``seeded_rand_vec``), so the same seed gives the same scene and different
seeds give different ones; ``reset()`` without a seed continues that RNG.
"""

from __future__ import annotations

import atexit
import os
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported anywhere

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sim.catalog import check_task
from sim.gl_compat import preload_triton
from sim.lod import check_mesh_detail, render_model

CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
# MetaWorld's corner cameras are defined upside down; their frames are rotated by 180 degrees.
FLIPPED_CAMERAS: frozenset[str] = frozenset({"corner", "corner2", "corner3", "corner4"})
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512
MAX_PATH_LENGTH = 500  # MetaWorld's max_path_length; stepping past it raises inside MetaWorld
STATE_DIM = 39
# Fraction of the large visual meshes' faces that frames are drawn with (sim/lod.py). 0.25 is an
# ~8 mm clustering grid for the Sawyer: at most about a pixel at 128 px from the corner cameras
# (8-15 mm per pixel), 2-4 pixels from behindGripper, which sees the arm from 0.2-0.5 m (use
# mesh_detail=1.0 where that matters).
MESH_DETAIL = 0.25


def check_image_size(image_size: object) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(
            f"image_size must be an int in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} (pixels), got {image_size!r}"
        )
    if not MIN_IMAGE_SIZE <= int(image_size) <= MAX_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be in the allowed range {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE} (pixels), got {image_size}"
        )
    return int(image_size)


def check_camera(camera: object) -> str:
    if camera not in CAMERAS:
        raise ValueError(f"unknown camera {camera!r}; valid cameras: {', '.join(CAMERAS)}")
    return str(camera)


def check_frame(img: np.ndarray, what: str = "frame") -> np.ndarray:
    """Raise RuntimeError if ``img`` is constant (e.g. all black): the renderer produced nothing."""
    if img.size == 0 or int(img.max()) == int(img.min()):
        value = int(img.flat[0]) if img.size else None
        raise RuntimeError(
            f"rendered {what} is blank (every pixel = {value}, shape {img.shape}): the offscreen renderer "
            f"produced no image. Check that MUJOCO_GL=egl is set before mujoco is imported "
            f"(now MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}) and that the renderer's scene flags were not "
            f"changed after its first render (that gives black frames with software EGL)."
        )
    return img


def orient(img: np.ndarray, camera: str) -> np.ndarray:
    """Rotate a raw MuJoCo frame of ``camera`` so that world-up is image-up (contiguous copy)."""
    if camera in FLIPPED_CAMERAS:
        return np.ascontiguousarray(img[::-1, ::-1])
    return img


# Envs whose renderers are still open: closed at interpreter exit while EGL is still initialised
# (closing them from __del__ after mujoco.egl's atexit eglTerminate raises EGL errors). The hook is
# registered after the first renderer exists, hence after mujoco.egl's, so it runs before it.
_LIVE_ENVS: "weakref.WeakSet[MetaWorldEnv]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_live_envs() -> None:
    for env in list(_LIVE_ENVS):
        try:
            env.close()
        except Exception:
            pass


def _make_metaworld_env(task: str):
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    # seed=0 keeps MetaWorld's constructor from consuming the global numpy RNG.
    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=0, render_mode=None)


class MetaWorldEnv(gym.Env):
    """One MetaWorld v3 task (goal observable) with RGB + state observations."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str,
        image_size: int = 64,
        camera: str = "corner2",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = "rgb_array",
        mesh_detail: float = MESH_DETAIL,
    ) -> None:
        self.task = check_task(task)
        self.image_size = check_image_size(image_size)
        self.camera = check_camera(camera)
        self.mesh_detail = check_mesh_detail(mesh_detail)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        if max_episode_steps is None:
            max_episode_steps = MAX_PATH_LENGTH
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.max_episode_steps = min(int(max_episode_steps), MAX_PATH_LENGTH)

        self._renderer: mujoco.Renderer | None = None
        self._seg_renderer: mujoco.Renderer | None = None
        mw = _make_metaworld_env(self.task)
        self._mw = mw
        # Per-reset variation drawn from the env's own seeded RNG (MetaWorld's mechanism).
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        mw.seed(int(seed) if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))

        size = self.image_size
        self.observation_space = spaces.Dict(
            {
                "rgb": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        if seed is not None:
            self.action_space.seed(int(seed))
            self.observation_space.seed(int(seed))

        # The renderers draw a copy of the physics model with simplified meshes (the physics model,
        # its visual settings included, stays as MetaWorld built it). MetaWorld's own writes to its
        # model at reset (body and site positions) reach the frames through MjData.
        self._render_model = model = render_model(mw.model, self.mesh_detail)
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        # The offscreen buffer only needs our frame size (MetaWorld's is 480x480).
        model.vis.global_.offwidth = size
        model.vis.global_.offheight = size
        self._renderer = self._new_renderer()
        _LIVE_ENVS.add(self)
        self._frame = np.empty((size, size, 3), np.uint8)
        self._steps = 0
        self._needs_reset = True

    # --- rendering -------------------------------------------------------------------------------
    def _new_renderer(self) -> mujoco.Renderer:
        preload_triton()  # before Mesa's LLVM is loaded (see sim/gl_compat.py)
        size = self.image_size
        renderer = mujoco.Renderer(self._render_model, size, size)
        global _ATEXIT_REGISTERED
        if not _ATEXIT_REGISTERED:
            atexit.register(_close_live_envs)
            _ATEXIT_REGISTERED = True
        # Flags must be set before the first render (later changes give black frames here).
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return renderer

    def _render_rgb(self) -> np.ndarray:
        if self._renderer is None:
            raise RuntimeError(f"{self.task} env is closed")
        self._renderer.update_scene(self._mw.data, camera=self.camera)
        self._renderer.render(out=self._frame)
        img = orient(self._frame, self.camera) if self.camera in FLIPPED_CAMERAS else self._frame.copy()
        return check_frame(img, f"{self.task}/{self.camera} frame")

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 (H, W, 3), upright."""
        if self.render_mode is None:
            return None
        return self._render_rgb()

    def render_segmentation(self) -> np.ndarray:
        """Geom id per pixel, int32 (H, W), oriented like ``render()`` (-1: no geom).

        Uses a second renderer with segmentation enabled (created on first use).
        """
        if self._renderer is None:
            raise RuntimeError(f"{self.task} env is closed")
        if self._seg_renderer is None:
            self._seg_renderer = self._new_renderer()
            self._seg_renderer.enable_segmentation_rendering()
        self._seg_renderer.update_scene(self._mw.data, camera=self.camera)
        seg = self._seg_renderer.render()  # (H, W, 2): object id, object type
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        geom = np.where(is_geom, seg[..., 0], -1).astype(np.int32)
        return orient(geom, self.camera)

    # --- gymnasium API -----------------------------------------------------------------------------
    def _obs(self, state: np.ndarray) -> dict[str, np.ndarray]:
        return {"rgb": self._render_rgb(), "state": np.asarray(state, dtype=np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._mw.seed(int(seed))
            self.action_space.seed(int(seed))
        state, _ = self._mw.reset()
        self._steps = 0
        self._needs_reset = False
        return self._obs(state), {"success": False}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError(
                f"{self.task}: call reset() before step() (and after an episode ends: "
                f"budget {self.max_episode_steps} steps)"
            )
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (4,):
            raise ValueError(f"action must have shape (4,), got {action.shape}")
        action = np.clip(action, -1.0, 1.0)
        state, reward, terminated, _, info = self._mw.step(action)
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        if truncated or terminated:
            self._needs_reset = True
        info = dict(info)
        info["success"] = bool(info.get("success", False))
        return self._obs(state), float(reward), bool(terminated), bool(truncated), info

    @property
    def elapsed_steps(self) -> int:
        return self._steps

    @property
    def metaworld_env(self):
        """The wrapped MetaWorld env (for inspection; do not step it directly)."""
        return self._mw

    def close(self) -> None:
        for name in ("_renderer", "_seg_renderer"):
            renderer = getattr(self, name, None)
            if renderer is not None:
                try:
                    renderer.close()
                finally:
                    setattr(self, name, None)
        _LIVE_ENVS.discard(self)
        super().close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def make_env(
    task: str,
    image_size: int = 64,
    camera: str = "corner2",
    seed: int | None = None,
    max_episode_steps: int | None = None,
    mesh_detail: float = MESH_DETAIL,
) -> MetaWorldEnv:
    """A MetaWorld v3 task env: obs ``{"rgb", "state"}``, actions in [-1, 1]^4, ``info["success"]``.

    Raises ValueError for an unknown task (with the closest names), an image size outside
    16..512, an unknown camera, or a ``mesh_detail`` outside (0, 1]. Episodes are truncated after
    ``min(max_episode_steps, 500)``. ``mesh_detail``: fraction of the large visual meshes' faces
    that frames are drawn with (1.0: MetaWorld's meshes); it never changes the physics.
    """
    return MetaWorldEnv(task, image_size=image_size, camera=camera, seed=seed, max_episode_steps=max_episode_steps,
                        mesh_detail=mesh_detail)
