"""embodied-export / embodied-import: the episode store <-> LeRobotDataset v3, through lerobot's own dataset API.

    embodied-export store=data/robot.zarr output=exports/robot_ds repo_id=me/robot_ds fps=10
    embodied-import dataset=<LeRobotDataset root> store=data/so101.zarr image_size=64

Export writes with ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``, so
the frames are encoded as LeRobot encodes them (AV1 through PyAV; ``use_videos=false`` writes PNG
images instead) and LeRobot's tools read the result. Per frame:

    observation.images.<camera>  video | image (H, W, 3)   the store's rgb
    observation.state            float32 (S,)               names: state_names, else state.0 ..
    action                       float32 (A,)               names: action_names, else action.0 ..
    success                      bool (1,)                  the per-step simulator flag
    task                         the episode's instruction (LeRobot's task string)

An episode of L steps becomes L frames (the last with the zero action). LeRobot has no place for
our per-episode columns (source, seed, success_gt, grader, ...): they go to a side file,
``meta/embodied_episodes.jsonl``, one row per episode, which lerobot ignores and import reads.

Import reads any LeRobotDataset v3 with ``LeRobotDataset`` (decoding video needs torchcodec and
FFmpeg's libraries; see ``check_video_decoding``). Frames are centre-cropped and resized to the
store's square ``image_size``; the last frame's action becomes zero (the store's contract). Without
the side file: task = instruction = LeRobot's task string, source = ``lerobot``, success_gt from a
``success`` / ``next.success`` feature when there is one, else -1.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from sim.types import EPISODE_META_DEFAULTS, Episode

log = logging.getLogger(__name__)

SIDE_FILE = "meta/embodied_episodes.jsonl"
SUCCESS_KEYS = ("success", "next.success")
TORCHCODEC_HINT = ("reading LeRobot video datasets needs torchcodec==0.17.0 (pip install --no-deps torchcodec==0.17.0) "
                   "and FFmpeg's shared libraries (apt-get install ffmpeg); lerobot's PyAV fallback calls "
                   "torchvision.io.VideoReader, which torchvision 0.29 no longer has. Export with use_videos=false "
                   "to write PNG images, which need neither.")


@dataclass
class ExportConfig:
    store: str = MISSING  # episode store to read
    output: str = MISSING  # LeRobotDataset root directory to create (must not exist)
    repo_id: str = "local/embodied"  # the dataset's name (info.json; what push_to_hub would use)
    fps: int = 10  # frames per second (the control rate the episodes were recorded at)
    use_videos: bool = True  # true: AV1 video as LeRobot records; false: PNG images
    vcodec: str = "libsvtav1"  # LeRobot's video codec choice (libsvtav1 | h264 | hevc | auto ...)
    camera: str = ""  # image feature observation.images.<camera>; "": the store's camera, else "rgb"
    robot_type: str = ""  # info.json robot_type (e.g. so101_follower)
    state_names: list[str] | None = None  # names of observation.state entries; None: state.0, state.1, ...
    action_names: list[str] | None = None  # names of action entries; None: action.0, ...
    sources: list[str] = field(default_factory=list)  # only these sources ([]: all)
    success_only: bool = False  # only episodes with success_gt == 1
    include_aborted: bool = False  # also episodes whose grader says "aborted: ..." (partial, stopped by a fault)


@dataclass
class ImportConfig:
    dataset: str = MISSING  # LeRobotDataset root directory (with meta/info.json)
    store: str = MISSING  # episode store to append to (created if missing)
    image_size: int = 64  # square frames of the store (centre crop + resize)
    camera: str = ""  # which observation.images.<camera> to take; "": the first
    source: str = ""  # the store's source column; "": from the side file, else "lerobot"
    repo_id: str = ""  # the dataset's name for LeRobot; "": the directory name
    episodes: list[int] | None = None  # dataset episode indices; None: all


cs = ConfigStore.instance()
cs.store(name="export_schema", node=ExportConfig)
cs.store(name="import_schema", node=ImportConfig)


def is_aborted(meta: dict[str, Any]) -> bool:
    return str(meta.get("grader", "")).startswith("aborted")


def _names(given: list[str] | None, prefix: str, n: int) -> list[str]:
    if given is None:
        return [f"{prefix}.{i}" for i in range(n)]
    if len(given) != n:
        raise ValueError(f"{prefix}_names has {len(given)} names, the store's {prefix} has {n} entries")
    return list(given)


# --- export ------------------------------------------------------------------------------------------------
def export_dataset(cfg: ExportConfig) -> Path:
    """Write the selected store episodes as a LeRobotDataset v3 at ``cfg.output``; returns its root."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from embodied.store import EpisodeStore

    out = Path(cfg.output)
    if out.exists():
        raise FileExistsError(f"{out} exists: export writes a new dataset (choose another output, or delete it)")
    if cfg.fps < 1:
        raise ValueError(f"fps must be >= 1, got {cfg.fps}")
    store = EpisodeStore(cfg.store, mode="r")
    ids = [i for i in range(len(store)) if _selected(store.meta(i), cfg)]
    if not ids:
        raise ValueError(f"no episode of {cfg.store} matches (sources={cfg.sources or 'all'}, "
                         f"success_only={cfg.success_only}, include_aborted={cfg.include_aborted})")
    schema = store.schema
    h, w = schema.image_size
    image_key = f"observation.images.{cfg.camera or schema.camera or 'rgb'}"
    features = {
        image_key: {"dtype": "video" if cfg.use_videos else "image", "shape": (h, w, 3),
                    "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (schema.state_dim,),
                              "names": _names(cfg.state_names, "state", schema.state_dim)},
        "action": {"dtype": "float32", "shape": (schema.action_dim,),
                   "names": _names(cfg.action_names, "action", schema.action_dim)},
        "success": {"dtype": "bool", "shape": (1,), "names": None},
    }
    dataset = LeRobotDataset.create(cfg.repo_id, fps=cfg.fps, features=features, root=out,
                                    robot_type=cfg.robot_type or None, use_videos=cfg.use_videos, vcodec=cfg.vcodec)
    rows = []
    try:
        for n, i in enumerate(ids):
            meta = store.meta(i)
            task = meta["instruction"] or meta["task"] or "unnamed task"
            rgb, state, action, success = (store.get(i, key) for key in ("rgb", "state", "action", "success"))
            for t in range(len(rgb)):
                dataset.add_frame({image_key: rgb[t], "observation.state": state[t], "action": action[t],
                                   "success": np.array([success[t]]), "task": task})
            dataset.save_episode()
            rows.append({"episode_index": n, "store_index": i, **_jsonable(meta)})
    finally:
        dataset.finalize()
    with open(out / SIDE_FILE, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    log.info("exported %d episodes of %s to %s", len(ids), cfg.store, out)
    return out


def _selected(meta: dict[str, Any], cfg: ExportConfig) -> bool:
    return ((not cfg.sources or meta["source"] in cfg.sources) and (not cfg.success_only or meta["success_gt"] == 1)
            and (cfg.include_aborted or not is_aborted(meta)))


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in meta.items()}


