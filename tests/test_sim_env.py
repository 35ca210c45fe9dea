"""sim.env: the Gymnasium API, seeding, rendering (non-blank, upright) and input errors."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim.catalog import TASKS
from sim.env import CAMERAS, FLIPPED_CAMERAS, check_frame, make_env


@pytest.fixture
def env():
    e = make_env("drawer-open-v3", image_size=48, camera="corner2", seed=0)
    yield e
    e.close()


def test_check_env(env):
    check_env(env, skip_render_check=True)


def test_shapes_dtypes_and_spaces(env):
    obs, info = env.reset(seed=1)
    assert set(obs) == {"rgb", "state"}
    assert obs["rgb"].dtype == np.uint8 and obs["rgb"].shape == (48, 48, 3)
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (39,)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs2, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs2)
    assert isinstance(info["success"], bool) and isinstance(reward, float)
    assert not terminated and not truncated
    # render() is the current frame (the one in the last observation)
    np.testing.assert_array_equal(env.render(), obs2["rgb"])
    # the frame is not blank
    assert obs2["rgb"].std() > 5


def test_seed_reproducible_and_varied(env):
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a["rgb"], b["rgb"])
    assert np.abs(a["state"] - c["state"]).max() > 1e-3  # different object / goal placement

    # A fresh env gives the same scene for the same seed, and same steps give the same states.
    other = make_env("drawer-open-v3", image_size=48, camera="corner2")
    try:
        d, _ = other.reset(seed=7)
        np.testing.assert_array_equal(a["state"], d["state"])
        np.testing.assert_array_equal(a["rgb"], d["rgb"])
        env.reset(seed=7)
        for _ in range(5):
            s1 = env.step([0.3, -0.2, 0.1, 1.0])[0]["state"]
            s2 = other.step([0.3, -0.2, 0.1, 1.0])[0]["state"]
            np.testing.assert_array_equal(s1, s2)
    finally:
        other.close()


def test_reset_without_seed_continues_rng():
    e1 = make_env("reach-v3", image_size=32, seed=3)
    e2 = make_env("reach-v3", image_size=32)
    try:
        first = e1.reset()[0]["state"]  # seeded at construction
        second = e1.reset()[0]["state"]
        assert np.abs(first - second).max() > 1e-3  # the RNG moved on
        e2.reset(seed=3)
        np.testing.assert_array_equal(e2.reset()[0]["state"], second)  # ... reproducibly
    finally:
        e1.close()
        e2.close()


def test_truncation_at_step_budget():
    e = make_env("reach-v3", image_size=16, max_episode_steps=3)
    try:
        e.reset(seed=0)
        flags = [e.step(np.zeros(4))[3] for _ in range(3)]
        assert flags == [False, False, True]
        with pytest.raises(RuntimeError, match="reset"):
            e.step(np.zeros(4))
        e.reset()
        assert not e.step(np.zeros(4))[3]
    finally:
        e.close()
    big = make_env("reach-v3", image_size=16, max_episode_steps=10_000)
    assert big.max_episode_steps == 500  # MetaWorld's max_path_length
    big.close()


def test_close_frees_renderer():
    e = make_env("reach-v3", image_size=16)
    e.reset(seed=0)
    e.close()
    with pytest.raises(RuntimeError, match="closed"):
        e.render()
    e.close()  # idempotent


def test_blank_frame_detection():
    with pytest.raises(RuntimeError, match="MUJOCO_GL=egl"):
        check_frame(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(RuntimeError, match="flags"):
        check_frame(np.full((8, 8, 3), 255, np.uint8))
    img = np.zeros((8, 8, 3), np.uint8)
    img[3, 4, 1] = 10
    assert check_frame(img) is img


def _hand_geom(model) -> int:
    body = model.body("right_hand").id
    return next(g for g in range(model.ngeom) if model.geom_bodyid[g] == body and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH)


def _project(model, data, camera: str, point: np.ndarray, size: int) -> tuple[float, float]:
    """Pixel (row, col) of a world point in an *upright* frame, from the camera pose.

    MuJoCo's camera looks along its -z axis with +y up; an upright frame of a camera defined upside
    down (FLIPPED_CAMERAS) is the raw one rotated by 180 degrees.
    """
    cam = model.camera(camera).id
    x, y, z = data.cam_xmat[cam].reshape(3, 3).T @ (point - data.cam_xpos[cam])
    f = 0.5 * size / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)
    row, col = size / 2 - f * y / -z, size / 2 + f * x / -z
    if camera in FLIPPED_CAMERAS:
        row, col = size - row, size - col
    return row, col


@pytest.mark.parametrize("camera", sorted(FLIPPED_CAMERAS))
def test_frames_are_upright(camera):
    """Move the hand down, up, then sideways: in the rendered frame, higher z must mean a smaller
    row (world-up is image-up), and the hand's pixels must sit where the camera model projects it
    in every pose (which also rules out a mirror image)."""
    size = 96
    e = make_env("reach-v3", image_size=size, camera=camera, seed=0)
    try:
        e.reset(seed=0)
        model, data = e.metaworld_env.model, e.metaworld_env.data
        geom = _hand_geom(model)
        seen = []
        for action in ([0, 0, -1, 0], [0, 0, 1, 0], [-1, 0, 0, 0]):
            for _ in range(25):
                e.step(action)
            mask = e.render_segmentation() == geom
            assert mask.sum() >= 5, f"hand not visible from {camera}"
            rows, cols = np.nonzero(mask)
            rows, cols = rows + 0.5, cols + 0.5  # pixel centres
            seen.append((data.geom_xpos[geom][2], rows.mean(), cols.mean(), _project(model, data, camera, data.geom_xpos[geom], size)))
            # the segmentation is the rgb frame's geometry: hand pixels differ from the background
            rgb = e.render()
            assert rgb[mask].mean(axis=0).tolist() != rgb[~mask].mean(axis=0).tolist()
        (z_low, row_low, _, _), (z_high, row_high, _, _), _ = seen
        assert z_high > z_low + 0.1
        assert row_high < row_low - 3, f"{camera}: raising the hand moved it down in the image (upside down)"
        # off the centre column in some pose, so that a left-right mirror would be caught below
        assert max(abs(col - size / 2) for _, _, col, _ in seen) > 4
        for _, row, col, (prow, pcol) in seen:
            assert abs(row - prow) < 3 and abs(col - pcol) < 3, (camera, row, col, prow, pcol)
    finally:
        e.close()


def test_bad_inputs():
    with pytest.raises(ValueError, match="drawer-open-v3"):
        make_env("drawer-opne-v3")
    with pytest.raises(ValueError, match="unknown MetaWorld task"):
        make_env("fly-to-the-moon")
    for bad in (8, 1024, 64.0, "64", None, True):
        with pytest.raises(ValueError, match="16..512"):
            make_env("reach-v3", image_size=bad)
    with pytest.raises(ValueError, match="corner2") as err:
        make_env("reach-v3", camera="front")
    assert all(c in str(err.value) for c in CAMERAS)


@pytest.mark.slow
def test_every_task_creates_resets_and_steps():
    for task in TASKS:
        e = make_env(task, image_size=32, seed=0)
        try:
            obs, _ = e.reset(seed=0)
            obs, _, _, _, info = e.step(e.action_space.sample())
            assert obs["rgb"].shape == (32, 32, 3) and obs["rgb"].std() > 5, task
            assert obs["state"].shape == (39,) and np.isfinite(obs["state"]).all(), task
            assert isinstance(info["success"], bool)
        finally:
            e.close()


def test_torch_libraries_load_after_rendering():
    """diffusers (through Triton) must import in a process that has already rendered frames."""
    import subprocess
    import sys

    code = ("from sim.env import make_env; e = make_env('reach-v3', image_size=16); e.reset(seed=0); e.close(); "
            "import diffusers.utils.peft_utils; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# --- simplified render meshes (sim/lod.py) ------------------------------------------------------

def _same_scene_pair(size: int, camera: str = "corner2", steps: int = 15):
    """The same scene and pose with the default simplified meshes and with MetaWorld's full ones."""
    lod = make_env("drawer-open-v3", image_size=size, camera=camera, seed=0)
    full = make_env("drawer-open-v3", image_size=size, camera=camera, seed=0, mesh_detail=1.0)
    a, b = lod.reset(seed=3)[0], full.reset(seed=3)[0]
    for _ in range(steps):
        a, b = lod.step([0.5, -0.3, -0.5, 1.0])[0], full.step([0.5, -0.3, -0.5, 1.0])[0]
    return lod, full, a, b


