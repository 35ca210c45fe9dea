"""What the episode store holds on disk, and the checks an episode passes before anything is written.

Layout (zarr 3), N = committed steps, E = committed episodes:

    data/rgb      uint8   (N, H, W, 3)    data/action  float32 (N, A)
    data/state    float32 (N, S)          data/success bool    (N,)
    meta/episode_ends     int64 (E,)      written last: the commit point of an episode
    meta/episodes/<col>   (E,) one array per column of ``sim.types.EPISODE_META_DEFAULTS``;
                          its zarr fill_value is the column's default
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec

from sim.types import EPISODE_META_DEFAULTS, Episode

FORMAT_NAME = "embodied.episode_store"
SCHEMA_VERSION = 1

DATA_KEYS = ("rgb", "action", "state", "success")
DATA_DTYPES = {"rgb": np.dtype(np.uint8), "action": np.dtype(np.float32), "state": np.dtype(np.float32),
               "success": np.dtype(np.bool_)}
LOWDIM_KEYS = ("action", "state", "success")

# ~64 frames per rgb chunk: a 16-step window decodes one or two chunks. Low-dim arrays and metadata
# columns take longer chunks (they are tiny); the last one is rewritten by every append (256
# episodes per metadata chunk: less to encode per append than 1024, few files per column).
RGB_CHUNK_STEPS = 64
LOWDIM_CHUNK_STEPS = 256
META_CHUNK_EPISODES = 256

# Chosen on rendered MetaWorld frames (benchmarks/store_throughput.py): zstd level 1 with 256 KiB
# blosc blocks compresses ~19x at ~1 GB/s per core (level 3: ~20x at ~0.4 GB/s); a block spans
# several frames, so zstd finds the redundancy between consecutive frames. Byte shuffle is a no-op
# on uint8 (typesize 1) and bitshuffle compresses worse; shuffle matters for the float arrays.
RGB_CODEC = dict(cname="zstd", clevel=1, shuffle="shuffle", blocksize=256 * 1024)
LOWDIM_CODEC = dict(cname="zstd", clevel=3, shuffle="shuffle")


class StoreFormatError(Exception):
    """A directory is not a readable episode store (foreign, corrupt, or from a newer version)."""


class StoreLockedError(RuntimeError):
    """Another process (or another EpisodeStore in this one) is writing the store."""


def codec(kind: str) -> BloscCodec:
    return BloscCodec(**(RGB_CODEC if kind == "rgb" else LOWDIM_CODEC))


# --- metadata columns --------------------------------------------------------------------------
def column_kind(default: Any) -> str:
    """'str' | 'bool' | 'int' | 'float', from a column's default value."""
    if isinstance(default, str):
        return "str"
    if isinstance(default, (bool, np.bool_)):
        return "bool"
    if isinstance(default, Integral):
        return "int"
    if isinstance(default, Real):
        return "float"
    raise TypeError(f"unsupported metadata default {default!r} ({type(default).__name__})")


KIND_DTYPES = {"str": str, "bool": "bool", "int": "int64", "float": "float64"}
CODE_COLUMNS = {name: column_kind(d) for name, d in EPISODE_META_DEFAULTS.items()}


def coerce_value(name: str, kind: str, value: Any) -> Any:
    """``value`` as the Python type of a ``kind`` column; ValueError naming the column otherwise."""
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if kind == "int" and isinstance(value, (Integral, np.bool_)):  # bools are 0/1 (success_gt=True)
        return int(value)
    if kind == "float" and isinstance(value, (Real, np.bool_)):
        return float(value)
    raise ValueError(f"episode metadata {name!r} must be {kind}, got {type(value).__name__} {value!r}")


