"""Store <-> LeRobotDataset v3 through lerobot's own API, checked with lerobot's LeRobotDataset loader."""

import math

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore:Converting input from bool:RuntimeWarning")

from embodied.lerobot_io import (  # noqa: E402
    ExportConfig,
    ImportConfig,
    check_video_decoding,
    export_dataset,
    import_dataset,
    read_dataset,
)
from embodied.store import EpisodeStore  # noqa: E402
from sim.types import Episode  # noqa: E402

SIZE = 32


def smooth_frames(n: int, h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    """A gradient with a moving bright square: video codecs keep such frames close (noise they do not)."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 200, w, dtype=np.uint8)[None, None, :]
    frames[..., 2] = np.linspace(0, 200, h, dtype=np.uint8)[None, :, None]
    for t in range(n):
        r, c = (2 * t + seed) % (h - 8), (3 * t + seed) % (w - 8)
        frames[t, r : r + 8, c : c + 8] = 255
    return frames


def episode(n: int, rng_seed: int, **meta) -> Episode:
    rng = np.random.default_rng(rng_seed)
    action = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    action[-1] = 0
    success = np.zeros(n, bool)
    success[-2:] = meta.get("success_gt", 0) == 1
    return Episode(rgb=smooth_frames(n, seed=rng_seed), action=action, state=rng.normal(0, 1, (n, 5)).astype(np.float32),
                   success=success, meta=meta)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "robot.zarr"
    with EpisodeStore(path, mode="a", camera="front") as s:
        s.append(episode(12, 0, task="reach-v3", instruction="reach the goal", source="robot", seed=3, success_gt=1,
                         grader="oracle", grader_score=1.0, checkpoint="planner=a;policy=b", created_at=1.5))
        s.append(episode(7, 1, task="reach-v3", instruction="reach the goal", source="robot", seed=4, success_gt=0,
                         grader="aborted: robot stalled: get_observation gave no answer within 1 s"))
        s.append(episode(9, 2, task="push-v3", instruction="push the puck", source="plan", seed=5, success_gt=-1))
    return path


def test_image_export_round_trips_exactly(store, tmp_path):
    out = export_dataset(ExportConfig(store=str(store), output=str(tmp_path / "ds"), use_videos=False, fps=10,
                                      state_names=[f"joint{i}.pos" for i in range(5)], robot_type="sim_twin"))
    ds = read_dataset(out)  # lerobot's own loader
    assert ds.num_episodes == 2 and ds.num_frames == 12 + 9  # the aborted episode is left out by default
    assert ds.meta.robot_type == "sim_twin" and ds.fps == 10
    assert ds.features["observation.state"]["names"][0] == "joint0.pos" and ds.meta.camera_keys == ["observation.images.front"]
    item = ds[3]
    assert item["task"] == "reach the goal" and item["observation.images.front"].shape == (3, SIZE, SIZE)
    with EpisodeStore(store) as src:
        np.testing.assert_array_equal(np.rint(item["observation.images.front"].numpy() * 255).astype(np.uint8),
                                      src.get(0, "rgb", 3).transpose(2, 0, 1))
        np.testing.assert_array_equal(item["action"].numpy(), src.get(0, "action", 3))

    indices = import_dataset(ImportConfig(dataset=str(out), store=str(tmp_path / "back.zarr"), image_size=SIZE))
    assert indices == [0, 1]
    with EpisodeStore(store) as src, EpisodeStore(tmp_path / "back.zarr") as back:
        for mine, theirs in ((0, 0), (2, 1)):
            for key in ("rgb", "state", "action", "success"):
                np.testing.assert_array_equal(back.get(theirs, key), src.get(mine, key), err_msg=key)
            a, b = back.meta(theirs), src.meta(mine)
            assert {k: v for k, v in a.items() if not (isinstance(v, float) and math.isnan(v))} == \
                   {k: v for k, v in b.items() if not (isinstance(v, float) and math.isnan(v))}


def test_video_export_is_read_back_by_lerobot(store, tmp_path):
    try:
        check_video_decoding()
    except RuntimeError as e:
        pytest.skip(f"no video decoder here: {e}")
    out = export_dataset(ExportConfig(store=str(store), output=str(tmp_path / "ds"), include_aborted=True))
    ds = read_dataset(out)
    assert ds.num_episodes == 3 and ds.meta.video_keys == ["observation.images.front"]
    import_dataset(ImportConfig(dataset=str(out), store=str(tmp_path / "back.zarr"), image_size=SIZE, source="robot"))
    with EpisodeStore(store) as src, EpisodeStore(tmp_path / "back.zarr") as back:
        assert len(back) == 3 and back.meta(1)["grader"].startswith("aborted: robot stalled")
        decoded, original = back.get(0, "rgb").astype(float), src.get(0, "rgb").astype(float)
        assert np.abs(decoded - original).mean() < 6.0  # AV1 at LeRobot's settings: lossy, but close
        np.testing.assert_array_equal(back.get(2, "action"), src.get(2, "action"))


def test_import_of_someone_elses_dataset(tmp_path):
    """A dataset written with lerobot's API alone: 48 x 64 frames, next.success, no side file."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {"observation.images.wrist": {"dtype": "image", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
                "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"m{i}.pos" for i in range(6)]},
                "action": {"dtype": "float32", "shape": (6,), "names": [f"m{i}.pos" for i in range(6)]},
                "next.success": {"dtype": "bool", "shape": (1,), "names": None}}
    ds = LeRobotDataset.create("someone/pick", fps=30, features=features, root=tmp_path / "theirs", use_videos=False)
    frames = smooth_frames(5, 48, 64)
    for t in range(5):
        ds.add_frame({"observation.images.wrist": frames[t], "observation.state": np.full(6, t, np.float32),
                      "action": np.full(6, t + 1, np.float32), "next.success": np.array([t == 4]), "task": "pick the cube"})
    ds.save_episode()
    ds.finalize()

    import_dataset(ImportConfig(dataset=str(tmp_path / "theirs"), store=str(tmp_path / "ours.zarr"), image_size=SIZE))
    with EpisodeStore(tmp_path / "ours.zarr") as s:
        meta = s.meta(0)
        assert (meta["task"], meta["instruction"], meta["source"], meta["success_gt"]) == \
               ("pick the cube", "pick the cube", "lerobot", 1)
        assert s.image_size == (SIZE, SIZE) and s.get(0, "rgb").std() > 0  # centre-cropped to 48 x 48, resized
        np.testing.assert_array_equal(s.get(0, "action")[:, 0], [1, 2, 3, 4, 0])  # the last action is zero