@pytest.mark.parametrize("size", [64, 128])
def test_simplified_meshes_look_like_full_ones(size):
    lod, full = None, None
    try:
        lod, full, a, b = _same_scene_pair(size)
        np.testing.assert_array_equal(a["state"], b["state"])
        # Mean absolute difference per pixel channel (0-255): measured ~0.3 at 64 and 128 px; with
        # the simplified meshes missing it is ~5, with their faces garbled ~1.4.
        mad = np.abs(a["rgb"].astype(int) - b["rgb"].astype(int)).mean()
        assert mad < 1.0, mad
        # Every visible simplified part is where the full one is (per-geom overlap of the
        # segmentations: measured >= 0.79; a missing or garbled part gives ~0).
        model, rmodel = full.metaworld_env.model, lod._render_model
        seg_lod, seg_full = lod.render_segmentation(), full.render_segmentation()
        checked = 0
        for g in range(model.ngeom):
            mesh = model.geom_dataid[g]
            if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH or rmodel.mesh_facenum[mesh] == model.mesh_facenum[mesh]:
                continue
            m_full, m_lod = seg_full == g, seg_lod == g
            if m_full.sum() >= 15:
                iou = (m_full & m_lod).sum() / (m_full | m_lod).sum()
                assert iou > 0.6, (model.mesh(mesh).name, iou)
                checked += 1
        assert checked >= 5
    finally:
        for e in (lod, full):
            if e is not None:
                e.close()