# --- import ------------------------------------------------------------------------------------------------
def check_video_decoding() -> None:
    """Raise RuntimeError (saying what to install) unless torchcodec can decode video here."""
    try:
        from torchcodec._core import ops
    except (ImportError, RuntimeError, OSError) as e:
        raise RuntimeError(f"{TORCHCODEC_HINT} ({type(e).__name__}: {e})") from None
    # torchcodec imports without FFmpeg (its image decoders need none) and says so in this flag (0.17).
    if not getattr(ops, "_FFMPEG_AVAILABLE", True):
        raise RuntimeError(f"{TORCHCODEC_HINT} (torchcodec is installed but found no FFmpeg libraries to load)")


def read_dataset(path: str | Path, repo_id: str = ""):
    """``LeRobotDataset`` of the local root ``path`` (never downloads)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(path)
    info = root / "meta" / "info.json"
    if not info.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobotDataset root: {info} is missing")
    version = json.loads(info.read_text()).get("codebase_version", "?")
    if not str(version).startswith("v3"):
        raise ValueError(f"{root} is a LeRobotDataset {version}; this reads v3.x (convert it with lerobot's "
                         f"lerobot/datasets/v30/convert_dataset_v21_to_v30.py)")
    has_video = any(ft.get("dtype") == "video" for ft in json.loads(info.read_text()).get("features", {}).values())
    if has_video:
        check_video_decoding()
    return LeRobotDataset(repo_id or root.name, root=root, video_backend="torchcodec" if has_video else None)


def _to_uint8_hwc(image) -> np.ndarray:
    """LeRobot's float (C, H, W) in [0, 1] (or uint8 / HWC) -> uint8 (H, W, 3)."""
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 0, -1)
    if x.dtype != np.uint8:
        x = np.clip(np.rint(x.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return x


def import_dataset(cfg: ImportConfig) -> list[int]:
    """Append the dataset's episodes to ``cfg.store``; returns their store indices."""
    from embodied.robots.robot import square_resize
    from embodied.store import EpisodeStore
    from sim.env import check_image_size

    size = check_image_size(cfg.image_size)
    ds = read_dataset(cfg.dataset, cfg.repo_id)
    cameras = list(ds.meta.camera_keys)
    if not cameras:
        raise ValueError(f"{cfg.dataset} has no camera feature (observation.images.*): the store needs frames")
    image_key = f"observation.images.{cfg.camera}" if cfg.camera else cameras[0]
    if image_key not in cameras:
        raise ValueError(f"{cfg.dataset} has no {image_key}; its cameras: {cameras}")
    for key in ("observation.state", "action"):
        if key not in ds.features:
            raise ValueError(f"{cfg.dataset} has no {key} feature; the store needs state and action vectors")
    success_key = next((k for k in SUCCESS_KEYS if k in ds.features), None)
    side = _read_side_file(Path(cfg.dataset))
    episodes = cfg.episodes if cfg.episodes is not None else list(range(ds.meta.total_episodes))

    indices = []
    with EpisodeStore(cfg.store, mode="a", image_size=size) as store:
        for ep in episodes:
            if not 0 <= ep < ds.meta.total_episodes:
                raise IndexError(f"episode {ep} out of range: {cfg.dataset} has {ds.meta.total_episodes}")
            info = ds.meta.episodes[ep]
            frames = [ds[j] for j in range(info["dataset_from_index"], info["dataset_to_index"])]
            rgb = np.stack([square_resize(_to_uint8_hwc(f[image_key]), size) for f in frames])
            state = np.stack([np.asarray(f["observation.state"], np.float32).reshape(-1) for f in frames])
            action = np.stack([np.asarray(f["action"], np.float32).reshape(-1) for f in frames])
            action[-1] = 0.0  # the last step: nothing observed follows its action
            success = np.array([bool(np.asarray(f[success_key]).any()) if success_key else False for f in frames])
            meta = _import_meta(side.get(ep), frames[0]["task"], success_key, success, cfg, ds.repo_id)
            indices.append(store.append(Episode(rgb=rgb, action=action, state=state, success=success, meta=meta)))
    log.info("imported %d episodes of %s into %s", len(indices), cfg.dataset, cfg.store)
    return indices


def _read_side_file(root: Path) -> dict[int, dict[str, Any]]:
    path = root / SIDE_FILE
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["episode_index"]): r for r in rows}


def _import_meta(row: dict[str, Any] | None, task: str, success_key: str | None, success: np.ndarray,
                 cfg: ImportConfig, repo_id: str) -> dict[str, Any]:
    if row is not None:  # our own export: every column back as it was
        meta = {k: row[k] for k in EPISODE_META_DEFAULTS if k in row and row[k] is not None}
    else:
        meta = {"task": task, "instruction": task, "source": "lerobot", "checkpoint": f"lerobot:{repo_id}",
                "success_gt": int(success.any()) if success_key else -1}
    if cfg.source:
        meta["source"] = cfg.source
    return meta


# --- the CLIs -----------------------------------------------------------------------------------------------