def test_errors_say_what_to_do(store, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        export_dataset(ExportConfig(store=str(store), output=str(tmp_path / "taken")))
    with pytest.raises(ValueError, match="no episode of"):
        export_dataset(ExportConfig(store=str(store), output=str(tmp_path / "x"), sources=["expert"]))
    with pytest.raises(FileNotFoundError, match="not a LeRobotDataset root"):
        import_dataset(ImportConfig(dataset=str(tmp_path / "taken"), store=str(tmp_path / "s.zarr")))


def test_cli_configs_compose():
    import embodied.lerobot_io  # noqa: F401  (registers the schemas)
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        export = OmegaConf.to_object(compose(config_name="export", overrides=["store=a", "output=b", "use_videos=false"]))
        imported = OmegaConf.to_object(compose(config_name="import", overrides=["dataset=c", "store=d"]))
    assert isinstance(export, ExportConfig) and not export.use_videos and export.fps == 10
    assert isinstance(imported, ImportConfig) and imported.image_size == 64


def test_reading_video_without_a_decoder_says_what_to_install(store, tmp_path, monkeypatch):
    import sys

    out = export_dataset(ExportConfig(store=str(store), output=str(tmp_path / "ds")))  # writing needs no decoder
    monkeypatch.setitem(sys.modules, "torchcodec._core", None)  # as if torchcodec were not installed
    with pytest.raises(RuntimeError, match=r"torchcodec==0.17.0.*apt-get install ffmpeg.*use_videos=false"):
        read_dataset(out)