def test_simplified_meshes_leave_physics_untouched():
    """Same seed and actions (MetaWorld's expert, which grasps and pulls the drawer: contacts with
    the gripper's collision mesh included) give the same states, rewards and success."""
    from sim.experts import make_expert

    lod = make_env("drawer-open-v3", image_size=16, seed=0)
    full = make_env("drawer-open-v3", image_size=16, seed=0, mesh_detail=1.0)
    try:
        pm, rm = lod.metaworld_env.model, lod._render_model
        assert rm.mesh_facenum.sum() < 0.35 * pm.mesh_facenum.sum()  # the renderer's meshes are simplified ...
        for name in ("mesh_vert", "mesh_face", "mesh_normal", "mesh_facenum", "mesh_vertnum", "mesh_graphadr"):
            np.testing.assert_array_equal(getattr(pm, name), getattr(full.metaworld_env.model, name))  # ... physics' not
        expert = make_expert("drawer-open-v3")
        a, b = lod.reset(seed=5)[0], full.reset(seed=5)[0]
        successes = 0
        for _ in range(120):
            np.testing.assert_array_equal(a["state"], b["state"])
            action = expert.act(a["state"])
            a, ra, _, _, ia = lod.step(action)
            b, rb, _, _, ib = full.step(action)
            assert ra == rb and ia["success"] == ib["success"]
            successes += ia["success"]
        assert successes > 0  # the comparison covered success, not just the approach
    finally:
        lod.close()
        full.close()


def test_bad_mesh_detail():
    for bad in (0, 0.0, -0.5, 1.5, float("nan"), "0.5", None, True):
        with pytest.raises(ValueError, match="mesh_detail"):
            make_env("reach-v3", image_size=16, mesh_detail=bad)