def coerce_meta(meta: dict[str, Any], columns: dict[str, str], defaults: dict[str, Any]) -> dict[str, Any]:
    """One value per store column: ``meta``'s (None means the default), checked against the kinds."""
    unknown = set(meta) - set(columns)
    if unknown:
        raise ValueError(f"unknown episode metadata {sorted(unknown)}; the store's columns: {sorted(columns)}")
    out = {}
    for name, kind in columns.items():
        value = meta.get(name)
        out[name] = defaults[name] if value is None else coerce_value(name, kind, value)
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN (float metadata defaults are NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# --- schema ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """What every episode of a store shares. None: not fixed yet (the first episode fixes it)."""

    image_size: tuple[int, int] | None = None  # (H, W)
    action_dim: int | None = None
    state_dim: int | None = None
    camera: str | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    @classmethod
    def from_args(cls, image_size=None, action_dim=None, state_dim=None, camera=None, action_low=None,
                  action_high=None) -> Schema:
        if image_size is not None:
            hw = (image_size, image_size) if isinstance(image_size, Integral) else tuple(image_size)
            if len(hw) != 2 or not all(isinstance(x, Integral) and x > 0 for x in hw):
                raise ValueError(f"image_size must be an int or (H, W) of positive ints, got {image_size!r}")
            image_size = (int(hw[0]), int(hw[1]))
        for name, dim in (("action_dim", action_dim), ("state_dim", state_dim)):
            if dim is not None and not (isinstance(dim, Integral) and dim > 0):
                raise ValueError(f"{name} must be a positive int, got {dim!r}")
        bounds = []
        for name, b in (("action_low", action_low), ("action_high", action_high)):
            if b is not None:
                b = tuple(float(x) for x in np.asarray(b, dtype=np.float64).reshape(-1))
                if action_dim is not None and len(b) != action_dim:
                    raise ValueError(f"{name} has {len(b)} values, action_dim is {action_dim}")
                action_dim = action_dim if action_dim is not None else len(b)
            bounds.append(b)
        return cls(image_size, None if action_dim is None else int(action_dim),
                   None if state_dim is None else int(state_dim), camera, *bounds)

    @property
    def complete(self) -> bool:
        """Whether the data arrays' shapes are known (they are created then)."""
        return None not in (self.image_size, self.action_dim, self.state_dim)

    def merge(self, other: Schema, where: str) -> Schema:
        """``self`` with the fields ``other`` adds; ValueError where both set a field differently."""
        fields = {}
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(f"{where}: {name}={theirs!r}, but the store holds {name}={mine!r}")
            fields[name] = mine if mine is not None else theirs
        return Schema(**fields)

    def data_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-step shape of each data array."""
        return {"rgb": (*self.image_size, 3), "action": (self.action_dim,), "state": (self.state_dim,),
                "success": ()}

    def to_attrs(self) -> dict[str, Any]:
        return {
            "image_size": None if self.image_size is None else list(self.image_size),
            "camera": self.camera,
            "action_space": {"dim": self.action_dim,
                             "low": None if self.action_low is None else list(self.action_low),
                             "high": None if self.action_high is None else list(self.action_high)},
            "state_dim": self.state_dim,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Schema:
        space = attrs.get("action_space") or {}
        return cls.from_args(attrs.get("image_size"), space.get("dim"), attrs.get("state_dim"),
                             attrs.get("camera"), space.get("low"), space.get("high"))


def episode_problems(episode: Episode) -> list[str]:
    """What makes ``episode`` unstorable on its own (dtypes, ranks, lengths); [] if nothing."""
    if not isinstance(episode, Episode):
        return [f"expected a sim.types.Episode, got {type(episode).__name__}"]
    problems = []
    ranks = {"rgb": 4, "action": 2, "state": 2, "success": 1}
    for key in DATA_KEYS:
        value = getattr(episode, key)
        if not isinstance(value, np.ndarray):
            problems.append(f"{key} must be a numpy array, got {type(value).__name__}")
        elif value.dtype != DATA_DTYPES[key] or value.ndim != ranks[key]:
            problems.append(f"{key} must be {DATA_DTYPES[key]} with {ranks[key]} dims, got {value.dtype} {value.shape}")
    if problems:
        return problems
    if episode.rgb.shape[-1] != 3:
        problems.append(f"rgb must be (L, H, W, 3), got {episode.rgb.shape}")
    lengths = {key: len(getattr(episode, key)) for key in DATA_KEYS}
    if len(set(lengths.values())) != 1:
        problems.append(f"arrays must have the same length, got {lengths}")
    elif lengths["rgb"] == 0:
        problems.append("episode is empty (0 steps)")
    return problems


def episode_schema(episode: Episode) -> Schema:
    """The shapes ``episode`` would fix (call after ``episode_problems`` found none)."""
    return Schema(tuple(episode.rgb.shape[1:3]), episode.action.shape[1], episode.state.shape[1])


def schema_problems(episode: Episode, schema: Schema) -> list[str]:
    """Where ``episode``'s shapes differ from what ``schema`` has fixed; [] if nowhere."""
    got = episode_schema(episode)
    problems = []
    if schema.image_size is not None and got.image_size != schema.image_size:
        problems.append(f"rgb frames are {got.image_size} (H, W), the store holds {schema.image_size}")
    for name in ("action_dim", "state_dim"):
        want = getattr(schema, name)
        if want is not None and getattr(got, name) != want:
            problems.append(f"{name} is {getattr(got, name)}, the store holds {want}")
    return problems
